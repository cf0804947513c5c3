//! `shmio.zc`: zero-copy sending. `zc_sendfile` (here), the classes `Splicer` (`splicer`),
//! `ZeroCopy` (`zerocopy`) and `Cache` (`cache`). Sockets and files are passed as descriptor
//! numbers (the Python package takes objects with `fileno()` too); each is checked to be open
//! and borrowed for the call. Sends release the GIL.
//!
//! The `Splicer` and `ZeroCopy` objects serve one call at a time: a call while another is in
//! progress (another thread, a signal handler) raises `InvalidArgument` rather than waiting.

mod cache;
mod splicer;
mod zerocopy;

pub(crate) use cache::PyCache;
pub(crate) use splicer::PySplicer;
pub(crate) use zerocopy::PyZeroCopy;

use std::os::fd::{BorrowedFd, RawFd};
use std::sync::{Mutex, MutexGuard, TryLockError};

use pyo3::prelude::*;

use shmio::zc::{self, Progress};

use crate::errors::{closed_handle, invalid, to_py};

/// `(sent, remaining, method)`: what a send did.
pub(crate) type ProgressTuple = (u64, u64, &'static str);

pub(crate) fn progress_tuple(p: Progress) -> ProgressTuple {
    (p.sent, p.remaining, p.method.name())
}

/// A descriptor argument (an int, or an object with `fileno()`: a socket, a file), checked to
/// be open now.
pub(crate) fn fd_obj(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<RawFd> {
    let fd = match obj.extract::<RawFd>() {
        Ok(fd) => fd,
        Err(_) => obj.call_method0("fileno")?.extract::<RawFd>()?,
    };
    fd_arg(obj.py(), fd, what)
}

/// A descriptor number, checked to be open now.
pub(crate) fn fd_arg(py: Python<'_>, fd: RawFd, what: &str) -> PyResult<RawFd> {
    // SAFETY: F_GETFD takes no pointer; any number is a valid argument.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(invalid(
            py,
            format!("{what} = {fd} is not an open descriptor"),
        ));
    }
    Ok(fd)
}

/// The descriptor `fd` (checked open by `fd_arg`), borrowed for one call.
///
/// # Safety
/// The caller's Python code keeps `fd` open during the call (the documented contract of every
/// function here: closing a socket while a call on it runs is the caller's bug, as for
/// `os.write`).
pub(crate) unsafe fn borrow<'a>(fd: RawFd) -> BorrowedFd<'a> {
    // SAFETY: open (checked) and kept open during the call (contract).
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Takes a handle's state for one call: `InvalidArgument` if another call holds it, or if it
/// is closed (`None`).
pub(crate) fn take<'a, T>(
    py: Python<'_>,
    m: &'a Mutex<Option<T>>,
    what: &str,
) -> PyResult<MutexGuard<'a, Option<T>>> {
    let g = match m.try_lock() {
        Ok(g) => g,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => {
            return Err(invalid(
                py,
                format!("this {what} is in use by another call (one call at a time)"),
            ));
        }
    };
    if g.is_none() {
        return Err(closed_handle(py, what));
    }
    Ok(g)
}

/// Whether a handle's state is gone (closed).
pub(crate) fn is_closed<T>(m: &Mutex<Option<T>>) -> bool {
    m.lock().unwrap_or_else(|p| p.into_inner()).is_none()
}

/// Drops a handle's state (idempotent); waits for a call in progress to finish.
pub(crate) fn close_state<T>(m: &Mutex<Option<T>>) {
    m.lock().unwrap_or_else(|p| p.into_inner()).take();
}

/// `repr()` of a handle whose state is `m`, `state` describing an open one (a handle in use by
/// a call shows as closed rather than waiting).
pub(crate) fn state_repr<T>(
    class: &str,
    m: &Mutex<Option<T>>,
    state: impl FnOnce(&T) -> String,
) -> String {
    let g = m.try_lock().ok();
    crate::glue::handle_repr(class, g.as_ref().and_then(|g| g.as_ref()).map(state))
}

/// Sends `count` bytes of the file `file` from `offset` to `sock` with `sendfile(2)` (a copy
/// through `pread` + `send` where it is refused); returns `(sent, remaining, method)`.
#[pyfunction]
pub(crate) fn zc_sendfile(
    py: Python<'_>,
    sock: &Bound<'_, PyAny>,
    file: &Bound<'_, PyAny>,
    offset: u64,
    count: u64,
) -> PyResult<ProgressTuple> {
    let (sock, file) = (fd_obj(sock, "sock")?, fd_obj(file, "file")?);
    py.detach(|| {
        // SAFETY: open and kept open during the call (the contract).
        let (s, f) = unsafe { (borrow(sock), borrow(file)) };
        zc::sendfile(s, f, offset, count)
    })
    .map(progress_tuple)
    .map_err(|e| to_py(py, e))
}
