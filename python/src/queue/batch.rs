//! Batches: `Producer.send_many` and `Consumer.recv_many`, one call (and at most one GIL
//! release and one wake of the other side) for many records.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::time::Instant;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use shmio::queue::Error;

use crate::errors::to_py;
use crate::glue::{PyBuf, Unsigned, wait_timeout_arg};

use super::{PyConsumer, PyProducer, lock_handle, wait_call};

/// The most bytes one `recv_many` call copies out (at least one slot): bounds its buffer.
const RECV_MANY_BYTES: usize = 4 << 20;

thread_local! {
    /// `recv_many`'s buffer, kept for the thread's next call (it grows to what the calls
    /// needed, at most [`RECV_MANY_BYTES`] or one slot): no allocation per call.
    static SCRATCH: RefCell<Vec<MaybeUninit<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A record argument: `bytes` read in place, anything else through the buffer protocol.
enum Record<'py> {
    Bytes(Bound<'py, PyBytes>),
    Buffer(PyBuf),
}

impl Record<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Record::Bytes(b) => b.as_bytes(),
            Record::Buffer(b) => b.as_slice(),
        }
    }
}

#[pymethods]
impl PyProducer {
    /// Sends every bytes-like record of `records`, in order; returns how many were sent.
    /// Sleeping consumers are woken once for the batch, not per record. Waits for space (a
    /// back-pressure queue) up to `timeout` seconds for the whole batch (None: no limit); if
    /// that runs out after some were sent, returns the count sent so far; if none was, raises
    /// `Timeout` (`timeout=0` too). A record larger than the slot size
    /// raises `TooLarge` before anything is sent.
    #[pyo3(signature = (records, timeout=None))]
    fn send_many(
        &self,
        py: Python<'_>,
        records: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let timeout = wait_timeout_arg(py, timeout)?;
        let max = lock_handle(py, &self.state)?.get(py)?.slot_size();
        let mut recs = Vec::new();
        for r in records.try_iter()? {
            let r = r?;
            let rec = match r.cast_into::<PyBytes>() {
                Ok(b) => Record::Bytes(b),
                Err(e) => Record::Buffer(PyBuf::get(&e.into_inner(), false)?),
            };
            let len = rec.as_slice().len();
            if len > max {
                return Err(to_py(py, Error::TooLarge { len, max }));
            }
            recs.push(rec);
        }
        let slices: Vec<&[u8]> = recs.iter().map(Record::as_slice).collect();
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut sent = 0;
        while sent < slices.len() {
            let left = match deadline {
                Some(d) if sent > 0 => Some(d.saturating_duration_since(Instant::now())),
                _ => timeout,
            };
            let rest = &slices[sent..];
            let (_g, r) = wait_call(py, &self.state, left, |st, t| {
                st.producer()?.send_many(rest.iter().copied(), t)
            })?;
            match r {
                Ok(n) => sent += n,
                Err(Error::WouldBlock | Error::Timeout) if sent > 0 => break,
                Err(e) => return Err(to_py(py, e)),
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        Ok(sent)
    }
}

#[pymethods]
impl PyConsumer {
    /// Receives up to `max` records as a list of bytes: waits up to `timeout` seconds (None:
    /// no limit) for the first, then takes those already there, releasing them together (a
    /// back-pressure producer is woken once). An empty list if none came in time. Raises
    /// `Closed` or `ProducerDead` once the producer is gone and everything was received.
    #[pyo3(signature = (max, timeout=None))]
    fn recv_many<'py>(
        &self,
        py: Python<'py>,
        max: Unsigned,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let max: usize = max.get(py, "max")?;
        let timeout = wait_timeout_arg(py, timeout)?;
        if max == 0 {
            return Err(crate::errors::invalid(py, "max must be at least 1"));
        }
        let slot = lock_handle(py, &self.state)?.peek(py)?.slot_size();
        let cap = slot.saturating_mul(max).min(RECV_MANY_BYTES.max(slot));
        // Taken out of the thread's slot while in use (a nested call, from a signal handler
        // say, starts with an empty one).
        let mut buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        if buf.len() < cap {
            buf.resize(cap, MaybeUninit::uninit());
        }
        let mut lens = vec![0usize; max.min(1 << 16)];
        let (_g, r) = wait_call(py, &self.state, timeout, |st, t| {
            st.open_consumer()?
                .recv_many_uninit(&mut buf[..cap], &mut lens, t)
        })?;
        let n = match r {
            Ok(n) => n,
            Err(Error::WouldBlock | Error::Timeout) => 0,
            Err(e) => {
                SCRATCH.with(|s| *s.borrow_mut() = buf);
                return Err(to_py(py, e));
            }
        };
        let total: usize = lens[..n].iter().sum();
        // SAFETY: `recv_many_uninit` initialised the first `lens[..n].sum()` bytes of the
        // buffer it was given (the first `cap` of `buf`, which `total` cannot exceed).
        let got = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), total) };
        let mut at = 0;
        let out = PyList::empty(py);
        for &len in &lens[..n] {
            out.append(PyBytes::new(py, &got[at..at + len]))?;
            at += len;
        }
        SCRATCH.with(|s| *s.borrow_mut() = buf);
        Ok(out)
    }
}
