//! `RecordView`: a record read in place by `Consumer.recv_view`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use pyo3::prelude::*;
use pyo3::types::PyMemoryView;

use crate::glue::{HandleLock, lock};

use super::consumer::PyConsumer;
use super::export::{Export, SlotBuffer, release_memoryview};
use super::lock_handle;

/// A record read in place by `Consumer.recv_view`.
#[pyclass(module = "shmio._shmio", name = "RecordView", frozen)]
pub(crate) struct RecordView {
    consumer: Py<PyConsumer>,
    export: Arc<Export>,
    buffer: Py<SlotBuffer>,
    /// The memoryview given by `__enter__`.
    view: HandleLock<Option<Py<PyAny>>>,
    seq: u64,
    len: usize,
}

impl RecordView {
    /// The view of record `seq` (`len` bytes), which `consumer` holds until it is released.
    pub(crate) fn new(
        consumer: Py<PyConsumer>,
        export: Arc<Export>,
        buffer: Py<SlotBuffer>,
        seq: u64,
        len: usize,
    ) -> RecordView {
        RecordView {
            consumer,
            export,
            buffer,
            view: HandleLock::new(None),
            seq,
            len,
        }
    }
}

#[pymethods]
impl RecordView {
    /// The record's sequence number.
    #[getter]
    fn seq(&self) -> u64 {
        self.seq
    }

    fn __len__(&self) -> usize {
        self.len
    }

    /// Whether the slot was given back.
    #[getter]
    fn released(&self) -> bool {
        !self.export.open.load(Ordering::SeqCst)
    }

    /// A read-only memoryview over the record in the slot (the same one each call).
    fn memoryview(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut g = lock(py, &self.view)?;
        if let Some(mv) = g.as_ref() {
            return Ok(mv.clone_ref(py));
        }
        let mv = PyMemoryView::from(self.buffer.bind(py).as_any())?
            .into_any()
            .unbind();
        *g = Some(mv.clone_ref(py));
        Ok(mv)
    }

    /// Releases the memoryview and gives the slot back to the queue. BufferError (keeping the
    /// slot) if a buffer built on the view is still alive. In overwrite mode raises Overrun if
    /// the producer overwrote the record while it was viewed: its bytes must not be trusted.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(mv) = lock(py, &self.view)?.as_ref() {
            release_memoryview(py, mv)?;
        }
        let consumer = self.consumer.bind(py).get();
        let mut g = lock_handle(py, &consumer.state)?;
        let mine = g
            .view
            .as_ref()
            .is_some_and(|v| Arc::ptr_eq(v, &self.export));
        if mine {
            g.end_view(py, false)?;
        }
        Ok(())
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.memoryview(py)
    }

    /// Releases the view (see `release`). An exception leaving the `with` block is never
    /// replaced by the release's failure (a `BufferError` because the traceback keeps a buffer
    /// on the view alive, say): that failure becomes a note on it, and the slot is given back
    /// once the buffers are gone (by the consumer's next read).
    #[pyo3(signature = (*args))]
    fn __exit__(&self, py: Python<'_>, args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        crate::glue::exit_keeping(py, args, self.release(py))
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmio.RecordView seq={} len={}{}>",
            self.seq,
            self.len,
            if self.released() { " released" } else { "" }
        )
    }
}
