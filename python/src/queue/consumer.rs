//! `Consumer`: one reader of a queue, with its own cursor.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use shmio::queue::{Consumer, Error};

use crate::errors::{closed_handle, to_py};
use crate::glue::{PyBuf, handle_repr, spin_arg, wait_timeout_arg};

use super::export::{Export, SlotBuffer};
use super::record_view::RecordView;
use super::{
    Handle, QueueState, close_lock, closed_error, info_dict, lock_handle, stats_dict, wait_call,
};

pub(crate) struct ConsumerState {
    pub(crate) consumer: Option<Consumer>,
    /// The record view handed out by `recv_view`, if its slot is still held.
    pub(crate) view: Option<Arc<Export>>,
}

impl ConsumerState {
    /// Gives back the slot of an open record view. With `quiet`, an overrun verdict is
    /// ignored (the core counted the record as lost).
    pub(crate) fn end_view(&mut self, py: Python<'_>, quiet: bool) -> PyResult<()> {
        let Some(export) = &self.view else {
            return Ok(());
        };
        export.close()?;
        self.view = None;
        if let Some(c) = self.consumer.as_mut() {
            match c.release_raw() {
                Ok(()) => {}
                Err(Error::Overrun) if quiet => {}
                Err(e) => return Err(to_py(py, e)),
            }
        }
        Ok(())
    }

    fn consumer(&mut self, py: Python<'_>) -> PyResult<&mut Consumer> {
        // A view nobody exports any more (its with-block never ran, or it was dropped) is
        // given back first; one still exported blocks every other read.
        self.end_view(py, true)?;
        self.consumer
            .as_mut()
            .ok_or_else(|| closed_handle(py, "consumer"))
    }

    /// The open consumer, for `wait_call` (after `prepare`).
    pub(super) fn open_consumer(&mut self) -> Result<&mut Consumer, Error> {
        self.consumer
            .as_mut()
            .ok_or_else(|| closed_error(Self::WHAT))
    }

    pub(super) fn peek(&self, py: Python<'_>) -> PyResult<&Consumer> {
        self.consumer
            .as_ref()
            .ok_or_else(|| closed_handle(py, "consumer"))
    }
}

impl QueueState for ConsumerState {
    const WHAT: &'static str = "consumer";
    fn is_open(&self) -> bool {
        self.consumer.is_some()
    }
    fn prepare(&mut self, py: Python<'_>) -> PyResult<()> {
        // A view nobody exports any more is given back first; one still exported blocks
        // every other read.
        self.end_view(py, true)
    }
}

/// One reader of a queue, with its own cursor.
#[pyclass(module = "shmio._shmio", name = "Consumer", frozen)]
pub(crate) struct PyConsumer {
    pub(crate) state: Handle<ConsumerState>,
}

impl PyConsumer {
    fn recv_impl(
        &self,
        py: Python<'_>,
        timeout: Option<Duration>,
    ) -> PyResult<Result<Py<PyAny>, Error>> {
        loop {
            let (mut g, read) = wait_call(py, &self.state, timeout, |st, t| {
                st.open_consumer()?
                    .read_raw(t)
                    .map(|(_, ptr, len)| (ptr as usize, len))
            })?;
            let (ptr, len) = match read {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            let c = g.consumer(py)?;
            // SAFETY: the core located a record of `len` bytes (checked against the slot size)
            // at `ptr` inside the mapping `c` keeps; it stays mapped until the release below.
            // In overwrite mode the producer may rewrite it meanwhile: the view copies
            // atomically, and a torn copy is detected by `release_raw`.
            let view = unsafe { shmio::racy::RacyBytes::from_raw_parts(ptr as *const u8, len) };
            let bytes = PyBytes::new_with(py, len, |out| {
                view.copy_to(out);
                Ok(())
            })?;
            match c.release_raw() {
                Ok(()) => return Ok(Ok(bytes.into_any().unbind())),
                // Overwritten while copied: counted as lost; read the next one.
                Err(Error::Overrun) => continue,
                Err(e) => return Ok(Err(e)),
            }
        }
    }
}

#[pymethods]
impl PyConsumer {
    /// Receives the next record as bytes, waiting at most `timeout` seconds (None: no limit).
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let timeout = wait_timeout_arg(py, timeout)?;
        self.recv_impl(py, timeout)?.map_err(|e| to_py(py, e))
    }

    /// The next record if one is ready, else None (never waits).
    fn try_recv(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.recv_impl(py, Some(Duration::ZERO))? {
            Ok(b) => Ok(Some(b)),
            Err(Error::WouldBlock) => Ok(None),
            Err(e) => Err(to_py(py, e)),
        }
    }

    /// Receives the next record into a writable bytes-like `buffer`; returns its length.
    #[pyo3(signature = (buffer, timeout=None))]
    fn recv_into(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let timeout = wait_timeout_arg(py, timeout)?;
        let mut buf = PyBuf::get(buffer, true)?;
        let out = buf.as_mut_slice();
        wait_call(py, &self.state, timeout, |st, t| {
            st.open_consumer()?.recv_for(out, t)
        })?
        .1
        .map_err(|e| to_py(py, e))
    }

    /// Reads the next record in place: a context manager whose `__enter__` gives a read-only
    /// memoryview over the slot, valid until the block exits.
    #[pyo3(signature = (timeout=None))]
    fn recv_view(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<RecordView> {
        let py = slf.py();
        let timeout = wait_timeout_arg(py, timeout)?;
        let this = slf.get();
        let (mut g, read) = wait_call(py, &this.state, timeout, |st, t| {
            st.open_consumer()?
                .read_raw(t)
                .map(|(seq, ptr, len)| (seq, ptr as usize, len))
        })?;
        let (seq, ptr, len) = read.map_err(|e| to_py(py, e))?;
        let st = &mut *g;
        let export = Export::new();
        st.view = Some(Arc::clone(&export));
        let buffer = Bound::new(
            py,
            SlotBuffer::new(ptr, len, true, &export, slf.clone().into_any().unbind()),
        )?;
        Ok(RecordView::new(
            slf.clone().unbind(),
            export,
            buffer.unbind(),
            seq,
            len,
        ))
    }

    /// Waits until a live producer holds the queue: at once if one does, else until a new one
    /// takes over (`Queue.take_over`) after a close or death, at most `timeout` seconds (None:
    /// no limit); Timeout if none did (a zero timeout too, as for `recv`). Reading then
    /// resumes where this consumer stopped.
    #[pyo3(signature = (timeout=None))]
    fn wait_producer(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let timeout = wait_timeout_arg(py, timeout)?;
        wait_call(py, &self.state, timeout, |st, t| {
            st.open_consumer()?.wait_producer(t)
        })?
        .1
        .map_err(|e| to_py(py, e))
    }

    /// Sequence number of the next record this consumer reads.
    #[getter]
    fn position(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(lock_handle(py, &self.state)?.peek(py)?.position())
    }

    /// Seconds a blocking receive spins before it sleeps in the kernel: 20e-6 by default. 0
    /// sleeps at once (no CPU burnt while idle, a kernel wake-up for each record that finds the
    /// consumer asleep); at most 1.
    #[getter]
    fn spin(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(lock_handle(py, &self.state)?.peek(py)?.spin().as_secs_f64())
    }

    #[setter]
    fn set_spin(&self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        let d = spin_arg(py, seconds)?;
        let mut g = lock_handle(py, &self.state)?;
        g.consumer(py)?.set_spin(d);
        Ok(())
    }

    /// Records lost to overwriting since this consumer opened.
    #[getter]
    fn lost(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(lock_handle(py, &self.state)?.peek(py)?.lost())
    }

    /// Records received since this consumer opened.
    #[getter]
    fn received(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(lock_handle(py, &self.state)?.peek(py)?.received())
    }

    /// The queue's geometry: path, policy, slots, slot_size, max_consumers.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let g = lock_handle(py, &self.state)?;
        info_dict(py, &g.peek(py)?.info())
    }

    /// A snapshot of the queue's state (as `Queue.stats`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let g = lock_handle(py, &self.state)?;
        stats_dict(py, &g.peek(py)?.stats())
    }

    /// A file descriptor that polls readable when a record is ready or the producer is gone.
    /// After it polls readable, call `try_recv()` until it returns None (that re-arms it).
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        let mut g = lock_handle(py, &self.state)?;
        let c = g
            .consumer
            .as_mut()
            .ok_or_else(|| closed_handle(py, "consumer"))?;
        c.fd().map_err(|e| to_py(py, e))
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(lock_handle(py, &self.state)?.consumer.is_none())
    }

    /// Leaves the queue. BufferError while a record view is exported. A call waiting in another
    /// thread (`recv`, iteration, `recv_view`, `wait_producer`, ...) raises `Closed`.
    /// Idempotent; in a forked child, does nothing (the handle belongs to the parent).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let Some(mut g) = close_lock(py, &self.state)? else {
            return Ok(());
        };
        g.end_view(py, true)?;
        if let Some(c) = g.consumer.take() {
            py.detach(move || drop(c));
        }
        Ok(())
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// The next record; the iteration ends when the producer closed the queue (ProducerDead
    /// is raised if it died; Closed if another thread closes this consumer meanwhile).
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.recv_impl(py, None)? {
            Ok(b) => Ok(Some(b)),
            Err(Error::Closed) => Ok(None),
            Err(e) => Err(to_py(py, e)),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let g = lock_handle(py, &self.state)?;
        let open = g.consumer.as_ref().map(|c| {
            let path = c.info().path;
            format!(
                "{} position={} lost={}",
                path.display(),
                c.position(),
                c.lost()
            )
        });
        Ok(handle_repr("Consumer", open))
    }
}

crate::glue::closing_context_manager!(PyConsumer);
