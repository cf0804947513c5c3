//! The queue: the module functions (`create`, `take_over`, `open`, `unlink`, `stats`), the
//! queue handles' shared state (`Handle`, `wait_call`) and conversions; the handle classes are
//! in `producer`, `consumer` and `record_view`, the zero-copy exporter in `export`.

mod batch;
mod consumer;
mod export;
mod producer;
mod record_view;

pub(crate) use consumer::PyConsumer;
pub(crate) use producer::PyProducer;
pub(crate) use record_view::RecordView;

use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use shmio::queue::{
    self, Canceller, Consumer, Error, Policy, Producer, ProducerStatus, QueueInfo, QueueOptions,
    QueueStats, Resume, Start,
};

use crate::errors::{invalid, to_py};
use shmio::fork::Origin;

use crate::glue::{Blocking, HandleGuard, HandleLock, lock};
use consumer::ConsumerState;

/// A queue handle: its state behind the lock, and what must be reachable without the lock.
pub(crate) struct Handle<T> {
    state: HandleLock<T>,
    /// The process that opened the core handle. Handles do not survive `fork()` (the core
    /// refuses them with `Error::Forked`, see `shmio::fork`); this is checked before the lock,
    /// since a thread of the parent may have held it at the fork, and in the child nobody would
    /// ever give it back.
    origin: Origin,
    /// Ends the core handle's waits, so that `close()` can take the lock from a thread blocked
    /// in a call (see `close_lock`).
    cancel: Canceller,
}

impl<T> Handle<T> {
    /// The state of a core handle made in `origin`, whose waits `cancel` ends.
    pub(crate) fn new(state: T, cancel: Canceller, origin: Origin) -> Handle<T> {
        Handle {
            state: HandleLock::new(state),
            origin,
            cancel,
        }
    }

    fn forked(&self) -> bool {
        self.origin.is_inherited()
    }
}

/// Locks a handle's state, refusing a handle inherited through `fork()`.
pub(crate) fn lock_handle<'a, T>(py: Python<'_>, h: &'a Handle<T>) -> PyResult<HandleGuard<'a, T>> {
    if h.forked() {
        return Err(to_py(py, Error::Forked));
    }
    lock(py, &h.state)
}

/// Locks a handle's state for `close()`: if another thread holds the lock (it may be blocked in
/// a wait that would not end by itself), cancels the core handle's waits first, so that the call
/// returns promptly (raising `Closed`) and gives the lock back. `None` in a forked child, where
/// closing is a no-op: the handle belongs to the parent, and the core's drop (when the object
/// goes) leaves the parent's state alone.
///
/// A cancelled handle's waits stay cancelled: if `close()` then fails (BufferError, a memoryview
/// another thread still exports), later waits on the handle raise `Closed` too.
pub(crate) fn close_lock<'a, T>(
    py: Python<'_>,
    h: &'a Handle<T>,
) -> PyResult<Option<HandleGuard<'a, T>>> {
    if h.forked() {
        return Ok(None);
    }
    h.state.lock(py, &|| h.cancel.cancel()).map(Some)
}

/// A queue handle's state, as `wait_call` needs it.
pub(crate) trait QueueState: Send {
    /// "producer" or "consumer", for the closed-handle error.
    const WHAT: &'static str;
    /// Whether the handle is still open.
    fn is_open(&self) -> bool;
    /// Runs before each attempt, with the GIL (a consumer gives back a dropped record view).
    fn prepare(&mut self, _py: Python<'_>) -> PyResult<()> {
        Ok(())
    }
}

/// The core error of a call on a closed handle (`closed_handle`'s, as a core error).
pub(crate) fn closed_error(what: &str) -> Error {
    Error::InvalidArgument(format!("I/O operation on a closed {what}"))
}

/// Runs a blocking call `op` on a queue handle's state: first without waiting, with the GIL
/// held; if it would block and `timeout` allows a wait, again with the GIL released, for the
/// rest of the timeout, holding the handle's lock. A wait that a signal interrupts gives the
/// lock back, runs Python's signal handlers (so Ctrl-C raises KeyboardInterrupt, and a handler
/// may use or close the handle), takes the lock again and resumes; if the handle was closed
/// meanwhile, raises `Closed`. Returns the lock with the result, for the caller to finish the
/// call. The outer result carries Python exceptions, the inner one the core's.
pub(crate) fn wait_call<'a, S, T, F>(
    py: Python<'_>,
    h: &'a Handle<S>,
    timeout: Option<Duration>,
    mut op: F,
) -> PyResult<(HandleGuard<'a, S>, Result<T, Error>)>
where
    S: QueueState,
    T: Send,
    F: FnMut(&mut S, Option<Duration>) -> Result<T, Error> + Send,
{
    if h.forked() {
        return Err(to_py(py, Error::Forked));
    }
    let mut g = h.state.lock_for(py, &|| {}, true)?;
    g.prepare(py)?;
    match op(&mut g, Some(Duration::ZERO)) {
        Err(e) if e.would_block() && timeout != Some(Duration::ZERO) => {}
        r => return Ok((g, r)),
    }
    let _mark = h.state.mark_wait();
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        // Signal handlers run without the lock. (A signal that arrived while we held the GIL
        // has already been taken by the process: the wait below would not see it.)
        drop(g);
        py.check_signals()?;
        g = lock(py, &h.state)?;
        if !g.is_open() {
            return Err(to_py(py, Error::Cancelled));
        }
        g.prepare(py)?;
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let st = &mut *g;
        match py.detach(|| op(st, left)) {
            Err(e) if e.interrupted() => {}
            // The rest of the timeout was zero: the wait ran out.
            Err(e) if e.would_block() => return Ok((g, Err(Error::Timeout))),
            r => return Ok((g, r)),
        }
    }
}

fn policy_name(p: Policy) -> &'static str {
    match p {
        Policy::Overwrite => "overwrite",
        Policy::BackPressure => "backpressure",
    }
}

pub(crate) fn info_dict<'py>(py: Python<'py>, info: &QueueInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", info.path.display().to_string())?;
    d.set_item("policy", policy_name(info.policy))?;
    d.set_item("slots", info.slot_count)?;
    d.set_item("slot_size", info.slot_size)?;
    d.set_item("max_consumers", info.max_consumers)?;
    Ok(d)
}

pub(crate) fn stats_dict<'py>(py: Python<'py>, s: &QueueStats) -> PyResult<Bound<'py, PyDict>> {
    let d = info_dict(py, &s.info)?;
    d.set_item("head", s.head)?;
    d.set_item("oldest", s.oldest)?;
    let (state, pid) = match s.producer {
        ProducerStatus::None => ("none", None),
        ProducerStatus::Alive { pid } => ("alive", Some(pid)),
        ProducerStatus::Dead { pid } => ("dead", Some(pid)),
    };
    d.set_item("producer", state)?;
    d.set_item("producer_pid", pid)?;
    d.set_item("producer_generation", s.producer_generation)?;
    let list = PyList::empty(py);
    for c in &s.consumers {
        let cd = PyDict::new(py);
        cd.set_item("index", c.index)?;
        cd.set_item("pid", c.pid)?;
        cd.set_item("position", c.position)?;
        cd.set_item("lag", c.lag)?;
        cd.set_item("lost", c.lost)?;
        cd.set_item("received", c.received)?;
        list.append(cd)?;
    }
    d.set_item("consumers", list)?;
    Ok(d)
}

fn start_arg(py: Python<'_>, start: &Bound<'_, PyAny>) -> PyResult<Start> {
    if let Ok(s) = start.cast::<PyString>() {
        return match s.to_str()? {
            "newest" => Ok(Start::Newest),
            "oldest" => Ok(Start::Oldest),
            other => Err(invalid(
                py,
                format!("start must be 'newest', 'oldest' or a sequence number, not {other:?}"),
            )),
        };
    }
    match start.extract::<u64>() {
        Ok(seq) => Ok(Start::Sequence(seq)),
        Err(_) => Err(invalid(
            py,
            "start must be 'newest', 'oldest' or a sequence number >= 0",
        )),
    }
}

/// `resume=`: "near-oldest", "half-ring", "newest", "oldest", or a count of records behind the
/// head.
fn resume_arg(py: Python<'_>, resume: &Bound<'_, PyAny>) -> PyResult<Resume> {
    const WHAT: &str =
        "resume must be 'near-oldest', 'half-ring', 'newest', 'oldest' or a count >= 0";
    if let Ok(s) = resume.cast::<PyString>() {
        return match s.to_str()? {
            "near-oldest" => Ok(Resume::NearOldest),
            "half-ring" => Ok(Resume::HalfRing),
            "newest" => Ok(Resume::Newest),
            "oldest" => Ok(Resume::Oldest),
            other => Err(invalid(py, format!("{WHAT}, not {other:?}"))),
        };
    }
    resume
        .extract::<u64>()
        .map(Resume::Behind)
        .map_err(|_| invalid(py, WHAT))
}

/// Creates a queue and becomes its producer.
#[pyfunction]
#[pyo3(signature = (name, slots=1024, slot_size=256, policy="overwrite", max_consumers=64, mode=0o600))]
pub(crate) fn create(
    py: Python<'_>,
    name: &str,
    slots: u32,
    slot_size: u32,
    policy: &str,
    max_consumers: u32,
    mode: u32,
) -> PyResult<PyProducer> {
    let policy = match policy {
        "overwrite" => Policy::Overwrite,
        "backpressure" => Policy::BackPressure,
        other => {
            return Err(invalid(
                py,
                format!("policy must be 'overwrite' or 'backpressure', not {other:?}"),
            ));
        }
    };
    let opts = QueueOptions::new()
        .slots(slots)
        .slot_size(slot_size)
        .policy(policy)
        .max_consumers(max_consumers)
        .mode(mode);
    let p = py
        .detach(|| Producer::create(name, &opts))
        .map_err(|e| to_py(py, e))?;
    Ok(PyProducer::new(p))
}

/// Takes over a queue whose producer closed or died.
#[pyfunction]
pub(crate) fn take_over(py: Python<'_>, name: &str) -> PyResult<PyProducer> {
    let p = py
        .detach(|| Producer::open(name))
        .map_err(|e| to_py(py, e))?;
    Ok(PyProducer::new(p))
}

/// Opens a queue as a new consumer.
#[pyfunction]
#[pyo3(signature = (name, start=None, resume=None))]
pub(crate) fn open(
    py: Python<'_>,
    name: &str,
    start: Option<&Bound<'_, PyAny>>,
    resume: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyConsumer> {
    let start = match start {
        None => Start::Newest,
        Some(s) => start_arg(py, s)?,
    };
    let resume = resume.map(|r| resume_arg(py, r)).transpose()?;
    let mut c = py
        .detach(|| Consumer::open(name, start))
        .map_err(|e| to_py(py, e))?;
    if let Some(r) = resume {
        c.set_resume(r);
    }
    let (cancel, origin) = (c.canceller(), c.origin());
    Ok(PyConsumer {
        state: Handle::new(
            ConsumerState {
                consumer: Some(c),
                view: None,
            },
            cancel,
            origin,
        ),
    })
}

/// Removes a queue file; anything else at the path raises Corrupt and is left alone.
#[pyfunction]
pub(crate) fn unlink(py: Python<'_>, name: &str) -> PyResult<()> {
    queue::unlink(name).map_err(|e| to_py(py, e))
}

/// A snapshot of a queue's state, without joining it.
#[pyfunction]
pub(crate) fn stats<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
    let s = queue::inspect(name).map_err(|e| to_py(py, e))?;
    stats_dict(py, &s)
}
