//! Errors: every core error type (queue, region, vm, poll, zc, and the handle lock's refusals)
//! described for Python (`ErrDesc`: an exception class of `shmio._errors`, its message and
//! attributes) in one place, and raised as an instance of that class (`to_py`).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use std::path::Path;
use std::time::Duration;

use shmio::queue::Error;
use shmio::{ErrorKind, IoError, poll, region, vm, zc};

use crate::glue::LockError;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// A core error (of any module) described for Python: the exception class of `shmio._errors`,
/// its message, `(errno, filename)` for system-call errors and extra attributes.
pub(crate) struct ErrDesc {
    class: &'static str,
    msg: String,
    io: Option<(i32, Option<String>)>,
    attrs: Vec<(&'static str, i64)>,
    /// Attributes in seconds (`None`: never).
    seconds: Vec<(&'static str, Option<f64>)>,
}

impl ErrDesc {
    fn new(class: &'static str, msg: String) -> ErrDesc {
        ErrDesc {
            class,
            msg,
            io: None,
            attrs: Vec::new(),
            seconds: Vec::new(),
        }
    }

    /// A core error of `kind` with message `msg`, naming the file `path` (if any) and carrying
    /// the failed system call `io` (if any). A system-call error and `NoSpace` are built as
    /// `OSError(errno, message[, path])` (so that `str()` keeps the message), and so are
    /// `NotFound`, `AlreadyExists` and `PermissionDenied` without one, with the errno of
    /// Python's own class of that kind.
    fn of(kind: ErrorKind, msg: String, path: Option<&Path>, io: Option<&IoError>) -> ErrDesc {
        let mut d = ErrDesc::new(class_of(kind), msg);
        let shown = |p: &Path| p.display().to_string();
        match (kind, io) {
            (_, Some(io)) => d.io = Some((io.raw_os_error().unwrap_or(0), path.map(shown))),
            (ErrorKind::NoSpace, None) => d.io = Some((libc::ENOSPC, path.map(shown))),
            // The errno Python's own classes of these kinds carry, so that the exception prints
            // `[Errno 2] <message>: '<path>'` and code testing `e.errno` works.
            (ErrorKind::NotFound, None) => d.io = Some((libc::ENOENT, path.map(shown))),
            (ErrorKind::AlreadyExists, None) => d.io = Some((libc::EEXIST, path.map(shown))),
            (ErrorKind::PermissionDenied, None) => d.io = Some((libc::EACCES, path.map(shown))),
            _ => {}
        }
        d
    }

    fn attr(mut self, name: &'static str, v: impl TryInto<i64>) -> ErrDesc {
        self.attrs.push((name, v.try_into().unwrap_or(i64::MAX)));
        self
    }

    fn secs(mut self, name: &'static str, d: Option<Duration>) -> ErrDesc {
        self.seconds.push((name, d.map(|d| d.as_secs_f64())));
        self
    }

    /// The same class, with another message.
    fn message(mut self, msg: &str) -> ErrDesc {
        self.msg = msg.to_string();
        self
    }
}

/// The table: the exception class of `shmio._errors` for each kind of core error. Where C is
/// finer (`Forked`, `Cancelled`), see `capi/src/status.rs`.
fn class_of(kind: ErrorKind) -> &'static str {
    use ErrorKind as K;
    match kind {
        K::InvalidArgument => "InvalidArgument",
        K::OutOfBounds => "OutOfBounds",
        K::FdTooLarge => "FdTooLarge",
        K::NotFound => "NotFound",
        K::AlreadyExists => "AlreadyExists",
        K::AlreadyRegistered => "AlreadyRegistered",
        K::NotRegistered => "NotRegistered",
        K::PermissionDenied => "PermissionDenied",
        K::Corrupt => "Corrupt",
        K::VersionMismatch => "VersionMismatch",
        K::NoSpace => "NoSpace",
        K::WouldBlock => "WouldBlock",
        K::Timeout => "Timeout",
        K::Interrupted => "Interrupted",
        K::ProducerDead => "ProducerDead",
        K::Closed => "Closed",
        K::ProducerExists => "ProducerExists",
        K::TooManyConsumers => "TooManyConsumers",
        K::TooLarge => "TooLarge",
        K::BufferTooSmall => "BufferTooSmall",
        K::Overrun => "Overrun",
        K::Torn => "Torn",
        K::Stale => "Stale",
        K::ReadOnly => "ReadOnly",
        K::WriterExists => "WriterExists",
        K::Unsupported => "Unsupported",
        // Only a wait that `close()` (from another thread) interrupts sees this.
        K::Cancelled => "Closed",
        K::Forked => "InvalidArgument",
        K::WrongThread => "WrongThread",
        K::RtSigInUse => "RtSigInUse",
        K::FileInUse => "FileInUse",
        K::WakerExists => "WakerExists",
        K::Io => "SyscallError",
        // vm's `Parse`, and any kind added later.
        _ => "ShmioError",
    }
}

// Per error type: the table's description, plus the variant's numbers as attributes and
// Python's own wording where it has one.

impl From<Error> for ErrDesc {
    fn from(e: Error) -> ErrDesc {
        let d = ErrDesc::of(e.kind(), e.to_string(), e.path(), e.io_error());
        match e {
            Error::VersionMismatch { found, expected } => {
                d.attr("found", found).attr("expected", expected)
            }
            Error::NoSpace {
                needed, available, ..
            } => d.attr("needed", needed).attr("available", available),
            Error::ProducerExists { pid } => d.attr("pid", pid),
            Error::TooManyConsumers { max } => d.attr("max", max),
            Error::TooLarge { len, max } => d.attr("len", len).attr("max", max),
            Error::BufferTooSmall { needed } => d.attr("needed", needed),
            Error::Cancelled => d.message(CLOSED_DURING_CALL),
            Error::Forked => d.message(FORKED),
            _ => d,
        }
    }
}

/// The message of the `Closed` a call raises when its handle was closed while it waited.
const CLOSED_DURING_CALL: &str =
    "the handle was closed by another thread (or a signal handler) during this call";

/// The message for a queue handle used in a forked child (the Python wording of the fix).
const FORKED: &str = "this handle was opened by the parent process: handles do not survive \
                      fork(); open the queue again in the child (or use the 'spawn' start method)";

impl From<region::Error> for ErrDesc {
    fn from(e: region::Error) -> ErrDesc {
        use region::Error as E;
        let d = ErrDesc::of(e.kind(), e.to_string(), e.path(), e.io_error());
        match e {
            E::OutOfBounds { offset, len, size } => {
                d.attr("offset", offset).attr("len", len).attr("size", size)
            }
            E::VersionMismatch { found, expected } => {
                d.attr("found", found).attr("expected", expected)
            }
            E::NoSpace {
                needed, available, ..
            } => d.attr("needed", needed).attr("available", available),
            E::Torn { offset, len } => d.attr("offset", offset).attr("len", len),
            E::Stale {
                staleness,
                applied,
                seen,
            } => d
                .attr("applied", applied)
                .attr("seen", seen)
                .secs("staleness", staleness),
            E::WriterExists { pid } => d.attr("pid", pid),
            _ => d,
        }
    }
}

/// A fresh read's `Stale` (or any other error of it): the message and the attribute
/// `max_staleness` also give the bound (`max`, in seconds, as the caller gave it), and the
/// message whether the replica is catching up.
pub(crate) fn stale(py: Python<'_>, e: region::Error, max: f64, catching_up: bool) -> PyErr {
    if e.kind() != ErrorKind::Stale {
        return to_py(py, e);
    }
    let why = if catching_up {
        ", and it is catching up (fetching a snapshot)"
    } else {
        ""
    };
    let d = ErrDesc::from(e);
    let msg = format!("{}; allowed: {max} s{why}", d.msg);
    let mut d = d.message(&msg);
    d.seconds.push(("max_staleness", Some(max)));
    to_py(py, d)
}

impl From<vm::Error> for ErrDesc {
    fn from(e: vm::Error) -> ErrDesc {
        ErrDesc::of(e.kind(), e.to_string(), e.path(), e.io_error())
    }
}

impl From<zc::Error> for ErrDesc {
    fn from(e: zc::Error) -> ErrDesc {
        let d = ErrDesc::of(e.kind(), e.to_string(), e.path(), e.io_error());
        match e {
            zc::Error::OutOfBounds { offset, len, size } => {
                d.attr("offset", offset).attr("len", len).attr("size", size)
            }
            zc::Error::Truncated { offset, remaining } => {
                d.attr("offset", offset).attr("remaining", remaining)
            }
            _ => d,
        }
    }
}

impl From<poll::Error> for ErrDesc {
    fn from(e: poll::Error) -> ErrDesc {
        use poll::Error as E;
        let d = ErrDesc::of(e.kind(), e.to_string(), None, e.io_error());
        match e {
            E::FdTooLarge { fd, limit } => d.attr("fd", fd).attr("limit", limit),
            E::AlreadyRegistered(fd) | E::NotRegistered(fd) | E::FileInUse(fd) => d.attr("fd", fd),
            E::WrongThread { owner, caller } => d.attr("owner", owner).attr("caller", caller),
            E::WakerExists { token } => d.attr("token", token),
            E::Forked => d.message(POLLER_FORKED),
            _ => d,
        }
    }
}

/// Converts a core error into an instance of the matching `shmio` exception class.
pub(crate) fn to_py(py: Python<'_>, e: impl Into<ErrDesc>) -> PyErr {
    match build_error(py, e.into()) {
        Ok(err) | Err(err) => err,
    }
}

fn build_error(py: Python<'_>, e: ErrDesc) -> PyResult<PyErr> {
    let module = ERRORS
        .get_or_try_init(py, || py.import("shmio._errors").map(Bound::unbind))?
        .bind(py);
    let cls = module.getattr(e.class)?;
    let exc = match e.io {
        Some((errno, Some(p))) => cls.call1((errno, e.msg, p))?,
        Some((errno, None)) => cls.call1((errno, e.msg))?,
        None => cls.call1((e.msg,))?,
    };
    for (name, v) in e.attrs {
        exc.setattr(name, v)?;
    }
    for (name, v) in e.seconds {
        exc.setattr(name, v)?;
    }
    Ok(PyErr::from_value(exc))
}

pub(crate) fn invalid(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    to_py(py, Error::InvalidArgument(msg.into()))
}

pub(crate) fn closed_handle(py: Python<'_>, what: &str) -> PyErr {
    invalid(py, format!("I/O operation on a closed {what}"))
}

impl From<LockError> for ErrDesc {
    fn from(e: LockError) -> ErrDesc {
        match e {
            LockError::Reentrant => ErrDesc::new("ReentrantCall", REENTRANT.to_string()),
            LockError::Forked => ErrDesc::new(class_of(ErrorKind::Forked), LOCK_FORKED.to_string()),
        }
    }
}

const REENTRANT: &str = "re-entrant call: this thread is already inside a call on this handle \
                         (this call came from a signal handler or a finalizer that ran during \
                         it); only non-blocking calls and close() may be made from there";

const LOCK_FORKED: &str = "this handle was in use by another thread when the process forked: \
                           it cannot be used in the child (open or create it again there)";

/// The message for a poller used in a forked child.
const POLLER_FORKED: &str = "this poller (or waker) was created by the parent process: pollers \
                             do not survive fork(); create one in the child";
