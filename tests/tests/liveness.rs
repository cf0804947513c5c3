//! Liveness under faults (issue 10): every sleeper learns of a death even when another
//! sleeper dies with the producer or the shared words are scribbled; what a consumer sees after
//! a death (the poll descriptor once, `wait_producer`); `wait_consumers`; the sleeper count
//! repaired after a consumer dies in its counting window; handles inherited through fork.

mod common;

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use common::*;
use shmio::queue::{
    BACKSTOP, Consumer, Error, OWNER_WORD_OFFSET, Policy, Producer, QueueOptions, Start,
};

const T: Duration = Duration::from_secs(30);

fn kill9(pid: u32) {
    // SAFETY: kill(2) on a child of ours.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

/// Waits until the child exits; returns how long after `since` it was seen gone.
fn exit_after(p: &mut Proc, since: Instant, within: Duration) -> (i32, Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = p.child.try_wait().unwrap() {
            return (st.code().unwrap_or(-1), since.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "{} still blocked after {within:?}",
            p.name
        );
        std::thread::sleep(Duration::from_micros(500));
    }
}

#[test]
fn producer_killed_with_the_first_sleeper_still_wakes_every_other_consumer() {
    // Before: the kernel's robust-futex wake went to one sleeper (the first) on the owner word;
    // killed in the same instant, it never passed it on and the others slept for ever.
    let mut worst = Duration::ZERO;
    for round in 0..10 {
        let q = QueueName::new("firstsleeper");
        let mut p = Proc::qtool(&["produce", &q.0, "--count", "1", "--hold"]);
        p.expect_line("sent 1", T);
        let mut first = Proc::qtool(&["consume", &q.0, "--from", "1"]);
        first.expect_line("opened 1", T);
        eventually(T, "the first consumer to sleep", || waiters(&q) == 1);
        std::thread::sleep(Duration::from_millis(20));
        let from_1 = format!("consume {q} --from 1");
        let mut others = start_all(Proc::qtool, &[from_1.clone(), from_1], "opened 1", T);
        eventually(T, "three sleepers", || waiters(&q) == 3);
        std::thread::sleep(Duration::from_millis(20));
        let killed = Instant::now();
        kill9(p.child.id());
        kill9(first.child.id());
        for c in &mut others {
            let (code, took) = exit_after(c, killed, Duration::from_secs(5));
            assert_eq!(
                code, 3,
                "round {round}: a survivor must see the producer dead"
            );
            worst = worst.max(took);
        }
        let _ = p.child.wait();
        let _ = first.child.wait();
    }
    // Each survivor is woken by the kernel on its own word: well under the backstop.
    assert!(worst < BACKSTOP, "slowest survivor took {worst:?}");
}

#[test]
fn scribbled_owner_word_leaves_no_consumer_blocked_past_the_backstop() {
    // Before: a live-looking id written over the producer's owner word hid its death from every
    // consumer for ever (the kernel marks only a word holding the dying thread's id).
    for scribble_death_words in [false, true] {
        let q = QueueName::new("scribble");
        let mut p = Proc::qtool(&["produce", &q.0, "--count", "1", "--hold"]);
        p.expect_line("sent 1", T);
        let mut c = Proc::qtool(&["consume", &q.0, "--from", "1"]);
        c.expect_line("opened 1", T);
        eventually(T, "the consumer to sleep", || waiters(&q) == 1);
        // A live-looking thread id that is nobody's.
        let fake = 0x0012_3456u32.to_le_bytes();
        scribble(&q.path(), OWNER_WORD_OFFSET, &fake);
        if scribble_death_words {
            // Every consumer slot's death word too (slots start at 640, 128 bytes each, the
            // death word at +8): the kernel then has nothing to mark or wake at all.
            for i in 0..64u64 {
                scribble(&q.path(), 640 + i * 128 + 8, &fake);
            }
        }
        let killed = Instant::now();
        p.kill9();
        let (code, took) = exit_after(&mut c, killed, Duration::from_secs(5));
        let (_, lines) = c.finish(T);
        assert!(
            code == 3 || lines.iter().any(|l| l.contains("corrupt")),
            "dead or corrupt, got exit {code}: {lines:?}"
        );
        assert!(
            took < BACKSTOP * 2,
            "blocked {took:?} (backstop {BACKSTOP:?}, death words scribbled: {scribble_death_words})"
        );
    }
}

fn poll_readable(fd: RawFd, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    n == 1 && pfd.revents & libc::POLLIN != 0
}

#[test]
fn after_a_death_the_fd_polls_once_and_wait_producer_waits_for_the_take_over() {
    // Before: after PRODUCER_DEAD the descriptor stayed readable for ever (an epoll loop
    // waiting for a successor spun at 100 % CPU) and there was no way to wait for one.
    let q = QueueName::new("afterdeath");
    let mut p = Proc::qtool(&["produce", &q.0, "--count", "1", "--hold"]);
    p.expect_line("sent 1", T);
    let mut c = Consumer::open(&q.0, Start::Sequence(1)).unwrap();
    let fd = c.fd().unwrap();
    let mut buf = [0u8; 256];
    assert!(matches!(c.try_recv(&mut buf), Err(Error::WouldBlock)));
    assert!(!poll_readable(fd, 50));
    p.kill9();
    assert!(poll_readable(fd, 2000), "the death polls readable");
    assert!(matches!(c.try_recv(&mut buf), Err(Error::ProducerDead)));
    // Once: not again until something changes.
    assert!(
        !poll_readable(fd, 300),
        "the descriptor stays readable after the death"
    );
    assert!(matches!(c.try_recv(&mut buf), Err(Error::ProducerDead)));
    assert!(!poll_readable(fd, 50));
    assert!(matches!(
        c.wait_producer(Some(Duration::from_millis(100))),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        c.wait_producer(Some(Duration::ZERO)),
        Err(Error::WouldBlock)
    ));
    // A new producer takes over: the descriptor polls readable once more and reading resumes.
    let mut p2 = Proc::qtool(&["produce", &q.0, "--open", "--count", "3", "--hold"]);
    let t = Instant::now();
    assert!(poll_readable(fd, 5000), "the take-over polls readable");
    assert!(t.elapsed() < Duration::from_secs(5));
    c.wait_producer(Some(Duration::from_secs(5))).unwrap();
    p2.expect_line("sent 3", T);
    let mut got = Vec::new();
    while got.len() < 3 {
        match c.recv_seq_for(&mut buf, Some(Duration::from_secs(5))) {
            Ok((seq, _)) => got.push(seq),
            Err(e) => panic!("after the take-over: {e}"),
        }
    }
    assert_eq!(got, vec![1, 2, 3]);
    p2.kill9();
    c.wait_producer(Some(Duration::ZERO)).unwrap_err();
}

#[test]
fn wait_consumers_returns_once_they_joined() {
    let q = QueueName::new("waitc");
    let opts = QueueOptions::new().slots(16).policy(Policy::BackPressure);
    let mut p = Producer::create(&q.0, &opts).unwrap();
    assert!(matches!(
        p.wait_consumers(1, Some(Duration::from_millis(50))),
        Err(Error::Timeout)
    ));
    assert_eq!(p.wait_consumers(0, Some(Duration::ZERO)).unwrap(), 0);
    let h = std::thread::spawn(move || {
        let t = Instant::now();
        let n = p.wait_consumers(2, Some(Duration::from_secs(10)));
        (n.map_err(|e| e.to_string()), t.elapsed(), p)
    });
    std::thread::sleep(Duration::from_millis(100));
    let mut a = Proc::qtool(&["consume", &q.0, "--hold"]);
    a.expect_line("opened", T);
    let mut b = Proc::qtool(&["consume", &q.0, "--hold"]);
    b.expect_line("opened", T);
    let joined = Instant::now();
    let (n, _, mut p) = h.join().unwrap();
    assert_eq!(n.unwrap(), 2);
    assert!(joined.elapsed() < Duration::from_secs(2));
    // A dead consumer no longer counts.
    b.kill9();
    assert!(matches!(
        p.wait_consumers(2, Some(Duration::from_millis(300))),
        Err(Error::Timeout)
    ));
    assert_eq!(p.wait_consumers(1, Some(Duration::ZERO)).unwrap(), 1);
}

#[test]
fn consumer_killed_between_counting_and_recording_its_sleep_stops_costing_wakes() {
    // Before: a consumer killed after raising the shared sleeper count but before recording it
    // in its slot left an over-count nobody could settle: the producer then paid a futex_wake
    // per record for the life of the file.
    let q = QueueName::new("window");
    let mut p = Producer::create(&q.0, &QueueOptions::new().slots(64)).unwrap();
    let mut c = Proc::spawn_env(
        qtool(),
        &["consume", &q.0],
        &[("SHMIO_TEST_HOOK", "die-after-announce")],
    );
    c.expect_line("opened", T);
    let st = c.child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(libc::SIGKILL),
        "the hook kills the consumer in the window"
    );
    assert_eq!(
        waiters(&q),
        1,
        "the dead consumer's share is left in the count"
    );
    const N: u64 = 10_000;
    for i in 0..N {
        p.send(&i.to_le_bytes()).unwrap();
    }
    let per_record = p.wake_calls() as f64 / N as f64;
    assert!(
        p.wake_calls() <= 100,
        "{} wake calls for {N} records ({per_record:.3} per record)",
        p.wake_calls()
    );
    assert_eq!(waiters(&q), 0, "the count is repaired");
    // A live sleeper is still woken after the repair.
    let mut c2 = Consumer::open(&q.0, Start::Sequence(N)).unwrap();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        c2.recv_for(&mut buf, Some(Duration::from_secs(10)))
            .map(|n| buf[..n].to_vec())
    });
    eventually(T, "the new consumer to sleep", || waiters(&q) == 1);
    p.send(b"late").unwrap();
    assert_eq!(h.join().unwrap().unwrap(), b"late");
}

#[test]
fn handles_inherited_through_fork_are_inert_in_the_child() {
    // Before: dropping an inherited handle panicked in the keeper's drop and aborted the child,
    // and using one misbehaved; C had no check at all.
    let q = QueueName::new("fork");
    let mut p = Producer::create(&q.0, &QueueOptions::new().slots(16)).unwrap();
    let mut c = Consumer::open(&q.0, Start::Newest).unwrap();
    p.send(b"before").unwrap();
    // SAFETY: the child only calls shmio (which must refuse the inherited handles without
    // locking anything another thread could hold), drops them, and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut buf = [0u8; 64];
        let mut code = 0;
        if !matches!(c.try_recv(&mut buf), Err(Error::Forked)) {
            code |= 1;
        }
        if !matches!(p.try_send(b"child"), Err(Error::Forked)) {
            code |= 2;
        }
        if !matches!(c.wait_producer(Some(Duration::ZERO)), Err(Error::Forked)) {
            code |= 4;
        }
        drop(c);
        drop(p);
        // SAFETY: _exit(2) ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waitpid on our own child with a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status),
        "the child died of a signal: {status:#x}"
    );
    assert_eq!(libc::WEXITSTATUS(status), 0, "bit 1 recv, 2 send, 4 wait");
    // The parent's handles are untouched.
    let mut buf = [0u8; 64];
    let n = c.recv_for(&mut buf, Some(Duration::from_secs(1))).unwrap();
    assert_eq!(&buf[..n], b"before");
    p.send(b"after").unwrap();
    let n = c.recv_for(&mut buf, Some(Duration::from_secs(1))).unwrap();
    assert_eq!(&buf[..n], b"after");
    let st = p.stats();
    assert!(matches!(
        st.producer,
        shmio::queue::ProducerStatus::Alive { .. }
    ));
    assert_eq!(st.live_consumers(), 1);
}

#[test]
fn cancel_ends_a_blocked_recv_and_a_blocked_send() {
    let q = QueueName::new("cancel");
    let opts = QueueOptions::new().slots(2).policy(Policy::BackPressure);
    let mut p = Producer::create(&q.0, &opts).unwrap();
    let mut c = Consumer::open(&q.0, Start::Oldest).unwrap();
    let cc = c.canceller();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let r = c.recv_for(&mut buf, None).map(|_| ());
        (r.err().map(|e| e.to_string()), Instant::now())
    });
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    cc.cancel();
    let (err, woke) = h.join().unwrap();
    assert_eq!(err.as_deref(), Some(Error::Cancelled.to_string().as_str()));
    assert!(woke.duration_since(t) < Duration::from_millis(50));
    // A full ring: the back-pressure send blocks on a consumer that never reads.
    let _stuck = Consumer::open(&q.0, Start::Oldest).unwrap();
    p.send(b"1").unwrap();
    p.send(b"2").unwrap();
    let pc = p.canceller();
    let h = std::thread::spawn(move || {
        let r = p.send_for(b"3", None);
        (matches!(r, Err(Error::Cancelled)), Instant::now())
    });
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    pc.cancel();
    let (cancelled, woke) = h.join().unwrap();
    assert!(cancelled);
    assert!(woke.duration_since(t) < Duration::from_millis(50));
}

#[test]
fn backpressure_producer_is_not_stalled_by_a_dead_consumer_whose_word_was_scribbled() {
    // The consumer's owner word (slot 0 at file offset 640) is overwritten, so the kernel
    // cannot mark it when the consumer dies: only the backstop's lock check finds the death.
    let q = QueueName::new("scribblec");
    let opts = QueueOptions::new().slots(4).policy(Policy::BackPressure);
    let mut p = Producer::create(&q.0, &opts).unwrap();
    let mut stuck = Proc::qtool(&["consume", &q.0, "--hold"]);
    stuck.expect_line("opened", T);
    for i in 0..4u64 {
        p.try_send(&i.to_le_bytes()).unwrap();
    }
    scribble(&q.path(), 640, &0x0012_3456u32.to_le_bytes());
    let h = std::thread::spawn(move || {
        let r = p.send_for(b"next", Some(Duration::from_secs(10)));
        (r.map_err(|e| e.to_string()), Instant::now(), p)
    });
    std::thread::sleep(Duration::from_millis(100));
    let killed = Instant::now();
    stuck.kill9();
    let (r, done, p) = h.join().unwrap();
    r.unwrap();
    let took = done.duration_since(killed);
    assert!(
        took < BACKSTOP * 2,
        "the producer stalled {took:?} on a dead consumer"
    );
    assert_eq!(p.stats().live_consumers(), 0);
}
