//! Helpers shared by every shmio object that lives in a file (the queue, the region): name
//! resolution, exclusive creation through a temporary name and `link(2)`, and opening.
//!
//! An object is created under a temporary name beside its final path, initialised there, and
//! then linked into place, so `create` is exclusive (`O_EXCL` semantics on the final name) and
//! nobody ever maps a half-initialised file.

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys::syscall;

/// What a file helper failed with; each module converts it into its own error enum.
#[derive(Debug)]
pub(crate) enum FileError {
    InvalidArgument(String),
    AlreadyExists(PathBuf),
    Io {
        op: &'static str,
        path: Option<PathBuf>,
        source: io::Error,
    },
}

impl FileError {
    pub(crate) fn io(op: &'static str, path: Option<&Path>, source: io::Error) -> FileError {
        FileError::Io {
            op,
            path: path.map(Path::to_path_buf),
            source,
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            FileError::AlreadyExists(p) => write!(f, "{} already exists", p.display()),
            FileError::Io { op, path, source } => match path {
                Some(p) => write!(f, "{op} {}: {source}", p.display()),
                None => write!(f, "{op}: {source}"),
            },
        }
    }
}

/// Directory that bare names live in: `$SHMIO_DIR`, or `/dev/shm`.
pub fn shm_dir() -> PathBuf {
    std::env::var_os("SHMIO_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/dev/shm"), PathBuf::from)
}

/// Resolves a bare name (`"orders"` → `/dev/shm/orders`) or a path (anything with a `/`).
/// `what` names the kind of object in messages ("queue", "region").
pub(crate) fn resolve(name: &str, what: &str) -> Result<PathBuf, FileError> {
    if name.is_empty() {
        return Err(FileError::InvalidArgument(format!("empty {what} name")));
    }
    if name.contains('\0') {
        return Err(FileError::InvalidArgument(format!(
            "{what} name contains a NUL byte"
        )));
    }
    if name.contains('/') {
        return Ok(PathBuf::from(name));
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

static TMP_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Removes a temporary file unless kept.
pub(crate) struct TmpGuard(Option<PathBuf>);

impl TmpGuard {
    /// Keeps the file; returns its path.
    pub(crate) fn keep(mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Creates a fresh temporary file beside `path` with exactly `mode` (whatever the umask) and
/// length `len`, opened read-write with `extra_flags` (e.g. `O_SYNC`) added. The guard removes
/// it unless kept.
pub(crate) fn create_tmp(
    path: &Path,
    mode: u32,
    len: u64,
    extra_flags: libc::c_int,
) -> Result<(File, TmpGuard), FileError> {
    if mode & !0o777 != 0 {
        return Err(FileError::InvalidArgument(format!(
            "mode {mode:#o} has bits outside 0o777"
        )));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = path.file_name().ok_or_else(|| {
        FileError::InvalidArgument(format!("{} has no file name", path.display()))
    })?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        base.to_string_lossy(),
        crate::sys::getpid(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let ctmp = cpath(&tmp)?;
    let fd = syscall!(open(
        ctmp.as_ptr(),
        libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC | extra_flags,
        mode as libc::c_uint
    ))
    .map_err(|e| FileError::io("create a file in", Some(dir), e))?;
    // SAFETY: `open` returned a fresh descriptor that nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    let guard = TmpGuard(Some(tmp.clone()));
    // The mode is applied exactly, whatever the umask.
    syscall!(fchmod(file.as_raw_fd(), mode as libc::mode_t))
        .map_err(|e| FileError::io("fchmod", Some(&tmp), e))?;
    file.set_len(len)
        .map_err(|e| FileError::io("ftruncate", Some(&tmp), e))?;
    Ok((file, guard))
}

/// Opens an existing regular file read-write with `extra_flags` added.
pub(crate) fn open_existing(path: &Path, extra_flags: libc::c_int) -> Result<File, FileError> {
    let c = cpath(path)?;
    let fd = syscall!(open(
        c.as_ptr(),
        libc::O_RDWR | libc::O_CLOEXEC | extra_flags
    ))
    .map_err(|e| FileError::io("open", Some(path), e))?;
    // SAFETY: `open` returned a fresh descriptor that nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
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

/// `link(tmp, path)` then `unlink(tmp)`: publishes a file made by [`create_tmp`], failing with
/// [`FileError::AlreadyExists`] if `path` exists. The temporary name is removed either way.
/// Falls back to `renameat2(RENAME_NOREPLACE)` on file systems without hard links.
pub(crate) fn link_into_place(tmp: &Path, path: &Path) -> Result<(), FileError> {
    let _guard = TmpGuard(Some(tmp.to_path_buf()));
    let (ct, cp) = (cpath(tmp)?, cpath(path)?);
    let linked = syscall!(link(ct.as_ptr(), cp.as_ptr()));
    let res = match linked {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP)) => {
            // SAFETY: both paths are valid NUL-terminated strings for the duration of the call.
            let r = unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    ct.as_ptr(),
                    libc::AT_FDCWD,
                    cp.as_ptr(),
                    libc::RENAME_NOREPLACE,
                )
            };
            if r == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
        Err(e) => Err(e),
    };
    res.map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            FileError::AlreadyExists(path.to_path_buf())
        } else {
            FileError::io("link", Some(path), e)
        }
    })
}
