//! The queue between real processes: broadcast in both modes, late joiners, producer death and
//! take-over, dead consumers, and the exit contract.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shmio::queue::{Policy, Producer, ProducerStatus, QueueOptions};

const T: Duration = Duration::from_secs(60);

#[test]
fn backpressure_three_consumers_get_every_record_in_order() {
    let q = QueueName::new("bp3");
    const COUNT: u64 = 200_000;
    let p = Proc::qtool_line(&format!(
        "produce {q} --policy bp --slots 64 --size 64 --count {COUNT} --wait-consumers 3"
    ))
    .once("ready", T);
    let count = format!("--count {COUNT}");
    let zero_copy = format!("{count} --zero-copy");
    let variants = [count.as_str(), &zero_copy, &count];
    for c in start_all(Proc::qtool, &from_oldest(&q, &variants), "opened 0", T) {
        assert_every_record(c, T, 0, COUNT, "done");
    }
    assert_sent(p, T, COUNT);
}

#[test]
fn overwrite_three_slow_consumers_report_exactly_the_gap() {
    let q = QueueName::new("ow3");
    const COUNT: u64 = 100_000;
    let p = Proc::qtool_line(&format!(
        "produce {q} --slots 16 --size 128 --count {COUNT} --wait-consumers 3"
    ))
    .once("ready", T);
    let variants = ["--slow-us 0", "--slow-us 2", "--slow-us 20 --zero-copy"];
    let consumers = start_all(Proc::qtool, &from_oldest(&q, &variants), "opened", T);
    let (code, _) = p.finish(T);
    assert_eq!(code, 0);
    let mut total_lost = 0;
    for c in consumers {
        let (code, lines) = c.finish(T);
        assert_eq!(code, 0, "consumer must end with Closed: {:?}", lines.last());
        let got = recs(&lines);
        let (status, received, lost) = end_line(&lines);
        assert_eq!(status, "closed");
        assert_eq!(received, got.len() as u64);
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "out of order or duplicate"
        );
        // Every sequence number not received is reported lost, and nothing else.
        assert_eq!(received + lost, COUNT, "received {received} + lost {lost}");
        total_lost += lost;
    }
    // The slowest consumer (20 us per record against a 16-slot ring) must have lost some.
    assert!(total_lost > 0);
}

#[test]
fn late_consumer_starts_at_newest_record() {
    let q = QueueName::new("late");
    let mut p = Proc::qtool(&["produce", &q.0, "--count", "100", "--hold"]);
    p.expect_line("sent 100", T);
    let mut c = Proc::qtool(&["consume", &q.0, "--count", "1", "--timeout-ms", "5000"]);
    c.expect_line("opened 99", T);
    let (code, lines) = c.finish(T);
    assert_eq!(code, 0);
    assert_eq!(recs(&lines), vec![99]);
}

#[test]
fn killed_producer_is_noticed_promptly_after_draining() {
    let q = QueueName::new("kill");
    let mut p = Proc::qtool_line(&format!(
        "produce {q} --slots 1024 --count 500 --wait-consumers 3 --hold"
    ))
    .once("ready", T);
    let consumers = start_all(Proc::qtool, &from_oldest(&q, &["", "", ""]), "opened", T);
    p.expect_line("sent 500", T);
    // Let the consumers drain and go to sleep in the futex wait; every committed record must
    // arrive exactly once.
    let settle = Duration::from_millis(300);
    assert_death_noticed(consumers, 500, settle, "three consumers", || p.kill9());
    let st = shmio::queue::inspect(&q.0).unwrap();
    assert!(matches!(st.producer, ProducerStatus::Dead { .. }));
}

#[test]
fn death_wakes_a_blocked_consumer_within_50ms() {
    // Measured in-process on the consumer side: from SIGKILL to ProducerDead.
    let q = QueueName::new("wake50");
    let mut p = Proc::qtool(&["produce", &q.0, "--count", "1", "--hold"]);
    p.expect_line("sent 1", T);
    let mut c = shmio::queue::Consumer::open(&q.0, shmio::queue::Start::Newest).unwrap();
    let mut buf = [0u8; 64];
    c.recv(&mut buf).unwrap();
    let h = std::thread::spawn(move || {
        let r = c.recv(&mut buf);
        (Instant::now(), r.err().map(|e| e.to_string()))
    });
    std::thread::sleep(Duration::from_millis(200));
    let killed = Instant::now();
    p.kill9();
    let (woke, err) = h.join().unwrap();
    let took = woke.duration_since(killed);
    assert!(err.unwrap().contains("died"));
    assert!(took < Duration::from_millis(50), "took {took:?}");
}

#[test]
fn takeover_after_death_never_delivers_the_half_written_record() {
    let q = QueueName::new("takeover");
    let mut p = Proc::qtool_line(&format!(
        "produce {q} --slots 64 --size 256 --count 10 --die-mid-record"
    ));
    let (code, _) = {
        p.expect_line("sent 10", T);
        let st = p.child.wait().unwrap();
        (st.code(), ())
    };
    assert_eq!(code, None, "the producer kills itself mid-record");
    let st = shmio::queue::inspect(&q.0).unwrap();
    assert!(matches!(st.producer, ProducerStatus::Dead { .. }));
    assert_eq!(st.head, 10);
    // A consumer attached across the take-over sees the old records, then the new ones.
    let mut c = Proc::qtool_line(&format!("consume {q} --from oldest --count 20 --survive"));
    c.expect_line("opened 0", T);
    c.expect_line("gone dead", T);
    let mut p2 = Proc::qtool(&["produce", &q.0, "--open", "--size", "256", "--count", "10"]);
    p2.expect_line("ready 10", T);
    let (code, lines) = c.finish(T);
    assert_eq!(code, 0, "{:?}", lines.last());
    // Every record passes its pattern check (a torn one would print `bad`), in order.
    assert!(recs(&lines).into_iter().eq(0..20));
    assert_eq!(p2.finish(T).0, 0);
    assert_eq!(shmio::queue::inspect(&q.0).unwrap().producer_generation, 2);
}

#[test]
fn second_live_producer_is_refused() {
    let q = QueueName::new("two");
    let _p = Proc::qtool(&["produce", &q.0, "--hold"]).once("ready", T);
    let (code, _) = Proc::qtool(&["produce", &q.0, "--open"]).finish(T);
    assert_eq!(code, 2);
    assert!(matches!(
        Producer::open(&q.0),
        Err(shmio::queue::Error::ProducerExists { .. })
    ));
}

#[test]
fn dead_consumer_does_not_stall_a_backpressure_producer() {
    let q = QueueName::new("deadc");
    let opts = QueueOptions::new()
        .slots(16)
        .slot_size(64)
        .policy(Policy::BackPressure);
    let mut p = Producer::create(&q.0, &opts).unwrap();
    let mut stuck = Proc::qtool(&["consume", &q.0, "--hold"]);
    stuck.expect_line("opened", T);
    // The ring fills: the producer blocks on the consumer that never reads.
    for i in 0..16u64 {
        p.try_send(&i.to_le_bytes()).unwrap();
    }
    assert!(matches!(
        p.try_send(b"x"),
        Err(shmio::queue::Error::WouldBlock)
    ));
    // Kill it while the producer sleeps waiting for it: the kernel's robust-futex wake evicts it.
    let h = std::thread::spawn(move || {
        let t = Instant::now();
        for i in 16..1016u64 {
            p.send_for(&i.to_le_bytes(), Some(Duration::from_secs(10)))
                .unwrap();
        }
        (t.elapsed(), p)
    });
    std::thread::sleep(Duration::from_millis(200));
    let killed = Instant::now();
    stuck.kill9();
    let (_, p) = h.join().unwrap();
    assert!(killed.elapsed() < Duration::from_secs(2));
    assert_eq!(p.next_seq(), 1016);
    assert_eq!(p.stats().live_consumers(), 0);
}

#[test]
fn missing_queue_exit_code_is_2() {
    let q = QueueName::new("missing");
    let (code, _) = Proc::qtool(&["consume", &q.0]).finish(T);
    assert_eq!(code, 2);
}

#[test]
fn consumer_killed_asleep_stops_costing_wakes() {
    let q = QueueName::new("asleep");
    let mut p = Producer::create(&q.0, &QueueOptions::new().slots(16)).unwrap();
    let mut c = Proc::qtool(&["consume", &q.0]);
    c.expect_line("opened", T);
    eventually(T, "the consumer to sleep", || waiters(&q) == 1);
    // `waiters` is counted just before the consumer's own `sleeping` share; a kill between the
    // two (the consumer preempted there, as under a loaded CI) leaves an over-count that
    // eviction cannot see: by design it costs wake calls, never a lost wake-up. Let the
    // consumer reach the futex before killing it.
    std::thread::sleep(Duration::from_millis(100));
    c.kill9();
    // Its share of the sleeper count is left behind; after a run of wakes that find nobody,
    // the producer evicts the dead consumer and the count is right again.
    for i in 0..200u64 {
        p.send(&i.to_le_bytes()).unwrap();
    }
    assert_eq!(p.stats().live_consumers(), 0);
    assert_eq!(waiters(&q), 0, "dead consumer still counted as a sleeper");
    // A new consumer can take the freed slot and is woken normally.
    let mut c2 = shmio::queue::Consumer::open(&q.0, shmio::queue::Start::Sequence(200)).unwrap();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        c2.recv_for(&mut buf, Some(Duration::from_secs(10)))
            .map(|n| buf[..n].to_vec())
    });
    std::thread::sleep(Duration::from_millis(100));
    let sent = Instant::now();
    p.send(b"late").unwrap();
    assert_eq!(h.join().unwrap().unwrap(), b"late");
    assert!(sent.elapsed() < Duration::from_secs(2));
}

#[test]
fn consumers_open_and_close_quickly_without_hanging() {
    let q = QueueName::new("openclose");
    let _p = Producer::create(&q.0, &QueueOptions::new().slots(16)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let name = q.0.clone();
    std::thread::spawn(move || {
        for i in 0..300 {
            let mut c = shmio::queue::Consumer::open(&name, shmio::queue::Start::Newest).unwrap();
            if i % 2 == 0 {
                // Arm the poll notifier, then close at once.
                let _ = c.fd().unwrap();
                let _ = c.try_recv(&mut [0u8; 256]);
            }
            drop(c);
            let _ = tx.send(i);
        }
    });
    for want in 0..300 {
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("close hung after {want} cycles"));
        assert_eq!(got, want);
    }
}
