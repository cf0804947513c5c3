//! In-process tests of `shmio::region`: creation, validation, consistent access, torn writes,
//! change notification, flush bounds. Multi-process behaviour is tested in `tests/`.

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmio::region::{self, DATA_OFFSET, Error, Region, RegionOptions};

static N: AtomicU32 = AtomicU32::new(0);

struct Name(String);
impl Name {
    fn new(tag: &str) -> Name {
        Name(format!(
            "shmio-rtest-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }
    fn path(&self) -> std::path::PathBuf {
        region::resolve(&self.0).unwrap()
    }
}
impl Drop for Name {
    fn drop(&mut self) {
        // By path: `region::unlink` would leave a file whose magic a test overwrote.
        let _ = std::fs::remove_file(self.path());
    }
}

fn opts() -> RegionOptions {
    RegionOptions::new()
}

#[test]
fn create_open_write_read_version() {
    let n = Name::new("basic");
    let a = Region::create(&n.0, 10_000, &opts()).unwrap();
    assert_eq!(a.len(), 10_000);
    assert_eq!(a.version(), 0);
    let b = Region::open(&n.0, &opts()).unwrap();
    assert_eq!(b.len(), 10_000);
    assert_eq!(a.write(100, b"hello").unwrap(), 1);
    assert_eq!(a.write(9_995, b"world").unwrap(), 2);
    let mut buf = [0u8; 5];
    assert_eq!(b.read(100, &mut buf).unwrap(), 2);
    assert_eq!(&buf, b"hello");
    b.read(9_995, &mut buf).unwrap();
    assert_eq!(&buf, b"world");
    assert_eq!(b.version(), 2);
    // Raw access sees the same bytes, in both mappings.
    // SAFETY: offsets inside the region; no concurrent writer.
    let raw = unsafe { std::slice::from_raw_parts(b.as_ptr().add(100), 5) };
    assert_eq!(raw, b"hello");
    // In-place forms.
    let sum = b
        .read_with(100, 5, |s| s.iter().map(u32::from).sum::<u32>())
        .unwrap();
    assert_eq!(sum, b"hello".iter().map(|&x| u32::from(x)).sum::<u32>());
    let old = a
        .write_with(100, 5, |mut s| {
            let old = s.to_vec();
            s.copy_from(&old.to_ascii_uppercase());
            old
        })
        .unwrap();
    assert_eq!(old, b"hello");
    b.read(100, &mut buf).unwrap();
    assert_eq!(&buf, b"HELLO");
    assert_eq!(a.touch().unwrap(), 4);
    assert_eq!(b.version(), 4);
}

#[test]
fn create_is_exclusive_and_mode_exact() {
    let n = Name::new("excl");
    // SAFETY: umask only changes this process's creation mask.
    let old = unsafe { libc::umask(0o077) };
    let r = Region::create(&n.0, 4096, &opts().mode(0o640));
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let r = r.unwrap();
    let mode = std::fs::metadata(n.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "mode applied exactly despite the umask");
    match Region::create(&n.0, 4096, &opts()) {
        Err(Error::AlreadyExists(p)) => assert_eq!(p, n.path()),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // No temporary file left beside it.
    let dir = n.path().parent().unwrap().to_path_buf();
    let leftovers = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let s = e.file_name().to_string_lossy().into_owned();
            s.starts_with(&format!(".{}", n.0)) && s.ends_with(".tmp")
        })
        .count();
    assert_eq!(leftovers, 0);
    drop(r);
    let n2 = Name::new("default-mode");
    let _r2 = Region::create(&n2.0, 1, &opts()).unwrap();
    let mode = std::fs::metadata(n2.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(matches!(
        Region::create(&Name::new("badmode").0, 1, &opts().mode(0o4755)),
        Err(Error::InvalidArgument(_))
    ));
}

/// Minor page faults this thread takes while storing one byte into every page of `r` (raw).
fn faults_storing_every_page(r: &Region) -> i64 {
    fn minflt() -> i64 {
        let mut u = std::mem::MaybeUninit::<libc::rusage>::uninit();
        // SAFETY: `u` is valid for writing a `rusage`.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, u.as_mut_ptr()) };
        assert_eq!(rc, 0);
        // SAFETY: getrusage succeeded, so it filled `u`.
        unsafe { u.assume_init() }.ru_minflt
    }
    let before = minflt();
    for off in (0..r.len()).step_by(4096) {
        // SAFETY: `off < r.len()`: inside the live mapping; no other access to it meanwhile.
        unsafe { r.as_ptr().add(off).write_volatile(1) };
    }
    minflt() - before
}

fn vm_locked_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn options_sync_populate_lock_open() {
    // Pre-faulting: with populate, every page is mapped before any access, so storing into
    // each of the 256 pages takes (almost) no page fault; without, one fault per page. (The
    // page cache cannot tell them apart: create reserves, and so caches, every page on tmpfs.)
    let plain = Name::new("plain");
    let p = Region::create(&plain.0, 1 << 20, &opts()).unwrap();
    let pre = Name::new("populate");
    let q = Region::create(&pre.0, 1 << 20, &opts().populate(true)).unwrap();
    assert!(faults_storing_every_page(&p) >= 200, "no pre-faulting");
    assert!(faults_storing_every_page(&q) <= 16, "pre-faulted");
    // Locking in RAM shows in VmLck; O_SYNC opens work.
    let n = Name::new("opts");
    let before = vm_locked_kb();
    let o = opts().o_sync(true).lock_in_ram(true);
    let r = Region::create(&n.0, 1 << 20, &o).unwrap();
    assert!(vm_locked_kb() >= before + 1024, "mlock'ed 1 MiB + header");
    r.write(0, &[7u8; 1024]).unwrap();
    let again = Region::open(&n.0, &o).unwrap();
    let mut b = [0u8; 1024];
    again.read(0, &mut b).unwrap();
    assert!(b.iter().all(|&x| x == 7));
    drop((r, again));
}

#[test]
fn bad_sizes_and_ranges_are_errors() {
    let n = Name::new("bounds");
    assert!(matches!(
        Region::create(&n.0, 0, &opts()),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Region::create(&n.0, region::MAX_SIZE + 1, &opts()),
        Err(Error::InvalidArgument(_))
    ));
    assert!(!n.path().exists(), "failed creates leave no file");
    let r = Region::create(&n.0, 100, &opts()).unwrap();
    let mut buf = [0u8; 10];
    assert!(matches!(
        r.read(95, &mut buf),
        Err(Error::OutOfBounds {
            offset: 95,
            len: 10,
            size: 100
        })
    ));
    assert!(matches!(r.write(100, b"x"), Err(Error::OutOfBounds { .. })));
    assert!(matches!(
        r.write(u64::MAX, b"x"),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(r.flush(50, 51), Err(Error::OutOfBounds { .. })));
    assert!(matches!(
        r.read_with(101, 0, |_| ()),
        Err(Error::OutOfBounds { .. })
    ));
    // Edges are fine.
    r.write(90, &[1; 10]).unwrap();
    r.read(100, &mut []).unwrap();
    r.flush(0, 100).unwrap();
    assert_eq!(r.version(), 1, "failed writes do not move the version");
    assert!(matches!(
        Region::open("shmio-no-such-region-xyz", &opts()),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        Region::open("", &opts()),
        Err(Error::InvalidArgument(_))
    ));
}

fn corrupt(n: &Name, at: u64, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(n.path())
        .unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn corrupt_headers_are_refused() {
    // Bad magic.
    let n = Name::new("magic");
    drop(Region::create(&n.0, 4096, &opts()).unwrap());
    corrupt(&n, 0, b"NOTSHMIO");
    assert!(matches!(
        Region::open(&n.0, &opts()),
        Err(Error::Corrupt(_))
    ));

    // Layout version.
    let n = Name::new("version");
    drop(Region::create(&n.0, 4096, &opts()).unwrap());
    corrupt(&n, 8, &99u32.to_le_bytes());
    assert!(matches!(
        Region::open(&n.0, &opts()),
        Err(Error::VersionMismatch {
            found: 99,
            expected: region::LAYOUT_VERSION
        })
    ));

    // A data size larger than the file.
    let n = Name::new("size");
    drop(Region::create(&n.0, 4096, &opts()).unwrap());
    corrupt(&n, 24, &(1u64 << 30).to_le_bytes());
    assert!(matches!(
        Region::open(&n.0, &opts()),
        Err(Error::Corrupt(_))
    ));

    // A zero data size.
    let n = Name::new("zero");
    drop(Region::create(&n.0, 4096, &opts()).unwrap());
    corrupt(&n, 24, &0u64.to_le_bytes());
    assert!(matches!(
        Region::open(&n.0, &opts()),
        Err(Error::Corrupt(_))
    ));

    // A truncated file.
    let n = Name::new("trunc");
    drop(Region::create(&n.0, 8192, &opts()).unwrap());
    std::fs::OpenOptions::new()
        .write(true)
        .open(n.path())
        .unwrap()
        .set_len(DATA_OFFSET + 100)
        .unwrap();
    assert!(matches!(
        Region::open(&n.0, &opts()),
        Err(Error::Corrupt(_))
    ));

    // Shorter than a header; empty.
    let n = Name::new("short");
    std::fs::write(n.path(), [0u8; 100]).unwrap();
    assert!(matches!(
        Region::open(&n.0, &opts()),
        Err(Error::Corrupt(_))
    ));
    std::fs::write(n.path(), []).unwrap();
    assert!(matches!(
        Region::open(&n.0, &opts()),
        Err(Error::Corrupt(_))
    ));
    // A zeroed page: no magic.
    std::fs::write(n.path(), vec![0u8; 8192]).unwrap();
    assert!(matches!(
        Region::open(&n.0, &opts()),
        Err(Error::Corrupt(_))
    ));
}

#[test]
fn panicking_writer_leaves_a_torn_range_until_rewritten() {
    let n = Name::new("torn");
    let r = Region::create(&n.0, 4096, &opts()).unwrap();
    r.write(0, &[1u8; 4096]).unwrap();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        r.write_with(1000, 100, |mut s| {
            s.copy_from(&[2; 50]);
            panic!("writer fails half-way");
        })
    }));
    assert!(res.is_err());
    assert_eq!(r.torn_writes(), 1);
    assert_eq!(r.torn().unwrap(), Some((1000, 100)));
    let mut b = [0u8; 10];
    match r.read(1095, &mut b) {
        Err(Error::Torn {
            offset: 1000,
            len: 100,
        }) => {}
        other => panic!("expected Torn, got {other:?}"),
    }
    assert!(matches!(
        r.read(0, &mut [0u8; 4096]),
        Err(Error::Torn { .. })
    ));
    // Elsewhere reads go on, and writers are not blocked.
    r.read(0, &mut b).unwrap();
    assert_eq!(b, [1u8; 10]);
    r.write(2000, b"ok").unwrap();
    // Rewriting the first half shrinks the torn range; rewriting the rest clears it.
    r.write(990, &[3u8; 60]).unwrap();
    assert_eq!(r.torn().unwrap(), Some((1050, 50)));
    assert!(matches!(r.read(1060, &mut b), Err(Error::Torn { .. })));
    r.read(1000, &mut b).unwrap();
    assert_eq!(b, [3u8; 10]);
    r.write(1050, &[4u8; 50]).unwrap();
    assert_eq!(r.torn().unwrap(), None);
    r.read(1095, &mut b).unwrap();
    assert_eq!(&b[..5], &[4u8; 5]);
}

#[test]
fn consistent_calls_from_inside_write_with_are_refused() {
    let n = Name::new("nested");
    let r = Region::create(&n.0, 4096, &opts()).unwrap();
    let inner = r
        .write_with(0, 8, |_| {
            let mut b = [0u8; 8];
            (r.write(100, b"x").err(), r.read(0, &mut b).err())
        })
        .unwrap();
    assert!(
        matches!(inner.0, Some(Error::InvalidArgument(_))),
        "{inner:?}"
    );
    assert!(
        matches!(inner.1, Some(Error::InvalidArgument(_))),
        "{inner:?}"
    );
    // The region is usable afterwards.
    r.write(0, b"fine").unwrap();
}

#[test]
fn wait_changed_times_out_and_wakes() {
    let n = Name::new("wait");
    let r = Arc::new(Region::create(&n.0, 64, &opts()).unwrap());
    assert!(matches!(
        r.wait_changed(0, Some(Duration::ZERO)),
        Err(Error::WouldBlock)
    ));
    let t = Instant::now();
    assert!(matches!(
        r.wait_changed(0, Some(Duration::from_millis(50))),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(45));
    // An already-moved version returns at once.
    r.write(0, b"a").unwrap();
    assert_eq!(r.wait_changed(0, None).unwrap(), 1);
    let w = Arc::clone(&r);
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        w.write(0, b"b").unwrap()
    });
    let v = r.wait_changed(1, Some(Duration::from_secs(30))).unwrap();
    assert_eq!(v, writer.join().unwrap());
}

#[test]
fn threads_never_see_mixed_records() {
    let n = Name::new("threads");
    let r = Arc::new(Region::create(&n.0, 4096, &opts()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2u8)
        .map(|id| {
            let (r, stop) = (Arc::clone(&r), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut i = 0u8;
                while !stop.load(Ordering::Relaxed) {
                    i = i.wrapping_add(1);
                    r.write(0, &[id.wrapping_mul(100).wrapping_add(i); 1024])
                        .unwrap();
                }
            })
        })
        .collect();
    let mut b = [0u8; 1024];
    for _ in 0..50_000 {
        r.read(0, &mut b).unwrap();
        assert!(b.iter().all(|&x| x == b[0]), "mixed record {:?}", &b[..8]);
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
}

#[test]
fn cache_stat_reports_or_says_unsupported() {
    let n = Name::new("cstat");
    let r = Region::create(&n.0, 1 << 20, &opts()).unwrap();
    r.write(0, &[9u8; 1 << 20]).unwrap();
    match r.cache_stat() {
        Ok(c) => {
            assert_eq!(c.page_size, 4096);
            // Every data page was written, so it is in the page cache (tmpfs: in memory).
            assert!(c.cached >= 256, "{c:?}");
        }
        Err(Error::Unsupported(m)) => eprintln!("skipped: {m}"),
        Err(e) => panic!("{e}"),
    }
}

/// A torn range scribbled into the file that reaches past the data (an offset or a length
/// near `u64::MAX`) is reported as `Corrupt`, never handed on as offsets (`torn()`, the
/// `Torn` error of a read) and never wraps the overlap arithmetic.
#[test]
fn scribbled_torn_range_past_the_data_is_corrupt() {
    let n = Name::new("tornrange");
    let r = Region::create(&n.0, 4096, &opts()).unwrap();
    r.write(0, &[5u8; 64]).unwrap();
    // torn_off and torn_len: the sequence line (file offset 256) + 32 and + 40.
    let put = |off: u64, len: u64| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(n.path())
            .unwrap();
        f.seek(SeekFrom::Start(256 + 32)).unwrap();
        f.write_all(&off.to_le_bytes()).unwrap();
        f.write_all(&len.to_le_bytes()).unwrap();
    };
    for (off, len) in [(10, u64::MAX), (u64::MAX - 5, 100), (4000, 97), (4097, 1)] {
        put(off, len);
        assert!(matches!(r.torn(), Err(Error::Corrupt(_))), "({off}, {len})");
        let mut buf = [0u8; 64];
        assert!(
            matches!(r.read(0, &mut buf), Err(Error::Corrupt(_))),
            "({off}, {len})"
        );
    }
    // In range it is a torn range again, and a write covering it clears it.
    put(10, 20);
    assert_eq!(r.torn().unwrap(), Some((10, 20)));
    r.write(0, &[6u8; 64]).unwrap();
    assert_eq!(r.torn().unwrap(), None);
    let mut buf = [0u8; 64];
    r.read(0, &mut buf).unwrap();
    assert_eq!(buf, [6u8; 64]);
}
