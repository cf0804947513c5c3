//! Helpers shared by every shmio object that lives in a file (the queue, the region): name
//! resolution, exclusive creation of an unpublished file that is then linked into place, and
//! opening.
//!
//! An object is created as a file that has no name yet (`O_TMPFILE`) or, where the file system
//! or the environment refuses that, a file under a random temporary name beside its final path.
//! It is initialised there and then linked into place, so `create` is exclusive (`O_EXCL`
//! semantics on the final name) and nobody ever maps a half-initialised file. A create that
//! dies halfway leaves nothing behind with `O_TMPFILE`, and at worst an unused randomly named
//! file otherwise: never a name that a later create would trip on.
//!
//! The file's blocks are reserved at creation ([`create_tmp`]): on a file system too small for
//! it the create fails with [`FileError::NoSpace`], instead of the first store to a page with
//! no block behind it killing the process with SIGBUS.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag};
use nix::sys::stat::Mode;

use crate::error::IoError;
use crate::sys::syscall;

/// What a file helper failed with, already classified; the queue and the region each convert it
/// into their own error enum (`crate::error::file_object_error`).
#[derive(Debug)]
pub(crate) enum FileError {
    InvalidArgument(String),
    AlreadyExists(PathBuf),
    NotFound(PathBuf),
    PermissionDenied(PathBuf),
    /// Not a valid file of the kind named, or not that kind at all (see [`unlink_checked`]).
    Corrupt(String),
    /// The file system cannot hold the file: `needed` bytes, `available` to unprivileged
    /// users (`f_bavail * f_frsize`).
    NoSpace {
        path: PathBuf,
        needed: u64,
        available: u64,
    },
    Io(IoError),
}

impl FileError {
    /// `op` failed with `source` on `path`: a missing file is [`FileError::NotFound`] where
    /// the call looked it up by name (`open`, `unlink`), a refusal is
    /// [`FileError::PermissionDenied`] on any named file; anything else is [`FileError::Io`].
    pub(crate) fn io(op: &'static str, path: Option<&Path>, source: io::Error) -> FileError {
        match (source.kind(), path) {
            (io::ErrorKind::NotFound, Some(p)) if op == "open" || op == "unlink" => {
                FileError::NotFound(p.to_path_buf())
            }
            (io::ErrorKind::PermissionDenied, Some(p)) => {
                FileError::PermissionDenied(p.to_path_buf())
            }
            _ => FileError::Io(IoError::new(op, source).at(path)),
        }
    }
}

/// The message of every `NoSpace` error (queue, region): what was needed and what is free.
pub(crate) fn no_space_message(path: &Path, needed: u64, available: u64) -> String {
    format!(
        "no space for {}: it needs {needed} bytes ({}), its file system has {available} \
         bytes ({}) available",
        path.display(),
        human_bytes(needed),
        human_bytes(available)
    )
}

/// `n` bytes in the largest binary unit that leaves at least 1, with one decimal (`4.0 MiB`;
/// plain bytes below 1 KiB: `512 B`), as shmio's messages and the `shmio` command print sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Directory that bare names live in: `$SHMIO_DIR`, or `/dev/shm`.
pub fn shm_dir() -> PathBuf {
    std::env::var_os("SHMIO_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/dev/shm"), PathBuf::from)
}

/// Resolves a bare name (`"orders"` → `$SHMIO_DIR/orders` or `/dev/shm/orders`) or a path.
/// `what` names the kind of object in messages ("queue", "region").
///
/// The rule: a path is what looks like one: it starts with `/` (absolute), `./` or `../`
/// (relative to the working directory). Anything else is a bare name: 1 to 200 bytes, no `/`,
/// not `.` or `..`; a name with a `/` inside (`"a/b"`) is refused rather than taken as a
/// relative path by surprise (write `"./a/b"` for that).
pub(crate) fn resolve(name: &str, what: &str) -> Result<PathBuf, FileError> {
    if name.is_empty() {
        return Err(FileError::InvalidArgument(format!("empty {what} name")));
    }
    if name.contains('\0') {
        return Err(FileError::InvalidArgument(format!(
            "{what} name contains a NUL byte"
        )));
    }
    if name.starts_with('/') || name.starts_with("./") || name.starts_with("../") {
        return Ok(PathBuf::from(name));
    }
    if name.contains('/') {
        return Err(FileError::InvalidArgument(format!(
            "invalid {what} name {name:?}: a name has no '/' (a path starts with '/', './' or \
             '../': write \"./{name}\" for one relative to the working directory)"
        )));
    }
    if name == "." || name == ".." || name.len() > 200 {
        return Err(FileError::InvalidArgument(format!(
            "invalid {what} name {name:?} (use 1-200 bytes, no '/', not . or ..)"
        )));
    }
    Ok(shm_dir().join(name))
}

pub(crate) fn cpath(path: &Path) -> Result<CString, FileError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| FileError::InvalidArgument(format!("{} contains a NUL byte", path.display())))
}

/// `open(path, flags, mode)` — a new descriptor of the file at `path` (`mode` is used only with
/// `O_CREAT` or `O_TMPFILE`).
fn open(path: &CStr, flags: libc::c_int, mode: u32) -> io::Result<File> {
    let mode = Mode::from_bits_retain(mode as libc::mode_t);
    nix::fcntl::open(path, OFlag::from_bits_retain(flags), mode)
        .map(File::from)
        .map_err(io::Error::from)
}

/// How many random temporary names [`create_named`] tries before it gives up.
const TMP_TRIES: u32 = 100;

/// Test hooks, for shmio's own end-to-end tests only, not an interface: `SHMIO_TEST_HOOK` is
/// read once per process, a comma-separated list of
/// - `die-in-create`: [`create_tmp`] SIGKILLs the process right after making the file, to show
///   that a create killed halfway leaves nothing that blocks a later one (pid 1 of a PID
///   namespace ignores it: init cannot be killed from inside its namespace);
/// - `no-tmpfile`: [`create_tmp`] skips `O_TMPFILE` and takes the random-name fallback.
fn test_hook(name: &str) -> bool {
    static HOOKS: OnceLock<Vec<String>> = OnceLock::new();
    HOOKS
        .get_or_init(|| {
            std::env::var("SHMIO_TEST_HOOK")
                .map(|v| v.split(',').map(str::to_owned).collect())
                .unwrap_or_default()
        })
        .iter()
        .any(|h| h == name)
}

/// A file made by [`create_tmp`] that nobody else can open yet. Publish it with
/// [`TmpFile::link_into_place`]; dropping it instead removes its temporary name, if it has one.
pub(crate) struct TmpFile {
    file: File,
    /// The temporary name beside the final path, or `None` for an unnamed `O_TMPFILE` file.
    name: Option<PathBuf>,
}

impl TmpFile {
    /// A second descriptor of the file (`dup`), for the object that maps and keeps it.
    pub(crate) fn try_clone(&self) -> Result<File, FileError> {
        self.file
            .try_clone()
            .map_err(|e| FileError::io("dup", self.name.as_deref(), e))
    }

    /// Publishes the file at `path`, failing with [`FileError::AlreadyExists`] if `path`
    /// exists; the temporary name, if any, is gone afterwards either way.
    ///
    /// An unnamed file is linked with `linkat(fd, "", AT_EMPTY_PATH)` (which needs
    /// CAP_DAC_READ_SEARCH before Linux 6.10), else through `/proc/self/fd/N`. A named one is
    /// hard-linked and its temporary name removed, or, on file systems without hard links,
    /// renamed with `renameat2(RENAME_NOREPLACE)`.
    pub(crate) fn link_into_place(mut self, path: &Path) -> Result<(), FileError> {
        let res = match &self.name {
            None => link_unnamed(&self.file, path),
            Some(tmp) => {
                let (ct, cp) = (cpath(tmp)?, cpath(path)?);
                let linked = nix::unistd::linkat(
                    AT_FDCWD,
                    ct.as_c_str(),
                    AT_FDCWD,
                    cp.as_c_str(),
                    AtFlags::empty(),
                );
                match linked.map_err(io::Error::from) {
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP)) => {
                        // Raw: nix has `renameat2` for glibc targets only.
                        // SAFETY: both paths are valid NUL-terminated strings for the whole call.
                        let r = syscall!(renameat2(
                            libc::AT_FDCWD,
                            ct.as_ptr(),
                            libc::AT_FDCWD,
                            cp.as_ptr(),
                            libc::RENAME_NOREPLACE
                        ));
                        if r.is_ok() {
                            // The temporary name is now the final one: nothing to remove.
                            self.name = None;
                        }
                        r.map(drop)
                    }
                    r => r,
                }
            }
        };
        res.map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                FileError::AlreadyExists(path.to_path_buf())
            } else {
                FileError::io("link", Some(path), e)
            }
        })
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if let Some(p) = self.name.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Links the unnamed (`O_TMPFILE`) `file` at `path`: [`link_empty_path`], or, where that is
/// refused (no CAP_DAC_READ_SEARCH: `ENOENT`), [`link_via_proc`]. `EEXIST` is returned at
/// once: the name is taken.
fn link_unnamed(file: &File, path: &Path) -> io::Result<()> {
    match link_empty_path(file, path) {
        Err(e) if e.raw_os_error() != Some(libc::EEXIST) => link_via_proc(file, path),
        r => r,
    }
}

/// `linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH)`: needs CAP_DAC_READ_SEARCH, or, from Linux
/// 6.10 on, the credentials that opened `file`.
fn link_empty_path(file: &File, path: &Path) -> io::Result<()> {
    nix::unistd::linkat(file, "", AT_FDCWD, path, AtFlags::AT_EMPTY_PATH).map_err(io::Error::from)
}

/// `linkat(AT_FDCWD, "/proc/self/fd/N", AT_FDCWD, path, AT_SYMLINK_FOLLOW)`: needs `/proc`.
fn link_via_proc(file: &File, path: &Path) -> io::Result<()> {
    let via_proc = format!("/proc/self/fd/{}", file.as_raw_fd());
    nix::unistd::linkat(
        AT_FDCWD,
        via_proc.as_str(),
        AT_FDCWD,
        path,
        AtFlags::AT_SYMLINK_FOLLOW,
    )
    .map_err(io::Error::from)
}

/// `path`'s directory (`.` for a bare file name) and file name.
fn split(path: &Path) -> Result<(&Path, &std::ffi::OsStr), FileError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = path.file_name().ok_or_else(|| {
        FileError::InvalidArgument(format!("{} has no file name", path.display()))
    })?;
    Ok((dir, base))
}

/// Creates a fresh file for `path` with exactly `mode` (whatever the umask) and length `len`,
/// its blocks reserved (see [`reserve`]), opened read-write with `extra_flags` (e.g. `O_SYNC`)
/// added, and not yet visible at `path`. [`FileError::NoSpace`] if the file system cannot hold
/// it; on every failure nothing is left behind (an unnamed file just goes, a named one is
/// removed).
///
/// The file is an unnamed `O_TMPFILE` file in `path`'s directory where the file system has
/// them and it can be linked later (`/proc/self/fd` works); otherwise it gets a random
/// temporary name beside `path` (see [`create_named`]).
pub(crate) fn create_tmp(
    path: &Path,
    mode: u32,
    len: u64,
    extra_flags: libc::c_int,
) -> Result<TmpFile, FileError> {
    if mode & !0o777 != 0 {
        return Err(FileError::InvalidArgument(format!(
            "mode {mode:#o} has bits outside 0o777"
        )));
    }
    let (dir, _) = split(path)?;
    let unnamed = if test_hook("no-tmpfile") {
        None
    } else {
        create_unnamed(dir, mode, extra_flags)?
    };
    let tmp = match unnamed {
        Some(file) => finish_tmp(TmpFile { file, name: None }, path, mode, len)?,
        None => create_named(path, mode, len, extra_flags, random_u64)?,
    };
    if test_hook("die-in-create") {
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::SIGKILL);
    }
    Ok(tmp)
}

/// Opens an unnamed `O_TMPFILE` file in `dir`. `Ok(None)` where the kernel or the file system
/// has no `O_TMPFILE` (`EOPNOTSUPP`, `EISDIR`, `EINVAL`, `ENOENT`), or where the file could not
/// be linked later because `/proc/self/fd` does not show it (no `/proc`, another PID
/// namespace's `/proc`; `AT_EMPTY_PATH` is not counted on, as it may lack the capability): the
/// caller then takes the named fallback.
fn create_unnamed(
    dir: &Path,
    mode: u32,
    extra_flags: libc::c_int,
) -> Result<Option<File>, FileError> {
    let cdir = cpath(dir)?;
    let file = match open(
        &cdir,
        libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC | extra_flags,
        mode,
    ) {
        Ok(file) => file,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL | libc::ENOENT)
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(FileError::io("create a file in", Some(dir), e)),
    };
    // `linkat(AT_EMPTY_PATH)` needs a capability that is seldom there; the fallback needs
    // `/proc/self/fd/N` to be this very file. Check now, while another way is still open.
    let ours = file.metadata().ok();
    let via_proc = std::fs::metadata(format!("/proc/self/fd/{}", file.as_raw_fd())).ok();
    match (ours, via_proc) {
        (Some(a), Some(b)) if a.dev() == b.dev() && a.ino() == b.ino() => Ok(Some(file)),
        _ => Ok(None),
    }
}

/// Creates the file under a random temporary name `.BASE.XXXXXXXXXXXXXXXX.tmp` beside `path`
/// (`O_EXCL`, a new name on `EEXIST`, at most [`TMP_TRIES`] names drawn from `random`), then
/// sets its mode and length like [`create_tmp`]. The name is removed on every failure.
fn create_named(
    path: &Path,
    mode: u32,
    len: u64,
    extra_flags: libc::c_int,
    mut random: impl FnMut() -> u64,
) -> Result<TmpFile, FileError> {
    let (dir, base) = split(path)?;
    // At most 200 bytes of the final name, so the temporary one stays under NAME_MAX.
    let base = String::from_utf8_lossy(&base.as_bytes()[..base.len().min(200)]).into_owned();
    for _ in 0..TMP_TRIES {
        let tmp = dir.join(format!(".{base}.{:016x}.tmp", random()));
        let ctmp = cpath(&tmp)?;
        match open(
            &ctmp,
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC | extra_flags,
            mode,
        ) {
            Ok(file) => {
                return finish_tmp(
                    TmpFile {
                        file,
                        name: Some(tmp),
                    },
                    path,
                    mode,
                    len,
                );
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(FileError::io("create a file in", Some(dir), e)),
        }
    }
    Err(FileError::io(
        "create a temporary file (every random name tried was taken) in",
        Some(dir),
        Errno::EEXIST.into(),
    ))
}

/// Applies `mode` exactly (whatever the umask), sets the length and reserves the blocks
/// ([`reserve`]); on failure the temporary file goes (dropping it removes its name). `path` is
/// the final path, for [`FileError::NoSpace`].
fn finish_tmp(tmp: TmpFile, path: &Path, mode: u32, len: u64) -> Result<TmpFile, FileError> {
    nix::sys::stat::fchmod(&tmp.file, Mode::from_bits_retain(mode as libc::mode_t))
        .map_err(|e| FileError::io("fchmod", tmp.name.as_deref(), e.into()))?;
    tmp.file
        .set_len(len)
        .map_err(|e| FileError::io("ftruncate", tmp.name.as_deref(), e))?;
    match reserve(&tmp.file, len) {
        Ok(()) => Ok(tmp),
        Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
            // Give back what the failed call may have allocated (some file systems keep it
            // until the file goes), so that `available` is what the file system really has.
            let _ = tmp.file.set_len(0);
            // `u64::from`: both counts are `u64` on 64-bit targets, `c_ulong` is not on all.
            #[allow(clippy::useless_conversion)]
            let available = nix::sys::statvfs::fstatvfs(&tmp.file).map_or(0, |s| {
                u64::from(s.blocks_available()).saturating_mul(u64::from(s.fragment_size()))
            });
            Err(FileError::NoSpace {
                path: path.to_path_buf(),
                needed: len,
                available,
            })
        }
        Err(e) => Err(FileError::io(
            "fallocate",
            Some(tmp.name.as_deref().unwrap_or(path)),
            e,
        )),
    }
}

/// Reserves the blocks of the file's first `len` bytes, so that a store through a shared
/// mapping of it never finds the file system full: a sparse file on a full tmpfs kills the
/// storing process with SIGBUS. `fallocate(fd, 0, 0, len)`; where the file system has no
/// `fallocate` (`EOPNOTSUPP`), `posix_fallocate` (glibc then writes a zero into every block).
/// Where neither can reserve (`posix_fallocate` fails with `EOPNOTSUPP` or `EINVAL` too, as
/// with musl on such a file system), the file stays sparse, as before: that is no worse than
/// what the file system offers anyway. `ENOSPC` is the caller's to report.
fn reserve(file: &File, len: u64) -> io::Result<()> {
    use nix::fcntl::{FallocateFlags, fallocate, posix_fallocate};
    if len == 0 {
        return Ok(());
    }
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from(Errno::EFBIG))?;
    loop {
        match fallocate(file, FallocateFlags::empty(), 0, len) {
            Ok(()) => return Ok(()),
            // tmpfs gives up a large fallocate when a signal arrives; redoing it is harmless.
            Err(Errno::EINTR) => continue,
            Err(Errno::EOPNOTSUPP) => break,
            Err(e) => return Err(e.into()),
        }
    }
    loop {
        match posix_fallocate(file, 0, len) {
            Ok(()) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(Errno::EOPNOTSUPP | Errno::EINVAL) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// 64 random bits for a temporary name: `getrandom(2)`, or, where that fails (no entropy
/// yet, an old kernel), a mix of the clock, the pid and a counter. Unpredictable names are
/// not needed for safety (`O_EXCL` and the retry are), only unlikely collisions.
pub(crate) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: `b` is a live, writable 8-byte buffer for the whole call.
    if let Ok(8) = syscall!(getrandom(
        b.as_mut_ptr().cast(),
        b.len(),
        libc::GRND_NONBLOCK
    )) {
        return u64::from_ne_bytes(b);
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // splitmix64 of the mix.
    let mut z = now
        ^ (u64::from(crate::sys::process::getpid()) << 32)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Opens an existing regular file read-write with `extra_flags` added.
pub(crate) fn open_existing(path: &Path, extra_flags: libc::c_int) -> Result<File, FileError> {
    open_regular(path, libc::O_RDWR | extra_flags)
}

/// Opens an existing regular file read-only (`O_RDONLY`): for inspecting and observing, which
/// need read permission only.
pub(crate) fn open_read_only(path: &Path) -> Result<File, FileError> {
    open_regular(path, libc::O_RDONLY)
}

fn open_regular(path: &Path, flags: libc::c_int) -> Result<File, FileError> {
    let c = cpath(path)?;
    let file =
        open(&c, flags | libc::O_CLOEXEC, 0).map_err(|e| FileError::io("open", Some(path), e))?;
    let meta = file
        .metadata()
        .map_err(|e| FileError::io("fstat", Some(path), e))?;
    if !meta.file_type().is_file() {
        return Err(FileError::InvalidArgument(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(file)
}

/// Removes the file at `path` only if it is a shmio `what` ("queue", "region") file: a regular
/// file that starts with the 8 bytes of `magic`. Anything else (a symbolic link, a directory, a
/// text file, another kind of shmio file, named in `others` with its magic) is refused with
/// [`FileError::Corrupt`] and left alone. The check opens the file with `O_NOFOLLOW` (and
/// `O_NONBLOCK`, so that a FIFO swapped in does not block), which needs read permission.
///
/// Between the check and the `unlink` another process could put a different file at `path`:
/// that one is then removed. The check guards against mistakes, not against an adversary who
/// can write the directory.
pub(crate) fn unlink_checked(
    path: &Path,
    what: &str,
    magic: u64,
    others: &[(u64, &str)],
) -> Result<(), FileError> {
    use std::os::unix::fs::FileExt;
    let not_ours = |why: String| {
        FileError::Corrupt(format!(
            "{} is not a shmio {what} file ({why}); not removed",
            path.display()
        ))
    };
    // Look before opening: opening a device or a FIFO may have side effects, or block.
    let meta =
        std::fs::symlink_metadata(path).map_err(|e| FileError::io("unlink", Some(path), e))?;
    let kind = |t: std::fs::FileType| {
        if t.is_symlink() {
            "it is a symbolic link"
        } else if t.is_dir() {
            "it is a directory"
        } else {
            "it is not a regular file"
        }
    };
    if !meta.file_type().is_file() {
        return Err(not_ours(kind(meta.file_type()).into()));
    }
    let c = cpath(path)?;
    let flags =
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
    let file = match open(&c, flags, 0) {
        Ok(file) => file,
        // Replaced by a symbolic link since the look.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(not_ours("it is a symbolic link".into()));
        }
        Err(e) => return Err(FileError::io("open", Some(path), e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| FileError::io("fstat", Some(path), e))?;
    if !meta.file_type().is_file() {
        return Err(not_ours(kind(meta.file_type()).into()));
    }
    let mut head = [0u8; 8];
    match file.read_exact_at(&mut head, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(not_ours(format!(
                "it is {} bytes long, shorter than a magic number",
                meta.len()
            )));
        }
        Err(e) => return Err(FileError::io("read", Some(path), e)),
    }
    let found = u64::from_le_bytes(head);
    if found != magic {
        return Err(not_ours(match others.iter().find(|(m, _)| *m == found) {
            Some((_, other)) => format!("it is a shmio {other}"),
            None => format!(
                "it starts with \"{}\", not the {what} magic \"{}\"",
                head.escape_ascii(),
                magic.to_le_bytes().escape_ascii()
            ),
        }));
    }
    drop(file);
    std::fs::remove_file(path).map_err(|e| FileError::io("unlink", Some(path), e))
}

#[cfg(test)]
mod tests;
