//! Batches: `Producer::send_many` and `Consumer::recv_many`, in one process (threads).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmio::queue::{self, Consumer, Error, Policy, Producer, QueueOptions, Start};

static N: AtomicU32 = AtomicU32::new(0);

fn name(tag: &str) -> String {
    format!(
        "shmio-test-batch-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = queue::unlink(&self.0);
    }
}

/// Record `i`: its number, then `i % 50` bytes of `i as u8`.
fn record(i: u64) -> Vec<u8> {
    let mut r = i.to_le_bytes().to_vec();
    r.resize(8 + (i % 50) as usize, i as u8);
    r
}

#[test]
fn batches_larger_than_the_ring_arrive_whole_and_in_order() {
    // Batches of 50 into an 8-slot ring: every batch waits for space several times, with the
    // consumer asleep (no spin) on records of that very batch unless the producer wakes it
    // before it sleeps. A lost wake-up costs a backstop period (200 ms) each time, so this
    // would take minutes instead of well under a second.
    const TOTAL: u64 = 5_000;
    let q = name("big");
    let _u = Unlink(q.clone());
    let opts = QueueOptions::new()
        .slots(8)
        .slot_size(64)
        .policy(Policy::BackPressure);
    let mut p = Producer::create(&q, &opts).unwrap();
    p.set_spin(Duration::ZERO);
    let mut c = Consumer::open(&q, Start::Oldest).unwrap();
    c.set_spin(Duration::ZERO);
    let started = Instant::now();
    let reader = std::thread::spawn(move || {
        let (mut buf, mut lens, mut next, mut batches) = (vec![0u8; 16 * 64], [0usize; 16], 0, 0);
        while next < TOTAL {
            let n = c.recv_many(&mut buf, &mut lens, None).unwrap();
            assert!((1..=16).contains(&n));
            let mut at = 0;
            for &len in &lens[..n] {
                assert_eq!(&buf[at..at + len], &record(next)[..], "record {next}");
                at += len;
                next += 1;
            }
            batches += 1;
        }
        assert_eq!(c.received(), TOTAL);
        batches
    });
    let records: Vec<Vec<u8>> = (0..TOTAL).map(record).collect();
    for batch in records.chunks(50) {
        let sent = p
            .send_many(
                batch.iter().map(Vec::as_slice),
                Some(Duration::from_secs(30)),
            )
            .unwrap();
        assert_eq!(sent, batch.len());
    }
    let batches = reader.join().unwrap();
    let took = started.elapsed();
    println!("{TOTAL} records in {batches} receive batches, {took:?}");
    assert!(
        took < Duration::from_secs(20),
        "a wake-up was lost: {took:?}"
    );
}

#[test]
fn a_batch_stops_before_what_it_cannot_send_and_the_next_call_says_why() {
    let q = name("stop");
    let _u = Unlink(q.clone());
    let opts = QueueOptions::new()
        .slots(4)
        .slot_size(16)
        .policy(Policy::BackPressure);
    let mut p = Producer::create(&q, &opts).unwrap();
    let mut c = Consumer::open(&q, Start::Oldest).unwrap();
    let big = [0u8; 17];
    let recs: [&[u8]; 3] = [b"a", b"b", &big];
    assert_eq!(p.send_many(recs, None).unwrap(), 2);
    assert!(matches!(
        p.send_many([&big[..]], None),
        Err(Error::TooLarge { len: 17, max: 16 })
    ));
    // Two more fill the ring; with no wait allowed the batch ends at the full ring.
    let more: [&[u8]; 4] = [b"c", b"d", b"e", b"f"];
    assert_eq!(p.send_many(more, Some(Duration::ZERO)).unwrap(), 2);
    assert!(matches!(
        p.send_many([&b"e"[..]], Some(Duration::ZERO)),
        Err(Error::WouldBlock)
    ));
    let t = Instant::now();
    assert!(matches!(
        p.send_many([&b"e"[..]], Some(Duration::from_millis(30))),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(30));
    let (mut buf, mut lens) = ([0u8; 64], [0usize; 8]);
    assert_eq!(c.recv_many(&mut buf, &mut lens, None).unwrap(), 4);
    assert_eq!(&lens[..4], &[1, 1, 1, 1]);
    assert_eq!(&buf[..4], b"abcd");
    assert!(matches!(
        c.recv_many(&mut buf, &mut lens, Some(Duration::ZERO)),
        Err(Error::WouldBlock)
    ));
    assert!(matches!(p.send_many(std::iter::empty(), None), Ok(0)));
}

#[test]
fn recv_many_packs_what_fits_and_refuses_what_cannot() {
    let q = name("pack");
    let _u = Unlink(q.clone());
    let mut p = Producer::create(&q, &QueueOptions::new().slots(16).slot_size(32)).unwrap();
    let mut c = Consumer::open(&q, Start::Oldest).unwrap();
    for r in [&b"0123456789"[..], b"abcdefghij", b"xyz"] {
        p.send(r).unwrap();
    }
    let mut lens = [0usize; 8];
    assert!(matches!(
        c.recv_many(&mut [0u8; 4], &mut lens, None),
        Err(Error::BufferTooSmall { needed: 10 })
    ));
    assert!(matches!(
        c.recv_many(&mut [0u8; 64], &mut [], None),
        Err(Error::InvalidArgument(_))
    ));
    // 15 bytes: the first record fits, the second does not: a batch of one.
    let mut buf = [0u8; 15];
    assert_eq!(c.recv_many(&mut buf, &mut lens, None).unwrap(), 1);
    assert_eq!(&buf[..10], b"0123456789");
    let mut buf = [0u8; 64];
    assert_eq!(c.recv_many(&mut buf, &mut lens, None).unwrap(), 2);
    assert_eq!(&lens[..2], &[10, 3]);
    assert_eq!(&buf[..13], b"abcdefghijxyz");
    assert_eq!(c.received(), 3);
    assert_eq!(c.stats().consumers[0].received, 3);
}

#[test]
fn overwrite_recv_many_counts_what_was_lost() {
    let q = name("ow");
    let _u = Unlink(q.clone());
    let opts = QueueOptions::new()
        .slots(4)
        .slot_size(16)
        .policy(Policy::Overwrite);
    let mut p = Producer::create(&q, &opts).unwrap();
    let mut c = Consumer::open(&q, Start::Oldest).unwrap();
    let recs: Vec<[u8; 1]> = (0..10u8).map(|i| [i]).collect();
    assert_eq!(p.send_many(recs.iter().map(|r| &r[..]), None).unwrap(), 10);
    let (mut buf, mut lens) = ([0u8; 64], [0usize; 16]);
    let n = c.recv_many(&mut buf, &mut lens, None).unwrap();
    assert!((1..=4).contains(&n), "{n}");
    assert_eq!(buf[n - 1], 9, "the batch ends with the newest");
    assert_eq!(c.received() + c.lost(), 10);
}
