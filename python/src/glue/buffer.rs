//! Buffers obtained from Python objects (the bytes-like arguments of `send`, `recv_into`,
//! `Region.read_into` and `Region.write`).

use std::mem::MaybeUninit;

use pyo3::ffi;
use pyo3::prelude::*;

/// A buffer obtained from a Python object (bytes-like), released on drop.
pub(crate) struct PyBuf {
    view: Box<ffi::Py_buffer>,
}

impl PyBuf {
    pub(crate) fn get(obj: &Bound<'_, PyAny>, writable: bool) -> PyResult<PyBuf> {
        let mut view = Box::new(MaybeUninit::<ffi::Py_buffer>::uninit());
        let flags = if writable {
            ffi::PyBUF_WRITABLE
        } else {
            ffi::PyBUF_SIMPLE
        };
        // SAFETY: `obj` is a live object (we hold the GIL through its `Bound`), `view` points
        // to writable memory for a Py_buffer; on success the API fills it in completely.
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), view.as_mut_ptr(), flags) };
        if rc != 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        // SAFETY: PyObject_GetBuffer succeeded, so the Py_buffer is initialised.
        let view = unsafe { view.assume_init() };
        Ok(PyBuf { view })
    }

    fn len(&self) -> usize {
        usize::try_from(self.view.len).unwrap_or(0)
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        if self.len() == 0 || self.view.buf.is_null() {
            return &[];
        }
        // SAFETY: a simple (contiguous) buffer of `len` bytes at `buf`, kept valid by the export
        // we hold until drop; bytes have no invalid values.
        unsafe { std::slice::from_raw_parts(self.view.buf.cast::<u8>(), self.len()) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.len() == 0 || self.view.buf.is_null() {
            return &mut [];
        }
        // SAFETY: as in `as_slice`; the buffer was requested with PyBUF_WRITABLE, and the
        // exclusive borrow of `self` keeps us from handing out another slice of it.
        unsafe { std::slice::from_raw_parts_mut(self.view.buf.cast::<u8>(), self.len()) }
    }
}

impl Drop for PyBuf {
    fn drop(&mut self) {
        Python::attach(|_| {
            // SAFETY: the view was filled by a successful PyObject_GetBuffer and is released
            // exactly once, with the GIL held.
            unsafe { ffi::PyBuffer_Release(&mut *self.view) }
        });
    }
}
