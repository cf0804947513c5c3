//! `shmio::region` across real processes: torn-free reads under several writer processes,
//! change notification, a writer killed mid-write, flush on a disk file system.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Proc, RegionName, scribble};
use shmio::region::{self, Error, Region, RegionOptions};
use shmio_tests::REC;

const T: Duration = Duration::from_secs(60);

fn rtool(args: &[&str]) -> Proc {
    Proc::spawn(common::rtool(), args)
}

fn field(line: &str, key: &str) -> u64 {
    let mut it = line.split_whitespace();
    while let Some(k) = it.next() {
        if k == key {
            return it.next().unwrap().parse().unwrap();
        }
    }
    panic!("no {key} in {line:?}")
}

#[test]
fn two_writers_two_readers_million_reads_zero_torn() {
    const SLOTS: u64 = 4;
    const READS_EACH: u64 = 500_000;
    let n = RegionName::new("hammer");
    let r = Region::create(&n.0, (SLOTS + 1) * REC as u64, &RegionOptions::new()).unwrap();
    let mut writers: Vec<Proc> = (0..2)
        .map(|id| rtool(&["writer", &n.0, &id.to_string(), &SLOTS.to_string()]))
        .collect();
    for w in &mut writers {
        w.expect_line("writing", T);
    }
    let readers: Vec<Proc> = (0..2)
        .map(|_| rtool(&["reader", &n.0, &SLOTS.to_string(), &READS_EACH.to_string()]))
        .collect();
    let mut total = 0;
    let mut good = 0;
    for rd in readers {
        let (code, lines) = rd.finish(Duration::from_secs(150));
        assert_eq!(code, 0, "{lines:?}");
        let l = lines.iter().find(|l| l.starts_with("reads ")).unwrap();
        println!("reader: {l}");
        assert_eq!(field(l, "bad"), 0, "a reader saw a torn record: {l}");
        assert_eq!(field(l, "writers"), 2, "records of both writers read: {l}");
        total += field(l, "reads");
        good += field(l, "good");
    }
    assert_eq!(total, 2 * READS_EACH);
    assert!(good > total / 2, "most reads found a written record");
    // Stop the writers (the stop word) and check they really interleaved with the readers.
    r.write(0, &1u64.to_le_bytes()).unwrap();
    let mut writes = 0;
    for w in writers {
        let (code, lines) = w.finish(T);
        assert_eq!(code, 0, "{lines:?}");
        let l = lines.iter().find(|l| l.starts_with("writes ")).unwrap();
        println!("writer: {l}");
        writes += field(l, "writes");
    }
    assert!(
        writes > 1000,
        "writers made {writes} writes during the reads"
    );
    assert_eq!(r.version(), writes + 1, "one version per write");
}

/// The state letter of a process from /proc/PID/stat.
fn proc_state(pid: u32) -> char {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &s[s.rfind(')').unwrap() + 2..];
    after.chars().next().unwrap()
}

#[test]
fn wait_changed_wakes_a_sleeping_reader_in_another_process() {
    let n = RegionName::new("wait");
    let r = Region::create(&n.0, 4096, &RegionOptions::new()).unwrap();
    let mut w = rtool(&["waiter", &n.0, "0", "60000"]);
    w.expect_line("waiting", T);
    // It sleeps in the kernel (a futex), not in a polling loop: its state becomes S.
    let pid = w.child.id();
    let start = Instant::now();
    while proc_state(pid) != 'S' {
        assert!(start.elapsed() < T, "waiter never went to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        proc_state(pid),
        'S',
        "the waiter stays asleep while nothing changes"
    );
    let v = r.write(10, b"news").unwrap();
    let line = w.expect_line("changed", Duration::from_secs(10));
    assert_eq!(line, format!("changed {v}"));
    let (code, _) = w.finish(T);
    assert_eq!(code, 0);
    // A waiter that already saw the latest version times out instead.
    let w = rtool(&["waiter", &n.0, &v.to_string(), "100"]);
    let (code, lines) = w.finish(T);
    assert_eq!(code, 0);
    assert!(lines.iter().any(|l| l == "timeout"), "{lines:?}");
}

#[test]
fn writer_killed_mid_write_blocks_nobody_and_its_range_reads_torn() {
    let n = RegionName::new("kill");
    let r = Region::create(&n.0, 8192, &RegionOptions::new()).unwrap();
    r.write(0, &[0xAA; 8192]).unwrap();
    let v0 = r.version();
    // The dying writer holds the lock for 500 ms after writing half of 1000..3000; a second
    // writer process queues behind it on the lock meanwhile.
    let mut dying = rtool(&["die-mid-write", &n.0, "1000", "2000", "500"]);
    dying.expect_line("half", T);
    let blocked = rtool(&["write", &n.0, "6000", "187", "100"]);
    let st = dying.child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    // The queued writer gets the lock (the kernel tells it the owner died) and writes.
    let (code, lines) = blocked.finish(Duration::from_secs(20));
    assert_eq!(code, 0, "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("wrote ")), "{lines:?}");
    // The torn range is never returned as good data, in this process or another.
    let mut buf = vec![0u8; 100];
    match r.read(2500, &mut buf) {
        Err(Error::Torn { offset, len }) => assert_eq!((offset, len), (1000, 2000)),
        other => panic!("expected Torn, got {other:?}"),
    }
    let (_, lines) = rtool(&["read", &n.0, "0", "8192"]).finish(T);
    assert_eq!(lines, vec!["torn 1000 2000".to_string()]);
    // Elsewhere, reads and writes go on.
    r.read(6000, &mut buf).unwrap();
    assert_eq!(buf, vec![187u8; 100]);
    r.read(0, &mut buf).unwrap();
    assert_eq!(buf, vec![0xAA; 100]);
    assert_eq!(r.torn_writes(), 1);
    assert!(
        r.version() >= v0 + 2,
        "the torn write and the next write both count"
    );
    // Rewriting the range makes it readable again.
    r.write(1000, &[0x55; 2000]).unwrap();
    let (_, lines) = rtool(&["read", &n.0, "1000", "2000"]).finish(T);
    assert_eq!(lines, vec![format!("ok {}", 0x55)]);
}

#[test]
fn a_reader_recovers_a_dead_writer_without_any_writer() {
    let n = RegionName::new("kill-reader");
    let r = Region::create(&n.0, 4096, &RegionOptions::new()).unwrap();
    r.write(0, &[1; 4096]).unwrap();
    let mut dying = rtool(&["die-mid-write", &n.0, "100", "50", "0"]);
    dying.expect_line("half", T);
    let _ = dying.child.wait();
    // The counter is left odd; the first reader spins briefly, takes the lock, is told the
    // owner died, marks the range torn, and reads elsewhere succeed.
    let (code, lines) = rtool(&["read", &n.0, "1000", "10"]).finish(Duration::from_secs(20));
    assert_eq!(code, 0);
    assert_eq!(lines, vec!["ok 1".to_string()]);
    assert_eq!(r.torn().unwrap(), Some((100, 50)));
}

/// A directory on ext2/3/4 (the one magic number), or None.
fn ext4_dir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("SHMIO_EXT4_DIR") {
        candidates.push(d.into());
    }
    candidates.push(PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    candidates.push("/var/tmp".into());
    candidates.push("/tmp".into());
    candidates.into_iter().find(|d| {
        let Ok(c) = std::ffi::CString::new(d.as_os_str().as_encoded_bytes()) else {
            return false;
        };
        // SAFETY: an all-zero statfs is a valid value to be overwritten.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a NUL-terminated path and `st` a writable statfs.
        let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
        rc == 0 && st.f_type as i64 == 0xEF53
    })
}

#[test]
fn flush_on_ext4_leaves_no_dirty_pages() {
    let Some(dir) = ext4_dir() else {
        println!("skipped: no ext2/3/4 directory found (set SHMIO_EXT4_DIR)");
        return;
    };
    let path = dir.join(format!("shmio-flush-{}.region", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let name = path.to_str().unwrap().to_owned();
    let r = Region::create(&name, 4 << 20, &RegionOptions::new()).unwrap();
    struct Rm(PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _rm = Rm(path.clone());
    let chunk = vec![0x5Au8; 1 << 20];
    for i in 0..4u64 {
        r.write(i << 20, &chunk).unwrap();
    }
    let before = match r.cache_stat() {
        Ok(c) => c,
        Err(Error::Unsupported(m)) => {
            println!("skipped: {m}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    println!("{}: before flush {before:?}", path.display());
    if before.dirty == 0 {
        println!("note: nothing dirty before the flush (a concurrent sync?)");
    } else {
        assert!(
            before.dirty >= 1024,
            "4 MiB written through the mapping: {before:?}"
        );
    }
    // Flushing the data range leaves at most the header page and the change-tracking table
    // (3 pages for 1,024 chunks) dirty; flushing all, nothing.
    r.flush(0, 4 << 20).unwrap();
    let mid = r.cache_stat().unwrap();
    println!("after flush(data): {mid:?}");
    assert!(mid.dirty <= 4 && mid.writeback <= 4, "{mid:?}");
    r.flush_all().unwrap();
    let after = r.cache_stat().unwrap();
    println!("after flush_all: {after:?}");
    assert_eq!((after.dirty, after.writeback), (0, 0), "{after:?}");
    assert!(after.cached >= 1024, "the pages stay cached: {after:?}");
    // The data is in the file for a plain reader.
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        Some(bytes.len() as u64),
        region::file_len(4 << 20, region::DEFAULT_CHUNK)
    );
    let data = region::DATA_OFFSET as usize..region::DATA_OFFSET as usize + (4 << 20);
    assert!(bytes[data].iter().all(|&b| b == 0x5A));
}

#[test]
fn wait_changed_honours_its_timeout_while_a_stuck_writer_holds_the_lock() {
    let n = RegionName::new("stuck");
    let r = Region::create(&n.0, 4096, &RegionOptions::new()).unwrap();
    let v = r.version();
    // The writer holds the lock for 20 s (as a stopped or wedged writer would).
    let mut stuck = rtool(&["die-mid-write", &n.0, "0", "100", "20000"]);
    stuck.expect_line("half", T);
    let start = Instant::now();
    match r.wait_changed(v, Some(Duration::from_millis(300))) {
        Err(Error::Timeout) => {}
        other => panic!("expected Timeout, got {other:?}"),
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "returned after {took:?}");
    stuck.kill9();
    // Its range is torn; the version moved with the repair.
    assert!(r.wait_changed(v, Some(Duration::from_secs(20))).unwrap() > v);
    assert_eq!(r.torn().unwrap(), Some((0, 100)));
}

#[test]
fn wait_changed_learns_that_a_writer_died_mid_write() {
    // Before: a waiter already asleep when a writer died mid-write slept until its timeout (the
    // dead writer never woke it).
    let n = RegionName::new("waitdead");
    let r = Region::create(&n.0, 4096, &RegionOptions::new()).unwrap();
    let v = r.version();
    let name = n.0.clone();
    let h = std::thread::spawn(move || {
        let r = Region::open(&name, &RegionOptions::new()).unwrap();
        let t = Instant::now();
        (
            r.wait_changed(v, Some(Duration::from_secs(20))),
            t.elapsed(),
        )
    });
    std::thread::sleep(Duration::from_millis(100));
    let mut dying = rtool(&["die-mid-write", &n.0, "100", "50", "0"]);
    dying.expect_line("half", T);
    let _ = dying.child.wait();
    let died = Instant::now();
    let (res, _) = h.join().unwrap();
    let took = died.elapsed();
    assert!(res.unwrap() > v, "the repair moves the version");
    assert!(
        took < shmio::queue::BACKSTOP * 3,
        "the waiter learned of the death after {took:?}"
    );
    assert_eq!(r.torn().unwrap(), Some((100, 50)));
}

#[test]
fn a_peer_scribbling_the_lock_word_makes_the_holder_fail_not_write_elsewhere() {
    // Before: the lock was a glibc mutex whose bytes hold pointers the holder writes through at
    // unlock; a peer rewriting them could aim the holder's stores anywhere in its memory.
    let n = RegionName::new("scribblelock");
    let r = std::sync::Arc::new(Region::create(&n.0, 4096, &RegionOptions::new()).unwrap());
    let path = region::resolve(&n.0).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = {
        let r = std::sync::Arc::clone(&r);
        std::thread::spawn(move || {
            r.write_with(0, 64, |mut buf| {
                buf.fill(7);
                tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(300));
            })
        })
    };
    rx.recv().unwrap();
    let (code, lines) = rtool(&[
        "scribble",
        path.to_str().unwrap(),
        &region::LOCK_WORD_OFFSET.to_string(),
        "100",
    ])
    .finish(T);
    assert_eq!(code, 0, "{lines:?}");
    let res = writer.join().unwrap();
    match res {
        Err(Error::Corrupt(m)) => assert!(m.contains("lock word"), "{m}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Nothing outside the range was written; the region stays usable.
    let mut buf = vec![0u8; 4096];
    r.read(0, &mut buf).unwrap();
    assert!(buf[..64].iter().all(|&b| b == 7));
    assert!(buf[64..].iter().all(|&b| b == 0));
    r.write(100, b"after").unwrap();
    let mut b = [0u8; 5];
    r.read(100, &mut b).unwrap();
    assert_eq!(&b, b"after");
}

#[test]
fn a_file_of_the_old_layout_is_refused_clearly() {
    let n = RegionName::new("oldlayout");
    drop(Region::create(&n.0, 4096, &RegionOptions::new()).unwrap());
    // Layout version 1 had a glibc mutex where the lock word is now.
    scribble(&n.path(), 8, &1u32.to_le_bytes());
    match Region::open(&n.0, &RegionOptions::new()) {
        Err(e @ Error::VersionMismatch { found: 1, .. }) => {
            assert!(e.to_string().contains("layout version 1"), "{e}")
        }
        other => panic!("expected VersionMismatch, got {other:?}"),
    }
}

#[test]
fn a_lock_word_scribbled_with_a_dead_id_does_not_block_untimed_writers() {
    // Before: a word naming an id no process holds kept every untimed write asleep for good
    // (the robust list only reports real holders' deaths).
    let n = RegionName::new("scribbledid");
    let r = Region::create(&n.0, 4096, &RegionOptions::new()).unwrap();
    let dead_id = 0x0001_2345u32.to_le_bytes();
    scribble(&n.path(), region::LOCK_WORD_OFFSET, &dead_id);
    // An untimed write in another process gets through after one backstop slice.
    let t0 = Instant::now();
    let (code, lines) = rtool(&["write", &n.0, "100", "9", "16"]).finish(T);
    let took = t0.elapsed();
    assert_eq!(code, 0, "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("wrote")), "{lines:?}");
    assert!(took < shmio::queue::BACKSTOP * 5, "took {took:?}");
    let mut b = [0u8; 16];
    r.read(100, &mut b).unwrap();
    assert_eq!(b, [9u8; 16]);
    assert_eq!(
        r.torn().unwrap(),
        None,
        "no write was in progress: nothing is torn"
    );
    // A live holder in another process is not robbed: an untimed write waits until it dies
    // (1.5 s, several backstop slices), then finds its range torn.
    let mut holder = rtool(&["die-mid-write", &n.0, "200", "50", "1500"]);
    holder.expect_line("half", T);
    let t1 = Instant::now();
    r.write(1000, b"later").unwrap();
    let waited = t1.elapsed();
    let _ = holder.child.wait();
    assert!(
        waited > Duration::from_millis(1200),
        "robbed a live holder after {waited:?}"
    );
    assert_eq!(r.torn().unwrap(), Some((200, 50)));
}

#[test]
fn a_forked_child_holding_the_lock_through_the_parents_handle_is_not_robbed() {
    // The handle (and its file description) is shared by parent and child; their keepers'
    // liveness bytes are on descriptions of their own, so each sees the other's.
    let n = RegionName::new("forkhold");
    drop(Region::create(&n.0, 4096, &RegionOptions::new()).unwrap());
    let (code, lines) = rtool(&["fork-hold", &n.0, "800"]).finish(T);
    assert_eq!(code, 0, "{lines:?}");
    let line = lines
        .iter()
        .find(|l| l.starts_with("waited"))
        .expect("a result");
    let f: Vec<&str> = line.split_whitespace().collect();
    let waited: u64 = f[1].parse().unwrap();
    assert_eq!(f[3], "0", "the child's write failed: {line}");
    assert!(
        waited >= 600,
        "the parent took the lock from its live child: {line}"
    );
}
