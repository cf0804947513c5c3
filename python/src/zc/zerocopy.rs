//! `ZeroCopy`: `MSG_ZEROCOPY` sends on one socket and their completions.

use std::os::fd::RawFd;
use std::sync::Mutex;

use pyo3::prelude::*;

use shmio::zc::{Reaped, Sent, ZeroCopy};

use super::{borrow, close_state, fd_arg, fd_obj, is_closed, state_repr, take};
use crate::errors::to_py;
use crate::glue::{PyBuf, closing_context_manager, timeout_arg};

/// `MSG_ZEROCOPY` sends on one socket (its descriptor number, kept; the socket stays the
/// caller's). A buffer may be rewritten only once the sends that took its bytes are complete.
#[pyclass(module = "shmio._shmio", name = "ZeroCopy", frozen)]
pub(crate) struct PyZeroCopy {
    pub(crate) inner: Mutex<Option<ZeroCopy>>,
    pub(crate) sock: RawFd,
}

pub(crate) fn sent_tuple(s: Sent) -> (usize, Option<u64>, &'static str) {
    (s.len, s.seq, s.method.name())
}

fn reaped_tuple(r: Reaped) -> (u64, u64) {
    (r.completed, r.copied)
}

impl PyZeroCopy {
    /// Runs `f` on the state and the socket, with the GIL released.
    pub(crate) fn with<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut ZeroCopy, std::os::fd::BorrowedFd<'_>) -> shmio::zc::Result<R> + Send,
    ) -> PyResult<R> {
        let sock = fd_arg(py, self.sock, "the ZeroCopy's socket")?;
        let mut g = take(py, &self.inner, "ZeroCopy")?;
        let zc = g.as_mut().expect("checked by take");
        // SAFETY: open and kept open during the call (the contract).
        py.detach(|| f(zc, unsafe { borrow(sock) }))
            .map_err(|e| to_py(py, e))
    }
}

#[pymethods]
impl PyZeroCopy {
    /// Enables `SO_ZEROCOPY` on the socket `sock` (plain sends if it refuses).
    #[new]
    fn new(py: Python<'_>, sock: &Bound<'_, PyAny>) -> PyResult<PyZeroCopy> {
        let sock = fd_obj(sock, "sock")?;
        // SAFETY: open and kept open during the call (the contract).
        let z = ZeroCopy::enable(unsafe { borrow(sock) }).map_err(|e| to_py(py, e))?;
        Ok(PyZeroCopy {
            inner: Mutex::new(Some(z)),
            sock,
        })
    }

    /// One send of what the socket takes of `data`: `(len, seq, method)`; `seq` is None when
    /// nothing was taken.
    fn send(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<(usize, Option<u64>, &'static str)> {
        let buf = PyBuf::get(data, false)?;
        let bytes = buf.as_slice();
        self.with(py, |z, s| z.send(s, bytes)).map(sent_tuple)
    }

    /// Takes the completions there are now: `(completed, copied)`.
    fn reap(&self, py: Python<'_>) -> PyResult<(u64, u64)> {
        self.with(py, |z, s| z.reap(s)).map(reaped_tuple)
    }

    /// Reaps, waiting up to `timeout` seconds (None: no limit) until send `seq` and all before
    /// it are complete: `(completed, copied)`.
    #[pyo3(signature = (seq, timeout=None))]
    fn wait(&self, py: Python<'_>, seq: u64, timeout: Option<f64>) -> PyResult<(u64, u64)> {
        let t = timeout_arg(py, timeout)?;
        self.with(py, |z, s| z.wait(s, seq, t)).map(reaped_tuple)
    }

    /// Whether send `seq` is complete (its bytes may be rewritten).
    fn is_complete(&self, py: Python<'_>, seq: u64) -> PyResult<bool> {
        Ok(take(py, &self.inner, "ZeroCopy")?
            .as_ref()
            .is_some_and(|z| z.is_complete(seq)))
    }

    /// `(is_zerocopy, outstanding, next_seq, copied, zero_copied)`.
    fn state(&self, py: Python<'_>) -> PyResult<(bool, usize, u64, u64, u64)> {
        let g = take(py, &self.inner, "ZeroCopy")?;
        let z = g.as_ref().expect("checked by take");
        Ok((
            z.is_zerocopy(),
            z.outstanding(),
            z.next_seq(),
            z.copied(),
            z.zero_copied(),
        ))
    }

    /// The socket's descriptor number.
    fn fileno(&self) -> RawFd {
        self.sock
    }

    #[getter]
    fn closed(&self) -> bool {
        is_closed(&self.inner)
    }

    /// Forgets the state (the socket stays open). Idempotent.
    fn close(&self, _py: Python<'_>) -> PyResult<()> {
        close_state(&self.inner);
        Ok(())
    }

    fn __repr__(&self) -> String {
        state_repr("ZeroCopy", &self.inner, |z| {
            format!(
                "fd={} zerocopy={} outstanding={}",
                self.sock,
                z.is_zerocopy(),
                z.outstanding()
            )
        })
    }
}

closing_context_manager!(PyZeroCopy);
