//! Directories for the tests that list, or fill, what shmio leaves on a file system; shared by
//! the C API's unit tests and the end-to-end tests (a dev-dependency of both).
//!
//! - [`ShmDir`]: a fresh directory on /dev/shm, removed with its contents on drop.
//! - [`SmallFs`]: an 8 MiB tmpfs mounted for one test (needs root; `None` otherwise), whose
//!   shmio calls run in a child process (the test binary again, running one test found by
//!   [`child`]), so that a SIGBUS kills the child and not the test harness, and so that
//!   `SHMIO_TEST_HOOK` (read once per process) can differ per run.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub const MIB: u64 = 1 << 20;
/// The size of every [`SmallFs`].
pub const FS_SIZE: u64 = 8 * MIB;
/// Set in a child run: the directory of its small tmpfs.
const CHILD_ENV: &str = "SHMIO_SMALL_FS_CHILD";
/// The two ways a create makes its file, as `SHMIO_TEST_HOOK` chooses them: an unnamed
/// `O_TMPFILE` file, then the randomly named temporary one.
pub const CREATE_PATHS: &[&str] = &["", "no-tmpfile"];

static N: AtomicU32 = AtomicU32::new(0);

/// `PREFIX-PID-N`: a name no other test process or test of this one uses.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The names in `dir`, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A fresh directory on /dev/shm, removed with its contents on drop.
pub struct ShmDir(pub PathBuf);

impl ShmDir {
    /// `/dev/shm/PREFIX-PID-N`.
    pub fn new(prefix: &str) -> ShmDir {
        let d = Path::new("/dev/shm").join(unique(prefix));
        std::fs::create_dir(&d).unwrap();
        ShmDir(d)
    }

    /// Every name in the directory, sorted.
    pub fn names(&self) -> Vec<String> {
        names_in(&self.0)
    }
}

impl Drop for ShmDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cstr(p: &Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

/// An 8 MiB tmpfs mounted on a fresh directory; unmounted and removed on drop.
pub struct SmallFs {
    pub dir: PathBuf,
}

impl SmallFs {
    /// Mounts one on `$TMPDIR/PREFIX-PID-N`; `None` (and a note on stderr) where the test
    /// cannot mount: not root, or no CAP_SYS_ADMIN.
    pub fn mount(prefix: &str) -> Option<SmallFs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let dir = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir(&dir).unwrap();
        let target = cstr(&dir);
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

    /// Runs the test `test` (its full path in the test binary) in a child process once per
    /// entry of `hooks`, with `SHMIO_DIR` set to the tmpfs and `SHMIO_TEST_HOOK` to the entry;
    /// asserts each time that it ran and passed, and left the file system empty.
    pub fn run_child(&self, test: &str, hooks: &[&str]) {
        for hooks in hooks {
            self.run_child_once(test, hooks);
            assert!(self.names().is_empty(), "{hooks:?}: {:?}", self.names());
        }
    }

    fn run_child_once(&self, test: &str, hooks: &str) {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
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
            "child {test} (hooks {hooks:?}) failed: {}\n{text}",
            out.status
        );
        assert!(
            text.contains("1 passed"),
            "child {test} did not run:\n{text}"
        );
    }

    /// Every name on the file system, sorted.
    pub fn names(&self) -> Vec<String> {
        names_in(&self.dir)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let target = cstr(&self.dir);
        // SAFETY: `target` is a NUL-terminated string that outlives the call.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Runs the test `test` in a child process on a fresh [`SmallFs`] (mounted on
/// `$TMPDIR/PREFIX-PID-N`) once for each of the [`CREATE_PATHS`] (see [`SmallFs::run_child`]);
/// does nothing where no tmpfs can be mounted.
pub fn run_in_small_fs(prefix: &str, test: &str) {
    if let Some(fs) = SmallFs::mount(prefix) {
        fs.run_child(test, CREATE_PATHS);
    }
}

/// In a child run of [`SmallFs::run_child`], the tmpfs directory; in a normal run `None` (the
/// child test then passes without doing anything).
pub fn child() -> Option<PathBuf> {
    std::env::var_os(CHILD_ENV).map(PathBuf::from)
}
