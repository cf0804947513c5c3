//! Errors: every core error type (queue, region, vm, poll, and the handle lock's refusals)
//! described for Python (`ErrDesc`: an exception class of `shmio._errors`, its message and
//! attributes) in one place, and raised as an instance of that class (`to_py`).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use shmio::queue::Error;
use shmio::{poll, region, vm};

use crate::glue::LockError;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// A core error (of any module) described for Python: the exception class of `shmio._errors`,
/// its message, `(errno, filename)` for system-call errors and extra attributes.
pub(crate) struct ErrDesc {
    class: &'static str,
    msg: String,
    io: Option<(i32, Option<String>)>,
    filename: Option<String>,
    attrs: Vec<(&'static str, i64)>,
}

impl ErrDesc {
    fn new(class: &'static str, msg: String) -> ErrDesc {
        ErrDesc {
            class,
            msg,
            io: None,
            filename: None,
            attrs: Vec::new(),
        }
    }

    fn io(msg: String, source: &std::io::Error, path: Option<&std::path::Path>) -> ErrDesc {
        let mut d = ErrDesc::new("SyscallError", msg);
        d.io = Some((
            source.raw_os_error().unwrap_or(0),
            path.map(|p| p.display().to_string()),
        ));
        d
    }

    fn file(mut self, p: &std::path::Path) -> ErrDesc {
        self.filename = Some(p.display().to_string());
        self
    }

    fn attr(mut self, name: &'static str, v: impl TryInto<i64>) -> ErrDesc {
        self.attrs.push((name, v.try_into().unwrap_or(i64::MAX)));
        self
    }
}

impl From<Error> for ErrDesc {
    fn from(e: Error) -> ErrDesc {
        let msg = e.to_string();
        let d = |c| ErrDesc::new(c, msg.clone());
        match &e {
            Error::InvalidArgument(_) => d("InvalidArgument"),
            Error::AlreadyExists(p) => d("AlreadyExists").file(p),
            Error::NotFound(p) => d("NotFound").file(p),
            Error::PermissionDenied(p) => d("PermissionDenied").file(p),
            Error::Corrupt(_) => d("Corrupt"),
            Error::VersionMismatch { found, expected } => d("VersionMismatch")
                .attr("found", *found)
                .attr("expected", *expected),
            Error::NoSpace {
                path,
                needed,
                available,
            } => no_space(msg.clone(), path, *needed, *available),
            Error::WouldBlock => d("WouldBlock"),
            Error::Timeout => d("Timeout"),
            Error::Interrupted => d("Interrupted"),
            Error::ProducerDead => d("ProducerDead"),
            Error::Closed => d("Closed"),
            Error::ProducerExists { pid } => d("ProducerExists").attr("pid", *pid),
            Error::TooManyConsumers { max } => d("TooManyConsumers").attr("max", *max),
            Error::TooLarge { len, max } => d("TooLarge").attr("len", *len).attr("max", *max),
            Error::BufferTooSmall { needed } => d("BufferTooSmall").attr("needed", *needed),
            Error::Overrun => d("Overrun"),
            Error::Unsupported(_) => d("Unsupported"),
            // Only a wait that `close()` (from another thread) interrupts sees this.
            Error::Cancelled => ErrDesc::new("Closed", CLOSED_DURING_CALL.to_string()),
            Error::Forked => ErrDesc::new("InvalidArgument", FORKED.to_string()),
            Error::Io { source, path, .. } => ErrDesc::io(msg.clone(), source, path.as_deref()),
            _ => d("ShmioError"),
        }
    }
}

/// `NoSpace` (queue or region create): an `OSError(ENOSPC, message, path)` (built like
/// `SyscallError`, so that `str()` keeps the message), with the bytes `needed` and `available`.
fn no_space(msg: String, path: &std::path::Path, needed: u64, available: u64) -> ErrDesc {
    let mut d = ErrDesc::new("NoSpace", msg);
    d.io = Some((libc::ENOSPC, Some(path.display().to_string())));
    d.attr("needed", needed).attr("available", available)
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
        let msg = e.to_string();
        let d = |c| ErrDesc::new(c, msg.clone());
        match &e {
            E::InvalidArgument(_) => d("InvalidArgument"),
            E::OutOfBounds { offset, len, size } => d("OutOfBounds")
                .attr("offset", *offset)
                .attr("len", *len)
                .attr("size", *size),
            E::AlreadyExists(p) => d("AlreadyExists").file(p),
            E::NotFound(p) => d("NotFound").file(p),
            E::PermissionDenied(p) => d("PermissionDenied").file(p),
            E::Corrupt(_) => d("Corrupt"),
            E::VersionMismatch { found, expected } => d("VersionMismatch")
                .attr("found", *found)
                .attr("expected", *expected),
            E::NoSpace {
                path,
                needed,
                available,
            } => no_space(msg.clone(), path, *needed, *available),
            E::Torn { offset, len } => d("Torn").attr("offset", *offset).attr("len", *len),
            E::WouldBlock => d("WouldBlock"),
            E::Timeout => d("Timeout"),
            E::Interrupted => d("Interrupted"),
            E::Unsupported(_) => d("Unsupported"),
            E::Io { source, path, .. } => ErrDesc::io(msg.clone(), source, path.as_deref()),
            _ => d("ShmioError"),
        }
    }
}

impl From<vm::Error> for ErrDesc {
    fn from(e: vm::Error) -> ErrDesc {
        use vm::Error as E;
        let msg = e.to_string();
        let d = |c| ErrDesc::new(c, msg.clone());
        match &e {
            E::InvalidArgument(_) => d("InvalidArgument"),
            E::PermissionDenied(p) => d("PermissionDenied").file(p),
            E::Unsupported(_) => d("Unsupported"),
            E::Io { source, path, .. } => ErrDesc::io(msg.clone(), source, path.as_deref()),
            _ => d("ShmioError"),
        }
    }
}

impl From<poll::Error> for ErrDesc {
    fn from(e: poll::Error) -> ErrDesc {
        use poll::Error as E;
        let msg = e.to_string();
        let d = |c| ErrDesc::new(c, msg.clone());
        match &e {
            E::InvalidArgument(_) => d("InvalidArgument"),
            E::FdTooLarge { fd, limit } => d("FdTooLarge").attr("fd", *fd).attr("limit", *limit),
            E::AlreadyRegistered(fd) => d("AlreadyRegistered").attr("fd", *fd),
            E::NotRegistered(fd) => d("NotRegistered").attr("fd", *fd),
            E::WrongThread { owner, caller } => d("WrongThread")
                .attr("owner", *owner)
                .attr("caller", *caller),
            E::RtSigInUse => d("RtSigInUse"),
            E::FileInUse(fd) => d("FileInUse").attr("fd", *fd),
            E::WakerExists { token } => d("WakerExists").attr("token", *token),
            E::Forked => ErrDesc::new("InvalidArgument", POLLER_FORKED.to_string()),
            E::Interrupted => d("Interrupted"),
            E::Io { source, .. } => ErrDesc::io(msg.clone(), source, None),
            _ => d("ShmioError"),
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
    if let Some(f) = e.filename {
        exc.setattr("filename", f)?;
    }
    for (name, v) in e.attrs {
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
            LockError::Forked => ErrDesc::new("InvalidArgument", LOCK_FORKED.to_string()),
        }
    }
}

const REENTRANT: &str = "re-entrant call: this thread is already inside a call on this handle \
                         (this call came from a signal handler or a finalizer that ran during \
                         it); only non-blocking calls and close() may be made from there";

const LOCK_FORKED: &str = "this handle was in use by another thread when the process forked: \
                           it cannot be used in the child (open or create it again there)";

/// The message for a poller used in a forked child.
pub(crate) const POLLER_FORKED: &str = "this poller (or waker) was created by the parent process: pollers \
                             do not survive fork(); create one in the child";
