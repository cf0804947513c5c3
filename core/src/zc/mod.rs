//! Zero-copy sending: a file, a mapping or a shared cache to a socket without a copy through a
//! user-space buffer (the zero-copy note).
//!
//! - [`sendfile`] / [`SendFile`]: a file's range to a socket (`sendfile(2)`); falls back to
//!   `pread` + `send` where `sendfile` is refused.
//! - [`Splicer`]: bytes in memory (a region, any mapping) to a socket through a pipe it owns
//!   and reuses, with `vmsplice(2)` + `splice(2)`; falls back to `send`.
//! - [`ZeroCopy`]: `send(MSG_ZEROCOPY)` with its completions reaped from the socket's error
//!   queue, so the caller knows when a buffer may be rewritten; falls back to a plain `send`.
//! - [`Cache`]: a named region holding files loaded once, opened by every serving process;
//!   its entries go out with the splicer or `MSG_ZEROCOPY`.
//!
//! Every result says which path was taken ([`Method`]).
//!
//! # Event loops: partial sends
//! Every call works on blocking and non-blocking sockets alike. On a blocking socket it returns
//! once everything is sent. On a non-blocking socket it returns when the socket is full
//! (`EAGAIN`) with what it sent so far ([`Progress`], [`Sent`]); the caller waits for the socket
//! to be writable (`EPOLLOUT`) and calls again with the rest. [`SendFile`] keeps that state for
//! a file; a [`Splicer`] for the bytes it has in its pipe.
//!
//! # Signals
//! `sendfile` and `splice` to a socket whose peer has gone raise `SIGPIPE` (they take no
//! `MSG_NOSIGNAL`). Every call here blocks `SIGPIPE` in the calling thread for its duration and
//! takes back the `SIGPIPE` it caused, so a vanished peer is an [`Error::Io`] with `EPIPE` (or
//! `ECONNRESET`) ([`Error::is_disconnect`]), never a killed process. `send` uses `MSG_NOSIGNAL`.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::os::unix::net::UnixStream;
//! use shmio::zc::Splicer;
//!
//! let (a, mut b) = UnixStream::pair()?;
//! let mut sp = Splicer::new()?;
//! let p = sp.send(&a, b"hello")?;
//! assert!(p.is_done());
//! let mut got = [0u8; 5];
//! b.read_exact(&mut got)?;
//! assert_eq!(&got, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cache;
mod sendfile;
mod splice;
mod zerocopy;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;

pub use cache::{Cache, Entry, MAX_KEY};
pub use sendfile::{SendFile, sendfile};
pub use splice::{DEFAULT_PIPE_SIZE, Splicer};
pub use zerocopy::{Reaped, Sent, ZeroCopy};

use crate::error::{ErrorKind, IoError};
use crate::region;

/// The path a send took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `sendfile(2)`: the file's pages went to the socket inside the kernel.
    SendFile,
    /// `vmsplice(2)` + `splice(2)`: the memory's pages went through a pipe to the socket.
    Splice,
    /// `send(MSG_ZEROCOPY)`: the socket took references to the pages.
    ZeroCopy,
    /// The fallback: a copy through `pread`/`send` or a plain `send`.
    Copy,
}

impl Method {
    /// Its name: `"sendfile"`, `"splice"`, `"zerocopy"` or `"copy"`.
    pub fn name(self) -> &'static str {
        match self {
            Method::SendFile => "sendfile",
            Method::Splice => "splice",
            Method::ZeroCopy => "zerocopy",
            Method::Copy => "copy",
        }
    }

    /// Its number in the C API (`SHMIO_ZC_METHOD_*`) and Python: 0 sendfile, 1 splice,
    /// 2 zerocopy, 3 copy.
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// What a send call did: bytes it sent now, bytes still to send, and the path it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes this call handed to the socket.
    pub sent: u64,
    /// Bytes still to send (non-zero only on a non-blocking socket that filled up: call again
    /// when it is writable).
    pub remaining: u64,
    /// The path taken.
    pub method: Method,
}

impl Progress {
    /// Whether everything is sent.
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }
}

/// Errors of the zero-copy module.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An argument was out of range or malformed.
    InvalidArgument(String),
    /// `offset + len` reaches past the end of the file (or cache entry) at the start.
    OutOfBounds {
        /// The range's start.
        offset: u64,
        /// The range's length.
        len: u64,
        /// The file's (or entry's) size.
        size: u64,
    },
    /// The file shrank during the send: it ended at `offset` with `remaining` bytes of the
    /// range unsent (kind [`ErrorKind::OutOfBounds`]). What was sent before stays sent.
    Truncated {
        /// Where the file ended.
        offset: u64,
        /// Bytes of the range that were not sent.
        remaining: u64,
    },
    /// The cache has no free entry, or no room for the data (kind [`ErrorKind::NoSpace`]).
    CacheFull(String),
    /// A cache entry of that key exists already (kind [`ErrorKind::AlreadyExists`]).
    Exists(String),
    /// The cache region's table is not valid (kind [`ErrorKind::Corrupt`]).
    Corrupt(String),
    /// The cache's region refused (its kind is the region error's).
    Region(region::Error),
    /// A system call failed; `EPIPE` and `ECONNRESET` mean the peer went away
    /// ([`Error::is_disconnect`]).
    Io(IoError),
}

/// The zero-copy module's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The class of the error ([`ErrorKind`]), named alike in every module.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::OutOfBounds { .. } | Error::Truncated { .. } => ErrorKind::OutOfBounds,
            Error::CacheFull(_) => ErrorKind::NoSpace,
            Error::Exists(_) => ErrorKind::AlreadyExists,
            Error::Corrupt(_) => ErrorKind::Corrupt,
            Error::Region(e) => e.kind(),
            Error::Io(_) => ErrorKind::Io,
        }
    }

    /// The failed system call of an `Io` error (or of the region's).
    pub fn io_error(&self) -> Option<&IoError> {
        match self {
            Error::Io(e) => Some(e),
            Error::Region(e) => e.io_error(),
            _ => None,
        }
    }

    /// The file the error names (a cache region's), if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Region(e) => e.path(),
            Error::Io(e) => e.path.as_deref(),
            _ => None,
        }
    }

    /// Whether the peer went away: an `Io` error with `EPIPE` or `ECONNRESET`.
    pub fn is_disconnect(&self) -> bool {
        matches!(
            self.io_error().and_then(IoError::raw_os_error),
            Some(libc::EPIPE | libc::ECONNRESET)
        )
    }

    pub(crate) fn io(op: &'static str, source: io::Error) -> Error {
        Error::Io(IoError::new(op, source))
    }
}

impl From<region::Error> for Error {
    fn from(e: region::Error) -> Error {
        Error::Region(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) | Error::Corrupt(m) | Error::CacheFull(m) => f.write_str(m),
            Error::Exists(k) => write!(f, "the cache has an entry {k:?} already"),
            Error::OutOfBounds { offset, len, size } => write!(
                f,
                "range {offset}+{len} reaches past the end of the data ({size} bytes)"
            ),
            Error::Truncated { offset, remaining } => write!(
                f,
                "the file shrank during the send: it ends at byte {offset}, {remaining} bytes \
                 of the range were not sent"
            ),
            Error::Region(e) => write!(f, "cache region: {e}"),
            Error::Io(e) => {
                if self.is_disconnect() {
                    write!(f, "{e} (the peer closed the connection)")
                } else {
                    e.fmt(f)
                }
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Region(e) => Some(e),
            Error::Io(e) => Some(&e.source),
            _ => None,
        }
    }
}

/// Whether `e` says the kernel refuses the zero-copy call for this pair of descriptors (the
/// file system, the socket type or the kernel lacks it), so that the copy fallback applies.
pub(crate) fn refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::ENOPROTOOPT)
    )
}

/// Whether `e` is `EAGAIN` (a full non-blocking socket).
pub(crate) fn would_block(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EAGAIN)
}

/// Whether `e` is `EINTR` (retried).
pub(crate) fn interrupted(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINTR)
}
