//! Queues and regions on a file system too small for them (issue 11, item 2): each test mounts
//! its own 8 MiB tmpfs (needs root; skipped otherwise), and runs the shmio calls in a child
//! process (this test binary again, see [`child`]), so that a SIGBUS kills the child, not the
//! test harness, and so that `SHMIO_TEST_HOOK` (read once per process) can differ per run.

use std::io::Write as _;

use shmio::queue::{self, Consumer, Producer, QueueOptions, Start};
use shmio::region::{self, Region, RegionOptions};
use shmio_testfs::{FS_SIZE, MIB, child, names_in, run_in_small_fs};

/// Asserts what a `NoSpace` error says: all of the empty file system was free (the failed
/// attempt kept nothing), and its message gives both sizes.
fn assert_no_space(msg: &str, needed: u64, available: u64) {
    assert_eq!(available, FS_SIZE);
    assert!(
        msg.contains(&needed.to_string()) && msg.contains(&available.to_string()),
        "{msg}"
    );
}

/// A queue of just over 16 MiB: 4096 slots with a stride of 4096 bytes, and the header.
fn big_queue() -> QueueOptions {
    QueueOptions::new().slots(4096).slot_size(4096 - 16)
}

#[test]
fn queue_and_region_larger_than_the_fs_fail_with_no_space_and_leave_nothing() {
    run_in_small_fs("shmio-small-fs-big", "child_too_big");
}

#[test]
fn child_too_big() {
    let Some(dir) = child() else { return };
    // A bare name (in $SHMIO_DIR) for the queue.
    match &Producer::create("q", &big_queue()) {
        Err(
            e @ queue::Error::NoSpace {
                path,
                needed,
                available,
            },
        ) => {
            assert_eq!(path, &dir.join("q"));
            assert!(*needed > 16 * MIB, "{needed}");
            assert_no_space(&e.to_string(), *needed, *available);
        }
        other => panic!("queue: expected NoSpace, got {other:?}"),
    }
    assert!(names_in(&dir).is_empty(), "{:?}", names_in(&dir));
    // A path for the region.
    let rpath = dir.join("r");
    match &Region::create(rpath.to_str().unwrap(), 16 * MIB, &RegionOptions::new()) {
        Err(
            e @ region::Error::NoSpace {
                path,
                needed,
                available,
            },
        ) => {
            assert_eq!(path, &rpath);
            assert_eq!(
                Some(*needed),
                region::file_len(16 * MIB, region::DEFAULT_CHUNK)
            );
            assert_no_space(&e.to_string(), *needed, *available);
        }
        other => panic!("region: expected NoSpace, got {other:?}"),
    }
    assert!(names_in(&dir).is_empty(), "{:?}", names_in(&dir));
}

#[test]
fn queue_and_region_that_fit_keep_working_when_the_fs_fills_up() {
    run_in_small_fs("shmio-small-fs-fit", "child_fit_then_fill");
}

#[test]
fn child_fit_then_fill() {
    let Some(dir) = child() else { return };
    // 3 MiB of region, 2 MiB of queue (1024 slots, stride 2048): both fit.
    let r = Region::create("r", 3 * MIB, &RegionOptions::new()).unwrap();
    let slot = 2048 - 16;
    let mut tx = Producer::create("q", &QueueOptions::new().slots(1024).slot_size(slot)).unwrap();
    // Somebody else takes every block left.
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0xEEu8; 64 << 10];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("fill: {e}"),
        }
    }
    drop(f);
    // Every byte of both is still ours to store (a sparse file would SIGBUS here).
    let mb = vec![0x5Au8; MIB as usize];
    for i in 0..3 {
        r.write(i * MIB, &mb).unwrap();
    }
    let mut back = vec![0u8; MIB as usize];
    r.read(2 * MIB, &mut back).unwrap();
    assert_eq!(back, mb);
    let mut rx = Consumer::open("q", Start::Oldest).unwrap();
    let rec = vec![0xA5u8; slot as usize];
    for _ in 0..1024 {
        tx.send(&rec).unwrap();
    }
    let mut buf = vec![0u8; slot as usize];
    for _ in 0..1024 {
        assert_eq!(rx.recv(&mut buf).unwrap(), slot as usize);
        assert_eq!(buf, rec);
    }
    drop((rx, tx, r));
    queue::unlink("q").unwrap();
    region::unlink("r").unwrap();
    std::fs::remove_file(&filler).unwrap();
}
