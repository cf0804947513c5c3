//! The error vocabulary every module shares.
//!
//! Each module keeps its own error type ([`queue::Error`](crate::queue::Error),
//! [`region::Error`](crate::region::Error), [`vm::Error`](crate::vm::Error),
//! [`poll::Error`](crate::poll::Error), [`tqueue::Error`](crate::tqueue::Error)), whose variants
//! carry what that module knows. What they share is here:
//!
//! - [`IoError`]: a system call that failed: the call, the file or descriptor it was made on,
//!   and the OS error. Every module's `Io` variant holds one.
//! - [`ErrorKind`]: the class of an error, named alike in every module: each error type's
//!   `kind()` reports it. The C API maps kinds to its status codes and the Python extension to
//!   its exception classes, each in one table.
//!
//! ```no_run
//! use shmio::ErrorKind;
//! use shmio::queue::{Consumer, Start};
//!
//! match Consumer::open("orders", Start::Newest) {
//!     Err(e) if e.kind() == ErrorKind::NotFound => println!("no queue yet"),
//!     Err(e) => eprintln!("{e}"),
//!     Ok(_) => {}
//! }
//! ```

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

/// A system call that failed: what every module's `Io` error variant holds.
///
/// Displayed as `op path: error` (or `op (fd N): error`, or `op: error`); its
/// [`source`](std::error::Error::source) is the OS error, as is the source of the module error
/// that holds it.
#[derive(Debug)]
#[non_exhaustive]
pub struct IoError {
    /// The call ("open", "mmap", "epoll_ctl", ...).
    pub op: &'static str,
    /// The file it was made on, if it names one.
    pub path: Option<PathBuf>,
    /// The descriptor it was made on, if the error names one (the poller's errors).
    pub fd: Option<RawFd>,
    /// The OS error.
    pub source: io::Error,
}

impl IoError {
    /// `op` failed with `source`, on no particular file.
    pub fn new(op: &'static str, source: io::Error) -> IoError {
        IoError {
            op,
            path: None,
            fd: None,
            source,
        }
    }

    /// The same error, made on the file at `path` (if given).
    pub fn at(mut self, path: Option<&Path>) -> IoError {
        self.path = path.map(Path::to_path_buf);
        self
    }

    /// The same error, made on descriptor `fd` (if given).
    pub fn on_fd(mut self, fd: Option<RawFd>) -> IoError {
        self.fd = fd;
        self
    }

    /// The OS error number (`errno`), if the error came from the OS.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let IoError {
            op,
            path,
            fd,
            source,
        } = self;
        match (path, fd) {
            (Some(p), _) => write!(f, "{op} {}: {source}", p.display()),
            (None, Some(fd)) => write!(f, "{op} (fd {fd}): {source}"),
            (None, None) => write!(f, "{op}: {source}"),
        }
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The class of an error, the same in every module: what `kind()` on each module's error
/// reports. One kind per variant name that the modules' errors use; a variant of the same name
/// in two modules has the same kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An argument was out of range or malformed.
    InvalidArgument,
    /// Region: a range reaches past the end of the region.
    OutOfBounds,
    /// Poller (`select`): an fd at or above `FD_SETSIZE`.
    FdTooLarge,
    /// No queue or region at that path.
    NotFound,
    /// A file exists at that path already.
    AlreadyExists,
    /// Poller: the fd is registered already.
    AlreadyRegistered,
    /// Poller: the fd is not registered.
    NotRegistered,
    /// The file's permissions (or the caller's privileges) refuse the call.
    PermissionDenied,
    /// The file is not a valid queue or region (or not the kind of shmio file named).
    Corrupt,
    /// The file was made by an incompatible layout version.
    VersionMismatch,
    /// The file system cannot hold the file to create.
    NoSpace,
    /// Nothing to do right now, and the call was not to wait.
    WouldBlock,
    /// The wait's timeout expired.
    Timeout,
    /// A signal interrupted a blocking call.
    Interrupted,
    /// Queue: the producer died (every record it committed was delivered).
    ProducerDead,
    /// Closed: the producer closed the queue, or the hand-off queue is closed.
    Closed,
    /// Queue: a live producer holds the queue already.
    ProducerExists,
    /// Queue: every consumer slot is held by a live consumer.
    TooManyConsumers,
    /// Queue: a record larger than the slot size.
    TooLarge,
    /// Queue: the caller's buffer cannot hold the next record.
    BufferTooSmall,
    /// Queue (overwrite mode): the record read in place was overwritten meanwhile.
    Overrun,
    /// Region: the range read overlaps data whose writer died mid-write.
    Torn,
    /// The kernel lacks something needed.
    Unsupported,
    /// Queue: the handle's wait was cancelled (it is being closed).
    Cancelled,
    /// The handle (queue handle, poller, waker) was made by a parent of this process and does
    /// not survive `fork()` (see [`fork`](crate::fork)).
    Forked,
    /// Poller: a call from a thread that may not make it (an RT-signal poller waited on from
    /// another thread than its creator).
    WrongThread,
    /// Poller: the calling thread has an RT-signal poller already.
    RtSigInUse,
    /// Poller (RT-signal backends): the fd's open file belongs to another RT-signal poller.
    FileInUse,
    /// Poller: the poller has a waker with another token already.
    WakerExists,
    /// vm: a `/proc` file did not have the expected form.
    Parse,
    /// Region: a replica last in sync with its primary longer ago than the reader allows.
    Stale,
    /// Region: a local write to a replica (only its bridge writes it).
    ReadOnly,
    /// Region: a live writer claimed the region already.
    WriterExists,
    /// A system call failed ([`IoError`]).
    Io,
}

/// `io_error()` and `std::error::Error` (whose source is the failed call's OS error) for a
/// module's error enum, which has an `Io(IoError)` variant.
macro_rules! io_variant {
    ($E:ty) => {
        impl $E {
            /// The failed system call of an `Io` error.
            pub fn io_error(&self) -> Option<&$crate::error::IoError> {
                match self {
                    Self::Io(e) => Some(e),
                    _ => None,
                }
            }
        }

        impl std::error::Error for $E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.io_error().map(|e| &e.source as _)
            }
        }
    };
}

/// What the errors of the objects that live in a file (the queue, the region) share, for an
/// enum with the variants of [`FileError`](crate::shm::file::FileError) and `VersionMismatch`:
/// `io()` (a failed call, classified as `FileError::io` does), `path()`, the conversions from
/// the file helpers' and the header check's errors, and what [`io_variant`] gives.
macro_rules! file_object_error {
    ($E:ty) => {
        $crate::error::io_variant!($E);

        impl $E {
            /// `op` failed with `source` on `path`: [`NotFound`](Self::NotFound) or
            /// [`PermissionDenied`](Self::PermissionDenied) where that is what it means, else
            /// [`Io`](Self::Io).
            pub(crate) fn io(
                op: &'static str,
                path: Option<&std::path::Path>,
                source: std::io::Error,
            ) -> $E {
                $crate::shm::file::FileError::io(op, path, source).into()
            }

            /// The file the error names, if any.
            pub fn path(&self) -> Option<&std::path::Path> {
                match self {
                    Self::AlreadyExists(p)
                    | Self::NotFound(p)
                    | Self::PermissionDenied(p)
                    | Self::NoSpace { path: p, .. } => Some(p),
                    Self::Io(e) => e.path.as_deref(),
                    _ => None,
                }
            }
        }

        impl From<$crate::shm::file::FileError> for $E {
            fn from(e: $crate::shm::file::FileError) -> $E {
                use $crate::shm::file::FileError as F;
                match e {
                    F::InvalidArgument(m) => Self::InvalidArgument(m),
                    F::AlreadyExists(p) => Self::AlreadyExists(p),
                    F::NotFound(p) => Self::NotFound(p),
                    F::PermissionDenied(p) => Self::PermissionDenied(p),
                    F::Corrupt(m) => Self::Corrupt(m),
                    F::NoSpace {
                        path,
                        needed,
                        available,
                    } => Self::NoSpace {
                        path,
                        needed,
                        available,
                    },
                    F::Io(e) => Self::Io(e),
                }
            }
        }

        impl From<$crate::shm::header::PrefixError> for $E {
            fn from(e: $crate::shm::header::PrefixError) -> $E {
                use $crate::shm::header::PrefixError as P;
                match e {
                    P::Corrupt(m) => Self::Corrupt(m),
                    P::Version { found, expected } => Self::VersionMismatch { found, expected },
                }
            }
        }
    };
}

/// `kind()` for a module's error enum whose every variant has the [`ErrorKind`] of the same
/// name (the rule the kinds follow): the list names every variant once, and the match it makes
/// is checked for exhaustiveness as any match is, so a new variant must be listed.
macro_rules! kind_by_name {
    ($E:ident { $($variant:ident),+ $(,)? }) => {
        impl $E {
            /// The class of the error ([`ErrorKind`](crate::ErrorKind)), named alike in every
            /// module.
            pub fn kind(&self) -> $crate::error::ErrorKind {
                match self {
                    $($E::$variant { .. } => $crate::error::ErrorKind::$variant,)+
                }
            }
        }
    };
}

pub(crate) use {file_object_error, io_variant, kind_by_name};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::file::FileError;

    #[test]
    fn an_io_error_names_its_call_and_file_or_fd() {
        let e = || io::Error::from_raw_os_error(libc::EIO);
        let eio = e().to_string();
        let at = IoError::new("open", e()).at(Some(Path::new("/dev/shm/q")));
        assert_eq!(at.to_string(), format!("open /dev/shm/q: {eio}"));
        let fd = IoError::new("epoll_ctl", e()).on_fd(Some(7));
        assert_eq!(fd.to_string(), format!("epoll_ctl (fd 7): {eio}"));
        assert_eq!(
            IoError::new("poll", e()).to_string(),
            format!("poll: {eio}")
        );
        assert_eq!(at.raw_os_error(), Some(libc::EIO));
        let src = std::error::Error::source(&at).map(ToString::to_string);
        assert_eq!(src, Some(eio));
    }

    #[test]
    fn file_object_errors_classify_a_failed_call_alike() {
        use crate::{queue, region};
        let p = Path::new("/x");
        let enoent = || io::Error::from_raw_os_error(libc::ENOENT);
        let eacces = || io::Error::from_raw_os_error(libc::EACCES);
        // A missing file is NotFound where the call looked it up by name, else an Io error.
        assert!(matches!(
            FileError::io("open", Some(p), enoent()),
            FileError::NotFound(_)
        ));
        assert!(matches!(
            FileError::io("unlink", Some(p), enoent()),
            FileError::NotFound(_)
        ));
        assert!(matches!(
            FileError::io("fstat", Some(p), enoent()),
            FileError::Io(_)
        ));
        assert!(matches!(
            FileError::io("open", None, enoent()),
            FileError::Io(_)
        ));
        // A refusal is PermissionDenied on any named file.
        assert!(matches!(
            FileError::io("msync", Some(p), eacces()),
            FileError::PermissionDenied(_)
        ));
        let q = queue::Error::io("open", Some(p), enoent());
        let r = region::Error::io("open", Some(p), enoent());
        assert_eq!(
            (q.kind(), r.kind()),
            (ErrorKind::NotFound, ErrorKind::NotFound)
        );
        assert_eq!((q.path(), r.path()), (Some(p), Some(p)));
        let q = queue::Error::io("mmap", None, eacces());
        assert_eq!(q.kind(), ErrorKind::Io);
        assert_eq!(q.io_error().map(|e| e.op), Some("mmap"));
        assert!(std::error::Error::source(&q).is_some());
    }
}
