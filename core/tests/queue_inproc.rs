//! Single-process tests of the queue: API contract, modes, errors. Cross-process behaviour is
//! tested in the workspace's `tests/` crate with real processes.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmio::queue::{self, Consumer, Error, Policy, Producer, QueueOptions, Resume, Start};

static N: AtomicU32 = AtomicU32::new(0);

fn name(tag: &str) -> String {
    format!(
        "shmio-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        // By path: `queue::unlink` would leave a file whose magic a test overwrote.
        let _ = std::fs::remove_file(queue::resolve(&self.0).unwrap());
    }
}

#[test]
fn send_recv_round_trip_and_slot_rounding() {
    let q = name("rt");
    let _u = Unlink(q.clone());
    let mut p = Producer::create(&q, &QueueOptions::new().slots(10).slot_size(80)).unwrap();
    assert_eq!(p.info().slot_count, 16);
    let mut c = Consumer::open(&q, Start::Oldest).unwrap();
    for i in 0..100u32 {
        p.send(format!("write Data : {i}").as_bytes()).unwrap();
        let mut buf = [0u8; 80];
        let (seq, n) = c.recv_seq_for(&mut buf, None).unwrap();
        assert_eq!(seq, u64::from(i));
        assert_eq!(&buf[..n], format!("write Data : {i}").as_bytes());
    }
    assert!(matches!(c.try_recv(&mut [0u8; 80]), Err(Error::WouldBlock)));
    assert_eq!(c.lost(), 0);
}

#[test]
fn create_is_exclusive_and_mode_is_0600() {
    use std::os::unix::fs::PermissionsExt;
    let q = name("excl");
    let _u = Unlink(q.clone());
    let p = Producer::create(&q, &QueueOptions::new()).unwrap();
    let mode = std::fs::metadata(&p.info().path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(matches!(
        Producer::create(&q, &QueueOptions::new()),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        Producer::open(&q),
        Err(Error::ProducerExists { .. })
    ));
    // No temporary files left behind.
    let dir = queue::queue_dir();
    let stray: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!(".{q}"))
        })
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn overwrite_mode_reports_exact_loss() {
    let q = name("ow");
    let _u = Unlink(q.clone());
    let mut p = Producer::create(&q, &QueueOptions::new().slots(8).slot_size(16)).unwrap();
    let mut c = Consumer::open(&q, Start::Oldest).unwrap();
    assert_eq!(c.resume(), Resume::NearOldest);
    c.set_resume(Resume::Oldest);
    for i in 0..20u64 {
        p.send(&i.to_le_bytes()).unwrap();
    }
    let got = drain(&mut c);
    // 20 records into 8 slots with the producer idle: the last 8 are intact, 12 are gone.
    assert_eq!(got, (12..20).collect::<Vec<_>>());
    assert_eq!(c.lost(), 12);
    assert_eq!(c.lost() + got.len() as u64, 20);
}

/// Every record `try_recv` gives until it would block, checking each payload names its seq.
fn drain(c: &mut Consumer) -> Vec<u64> {
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    while let Ok((seq, n)) = c.recv_seq_for(&mut buf, Some(Duration::ZERO)) {
        assert_eq!(n, 8);
        assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), seq);
        got.push(seq);
    }
    got
}

#[test]
fn lapped_overwrite_consumer_resumes_per_its_policy_and_counts_every_skipped_record() {
    // 20 records into 8 slots, the consumer at 0: where it resumes after the lap.
    for (resume, first) in [
        (Resume::NearOldest, 13),
        (Resume::HalfRing, 16),
        (Resume::Newest, 19),
        (Resume::Behind(3), 17),
        (Resume::Behind(0), 20),
        (Resume::Behind(100), 12),
        (Resume::Oldest, 12),
    ] {
        let q = name("resume");
        let _u = Unlink(q.clone());
        let mut p = Producer::create(&q, &QueueOptions::new().slots(8).slot_size(16)).unwrap();
        let mut c = Consumer::open(&q, Start::Oldest).unwrap();
        c.set_resume(resume);
        assert_eq!(c.resume(), resume);
        for i in 0..20u64 {
            p.send(&i.to_le_bytes()).unwrap();
        }
        let got = drain(&mut c);
        assert_eq!(got, (first..20).collect::<Vec<_>>(), "{resume:?}");
        assert_eq!(c.lost(), first, "{resume:?}");
        assert_eq!(c.position(), 20, "{resume:?}");
        // The next records arrive in order, nothing more lost.
        p.send(&20u64.to_le_bytes()).unwrap();
        assert_eq!(drain(&mut c), vec![20], "{resume:?}");
        assert_eq!(c.lost() + c.received(), 21, "{resume:?}");
    }
}

#[test]
fn backpressure_blocks_producer_until_consumer_releases() {
    let q = name("bp");
    let _u = Unlink(q.clone());
    let opts = QueueOptions::new()
        .slots(4)
        .slot_size(8)
        .policy(Policy::BackPressure);
    let mut p = Producer::create(&q, &opts).unwrap();
    let mut c = Consumer::open(&q, Start::Oldest).unwrap();
    for i in 0..4u64 {
        p.try_send(&i.to_le_bytes()).unwrap();
    }
    assert!(matches!(p.try_send(b"x"), Err(Error::WouldBlock)));
    let t = Instant::now();
    assert!(matches!(
        p.send_for(b"x", Some(Duration::from_millis(30))),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(30));
    // Zero-copy read and release frees one slot.
    {
        let g = c.read().unwrap();
        assert_eq!(g.seq(), 0);
        assert_eq!(g.data().unwrap(), &0u64.to_le_bytes());
        assert_eq!(g.bytes().to_vec(), 0u64.to_le_bytes());
        g.release().unwrap();
    }
    p.try_send(&4u64.to_le_bytes()).unwrap();
    // A blocked producer is woken by a consumer in another thread.
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let mut buf = [0u8; 8];
        for want in 1..=5u64 {
            let n = c.recv(&mut buf).unwrap();
            assert_eq!(n, 8);
            assert_eq!(u64::from_le_bytes(buf), want);
        }
        c
    });
    p.send(&5u64.to_le_bytes()).unwrap();
    let c = h.join().unwrap();
    assert_eq!(c.lost(), 0);
}

#[test]
fn closed_producer_is_reported_after_draining_and_takeover_resumes() {
    let q = name("close");
    let _u = Unlink(q.clone());
    let mut p = Producer::create(&q, &QueueOptions::new().slots(8).slot_size(8)).unwrap();
    let mut c = Consumer::open(&q, Start::Oldest).unwrap();
    p.send(b"a").unwrap();
    p.send(b"b").unwrap();
    drop(p);
    let mut buf = [0u8; 8];
    assert_eq!(c.recv(&mut buf).unwrap(), 1);
    assert_eq!(c.recv(&mut buf).unwrap(), 1);
    assert!(matches!(c.recv(&mut buf), Err(Error::Closed)));
    let mut p2 = Producer::open(&q).unwrap();
    assert_eq!(p2.next_seq(), 2);
    p2.send(b"c").unwrap();
    let (seq, n) = c.recv_seq_for(&mut buf, None).unwrap();
    assert_eq!((seq, &buf[..n]), (2, &b"c"[..]));
    assert_eq!(p2.stats().producer_generation, 2);
}

#[test]
fn blocked_recv_wakes_on_send_from_another_thread() {
    let q = name("wake");
    let _u = Unlink(q.clone());
    let mut p = Producer::create(&q, &QueueOptions::new()).unwrap();
    let mut c = Consumer::open(&q, Start::Newest).unwrap();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let n = c.recv_for(&mut buf, Some(Duration::from_secs(5))).unwrap();
        buf[..n].to_vec()
    });
    std::thread::sleep(Duration::from_millis(50));
    p.send(b"hello").unwrap();
    assert_eq!(h.join().unwrap(), b"hello");
}

#[test]
fn zero_spin_handles_sleep_at_once_and_lose_nothing() {
    // Every wait goes straight to the futex: a tiny back-pressure ring makes the producer wait
    // for space and the consumer wait for data thousands of times, and nothing may be lost.
    let q = name("spin0");
    let _u = Unlink(q.clone());
    let opts = QueueOptions::new()
        .slots(2)
        .slot_size(8)
        .policy(Policy::BackPressure);
    let mut p = Producer::create(&q, &opts).unwrap();
    let mut c = Consumer::open(&q, Start::Oldest).unwrap();
    assert_eq!(p.spin(), Duration::from_micros(20));
    assert_eq!(c.spin(), Duration::from_micros(20));
    p.set_spin(Duration::ZERO);
    c.set_spin(Duration::ZERO);
    assert_eq!(p.spin(), Duration::ZERO);
    const N: u64 = 20_000;
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 8];
        for want in 0..N {
            assert_eq!(c.recv(&mut buf).unwrap(), 8);
            assert_eq!(u64::from_le_bytes(buf), want);
        }
        c.stats()
    });
    for i in 0..N {
        p.send(&i.to_le_bytes()).unwrap();
    }
    let stats = h.join().unwrap();
    assert_eq!(stats.head, N);
    // Absurd spins are clamped rather than honoured.
    p.set_spin(Duration::from_secs(3600));
    assert_eq!(p.spin(), Duration::from_secs(1));
}

#[test]
fn newest_start_gets_latest_record() {
    let q = name("newest");
    let _u = Unlink(q.clone());
    let mut p = Producer::create(&q, &QueueOptions::new().slots(16)).unwrap();
    for i in 0..5u8 {
        p.send(&[i]).unwrap();
    }
    let mut c = Consumer::open(&q, Start::Newest).unwrap();
    let mut buf = [0u8; 4];
    let (seq, _) = c.recv_seq_for(&mut buf, Some(Duration::ZERO)).unwrap();
    assert_eq!((seq, buf[0]), (4, 4));
    assert_eq!(c.stats().live_consumers(), 1);
}

#[test]
fn poll_fd_becomes_readable() {
    let q = name("fd");
    let _u = Unlink(q.clone());
    let mut p = Producer::create(&q, &QueueOptions::new()).unwrap();
    let mut c = Consumer::open(&q, Start::Newest).unwrap();
    let fd = c.fd().unwrap();
    let poll = |ms| {
        let mut pfd = libc_pollfd(fd);
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, ms) }
    };
    assert_eq!(poll(20), 0);
    p.send(b"x").unwrap();
    assert_eq!(poll(1000), 1);
    let mut buf = [0u8; 256];
    assert_eq!(c.try_recv(&mut buf).unwrap(), 1);
    assert!(matches!(c.try_recv(&mut buf), Err(Error::WouldBlock)));
    assert_eq!(poll(20), 0);
    drop(p);
    assert_eq!(poll(1000), 1);
    assert!(matches!(c.try_recv(&mut buf), Err(Error::Closed)));
}

fn libc_pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

#[test]
fn bad_arguments_are_errors() {
    assert!(matches!(
        Producer::create("", &QueueOptions::new()),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Producer::create(&name("x"), &QueueOptions::new().slot_size(0)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Producer::create(&name("x"), &QueueOptions::new().slots(0)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Consumer::open(&name("missing"), Start::Newest),
        Err(Error::NotFound(_))
    ));
    let q = name("big");
    let _u = Unlink(q.clone());
    let mut p = Producer::create(&q, &QueueOptions::new().slot_size(4)).unwrap();
    assert!(matches!(
        p.send(b"12345"),
        Err(Error::TooLarge { len: 5, max: 4 })
    ));
    p.send(b"1234").unwrap();
    let mut c = Consumer::open(&q, Start::Oldest).unwrap();
    assert!(matches!(
        c.try_recv(&mut [0u8; 2]),
        Err(Error::BufferTooSmall { needed: 4 })
    ));
    assert_eq!(c.try_recv(&mut [0u8; 4]).unwrap(), 4);
}

/// Byte offsets of the configuration fields in the file (layout version 1).
mod off {
    pub const MAGIC: u64 = 0;
    pub const VERSION: u64 = 8;
    pub const HEADER_SIZE: u64 = 12;
    pub const POLICY: u64 = 16;
    pub const SLOT_COUNT: u64 = 20;
    pub const SLOT_SIZE: u64 = 24;
    pub const SLOT_STRIDE: u64 = 28;
    pub const MAX_CONSUMERS: u64 = 32;
    pub const SLOTS_OFFSET: u64 = 48;
    pub const TOTAL_SIZE: u64 = 56;
}

fn patch(path: &std::path::Path, at: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn corrupt_headers_are_refused_with_the_documented_error() {
    type Damage = Box<dyn Fn(&std::path::Path)>;
    type Case = (&'static str, Damage, fn(&Error) -> bool);
    let cases: Vec<Case> = vec![
        (
            "magic",
            Box::new(|p| patch(p, off::MAGIC, b"NOTSHMIO")),
            |e| matches!(e, Error::Corrupt(_)),
        ),
        (
            "version",
            Box::new(|p| patch(p, off::VERSION, &99u32.to_le_bytes())),
            |e| matches!(e, Error::VersionMismatch { found: 99, .. }),
        ),
        (
            "header size",
            Box::new(|p| patch(p, off::HEADER_SIZE, &1u32.to_le_bytes())),
            |e| matches!(e, Error::Corrupt(_)),
        ),
        (
            "policy",
            Box::new(|p| patch(p, off::POLICY, &7u32.to_le_bytes())),
            |e| matches!(e, Error::Corrupt(_)),
        ),
        (
            "slot count not a power of two",
            Box::new(|p| patch(p, off::SLOT_COUNT, &12u32.to_le_bytes())),
            |e| matches!(e, Error::Corrupt(_)),
        ),
        (
            "slot count larger than the file",
            Box::new(|p| {
                patch(p, off::SLOT_COUNT, &(1u32 << 20).to_le_bytes());
            }),
            |e| matches!(e, Error::Corrupt(_)),
        ),
        (
            "slot size",
            Box::new(|p| patch(p, off::SLOT_SIZE, &u32::MAX.to_le_bytes())),
            |e| matches!(e, Error::Corrupt(_)),
        ),
        (
            "slot stride",
            Box::new(|p| patch(p, off::SLOT_STRIDE, &8u32.to_le_bytes())),
            |e| matches!(e, Error::Corrupt(_)),
        ),
        (
            "max consumers",
            Box::new(|p| patch(p, off::MAX_CONSUMERS, &100_000u32.to_le_bytes())),
            |e| matches!(e, Error::Corrupt(_)),
        ),
        (
            "slots offset out of range",
            Box::new(|p| patch(p, off::SLOTS_OFFSET, &u64::MAX.to_le_bytes())),
            |e| matches!(e, Error::Corrupt(_)),
        ),
        (
            "total size",
            Box::new(|p| patch(p, off::TOTAL_SIZE, &(1u64 << 40).to_le_bytes())),
            |e| matches!(e, Error::Corrupt(_)),
        ),
        (
            "file truncated",
            Box::new(|p| {
                let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                f.set_len(f.metadata().unwrap().len() - 64).unwrap();
            }),
            |e| matches!(e, Error::Corrupt(_)),
        ),
        (
            "file shorter than a header",
            Box::new(|p| {
                let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                f.set_len(100).unwrap();
            }),
            |e| matches!(e, Error::Corrupt(_)),
        ),
        (
            "empty file",
            Box::new(|p| {
                let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                f.set_len(0).unwrap();
            }),
            |e| matches!(e, Error::Corrupt(_)),
        ),
    ];
    for (what, damage, expected) in cases {
        let q = name("corrupt");
        let _u = Unlink(q.clone());
        let p = Producer::create(&q, &QueueOptions::new().slots(8).slot_size(64)).unwrap();
        let path = p.info().path;
        drop(p);
        damage(&path);
        let c = Consumer::open(&q, Start::Oldest);
        let e = c.expect_err(what);
        assert!(expected(&e), "{what}: got {e:?}");
        let e = Producer::open(&q).expect_err(what);
        assert!(expected(&e), "{what}: producer got {e:?}");
        let e = queue::inspect(&q).expect_err(what);
        assert!(expected(&e), "{what}: inspect got {e:?}");
    }
}

#[test]
fn hostile_slot_contents_are_errors_not_ub() {
    // A peer that scribbles a huge length into a committed slot: the consumer reports Corrupt.
    let q = name("hostile");
    let _u = Unlink(q.clone());
    let mut p = Producer::create(&q, &QueueOptions::new().slots(8).slot_size(64)).unwrap();
    let mut c = Consumer::open(&q, Start::Oldest).unwrap();
    p.send(b"ok").unwrap();
    let path = p.info().path;
    let slots_offset = {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&path).unwrap();
        f.seek(SeekFrom::Start(off::SLOTS_OFFSET)).unwrap();
        let mut b = [0u8; 8];
        f.read_exact(&mut b).unwrap();
        u64::from_le_bytes(b)
    };
    // Slot 0's header: stamp (8 bytes), then length (4 bytes).
    patch(&path, slots_offset + 8, &u32::MAX.to_le_bytes());
    let mut buf = [0u8; 64];
    assert!(matches!(c.try_recv(&mut buf), Err(Error::Corrupt(_))));
    assert!(matches!(c.try_read(), Err(Error::Corrupt(_))));
}

/// Overwrite mode: a record read in place is not lent out as a `&[u8]` (the producer may
/// rewrite the slot under it), and a copy taken through the racy view while a producer thread
/// laps the ring is either one whole record (release says Ok) or reported as overrun.
#[test]
fn overwrite_in_place_reads_copy_atomically_and_never_lend_a_slice() {
    let q = name("owview");
    let _u = Unlink(q.clone());
    let opts = QueueOptions::new().slots(4).slot_size(1024);
    let mut p = Producer::create(&q, &opts).unwrap();
    let mut c = Consumer::open(&q, Start::Oldest).unwrap();
    p.send(&[1u8; 1024]).unwrap();
    {
        let g = c.read().unwrap();
        assert!(matches!(g.data(), Err(Error::InvalidArgument(_))));
        assert_eq!(g.bytes().len(), 1024);
        assert_eq!(g.bytes().get(1023), Some(1));
        g.release().unwrap();
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (whole, overrun) = std::thread::scope(|s| {
        s.spawn(|| {
            let mut rec = [0u8; 1024];
            let mut i = 0u8;
            while !stop.load(Ordering::Relaxed) {
                i = i.wrapping_add(1);
                rec.fill(i);
                p.send(&rec).unwrap();
            }
        });
        let (mut whole, mut overrun) = (0u32, 0u32);
        let t0 = Instant::now();
        while whole < 2_000 && t0.elapsed() < Duration::from_secs(10) {
            let g = match c.read_for(Some(Duration::from_millis(100))) {
                Ok(g) => g,
                Err(Error::Timeout) => continue,
                Err(e) => panic!("{e}"),
            };
            let copy = g.bytes().to_vec();
            match g.release() {
                Ok(()) => {
                    assert!(
                        copy.iter().all(|&b| b == copy[0]),
                        "a validated copy is torn"
                    );
                    whole += 1;
                }
                Err(Error::Overrun) => overrun += 1,
                Err(e) => panic!("{e}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        (whole, overrun)
    });
    assert_eq!(whole, 2_000, "{overrun} overruns");
}
