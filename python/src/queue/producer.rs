//! `Producer`: the single writer of a queue.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyMemoryView};

use shmio::queue::{Error, Producer};

use crate::errors::{closed_handle, invalid, to_py};
use crate::glue::{PyBuf, Unsigned, handle_repr, spin_arg, wait_timeout_arg};

use super::export::{Export, SlotBuffer, release_memoryview};
use super::{
    Handle, QueueState, close_lock, closed_error, info_dict, lock_handle, stats_dict, wait_call,
};

struct Reserved {
    export: Arc<Export>,
    /// A weak reference to the memoryview handed out (strong would make a reference cycle).
    view: Py<PyAny>,
    len: usize,
}

pub(super) struct ProducerState {
    producer: Option<Producer>,
    reserved: Option<Reserved>,
}

impl QueueState for ProducerState {
    const WHAT: &'static str = "producer";
    fn is_open(&self) -> bool {
        self.producer.is_some()
    }
}

impl ProducerState {
    pub(super) fn producer(&mut self) -> Result<&mut Producer, Error> {
        self.producer
            .as_mut()
            .ok_or_else(|| closed_error(Self::WHAT))
    }

    /// The open producer, or the closed-handle error (for the calls that do not wait).
    pub(super) fn get(&self, py: Python<'_>) -> PyResult<&Producer> {
        self.producer
            .as_ref()
            .ok_or_else(|| closed_handle(py, Self::WHAT))
    }

    /// `get`, for a call that changes the producer.
    fn get_mut(&mut self, py: Python<'_>) -> PyResult<&mut Producer> {
        self.producer
            .as_mut()
            .ok_or_else(|| closed_handle(py, Self::WHAT))
    }
}

/// The single writer of a queue.
#[pyclass(module = "shmio._shmio", name = "Producer", frozen)]
pub(crate) struct PyProducer {
    pub(super) state: Handle<ProducerState>,
}

impl PyProducer {
    pub(crate) fn new(p: Producer) -> PyProducer {
        let (cancel, origin) = (p.canceller(), p.origin());
        PyProducer {
            state: Handle::new(
                ProducerState {
                    producer: Some(p),
                    reserved: None,
                },
                cancel,
                origin,
            ),
        }
    }

    /// Ends the open reservation's export (committing or aborting comes after).
    fn end_reservation(py: Python<'_>, st: &mut ProducerState) -> PyResult<()> {
        if let Some(r) = &st.reserved {
            release_memoryview(py, &r.view)?;
            r.export.close()?;
        }
        Ok(())
    }

    fn send_impl(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        timeout: Option<Duration>,
    ) -> PyResult<Result<u64, Error>> {
        // bytes (the usual argument) is immutable and kept alive by the caller's reference
        // for the whole call, even while the GIL is released: read it in place. Other
        // bytes-like objects go through the buffer protocol.
        let buf;
        let bytes = match data.cast::<PyBytes>() {
            Ok(b) => b.as_bytes(),
            Err(_) => {
                buf = PyBuf::get(data, false)?;
                buf.as_slice()
            }
        };
        let (_g, r) = wait_call(py, &self.state, timeout, |st, t| {
            st.producer()?.send_for(bytes, t)
        })?;
        Ok(r)
    }
}

#[pymethods]
impl PyProducer {
    /// Copies a bytes-like record into the queue; returns its sequence number.
    #[pyo3(signature = (data, timeout=None))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<u64> {
        let timeout = wait_timeout_arg(py, timeout)?;
        self.send_impl(py, data, timeout)?.map_err(|e| to_py(py, e))
    }

    /// Like `send` without waiting: None if a back-pressure queue is full.
    fn try_send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
        match self.send_impl(py, data, Some(Duration::ZERO))? {
            Ok(seq) => Ok(Some(seq)),
            Err(Error::WouldBlock) => Ok(None),
            Err(e) => Err(to_py(py, e)),
        }
    }

    /// Reserves the next slot and returns a writable memoryview of `n` bytes (default: the
    /// slot size) over it. Finish with `commit()` or `abort()`.
    #[pyo3(signature = (n=None, timeout=None))]
    fn reserve(
        slf: &Bound<'_, Self>,
        n: Option<Unsigned>,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let n: Option<usize> = n.map(|n| n.get(py, "n")).transpose()?;
        let timeout = wait_timeout_arg(py, timeout)?;
        let this = slf.get();
        // Checked on every attempt: the lock is given back while signal handlers run.
        let (mut g, r) = wait_call(py, &this.state, timeout, |st, t| {
            if st.reserved.is_some() {
                return Err(Error::InvalidArgument(
                    "a reservation is already open: commit or abort it first".to_string(),
                ));
            }
            let p = st.producer()?;
            let cap = p.info().slot_size as usize;
            let n = n.unwrap_or(cap);
            if n > cap {
                return Err(Error::TooLarge { len: n, max: cap });
            }
            p.reserve_raw(t)
                .map(|(_, ptr, _)| (ptr.as_ptr() as usize, n))
        })?;
        let (ptr, n) = r.map_err(|e| to_py(py, e))?;
        let st = &mut *g;
        let p = st
            .producer
            .as_mut()
            .ok_or_else(|| closed_handle(py, "producer"))?;
        let export = Export::new();
        let made = (|| -> PyResult<(Bound<'_, PyAny>, Py<PyAny>)> {
            let buffer = Bound::new(
                py,
                SlotBuffer::new(ptr, n, false, &export, slf.clone().into_any().unbind()),
            )?;
            let mv = PyMemoryView::from(buffer.as_any())?.into_any();
            let weak = py.import("weakref")?.getattr("ref")?.call1((&mv,))?;
            Ok((mv, weak.unbind()))
        })();
        match made {
            Ok((mv, weak)) => {
                st.reserved = Some(Reserved {
                    export,
                    view: weak,
                    len: n,
                });
                Ok(mv.unbind())
            }
            Err(e) => {
                p.abort_raw();
                Err(e)
            }
        }
    }

    /// Publishes the open reservation's first `n` bytes (default: the whole view); returns
    /// the record's sequence number. Releases the memoryview; BufferError if something still
    /// exports it.
    #[pyo3(signature = (n=None))]
    fn commit(&self, py: Python<'_>, n: Option<usize>) -> PyResult<u64> {
        let mut g = lock_handle(py, &self.state)?;
        let st = &mut *g;
        let Some(len) = st.reserved.as_ref().map(|r| r.len) else {
            return Err(invalid(py, "no reservation is open"));
        };
        let n = n.unwrap_or(len);
        if n > len {
            return Err(to_py(py, Error::TooLarge { len: n, max: len }));
        }
        Self::end_reservation(py, st)?;
        st.reserved = None;
        let p = st.get_mut(py)?;
        p.commit_raw(n).map_err(|e| to_py(py, e))
    }

    /// Abandons the open reservation: nothing is published.
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        let mut g = lock_handle(py, &self.state)?;
        let st = &mut *g;
        if st.reserved.is_none() {
            return Err(invalid(py, "no reservation is open"));
        }
        Self::end_reservation(py, st)?;
        st.reserved = None;
        if let Some(p) = st.producer.as_mut() {
            p.abort_raw();
        }
        Ok(())
    }

    /// The queue's geometry: path, policy, slots, slot_size, max_consumers.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let g = lock_handle(py, &self.state)?;
        let p = g.get(py)?;
        info_dict(py, &p.info())
    }

    /// Seconds a wait for space (back-pressure) spins before it sleeps in the kernel: 20e-6 by
    /// default. 0 sleeps at once (no CPU burnt while waiting, a kernel wake-up per wait); at
    /// most 1.
    #[getter]
    fn spin(&self, py: Python<'_>) -> PyResult<f64> {
        let g = lock_handle(py, &self.state)?;
        let p = g.get(py)?;
        Ok(p.spin().as_secs_f64())
    }

    #[setter]
    fn set_spin(&self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        let d = spin_arg(py, seconds)?;
        let mut g = lock_handle(py, &self.state)?;
        let p = g.get_mut(py)?;
        p.set_spin(d);
        Ok(())
    }

    /// The sequence number the next record gets.
    #[getter]
    fn next_seq(&self, py: Python<'_>) -> PyResult<u64> {
        let g = lock_handle(py, &self.state)?;
        let p = g.get(py)?;
        Ok(p.next_seq())
    }

    /// A snapshot of the queue's state (as `Queue.stats`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let g = lock_handle(py, &self.state)?;
        let p = g.get(py)?;
        stats_dict(py, &p.stats())
    }

    /// Waits until at least `count` live consumers are attached, at most `timeout` seconds
    /// (None: no limit), and returns how many are; Timeout if fewer joined in time (a zero
    /// timeout too, as for `send`).
    #[pyo3(signature = (count, timeout=None))]
    fn wait_consumers(
        &self,
        py: Python<'_>,
        count: Unsigned,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let count: usize = count.get(py, "count")?;
        let timeout = wait_timeout_arg(py, timeout)?;
        wait_call(py, &self.state, timeout, |st, t| {
            st.producer()?.wait_consumers(count, t)
        })?
        .1
        .map_err(|e| to_py(py, e))
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(lock_handle(py, &self.state)?.producer.is_none())
    }

    /// Closes the queue for consumers (they drain, then get `Closed`). Aborts an open
    /// reservation; BufferError if its memoryview is still exported. A call waiting in another
    /// thread (a back-pressure `send`, `reserve`, `wait_consumers`) raises `Closed`. Idempotent;
    /// in a forked child, does nothing (the handle belongs to the parent).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let Some(mut g) = close_lock(py, &self.state)? else {
            return Ok(());
        };
        let st = &mut *g;
        if st.reserved.is_some() {
            Self::end_reservation(py, st)?;
            st.reserved = None;
            if let Some(p) = st.producer.as_mut() {
                p.abort_raw();
            }
        }
        if let Some(p) = st.producer.take() {
            py.detach(move || drop(p));
        }
        Ok(())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let g = lock_handle(py, &self.state)?;
        let open = g.producer.as_ref().map(|p| {
            let path = p.info().path;
            format!("{} next_seq={}", path.display(), p.next_seq())
        });
        Ok(handle_repr("Producer", open))
    }
}

crate::glue::closing_context_manager!(PyProducer);
