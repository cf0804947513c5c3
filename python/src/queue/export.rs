//! Zero copy: the exporter (`_Buffer`) behind the memoryviews that `Producer.reserve` and
//! `Consumer.recv_view` hand out over a slot, and the export count that keeps the slot held.

use std::ffi::c_int;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyMemoryView;

/// The export state of one slot handed to Python (a reservation or a record view).
#[derive(Default)]
pub(crate) struct Export {
    /// Buffers currently exported (memoryviews and anything else built on the exporter).
    exports: AtomicUsize,
    /// False once the slot was given back: no new export is allowed.
    pub(crate) open: AtomicBool,
}

impl Export {
    pub(crate) fn new() -> Arc<Export> {
        Arc::new(Export {
            exports: AtomicUsize::new(0),
            open: AtomicBool::new(true),
        })
    }

    /// Gives the slot back if nothing exports it any more.
    pub(crate) fn close(&self) -> PyResult<()> {
        let n = self.exports.load(Ordering::SeqCst);
        if n > 0 {
            return Err(PyBufferError::new_err(format!(
                "the slot is still exported by {n} buffer(s): release the memoryviews \
                 (and anything built on them) first"
            )));
        }
        self.open.store(false, Ordering::SeqCst);
        Ok(())
    }
}

/// Exports a slot's memory through the buffer protocol. It holds a strong reference to the
/// handle (`owner`), whose core object keeps the mapping; the handle refuses to close while
/// exports remain.
#[pyclass(module = "shmio._shmio", name = "_Buffer", frozen)]
pub(crate) struct SlotBuffer {
    ptr: usize,
    len: usize,
    readonly: bool,
    export: Arc<Export>,
    _owner: Py<PyAny>,
}

impl SlotBuffer {
    /// An exporter of the `len` bytes at `ptr`, a slot of the mapping that `owner`'s core
    /// handle keeps; its exports are counted in `export`.
    pub(crate) fn new(
        ptr: usize,
        len: usize,
        readonly: bool,
        export: &Arc<Export>,
        owner: Py<PyAny>,
    ) -> SlotBuffer {
        SlotBuffer {
            ptr,
            len,
            readonly,
            export: Arc::clone(export),
            _owner: owner,
        }
    }
}

#[pymethods]
impl SlotBuffer {
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        if !this.export.open.load(Ordering::SeqCst) {
            return Err(PyBufferError::new_err(
                "the slot was given back: this record or reservation is over",
            ));
        }
        let len = ffi::Py_ssize_t::try_from(this.len)
            .map_err(|_| PyValueError::new_err("slot too large"))?;
        // SAFETY: `view` is the Py_buffer the interpreter passes to bf_getbuffer. `ptr..+len`
        // lies in a slot of the mapping that `_owner`'s core handle keeps mapped while any
        // export exists (the handle refuses to close, and the export holds `slf`, which holds
        // the handle). FillInfo takes a new reference to `slf` for `view->obj` and rejects a
        // writable request on a read-only buffer.
        let rc = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                this.ptr as *mut std::ffi::c_void,
                len,
                c_int::from(this.readonly),
                flags,
            )
        };
        if rc != 0 {
            return Err(PyErr::fetch(slf.py()));
        }
        this.export.exports.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.export.exports.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Releases `mv` (a memoryview we created) if it is still alive; fails with BufferError if
/// something still exports it.
pub(crate) fn release_memoryview(py: Python<'_>, mv: &Py<PyAny>) -> PyResult<()> {
    let target = mv.bind(py);
    let target = if target.is_instance_of::<PyMemoryView>() {
        target.clone()
    } else {
        // A weak reference.
        target.call0()?
    };
    if !target.is_none() {
        target.call_method0("release")?;
    }
    Ok(())
}
