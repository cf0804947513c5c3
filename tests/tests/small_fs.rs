//! Queues and regions on a file system too small for them (issue 11, item 2): each test mounts
//! its own 8 MiB tmpfs (needs root; skipped otherwise), and runs the shmio calls in a child
//! process (this test binary again, see [`child`]), so that a SIGBUS kills the child, not the
//! test harness, and so that `SHMIO_TEST_HOOK` (read once per process) can differ per run.

use std::ffi::CString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use shmio::queue::{self, Consumer, Producer, QueueOptions, Start};
use shmio::region::{self, Region, RegionOptions};

/// Set in a child run: the directory of its small tmpfs.
const CHILD_ENV: &str = "SHMIO_SMALL_FS_CHILD";
const MIB: u64 = 1 << 20;
/// The size of every test's tmpfs.
const FS_SIZE: u64 = 8 * MIB;

/// An 8 MiB tmpfs mounted on a fresh directory; unmounted and removed on drop.
struct SmallFs {
    dir: PathBuf,
}

impl SmallFs {
    /// `None` (and a note on stderr) where the test cannot mount: not root, or no
    /// CAP_SYS_ADMIN.
    fn mount(tag: &str) -> Option<SmallFs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "shmio-small-fs-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).unwrap();
        let target = CString::new(dir.to_str().unwrap()).unwrap();
        let opts = CString::new(format!("size={FS_SIZE},mode=0700")).unwrap();
        // SAFETY: every pointer is a NUL-terminated string that outlives the call.
        let r = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            let _ = std::fs::remove_dir(&dir);
            if e.raw_os_error() == Some(libc::EPERM) {
                eprintln!("skipped: cannot mount a tmpfs here: {e}");
                return None;
            }
            panic!("mount tmpfs on {}: {e}", dir.display());
        }
        Some(SmallFs { dir })
    }

    /// Runs the child test `name` with `SHMIO_DIR` and [`CHILD_ENV`] set to the tmpfs and
    /// `SHMIO_TEST_HOOK` to `hooks`; asserts that it ran and passed.
    fn run_child(&self, name: &str, hooks: &str) {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &self.dir)
            .env("SHMIO_DIR", &self.dir)
            .env("SHMIO_TEST_HOOK", hooks)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "child {name} (hooks {hooks:?}) failed: {}\n{text}",
            out.status
        );
        assert!(
            text.contains("1 passed"),
            "child {name} did not run:\n{text}"
        );
    }

    fn names(&self) -> Vec<String> {
        names_in(&self.dir)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let target = CString::new(self.dir.to_str().unwrap()).unwrap();
        // SAFETY: `target` is a NUL-terminated string that outlives the call.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// In a child run, the tmpfs directory; in a normal run `None` (the child test then passes
/// without doing anything).
fn child() -> Option<PathBuf> {
    std::env::var_os(CHILD_ENV).map(PathBuf::from)
}

/// A queue of just over 16 MiB: 4096 slots with a stride of 4096 bytes, and the header.
fn big_queue() -> QueueOptions {
    QueueOptions::new().slots(4096).slot_size(4096 - 16)
}

#[test]
fn queue_and_region_larger_than_the_fs_fail_with_no_space_and_leave_nothing() {
    let Some(fs) = SmallFs::mount("big") else {
        return;
    };
    // With an unnamed O_TMPFILE file, then with the randomly named temporary one.
    for hooks in ["", "no-tmpfile"] {
        fs.run_child("child_too_big", hooks);
        assert!(fs.names().is_empty(), "{hooks:?}: {:?}", fs.names());
    }
}

#[test]
fn child_too_big() {
    let Some(dir) = child() else { return };
    // A bare name (in $SHMIO_DIR) for the queue.
    match Producer::create("q", &big_queue()) {
        Err(queue::Error::NoSpace {
            path,
            needed,
            available,
        }) => {
            assert_eq!(path, dir.join("q"));
            assert!(needed > 16 * MIB, "{needed}");
            // All of the empty file system: the failed attempt kept nothing.
            assert_eq!(available, FS_SIZE);
            let msg = queue::Error::NoSpace {
                path,
                needed,
                available,
            }
            .to_string();
            assert!(
                msg.contains(&needed.to_string()) && msg.contains(&available.to_string()),
                "{msg}"
            );
        }
        other => panic!("queue: expected NoSpace, got {other:?}"),
    }
    assert!(names_in(&dir).is_empty(), "{:?}", names_in(&dir));
    // A path for the region.
    let rpath = dir.join("r");
    match Region::create(rpath.to_str().unwrap(), 16 * MIB, &RegionOptions::new()) {
        Err(region::Error::NoSpace {
            path,
            needed,
            available,
        }) => {
            assert_eq!(path, rpath);
            assert_eq!(needed, region::DATA_OFFSET + 16 * MIB);
            // All of the empty file system: the failed attempt kept nothing.
            assert_eq!(available, FS_SIZE);
            let msg = region::Error::NoSpace {
                path,
                needed,
                available,
            }
            .to_string();
            assert!(
                msg.contains(&needed.to_string()) && msg.contains(&available.to_string()),
                "{msg}"
            );
        }
        other => panic!("region: expected NoSpace, got {other:?}"),
    }
    assert!(names_in(&dir).is_empty(), "{:?}", names_in(&dir));
}

#[test]
fn queue_and_region_that_fit_keep_working_when_the_fs_fills_up() {
    let Some(fs) = SmallFs::mount("fit") else {
        return;
    };
    for hooks in ["", "no-tmpfile"] {
        fs.run_child("child_fit_then_fill", hooks);
        assert!(fs.names().is_empty(), "{hooks:?}: {:?}", fs.names());
    }
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
