//! The poller's [`Error`] and [`Result`], on the crate's shared vocabulary
//! ([`crate::error`]).

use std::fmt;
use std::io;
use std::os::fd::RawFd;

use crate::error::{ErrorKind, IoError};

/// A poller error.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An argument was out of range (e.g. a negative fd).
    InvalidArgument(String),
    /// `select` cannot watch an fd at or above `FD_SETSIZE`.
    FdTooLarge {
        /// The fd.
        fd: RawFd,
        /// `FD_SETSIZE`.
        limit: RawFd,
    },
    /// The fd is registered already.
    AlreadyRegistered(RawFd),
    /// The fd is not registered.
    NotRegistered(RawFd),
    /// An RT-signal poller was waited on from a thread other than its creator.
    WrongThread {
        /// The thread that created the poller (its signals go there).
        owner: u32,
        /// The calling thread.
        caller: u32,
    },
    /// The calling thread has an RT-signal poller already (they would share the signal).
    RtSigInUse,
    /// RT-signal backends: the fd's open file is signal-driven already (`O_ASYNC` on, or its
    /// `F_SETSIG` signal is the RT-signal pollers'), so another RT-signal poller has it: one in
    /// another thread or process, or this one through another fd (a `dup`). Registering it
    /// would silently take all of its signals from that poller, so it is refused.
    FileInUse(RawFd),
    /// The poller has a waker already, with another token (a poller has one waker: clone it,
    /// or ask for it again with the same token).
    WakerExists {
        /// The existing waker's token.
        token: u64,
    },
    /// The poller (or waker) was made by a parent of this process: it does not survive
    /// `fork()`. Make a new one in the child; dropping the inherited one is harmless (it
    /// leaves the files it shares with the parent as they are).
    Forked,
    /// A signal handler interrupted the wait (EINTR); call again.
    Interrupted,
    /// A system call failed (its [`IoError`] names the fd involved, if any).
    Io(IoError),
}

crate::error::io_variant!(Error);

impl Error {
    /// `op` failed with `source` (on `fd`): [`Error::Interrupted`] for `EINTR`, else
    /// [`Error::Io`].
    pub(crate) fn io(op: &'static str, fd: Option<RawFd>, source: io::Error) -> Error {
        if source.raw_os_error() == Some(libc::EINTR) {
            return Error::Interrupted;
        }
        Error::Io(IoError::new(op, source).on_fd(fd))
    }

    /// The class of the error ([`ErrorKind`]), named alike in every module.
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            Error::InvalidArgument(_) => K::InvalidArgument,
            Error::FdTooLarge { .. } => K::FdTooLarge,
            Error::AlreadyRegistered(_) => K::AlreadyRegistered,
            Error::NotRegistered(_) => K::NotRegistered,
            Error::WrongThread { .. } => K::WrongThread,
            Error::RtSigInUse => K::RtSigInUse,
            Error::FileInUse(_) => K::FileInUse,
            Error::WakerExists { .. } => K::WakerExists,
            Error::Forked => K::Forked,
            Error::Interrupted => K::Interrupted,
            Error::Io(_) => K::Io,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(s) => write!(f, "invalid argument: {s}"),
            Error::FdTooLarge { fd, limit } => write!(
                f,
                "fd {fd} is too large for select(): it only handles fds below FD_SETSIZE ({limit}); use the poll or epoll backend"
            ),
            Error::AlreadyRegistered(fd) => write!(f, "fd {fd} is already registered"),
            Error::NotRegistered(fd) => write!(f, "fd {fd} is not registered"),
            Error::WrongThread { owner, caller } => write!(
                f,
                "an RT-signal poller must be waited on from the thread that created it (tid {owner}), not tid {caller}"
            ),
            Error::RtSigInUse => f.write_str("this thread already has an RT-signal poller"),
            Error::FileInUse(fd) => write!(
                f,
                "fd {fd}: its open file is signal-driven already (O_ASYNC, or F_SETSIG to the RT-signal pollers' signal): another RT-signal poller has it (in another thread or process, or this poller through another fd of the same file); registering it would take its signals"
            ),
            Error::WakerExists { token } => write!(
                f,
                "this poller has a waker already (token {token}); a poller has one waker: clone it, or ask again with the same token"
            ),
            Error::Forked => f.write_str(
                "this poller was made by the parent process: pollers do not survive fork(); make a new one in the child",
            ),
            Error::Interrupted => f.write_str("interrupted by a signal"),
            Error::Io(e) => e.fmt(f),
        }
    }
}

/// Poller result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
