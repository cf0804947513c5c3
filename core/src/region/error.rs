//! The region module's error type: its variants, their [`ErrorKind`], and how they read.

use std::fmt;
use std::path::PathBuf;

use crate::error::IoError;
use crate::shm::file as shmfile;

/// Errors of the region module.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An argument was out of range or malformed (a zero or too large size, a bad name or mode,
    /// or a read issued from inside this thread's own `write_with`).
    InvalidArgument(String),
    /// `offset + len` reaches past the end of the region.
    OutOfBounds {
        /// The range's start.
        offset: u64,
        /// The range's length.
        len: u64,
        /// The region's size.
        size: u64,
    },
    /// `create` found a file at that path already.
    AlreadyExists(PathBuf),
    /// No region at that path.
    NotFound(PathBuf),
    /// The file's permissions refuse us.
    PermissionDenied(PathBuf),
    /// The file is not a valid region (bad magic, sizes, or length); from
    /// [`unlink`](super::unlink), the file at the path is not a region file (it was left alone).
    Corrupt(String),
    /// The file was made by an incompatible layout version.
    VersionMismatch {
        /// The file's layout version.
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// `create`: the file system cannot hold the file (`needed` bytes; `available` is what it
    /// has free for unprivileged users). Nothing is left behind. The blocks are reserved at
    /// creation, so a region that was created never runs out of space later (no SIGBUS).
    NoSpace {
        /// The file that was to be created.
        path: PathBuf,
        /// Bytes the file needs.
        needed: u64,
        /// Bytes the file system has free for unprivileged users.
        available: u64,
    },
    /// The range read overlaps data whose last writer died (or panicked) mid-write: it is not
    /// returned until that range (`offset`, `len`) is rewritten.
    Torn {
        /// The torn range's start.
        offset: u64,
        /// The torn range's length.
        len: u64,
    },
    /// `wait_changed` with a zero timeout: no change yet.
    WouldBlock,
    /// The wait's timeout expired.
    Timeout,
    /// A signal interrupted a blocking wait (as `EINTR` does for read(2)).
    Interrupted,
    /// The kernel lacks something needed (e.g. `cachestat(2)` before Linux 6.5).
    Unsupported(String),
    /// [`Region::read_fresh`](super::Region::read_fresh): the region is a replica last known
    /// in sync with its primary longer ago than allowed (or never, or it is catching up).
    Stale {
        /// How long ago it was last in sync; `None`: never.
        staleness: Option<std::time::Duration>,
        /// The primary version it holds every change up to.
        applied: u64,
        /// The newest primary version heard of.
        seen: u64,
    },
    /// A local write to a replica: only its bridge writes it (see
    /// [`Region::promote`](super::Region::promote)).
    ReadOnly(String),
    /// [`Region::claim_writer`](super::Region::claim_writer): a live writer (this pid, as its
    /// claim recorded it) claimed the region already.
    WriterExists {
        /// The claiming writer's pid, in its PID namespace.
        pid: u32,
    },
    /// A system call failed.
    Io(IoError),
}

crate::error::file_object_error!(Error);

crate::error::kind_by_name! {
    Error {
        InvalidArgument, OutOfBounds, AlreadyExists, NotFound, PermissionDenied, Corrupt,
        VersionMismatch, NoSpace, Torn, WouldBlock, Timeout, Interrupted, Unsupported, Stale,
        ReadOnly, WriterExists, Io,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::OutOfBounds { offset, len, size } => write!(
                f,
                "range of {len} bytes at offset {offset} reaches past the region's {size} bytes"
            ),
            Error::AlreadyExists(p) => write!(f, "{} already exists", p.display()),
            Error::NotFound(p) => write!(f, "no region at {}", p.display()),
            Error::PermissionDenied(p) => write!(f, "permission denied: {}", p.display()),
            Error::Corrupt(m) => write!(f, "corrupt region file: {m}"),
            Error::VersionMismatch { found, expected } => write!(
                f,
                "region file has layout version {found}, this shmio reads version {expected}"
            ),
            Error::NoSpace {
                path,
                needed,
                available,
            } => f.write_str(&shmfile::no_space_message(path, *needed, *available)),
            Error::Torn { offset, len } => write!(
                f,
                "torn data: a writer died mid-write in bytes {offset}..{} (rewrite them)",
                offset.saturating_add(*len)
            ),
            Error::WouldBlock => f.write_str("no change yet"),
            Error::Timeout => f.write_str("timed out"),
            Error::Interrupted => f.write_str("interrupted by a signal"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Stale {
                staleness,
                applied,
                seen,
            } => match staleness {
                Some(age) => write!(
                    f,
                    "stale replica: last in sync {} ms ago (primary version {applied} applied, \
                     {seen} seen)",
                    age.as_millis()
                ),
                None => write!(
                    f,
                    "stale replica: never in sync yet (primary version {applied} applied, \
                     {seen} seen)"
                ),
            },
            Error::ReadOnly(m) => write!(f, "read-only: {m}"),
            Error::WriterExists { pid } => {
                write!(f, "a live writer (pid {pid}) claimed the region already")
            }
            Error::Io(e) => e.fmt(f),
        }
    }
}

/// A region result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
