//! The queue module's error type: its variants, their [`ErrorKind`], and how they read.

use std::fmt;
use std::path::PathBuf;

use crate::error::IoError;
use crate::shm::file as shmfile;

/// Errors of the queue module.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An argument was out of range or malformed.
    InvalidArgument(String),
    /// `create` found a file at that path already.
    AlreadyExists(PathBuf),
    /// No queue at that path.
    NotFound(PathBuf),
    /// The file's permissions refuse us.
    PermissionDenied(PathBuf),
    /// The file is not a valid queue (bad magic, sizes, indices or length); from
    /// [`unlink`](super::unlink), the file at the path is not a queue file (it was left alone).
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
    /// creation, so a queue that was created never runs out of space later (no SIGBUS).
    NoSpace {
        /// The file that was to be created.
        path: PathBuf,
        /// Bytes the file needs.
        needed: u64,
        /// Bytes the file system has free for unprivileged users.
        available: u64,
    },
    /// Nothing to read (consumer) or no space (back-pressure producer) right now.
    WouldBlock,
    /// The wait's timeout expired.
    Timeout,
    /// A signal interrupted a blocking wait (as `EINTR` does for read(2)).
    Interrupted,
    /// The producer died; every record it committed has been delivered.
    ProducerDead,
    /// The producer closed the queue; every record it committed has been delivered.
    Closed,
    /// A live producer (in process `pid`) already holds the queue.
    ProducerExists {
        /// The live producer's process.
        pid: u32,
    },
    /// All consumer slots are taken by live consumers.
    TooManyConsumers {
        /// The queue's consumer slots.
        max: u32,
    },
    /// A record larger than the slot size.
    TooLarge {
        /// The record's length.
        len: usize,
        /// The slot size.
        max: usize,
    },
    /// The caller's buffer cannot hold the next record (it is not consumed).
    BufferTooSmall {
        /// The next record's length.
        needed: usize,
    },
    /// In overwrite mode, the record read in place was overwritten while it was read; it counts
    /// as lost.
    Overrun,
    /// The kernel lacks something needed.
    Unsupported(String),
    /// The handle's [`Canceller`](super::Canceller) was used (another thread is closing it):
    /// the wait ended and every later wait on the handle ends the same way.
    Cancelled,
    /// The handle was opened by a parent of this process: handles do not survive `fork()`.
    /// Open a new one in the child (dropping the inherited one is harmless).
    Forked,
    /// A system call failed.
    Io(IoError),
}

crate::error::file_object_error!(Error);

crate::error::kind_by_name! {
    Error {
        InvalidArgument, AlreadyExists, NotFound, PermissionDenied, Corrupt, VersionMismatch,
        NoSpace, WouldBlock, Timeout, Interrupted, ProducerDead, Closed, ProducerExists,
        TooManyConsumers, TooLarge, BufferTooSmall, Overrun, Unsupported, Cancelled, Forked, Io,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::AlreadyExists(p) => write!(f, "{} already exists", p.display()),
            Error::NotFound(p) => write!(f, "no queue at {}", p.display()),
            Error::PermissionDenied(p) => write!(f, "permission denied: {}", p.display()),
            Error::Corrupt(m) => write!(f, "corrupt queue file: {m}"),
            Error::VersionMismatch { found, expected } => write!(
                f,
                "queue file has layout version {found}, this shmio reads version {expected}"
            ),
            Error::NoSpace {
                path,
                needed,
                available,
            } => f.write_str(&shmfile::no_space_message(path, *needed, *available)),
            Error::WouldBlock => f.write_str("operation would block"),
            Error::Timeout => f.write_str("timed out"),
            Error::Interrupted => f.write_str("interrupted by a signal"),
            Error::ProducerDead => {
                f.write_str("the producer died (every committed record was delivered)")
            }
            Error::Closed => {
                f.write_str("the producer closed the queue (every record was delivered)")
            }
            Error::ProducerExists { pid } => {
                write!(f, "a live producer (pid {pid}) already holds the queue")
            }
            Error::TooManyConsumers { max } => {
                write!(f, "all {max} consumer slots are held by live consumers")
            }
            Error::TooLarge { len, max } => {
                write!(f, "record of {len} bytes exceeds the slot size of {max}")
            }
            Error::BufferTooSmall { needed } => {
                write!(f, "buffer too small: the next record has {needed} bytes")
            }
            Error::Overrun => f.write_str("record was overwritten while it was read"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Cancelled => f.write_str("the wait was cancelled: the handle is being closed"),
            Error::Forked => f.write_str(
                "this handle was opened by the parent process: handles do not survive fork(); \
                 open a new one in the child",
            ),
            Error::Io(e) => e.fmt(f),
        }
    }
}

/// A queue result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
