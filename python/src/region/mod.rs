//! `Region`: a named region of shared memory, with consistent reads and writes and its data
//! exported through the buffer protocol (here); its change-tracking and replication methods
//! (`replica`), and the writer claim (`claim`: the `WriterClaim` class).

mod claim;
mod replica;

pub(crate) use claim::PyWriterClaim;

use std::ffi::c_int;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use shmio::region;

use crate::errors::{closed_handle, to_py};
use crate::glue::{HandleLock, PyBuf, Unsigned, handle_repr, lock, wait_op, wait_timeout_arg};
use crate::vm::page_cache_dict;

fn region_options(
    mode: u32,
    o_sync: bool,
    populate: bool,
    lock: bool,
    chunk_size: u64,
) -> region::RegionOptions {
    region::RegionOptions::new()
        .mode(mode)
        .o_sync(o_sync)
        .populate(populate)
        .lock_in_ram(lock)
        .chunk_size(chunk_size)
}

/// A named region of shared memory. Exposes its data through the buffer protocol
/// (`memoryview(region)`), and consistent `read`/`write` calls.
#[pyclass(module = "shmio._shmio", name = "Region", frozen)]
pub(crate) struct PyRegion {
    /// The mapping; `None` once closed. Calls clone the `Arc` out, so a thread blocked in
    /// `wait_changed` keeps the mapping alive even if another closes the handle.
    region: HandleLock<Option<Arc<region::Region>>>,
    /// Buffers exported over the mapping; `close` refuses while any remain.
    exports: AtomicUsize,
}

impl PyRegion {
    fn new(r: region::Region) -> PyRegion {
        PyRegion {
            region: HandleLock::new(Some(Arc::new(r))),
            exports: AtomicUsize::new(0),
        }
    }

    fn get(&self, py: Python<'_>) -> PyResult<Arc<region::Region>> {
        lock(py, &self.region)?
            .as_ref()
            .cloned()
            .ok_or_else(|| closed_handle(py, "region"))
    }
}

const _: () = assert!(
    region::DEFAULT_CHUNK == 4096,
    "Region.create's chunk_size default"
);

#[pymethods]
impl PyRegion {
    /// Creates a region of `size` zeroed bytes (AlreadyExists if the file exists; NoSpace if
    /// its file system cannot hold it: the blocks are reserved here). `chunk_size`: the
    /// granularity of change tracking, a power of two from 64 to 1 MiB.
    #[staticmethod]
    // A literal default (`region::DEFAULT_CHUNK`, checked below), so that the signature
    // Python sees shows it.
    #[pyo3(signature = (
        name, size, *, mode=0o600, o_sync=false, populate=false, lock=false, chunk_size=4096,
    ))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    fn create(
        py: Python<'_>,
        name: std::path::PathBuf,
        size: u64,
        mode: u32,
        o_sync: bool,
        populate: bool,
        lock: bool,
        chunk_size: u64,
    ) -> PyResult<PyRegion> {
        let name = name.to_string_lossy().into_owned();
        let opts = region_options(mode, o_sync, populate, lock, chunk_size);
        let r = py
            .detach(|| region::Region::create(&name, size, &opts))
            .map_err(|e| to_py(py, e))?;
        Ok(PyRegion::new(r))
    }

    /// Opens an existing region and validates its header.
    #[staticmethod]
    #[pyo3(signature = (name, *, o_sync=false, populate=false, lock=false))]
    fn open(
        py: Python<'_>,
        name: std::path::PathBuf,
        o_sync: bool,
        populate: bool,
        lock: bool,
    ) -> PyResult<PyRegion> {
        let name = name.to_string_lossy().into_owned();
        // The chunk size is the file's.
        let opts = region_options(0o600, o_sync, populate, lock, region::DEFAULT_CHUNK);
        let r = py
            .detach(|| region::Region::open(&name, &opts))
            .map_err(|e| to_py(py, e))?;
        Ok(PyRegion::new(r))
    }

    /// Removes a region file; processes that have it mapped keep using it. Anything else at
    /// the path (a queue, a text file, a symbolic link) raises Corrupt and is left alone.
    #[staticmethod]
    fn unlink(py: Python<'_>, name: std::path::PathBuf) -> PyResult<()> {
        region::unlink(&name.to_string_lossy()).map_err(|e| to_py(py, e))
    }

    /// Copies `n` bytes at `offset` consistently (never half of a write).
    fn read<'py>(
        &self,
        py: Python<'py>,
        offset: Unsigned,
        n: Unsigned,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let (offset, n) = (offset.0, n.get(py, "n")?);
        let r = self.get(py)?;
        read_bytes(py, &r, offset, n)
    }

    /// Copies `len(buffer)` bytes at `offset` into a writable bytes-like `buffer`,
    /// consistently; returns the version the copy belongs to.
    fn read_into(
        &self,
        py: Python<'_>,
        offset: Unsigned,
        buffer: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let offset = offset.0;
        let r = self.get(py)?;
        let mut buf = PyBuf::get(buffer, true)?;
        let out = buf.as_mut_slice();
        if overlaps_mapping(&r, out.as_ptr() as usize, out.len()) {
            let mut tmp = vec![0u8; out.len()];
            let v = py
                .detach(|| r.read(offset, &mut tmp))
                .map_err(|e| to_py(py, e))?;
            out.copy_from_slice(&tmp);
            return Ok(v);
        }
        py.detach(|| r.read(offset, out)).map_err(|e| to_py(py, e))
    }

    /// Writes a bytes-like `data` at `offset` so that no reader sees it half-done; returns
    /// the new version.
    fn write(&self, py: Python<'_>, offset: Unsigned, data: &Bound<'_, PyAny>) -> PyResult<u64> {
        let offset = offset.0;
        let r = self.get(py)?;
        let buf = PyBuf::get(data, false)?;
        let src = buf.as_slice();
        let res = if overlaps_mapping(&r, src.as_ptr() as usize, src.len()) {
            // A view of the region itself: copy it out first (the write changes it).
            let tmp = src.to_vec();
            py.detach(|| r.write(offset, &tmp))
        } else {
            py.detach(|| r.write(offset, src))
        };
        res.map_err(|e| to_py(py, e))
    }

    /// Publishes changes made through the buffer: moves the version and wakes waiters.
    fn touch(&self, py: Python<'_>) -> PyResult<u64> {
        let r = self.get(py)?;
        py.detach(|| r.touch()).map_err(|e| to_py(py, e))
    }

    /// The number of consistent writes (and touches) since creation.
    #[getter]
    fn version(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.get(py)?.version())
    }

    /// Waits until the version differs from `seen` and returns it (Timeout after `timeout`
    /// seconds; None: no limit). Releases the GIL; Ctrl-C raises KeyboardInterrupt.
    #[pyo3(signature = (seen, timeout=None))]
    fn wait_changed(&self, py: Python<'_>, seen: Unsigned, timeout: Option<f64>) -> PyResult<u64> {
        let seen = seen.0;
        let timeout = wait_timeout_arg(py, timeout)?;
        let r = self.get(py)?;
        match wait_op(py, timeout, |t| r.wait_changed(seen, t))? {
            Ok(v) => Ok(v),
            // A zero timeout and no change: report it as the timeout it is.
            Err(region::Error::WouldBlock) => Err(to_py(py, region::Error::Timeout)),
            Err(e) => Err(to_py(py, e)),
        }
    }

    /// Writes the range's dirty pages back and waits (`msync(MS_SYNC)`); `length=None`: to
    /// the end of the region.
    #[pyo3(
        signature = (offset=Unsigned(0), length=None),
        text_signature = "(self, /, offset=0, length=None)"
    )]
    fn flush(&self, py: Python<'_>, offset: Unsigned, length: Option<Unsigned>) -> PyResult<()> {
        let (offset, length) = (offset.0, length.map(|l| l.0));
        let r = self.get(py)?;
        let length = length.unwrap_or_else(|| (r.len() as u64).saturating_sub(offset));
        py.detach(|| r.flush(offset, length))
            .map_err(|e| to_py(py, e))
    }

    /// The region file's page-cache state (cachestat(2); Unsupported before Linux 6.5).
    fn cache_stat<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let r = self.get(py)?;
        let c = r.cache_stat().map_err(|e| to_py(py, e))?;
        page_cache_dict(py, &c)
    }

    /// The torn range `(offset, len)` a writer that died mid-write left, or None.
    #[getter]
    fn torn(&self, py: Python<'_>) -> PyResult<Option<(u64, u64)>> {
        let r = self.get(py)?;
        py.detach(|| r.torn()).map_err(|e| to_py(py, e))
    }

    /// How many writes were found torn since creation.
    #[getter]
    fn torn_writes(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.get(py)?.torn_writes())
    }

    /// Bytes of data.
    #[getter]
    fn size(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.get(py)?.len())
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.size(py)
    }

    #[getter]
    fn path(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.get(py)?.path().display().to_string())
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(lock(py, &self.region)?.is_none())
    }

    /// Unmaps the region. BufferError while buffers over it are exported. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let mut g = lock(py, &self.region)?;
        let n = self.exports.load(Ordering::SeqCst);
        if n > 0 {
            return Err(PyBufferError::new_err(format!(
                "cannot close the region: {n} exported buffer(s) still exist \
                 (release the memoryviews and anything built on them first)"
            )));
        }
        if let Some(r) = g.take() {
            py.detach(move || drop(r));
        }
        Ok(())
    }

    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        // Held across the export, so that `close` cannot run between the check and the count.
        let g = lock(py, &this.region)?;
        let r = g.as_ref().ok_or_else(|| closed_handle(py, "region"))?;
        let len = ffi::Py_ssize_t::try_from(r.len())
            .map_err(|_| PyValueError::new_err("region too large"))?;
        // SAFETY: `view` is the Py_buffer the interpreter passes to bf_getbuffer. The data
        // (`as_ptr()`, `len()` bytes) stays mapped while the export exists: `close` refuses
        // while `exports` is non-zero, and FillInfo stores a new reference to `slf` in
        // `view->obj`, so the handle (and its Region) outlives the export.
        let rc =
            unsafe { ffi::PyBuffer_FillInfo(view, slf.as_ptr(), r.as_ptr().cast(), len, 0, flags) };
        if rc != 0 {
            return Err(PyErr::fetch(py));
        }
        this.exports.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.exports.fetch_sub(1, Ordering::SeqCst);
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let g = lock(py, &self.region)?;
        let open = g.as_ref().map(|r| {
            let path = r.path().display();
            format!("{path} size={} version={}", r.len(), r.version())
        });
        Ok(handle_repr("Region", open))
    }
}

crate::glue::closing_context_manager!(PyRegion);

/// `n` bytes at `offset` of `r`, read consistently with the GIL released.
fn read_bytes<'py>(
    py: Python<'py>,
    r: &region::Region,
    offset: u64,
    n: usize,
) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
    // Checked before allocating, so that a huge `n` is OutOfBounds, not MemoryError.
    let size = r.len() as u64;
    if offset.checked_add(n as u64).is_none_or(|end| end > size) {
        let e = region::Error::OutOfBounds {
            offset,
            len: n as u64,
            size,
        };
        return Err(to_py(py, e));
    }
    pyo3::types::PyBytes::new_with(py, n, |buf| {
        py.detach(|| r.read(offset, buf))
            .map(|_| ())
            .map_err(|e| to_py(py, e))
    })
}

/// Whether `ptr..ptr+len` overlaps the region's data (a view of the region passed back in).
fn overlaps_mapping(r: &region::Region, ptr: usize, len: usize) -> bool {
    r.overlaps_mapping(ptr as *const u8, len)
}
