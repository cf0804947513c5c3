//! `Region`'s change-tracking and replication methods: the chunk size and incarnation,
//! `touch_range`, the replication state (a `shmio.ReplicaState` named tuple), fresh reads and
//! promotion. The bridge's own calls (becoming a replica, applying deltas) are not bound.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBytes;

use super::{PyRegion, read_bytes};
use crate::errors::{invalid, stale, to_py};

/// `shmio._region.ReplicaState`, the named tuple `Region.replica` returns.
static REPLICA_STATE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The class `name` of `shmio._region`, imported once into `cell`.
pub(super) fn region_type<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    Ok(cell
        .get_or_try_init(py, || {
            py.import("shmio._region")
                .and_then(|m| m.getattr(name))
                .map(Bound::unbind)
        })?
        .bind(py))
}

/// A staleness bound in seconds: a number >= 0; infinity (or more than a `Duration` holds)
/// is no bound.
fn staleness_arg(py: Python<'_>, s: f64) -> PyResult<Duration> {
    if s.is_nan() || s < 0.0 {
        return Err(invalid(
            py,
            format!("max_staleness must be a number of seconds >= 0, not {s}"),
        ));
    }
    Ok(Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX))
}

impl PyRegion {
    /// `check_fresh` with a bound in seconds; its `Stale` says the bound.
    fn fresh(&self, py: Python<'_>, r: &shmio::region::Region, max_staleness: f64) -> PyResult<()> {
        let max = staleness_arg(py, max_staleness)?;
        r.check_fresh(max).map_err(|e| {
            let catching_up = r.replica().is_some_and(|st| st.catching_up);
            stale(py, e, max_staleness, catching_up)
        })
    }
}

#[pymethods]
impl PyRegion {
    /// The length of the file `create(name, size, chunk_size=...)` makes (header page, data
    /// rounded up to a page, change-tracking table): what it needs free on the file system.
    /// InvalidArgument for a size or chunk size `create` refuses.
    #[staticmethod]
    #[pyo3(signature = (size, chunk_size=4096))]
    fn file_len(py: Python<'_>, size: u64, chunk_size: u64) -> PyResult<u64> {
        shmio::region::file_len(size, chunk_size).ok_or_else(|| {
            invalid(
                py,
                format!(
                    "size {size} or chunk size {chunk_size} out of range (1..={} bytes; a power \
                     of two in {}..={})",
                    shmio::region::MAX_SIZE,
                    shmio::region::MIN_CHUNK,
                    shmio::region::MAX_CHUNK
                ),
            )
        })
    }

    /// The change-tracking chunk size in bytes (`chunk_size` at creation).
    #[getter]
    fn chunk_size(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.get(py)?.chunk_size())
    }

    /// A random number drawn at creation: another file created under the same name later has
    /// another. A replica's `ReplicaState.source` is its primary's incarnation.
    #[getter]
    fn incarnation(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.get(py)?.incarnation())
    }

    /// Publishes changes made through the buffer to `length` bytes at `offset`: moves the
    /// version, marks their chunks changed (a replica receives them), wakes waiters; returns
    /// the new version. ReadOnly on a replica.
    fn touch_range(&self, py: Python<'_>, offset: u64, length: u64) -> PyResult<u64> {
        let r = self.get(py)?;
        py.detach(|| r.touch_range(offset, length))
            .map_err(|e| to_py(py, e))
    }

    /// Whether the region is a replica (written by its bridge only).
    #[getter]
    fn is_replica(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.get(py)?.is_replica())
    }

    /// The replication state (`shmio.ReplicaState`), or None if the region is no replica.
    fn replica<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(st) = self.get(py)?.replica() else {
            return Ok(None);
        };
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        let args = (
            st.source,
            st.applied,
            st.seen,
            st.lag(),
            secs(st.heard),
            secs(st.staleness),
            st.primary_alive,
            st.writer_alive,
            st.catching_up,
        );
        region_type(py, &REPLICA_STATE, "ReplicaState")?
            .call1(args)
            .map(Some)
    }

    /// Stale if the region is a replica last known in sync with its primary more than
    /// `max_staleness` seconds ago (or never, or catching up); None otherwise.
    fn check_fresh(&self, py: Python<'_>, max_staleness: f64) -> PyResult<()> {
        let r = self.get(py)?;
        self.fresh(py, &r, max_staleness)
    }

    /// `read`, refused with Stale (nothing read) when the region is a replica last known in
    /// sync with its primary more than `max_staleness` seconds ago (or never, or catching up).
    fn read_fresh<'py>(
        &self,
        py: Python<'py>,
        offset: u64,
        n: usize,
        max_staleness: f64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let r = self.get(py)?;
        self.fresh(py, &r, max_staleness)?;
        read_bytes(py, &r, offset, n)
    }

    /// Makes a replica a primary of its own (failover: writable again, a new incarnation);
    /// returns the version. A region that is no replica is left alone.
    fn promote(&self, py: Python<'_>) -> PyResult<u64> {
        let r = self.get(py)?;
        py.detach(|| r.promote()).map_err(|e| to_py(py, e))
    }
}
