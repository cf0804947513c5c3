//! `Cache`: files loaded once into a named region, sent from the mapping.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use shmio::zc::{Cache, Entry};

use super::zerocopy::sent_tuple;
use super::{
    ProgressTuple, PySplicer, PyZeroCopy, borrow, close_state, fd_obj, is_closed, progress_tuple,
    state_repr, take,
};
use crate::errors::{closed_handle, to_py};
use crate::glue::{PyBuf, closing_context_manager};

/// A shared cache: a named region of entries written once and read in place by every process
/// that opens it. Entries are `(offset, len)` tuples.
#[pyclass(module = "shmio._shmio", name = "Cache", frozen)]
pub(crate) struct PyCache {
    inner: Mutex<Option<Arc<Cache>>>,
}

fn to_entry(e: (u64, u64)) -> Entry {
    Entry {
        offset: e.0,
        len: e.1,
    }
}

impl PyCache {
    fn get(&self, py: Python<'_>) -> PyResult<Arc<Cache>> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref()
            .cloned()
            .ok_or_else(|| closed_handle(py, "cache"))
    }

    fn wrap(c: Cache) -> PyCache {
        PyCache {
            inner: Mutex::new(Some(Arc::new(c))),
        }
    }
}

#[pymethods]
impl PyCache {
    /// Creates the cache region `name` with room for `max_entries` entries and `data_bytes`
    /// bytes of data.
    #[staticmethod]
    #[pyo3(signature = (name, data_bytes, max_entries=256))]
    fn create(
        py: Python<'_>,
        name: std::path::PathBuf,
        data_bytes: u64,
        max_entries: u32,
    ) -> PyResult<PyCache> {
        let name = name.to_string_lossy().into_owned();
        py.detach(|| Cache::create(&name, data_bytes, max_entries))
            .map(PyCache::wrap)
            .map_err(|e| to_py(py, e))
    }

    /// Opens the cache region `name` and checks its header.
    #[staticmethod]
    fn open(py: Python<'_>, name: std::path::PathBuf) -> PyResult<PyCache> {
        let name = name.to_string_lossy().into_owned();
        py.detach(|| Cache::open(&name))
            .map(PyCache::wrap)
            .map_err(|e| to_py(py, e))
    }

    /// Removes the cache region file.
    #[staticmethod]
    fn unlink(py: Python<'_>, name: std::path::PathBuf) -> PyResult<()> {
        let name = name.to_string_lossy().into_owned();
        Cache::unlink(&name).map_err(|e| to_py(py, e))
    }

    /// Adds `data` (bytes-like) as the entry `key`; returns `(offset, len)`.
    fn add(&self, py: Python<'_>, key: &str, data: &Bound<'_, PyAny>) -> PyResult<(u64, u64)> {
        let c = self.get(py)?;
        let buf = PyBuf::get(data, false)?;
        let bytes = buf.as_slice();
        py.detach(|| c.add(key, bytes))
            .map(|e| (e.offset, e.len))
            .map_err(|e| to_py(py, e))
    }

    /// Reads the file at `path` and adds it as the entry `key`; returns `(offset, len)`.
    fn add_file(
        &self,
        py: Python<'_>,
        key: &str,
        path: std::path::PathBuf,
    ) -> PyResult<(u64, u64)> {
        let c = self.get(py)?;
        py.detach(|| c.add_file(key, &path))
            .map(|e| (e.offset, e.len))
            .map_err(|e| to_py(py, e))
    }

    /// The entry `(offset, len)` of `key`, or None.
    fn lookup(&self, py: Python<'_>, key: &str) -> PyResult<Option<(u64, u64)>> {
        let c = self.get(py)?;
        let e = c.lookup(key).map_err(|e| to_py(py, e))?;
        Ok(e.map(|e| (e.offset, e.len)))
    }

    /// Every entry: `[(key, (offset, len)), ...]`, in the order added.
    fn entries(&self, py: Python<'_>) -> PyResult<Vec<(String, (u64, u64))>> {
        let c = self.get(py)?;
        let v = c.entries().map_err(|e| to_py(py, e))?;
        Ok(v.into_iter().map(|(k, e)| (k, (e.offset, e.len))).collect())
    }

    /// A copy of the entry's bytes (for checks; sends go from the mapping).
    fn read<'py>(&self, py: Python<'py>, entry: (u64, u64)) -> PyResult<Bound<'py, PyBytes>> {
        let c = self.get(py)?;
        let b = c.bytes(&to_entry(entry), 0).map_err(|e| to_py(py, e))?;
        Ok(PyBytes::new(py, &b.to_vec()))
    }

    /// Sends the entry from byte `start` to `sock` through `splicer`:
    /// `(sent, remaining, method)`.
    #[pyo3(signature = (entry, sock, splicer, start=0))]
    fn send(
        &self,
        py: Python<'_>,
        entry: (u64, u64),
        sock: &Bound<'_, PyAny>,
        splicer: &PySplicer,
        start: u64,
    ) -> PyResult<ProgressTuple> {
        let c = self.get(py)?;
        let sock = fd_obj(sock, "sock")?;
        let mut g = take(py, &splicer.inner, "splicer")?;
        let sp = g.as_mut().expect("checked by take");
        py.detach(|| {
            // SAFETY: open and kept open during the call (the contract).
            c.send_splice(&to_entry(entry), start, unsafe { borrow(sock) }, sp)
        })
        .map(progress_tuple)
        .map_err(|e| to_py(py, e))
    }

    /// Sends what the socket of `zc` takes of the entry from byte `start`, with
    /// `MSG_ZEROCOPY`: `(len, seq, method)`.
    #[pyo3(signature = (entry, zc, start=0))]
    fn send_zerocopy(
        &self,
        py: Python<'_>,
        entry: (u64, u64),
        zc: &PyZeroCopy,
        start: u64,
    ) -> PyResult<(usize, Option<u64>, &'static str)> {
        let c = self.get(py)?;
        zc.with(py, |z, s| c.send_zerocopy(&to_entry(entry), start, s, z))
            .map(sent_tuple)
    }

    #[getter]
    fn closed(&self) -> bool {
        is_closed(&self.inner)
    }

    /// Unmaps the cache (once no call uses it). Idempotent.
    fn close(&self, _py: Python<'_>) -> PyResult<()> {
        close_state(&self.inner);
        Ok(())
    }

    fn __repr__(&self) -> String {
        state_repr("Cache", &self.inner, |c| {
            format!(
                "{} max_entries={}",
                c.region().path().display(),
                c.max_entries()
            )
        })
    }
}

closing_context_manager!(PyCache);
