//! `WriterClaim`: a claim on a region's writer role (`Region.claim_writer`), released by
//! `release()`, on leaving a `with` block, or when the process dies; and `Region.writer`,
//! which reports the claimed writer as a `shmio.RegionWriter` named tuple.

use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;

use shmio::region::WriterClaim;

use super::PyRegion;
use super::replica::region_type;
use crate::errors::to_py;
use crate::glue::handle_repr;

/// `shmio._region.RegionWriter`, the named tuple `Region.writer` returns.
static REGION_WRITER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A claim on a region's writer role. A statement others can check (`Region.writer`, a
/// replica's `ReplicaState.writer_alive`), not a lock: it stops no one from writing.
#[pyclass(module = "shmio._shmio", name = "WriterClaim", frozen)]
pub(crate) struct PyWriterClaim {
    /// The claim; `None` once released. Only dropped under the mutex, never waited on.
    claim: Mutex<Option<WriterClaim>>,
    /// The region's path, for `repr()`.
    path: String,
}

#[pymethods]
impl PyWriterClaim {
    /// Releases the claim. Idempotent.
    fn release(&self) {
        let claim = self
            .claim
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(claim);
    }

    /// Whether `release()` was called.
    #[getter]
    fn released(&self) -> bool {
        self.claim
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Releases the claim; exceptions are not suppressed.
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) {
        self.release();
    }

    fn __repr__(&self) -> String {
        let held = (!self.released()).then(|| format!("{} pid={}", self.path, std::process::id()));
        handle_repr("WriterClaim", held)
    }
}

#[pymethods]
impl PyRegion {
    /// Claims the region's writer role (WriterExists if a live process holds it, this one
    /// included). Released by `release()`, at the end of a `with` block, or by the process's
    /// death.
    fn claim_writer(&self, py: Python<'_>) -> PyResult<PyWriterClaim> {
        let r = self.get(py)?;
        let claim = py.detach(|| r.claim_writer()).map_err(|e| to_py(py, e))?;
        Ok(PyWriterClaim {
            claim: Mutex::new(Some(claim)),
            path: r.path().display().to_string(),
        })
    }

    /// The claimed writer (`shmio.RegionWriter(pid, alive)`), or None if no process ever
    /// claimed the region.
    fn writer<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(w) = self.get(py)?.writer() else {
            return Ok(None);
        };
        region_type(py, &REGION_WRITER, "RegionWriter")?
            .call1((w.pid, w.alive))
            .map(Some)
    }
}
