//! Regression cases for the bugs `shmio-fuzz` found: each is the fixed mutation (written
//! through the file descriptor, as a peer would) that made a call hang or panic, and the
//! error it must give now.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use shmio::queue::{self, Consumer, Error as QError, Policy, Producer, QueueOptions, Start};
use shmio::region::{self, Error as RError, Region, RegionOptions};

/// A file path unique to this test, removed on drop.
struct TmpPath(PathBuf);

impl TmpPath {
    fn new(tag: &str) -> TmpPath {
        TmpPath(queue::queue_dir().join(format!("shmio-fuzzreg-{tag}-{}", std::process::id())))
    }
    fn name(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TmpPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn pwrite(path: &Path, off: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, off).unwrap();
}

fn pread_u64(path: &Path, off: u64) -> u64 {
    let f = std::fs::File::open(path).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, off).unwrap();
    u64::from_le_bytes(b)
}

fn pread_u32(path: &Path, off: u64) -> u32 {
    let f = std::fs::File::open(path).unwrap();
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, off).unwrap();
    u32::from_le_bytes(b)
}

/// Runs `f` on a thread and gives its result; fails the test if it panics or takes over 5 s
/// (the thread is then left behind).
fn within_5s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not return within 5 s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

// Region header offsets (layout version 2).
const R_SEQ: u64 = 256;

/// Bug: a region whose sequence counter is odd while the writer lock is free (a scribble, or
/// a writer whose death the kernel did not mark) made every `read` spin for ever: it took the
/// lock, saw no dead holder, dropped it and looked again. Now taking the lock repairs an odd
/// counter as it does after a holder's death: the last write's range is torn, the rest reads.
#[test]
fn region_counter_left_odd_with_the_lock_free_is_repaired_not_spun_on() {
    let p = TmpPath::new("odd");
    let r = Region::create(p.name(), 64, &RegionOptions::new()).unwrap();
    r.write(0, &[1; 8]).unwrap();
    // The counter set odd, the lock word left free.
    let seq = pread_u32(&p.0, R_SEQ);
    pwrite(&p.0, R_SEQ, &(seq | 1).to_le_bytes());
    let name = p.name().to_owned();
    let (elsewhere, torn) = within_5s("read over an odd counter", move || {
        let r = Region::open(&name, &RegionOptions::new()).unwrap();
        let mut buf = [0u8; 8];
        (
            r.read(32, &mut buf).map(|_| buf),
            r.read(0, &mut buf).map(|_| ()),
        )
    });
    assert_eq!(elsewhere.unwrap(), [0; 8]);
    assert!(
        matches!(torn, Err(RError::Torn { offset: 0, len: 8 })),
        "the write the counter was left in is torn: {torn:?}"
    );
    assert_eq!(pread_u32(&p.0, R_SEQ) & 1, 0, "the counter is released");
    r.write(0, &[2; 8]).unwrap();
    let mut buf = [0u8; 8];
    r.read(0, &mut buf).unwrap();
    assert_eq!(buf, [2; 8]);
    drop(r);
    let _ = region::unlink(p.name());
}

// Queue header offsets (layout version 2).
const Q_SLOT_STRIDE: u64 = 28;
const Q_SLOTS_OFFSET: u64 = 48;
const Q_HEAD: u64 = 128;

/// Bug: a take-over producer started at whatever head the file held, so a head at or near
/// `u64::MAX` overflowed `next + 1` (in `Producer::open`, publishing a record the stamp of a
/// never-written slot seemed to complete, and in the first commit): a panic with overflow
/// checks, a wrapped sequence number without. Found with the whole queue moved near the end of
/// the sequence space. Such a head is corrupt: no valid file holds a sequence number past
/// 2^62.
#[test]
fn a_head_past_any_sequence_number_is_corrupt_for_producer_and_consumer() {
    for head in [u64::MAX, u64::MAX - 1, 1 << 63, (1 << 62) + 1] {
        let p = TmpPath::new("head");
        let opts = QueueOptions::new()
            .slots(4)
            .slot_size(8)
            .policy(Policy::Overwrite);
        drop(Producer::create(p.name(), &opts).unwrap());
        pwrite(&p.0, Q_HEAD, &head.to_le_bytes());
        let name = p.name().to_owned();
        let (prod, cons) = within_5s("open over a huge head", move || {
            let prod = Producer::open(&name).map(|mut p| p.try_send(b"x"));
            let cons = Consumer::open(&name, Start::Newest).map(|_| ());
            (prod, cons)
        });
        assert!(
            matches!(prod, Err(QError::Corrupt(_))),
            "head {head:#x}: {prod:?}"
        );
        assert!(
            matches!(cons, Err(QError::Corrupt(_))),
            "head {head:#x}: {cons:?}"
        );
        // The role was given back: an honest head makes the queue usable again.
        pwrite(&p.0, Q_HEAD, &0u64.to_le_bytes());
        let mut tx = Producer::open(p.name()).unwrap();
        let mut rx = Consumer::open(p.name(), Start::Oldest).unwrap();
        tx.try_send(b"ok").unwrap();
        let mut buf = [0u8; 8];
        let n = rx.try_recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ok");
    }
}

/// Bug: a consumer whose cursor passed 2^63 - 1, where the stamps `2 seq + 2` wrap, found
/// every written slot "overwritten" and stepped its cursor by one for ever in `try_recv`.
/// The fuzzer got there by starting a consumer in a queue moved near the end of the sequence
/// space (now refused at open, see above); from an honest head, overwrite mode got there
/// through a stamp naming a record past 2^63, which made the consumer jump its cursor to it.
/// Such a stamp is now [`QError::Corrupt`].
#[test]
fn an_overwrite_consumer_facing_stamps_past_any_sequence_number_gets_corrupt() {
    let p = TmpPath::new("stamps");
    let opts = QueueOptions::new()
        .slots(4)
        .slot_size(8)
        .policy(Policy::Overwrite);
    let mut tx = Producer::create(p.name(), &opts).unwrap();
    let mut rx = Consumer::open(p.name(), Start::Oldest).unwrap();
    tx.try_send(b"a").unwrap();
    tx.try_send(b"b").unwrap();
    let (stride, slots) = (
        u64::from(pread_u32(&p.0, Q_SLOT_STRIDE)),
        pread_u64(&p.0, Q_SLOTS_OFFSET),
    );
    for j in 0..4 {
        pwrite(&p.0, slots + j * stride, &u64::MAX.to_le_bytes());
    }
    let r = within_5s("try_recv over huge stamps", move || {
        let mut buf = [0u8; 8];
        rx.try_recv(&mut buf).map(|_| ())
    });
    assert!(matches!(r, Err(QError::Corrupt(_))), "{r:?}");
    drop(tx);
}
