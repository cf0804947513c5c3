//! `Splicer`: memory to sockets with `vmsplice` + `splice` through one reused pipe.

use std::sync::Mutex;

use pyo3::prelude::*;

use shmio::zc::{self, Splicer};

use super::{
    ProgressTuple, borrow, close_state, fd_obj, is_closed, progress_tuple, state_repr, take,
};
use crate::errors::to_py;
use crate::glue::{PyBuf, closing_context_manager};

/// Sends bytes in memory to sockets without a copy through a user-space buffer. The bytes must
/// not change until a send is done (`remaining == 0`).
#[pyclass(module = "shmio._shmio", name = "Splicer", frozen)]
pub(crate) struct PySplicer {
    pub(crate) inner: Mutex<Option<Splicer>>,
}

#[pymethods]
impl PySplicer {
    /// A splicer whose pipe capacity is raised to `pipe_size` bytes where allowed (0: 1 MiB).
    #[new]
    #[pyo3(signature = (pipe_size=0))]
    fn new(py: Python<'_>, pipe_size: usize) -> PyResult<PySplicer> {
        let size = if pipe_size == 0 {
            zc::DEFAULT_PIPE_SIZE
        } else {
            pipe_size
        };
        let s = Splicer::with_pipe_size(size).map_err(|e| to_py(py, e))?;
        Ok(PySplicer {
            inner: Mutex::new(Some(s)),
        })
    }

    /// Sends `data` (bytes-like) to the socket `sock`; `(sent, remaining, method)`. On a
    /// non-blocking socket that filled up, call again with `data[sent:]` when it is writable.
    fn send(
        &self,
        py: Python<'_>,
        sock: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<ProgressTuple> {
        let sock = fd_obj(sock, "sock")?;
        let buf = PyBuf::get(data, false)?;
        let bytes = buf.as_slice();
        let mut g = take(py, &self.inner, "splicer")?;
        let sp = g.as_mut().expect("checked by take");
        py.detach(|| {
            // SAFETY: open and kept open during the call (the contract).
            sp.send(unsafe { borrow(sock) }, bytes)
        })
        .map(progress_tuple)
        .map_err(|e| to_py(py, e))
    }

    /// Bytes of the current send in the pipe, not yet on the socket.
    #[getter]
    fn pending(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(take(py, &self.inner, "splicer")?
            .as_ref()
            .map_or(0, Splicer::pending))
    }

    /// The pipe's capacity in bytes, as the kernel set it.
    #[getter]
    fn pipe_size(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(take(py, &self.inner, "splicer")?
            .as_ref()
            .map_or(0, Splicer::pipe_size))
    }

    /// Drops what the pipe holds (an abandoned send).
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(s) = take(py, &self.inner, "splicer")?.as_mut() {
            s.reset();
        }
        Ok(())
    }

    #[getter]
    fn closed(&self) -> bool {
        is_closed(&self.inner)
    }

    /// Closes the pipe. Idempotent.
    fn close(&self, _py: Python<'_>) -> PyResult<()> {
        close_state(&self.inner);
        Ok(())
    }

    fn __repr__(&self) -> String {
        state_repr("Splicer", &self.inner, |s| {
            format!("pipe_size={} pending={}", s.pipe_size(), s.pending())
        })
    }
}

closing_context_manager!(PySplicer);
