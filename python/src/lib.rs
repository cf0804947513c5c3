//! `shmio._shmio`: the Python extension module of shmio.
//!
//! This layer converts arguments and maps errors; all queue logic lives in the `shmio` crate.
//! The user-facing API (`shmio.Queue`, the exception classes) is in the pure-Python package
//! beside this module.
//!
//! Concurrency: every handle keeps its core object behind a `Mutex`, locked without blocking
//! while the GIL is held (contention waits with the GIL released). Blocking calls first try
//! without waiting; only when they must wait do they release the GIL (`py.detach`), and every
//! interrupted wait (EINTR) runs Python's signal handlers, so Ctrl-C raises KeyboardInterrupt.
//!
//! Zero copy: `Producer.reserve` and `Consumer.recv_view` hand out memoryviews over the slot
//! itself, through a small exporter object (`_Buffer`) that counts its buffer exports and keeps
//! the handle (hence the mapping) alive. The slot is given back only when no export remains;
//! otherwise the call raises `BufferError`, as `mmap.close()` does.

use std::ffi::c_int;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyMemoryView, PyString};

use shmio::queue::{
    self, Consumer, Error, Policy, Producer, ProducerStatus, QueueInfo, QueueOptions, QueueStats,
    Start,
};

// ---------------------------------------------------------------------------------------------
// Errors

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Converts a core error into an instance of the matching `shmio` exception class.
fn to_py(py: Python<'_>, e: Error) -> PyErr {
    match build_error(py, &e) {
        Ok(err) | Err(err) => err,
    }
}

fn build_error(py: Python<'_>, e: &Error) -> PyResult<PyErr> {
    let module = ERRORS
        .get_or_try_init(py, || py.import("shmio._errors").map(Bound::unbind))?
        .bind(py);
    let name = match e {
        Error::InvalidArgument(_) => "InvalidArgument",
        Error::AlreadyExists(_) => "AlreadyExists",
        Error::NotFound(_) => "NotFound",
        Error::PermissionDenied(_) => "PermissionDenied",
        Error::Corrupt(_) => "Corrupt",
        Error::VersionMismatch { .. } => "VersionMismatch",
        Error::WouldBlock => "WouldBlock",
        Error::Timeout => "Timeout",
        Error::Interrupted => "Interrupted",
        Error::ProducerDead => "ProducerDead",
        Error::Closed => "Closed",
        Error::ProducerExists { .. } => "ProducerExists",
        Error::TooManyConsumers { .. } => "TooManyConsumers",
        Error::TooLarge { .. } => "TooLarge",
        Error::BufferTooSmall { .. } => "BufferTooSmall",
        Error::Overrun => "Overrun",
        Error::Unsupported(_) => "Unsupported",
        Error::Io { .. } => "SyscallError",
        _ => "ShmioError",
    };
    let cls = module.getattr(name)?;
    let msg = e.to_string();
    let exc = match e {
        Error::Io { source, path, .. } => {
            let errno = source.raw_os_error().unwrap_or(0);
            match path {
                Some(p) => cls.call1((errno, msg, p.display().to_string()))?,
                None => cls.call1((errno, msg))?,
            }
        }
        _ => cls.call1((msg,))?,
    };
    match e {
        Error::AlreadyExists(p) | Error::NotFound(p) | Error::PermissionDenied(p) => {
            exc.setattr("filename", p.display().to_string())?;
        }
        Error::VersionMismatch { found, expected } => {
            exc.setattr("found", *found)?;
            exc.setattr("expected", *expected)?;
        }
        Error::ProducerExists { pid } => exc.setattr("pid", *pid)?,
        Error::TooManyConsumers { max } => exc.setattr("max", *max)?,
        Error::TooLarge { len, max } => {
            exc.setattr("len", *len)?;
            exc.setattr("max", *max)?;
        }
        Error::BufferTooSmall { needed } => exc.setattr("needed", *needed)?,
        _ => {}
    }
    Ok(PyErr::from_value(exc))
}

fn invalid(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    to_py(py, Error::InvalidArgument(msg.into()))
}

fn closed_handle(py: Python<'_>, what: &str) -> PyErr {
    invalid(py, format!("I/O operation on a closed {what}"))
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// `None` (no limit) or a number of seconds; negative or NaN is an error, infinity no limit.
fn timeout_arg(py: Python<'_>, t: Option<f64>) -> PyResult<Option<Duration>> {
    match t {
        None => Ok(None),
        Some(s) if s.is_nan() || s < 0.0 => Err(invalid(
            py,
            format!("timeout must be None or a number >= 0, not {s}"),
        )),
        Some(s) => Ok(Duration::try_from_secs_f64(s).ok()),
    }
}

/// Runs `op` without waiting, with the GIL held; if it would block and `timeout` allows a wait,
/// runs it again with the GIL released, for the rest of the timeout. A wait that a signal
/// interrupts runs Python's signal handlers (so Ctrl-C raises KeyboardInterrupt) and resumes.
/// The outer result carries Python exceptions from signal handlers, the inner one the core's.
fn wait_op<T, F>(py: Python<'_>, timeout: Option<Duration>, mut op: F) -> PyResult<Result<T, Error>>
where
    T: Send,
    F: FnMut(Option<Duration>) -> Result<T, Error> + Send,
{
    match op(Some(Duration::ZERO)) {
        Err(Error::WouldBlock) if timeout != Some(Duration::ZERO) => {}
        r => return Ok(r),
    }
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        // A signal that arrived while we held the GIL has already been taken by the process:
        // handle it now, as the wait below would not see it.
        py.check_signals()?;
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match py.detach(|| op(left)) {
            Err(Error::Interrupted) => py.check_signals()?,
            // The rest of the timeout was zero: the wait ran out.
            Err(Error::WouldBlock) => return Ok(Err(Error::Timeout)),
            r => return Ok(r),
        }
    }
}

/// Locks a handle's state. Uncontended (the normal case) this never waits; if another thread
/// holds the lock (it is inside a blocking call), waits with the GIL released.
fn lock<'a, T>(py: Python<'_>, m: &'a Mutex<T>) -> PyResult<MutexGuard<'a, T>> {
    loop {
        match m.try_lock() {
            Ok(g) => return Ok(g),
            Err(TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => {
                py.detach(|| std::thread::sleep(Duration::from_millis(1)));
                py.check_signals()?;
            }
        }
    }
}

/// This process's id, cached (getpid is a system call, and this is on every call's path);
/// a fork handler refreshes it in the child.
static PID: AtomicU32 = AtomicU32::new(0);

extern "C" fn refresh_pid_in_child() {
    PID.store(std::process::id(), Ordering::Relaxed);
}

fn current_pid() -> u32 {
    PID.load(Ordering::Relaxed)
}

fn init_pid() {
    refresh_pid_in_child();
    // SAFETY: registers a handler that runs in the child after fork(); it only makes the
    // async-signal-safe getpid call and an atomic store. Registration happens once per process
    // (module init); a failure only means forked children are not told apart, so ignore it.
    unsafe {
        libc::pthread_atfork(None, None, Some(refresh_pid_in_child));
    }
}

/// Handles do not survive `fork()` (the core's keeper thread is not copied): a handle used in
/// a forked child is refused instead of misbehaving.
trait ForkCheck {
    fn owner_pid(&self) -> u32;
}

impl ForkCheck for ProducerState {
    fn owner_pid(&self) -> u32 {
        self.pid
    }
}

impl ForkCheck for ConsumerState {
    fn owner_pid(&self) -> u32 {
        self.pid
    }
}

/// Locks a handle's state, refusing a handle inherited through `fork()`.
fn lock_handle<'a, T: ForkCheck>(py: Python<'_>, m: &'a Mutex<T>) -> PyResult<MutexGuard<'a, T>> {
    let g = lock(py, m)?;
    if g.owner_pid() != current_pid() {
        return Err(invalid(
            py,
            "this handle was opened by the parent process: handles do not survive fork(); \
             open the queue again in the child (or use the 'spawn' start method)",
        ));
    }
    Ok(g)
}

// ---------------------------------------------------------------------------------------------
// Buffers

/// A buffer obtained from a Python object (bytes-like), released on drop.
struct PyBuf {
    view: Box<ffi::Py_buffer>,
}

impl PyBuf {
    fn get(obj: &Bound<'_, PyAny>, writable: bool) -> PyResult<PyBuf> {
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

    fn as_slice(&self) -> &[u8] {
        if self.len() == 0 || self.view.buf.is_null() {
            return &[];
        }
        // SAFETY: a simple (contiguous) buffer of `len` bytes at `buf`, kept valid by the export
        // we hold until drop; bytes have no invalid values.
        unsafe { std::slice::from_raw_parts(self.view.buf.cast::<u8>(), self.len()) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
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

/// The export state of one slot handed to Python (a reservation or a record view).
#[derive(Default)]
struct Export {
    /// Buffers currently exported (memoryviews and anything else built on the exporter).
    exports: AtomicUsize,
    /// False once the slot was given back: no new export is allowed.
    open: AtomicBool,
}

impl Export {
    fn new() -> Arc<Export> {
        Arc::new(Export {
            exports: AtomicUsize::new(0),
            open: AtomicBool::new(true),
        })
    }

    /// Gives the slot back if nothing exports it any more.
    fn close(&self) -> PyResult<()> {
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
struct SlotBuffer {
    ptr: usize,
    len: usize,
    readonly: bool,
    export: Arc<Export>,
    _owner: Py<PyAny>,
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
fn release_memoryview(py: Python<'_>, mv: &Py<PyAny>) -> PyResult<()> {
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

// ---------------------------------------------------------------------------------------------
// Conversions

fn policy_name(p: Policy) -> &'static str {
    match p {
        Policy::Overwrite => "overwrite",
        Policy::BackPressure => "backpressure",
    }
}

fn info_dict<'py>(py: Python<'py>, info: &QueueInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", info.path.display().to_string())?;
    d.set_item("policy", policy_name(info.policy))?;
    d.set_item("slots", info.slot_count)?;
    d.set_item("slot_size", info.slot_size)?;
    d.set_item("max_consumers", info.max_consumers)?;
    Ok(d)
}

fn stats_dict<'py>(py: Python<'py>, s: &QueueStats) -> PyResult<Bound<'py, PyDict>> {
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

// ---------------------------------------------------------------------------------------------
// Producer

struct Reserved {
    export: Arc<Export>,
    /// A weak reference to the memoryview handed out (strong would make a reference cycle).
    view: Py<PyAny>,
    len: usize,
}

struct ProducerState {
    producer: Option<Producer>,
    reserved: Option<Reserved>,
    /// The process that opened the handle (see `ForkCheck`).
    pid: u32,
}

impl Drop for ProducerState {
    fn drop(&mut self) {
        if self.pid != current_pid() {
            // A forked child: the keeper thread exists only in the parent, so closing here
            // would wait for a thread that is not there. Leave the handle to the parent.
            std::mem::forget(self.producer.take());
        }
    }
}

/// The single writer of a queue.
#[pyclass(module = "shmio._shmio", name = "Producer", frozen)]
struct PyProducer {
    state: Mutex<ProducerState>,
}

impl PyProducer {
    fn new(p: Producer) -> PyProducer {
        PyProducer {
            state: Mutex::new(ProducerState {
                producer: Some(p),
                reserved: None,
                pid: current_pid(),
            }),
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
        let buf = PyBuf::get(data, false)?;
        let mut g = lock_handle(py, &self.state)?;
        let p = g
            .producer
            .as_mut()
            .ok_or_else(|| closed_handle(py, "producer"))?;
        let bytes = buf.as_slice();
        wait_op(py, timeout, |t| p.send_for(bytes, t))
    }
}

#[pymethods]
impl PyProducer {
    /// Copies a bytes-like record into the queue; returns its sequence number.
    #[pyo3(signature = (data, timeout=None))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<u64> {
        let timeout = timeout_arg(py, timeout)?;
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
        n: Option<usize>,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let timeout = timeout_arg(py, timeout)?;
        let this = slf.get();
        let mut g = lock_handle(py, &this.state)?;
        let st = &mut *g;
        let p = st
            .producer
            .as_mut()
            .ok_or_else(|| closed_handle(py, "producer"))?;
        if st.reserved.is_some() {
            return Err(invalid(
                py,
                "a reservation is already open: commit or abort it first",
            ));
        }
        let cap = p.info().slot_size as usize;
        let n = n.unwrap_or(cap);
        if n > cap {
            return Err(to_py(py, Error::TooLarge { len: n, max: cap }));
        }
        let (_, ptr, _) = wait_op(py, timeout, |t| {
            p.reserve_raw(t)
                .map(|(seq, ptr, cap)| (seq, ptr.as_ptr() as usize, cap))
        })?
        .map_err(|e| to_py(py, e))?;
        let export = Export::new();
        let made = (|| -> PyResult<(Bound<'_, PyAny>, Py<PyAny>)> {
            let buffer = Bound::new(
                py,
                SlotBuffer {
                    ptr,
                    len: n,
                    readonly: false,
                    export: Arc::clone(&export),
                    _owner: slf.clone().into_any().unbind(),
                },
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
        let p = st
            .producer
            .as_mut()
            .ok_or_else(|| closed_handle(py, "producer"))?;
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
        let p = g
            .producer
            .as_ref()
            .ok_or_else(|| closed_handle(py, "producer"))?;
        info_dict(py, &p.info())
    }

    /// The sequence number the next record gets.
    #[getter]
    fn next_seq(&self, py: Python<'_>) -> PyResult<u64> {
        let g = lock_handle(py, &self.state)?;
        let p = g
            .producer
            .as_ref()
            .ok_or_else(|| closed_handle(py, "producer"))?;
        Ok(p.next_seq())
    }

    /// A snapshot of the queue's state (as `Queue.stats`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let g = lock_handle(py, &self.state)?;
        let p = g
            .producer
            .as_ref()
            .ok_or_else(|| closed_handle(py, "producer"))?;
        stats_dict(py, &p.stats())
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(lock_handle(py, &self.state)?.producer.is_none())
    }

    /// Closes the queue for consumers (they drain, then get `Closed`). Aborts an open
    /// reservation; BufferError if its memoryview is still exported. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let mut g = lock_handle(py, &self.state)?;
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

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let g = lock_handle(py, &self.state)?;
        Ok(match &g.producer {
            Some(p) => format!(
                "<shmio.Producer {} next_seq={}>",
                p.info().path.display(),
                p.next_seq()
            ),
            None => "<shmio.Producer closed>".to_string(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Consumer

struct ConsumerState {
    consumer: Option<Consumer>,
    /// The record view handed out by `recv_view`, if its slot is still held.
    view: Option<Arc<Export>>,
    /// The process that opened the handle (see `ForkCheck`).
    pid: u32,
}

impl Drop for ConsumerState {
    fn drop(&mut self) {
        if self.pid != current_pid() {
            // As for `ProducerState`: in a forked child, leave the handle to the parent.
            std::mem::forget(self.consumer.take());
        }
    }
}

impl ConsumerState {
    /// Gives back the slot of an open record view. With `quiet`, an overrun verdict is
    /// ignored (the core counted the record as lost).
    fn end_view(&mut self, py: Python<'_>, quiet: bool) -> PyResult<()> {
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

    fn peek(&self, py: Python<'_>) -> PyResult<&Consumer> {
        self.consumer
            .as_ref()
            .ok_or_else(|| closed_handle(py, "consumer"))
    }
}

/// One reader of a queue, with its own cursor.
#[pyclass(module = "shmio._shmio", name = "Consumer", frozen)]
struct PyConsumer {
    state: Mutex<ConsumerState>,
}

impl PyConsumer {
    fn recv_impl(
        &self,
        py: Python<'_>,
        timeout: Option<Duration>,
    ) -> PyResult<Result<Py<PyAny>, Error>> {
        let mut g = lock_handle(py, &self.state)?;
        let c = g.consumer(py)?;
        loop {
            let read = wait_op(py, timeout, |t| {
                c.read_raw(t)
                    .map(|(seq, ptr, len)| (seq, ptr as usize, len))
            })?;
            let (_, ptr, len) = match read {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            let data = if len == 0 {
                &[][..]
            } else {
                // SAFETY: the core located a record of `len` bytes (checked against the slot
                // size) at `ptr` inside the mapping `c` keeps; it stays mapped until the
                // release below. In overwrite mode the producer may rewrite it meanwhile: any
                // byte is a valid u8, and a torn copy is detected by `release_raw`.
                unsafe { std::slice::from_raw_parts(ptr as *const u8, len) }
            };
            let bytes = pyo3::types::PyBytes::new(py, data);
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
        let timeout = timeout_arg(py, timeout)?;
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
        let timeout = timeout_arg(py, timeout)?;
        let mut buf = PyBuf::get(buffer, true)?;
        let mut g = lock_handle(py, &self.state)?;
        let c = g.consumer(py)?;
        let out = buf.as_mut_slice();
        wait_op(py, timeout, |t| c.recv_for(out, t))?.map_err(|e| to_py(py, e))
    }

    /// Reads the next record in place: a context manager whose `__enter__` gives a read-only
    /// memoryview over the slot, valid until the block exits.
    #[pyo3(signature = (timeout=None))]
    fn recv_view(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<RecordView> {
        let py = slf.py();
        let timeout = timeout_arg(py, timeout)?;
        let this = slf.get();
        let mut g = lock_handle(py, &this.state)?;
        let st = &mut *g;
        let c = st.consumer(py)?;
        let (seq, ptr, len) = wait_op(py, timeout, |t| {
            c.read_raw(t)
                .map(|(seq, ptr, len)| (seq, ptr as usize, len))
        })?
        .map_err(|e| to_py(py, e))?;
        let export = Export::new();
        st.view = Some(Arc::clone(&export));
        let buffer = Bound::new(
            py,
            SlotBuffer {
                ptr,
                len,
                readonly: true,
                export: Arc::clone(&export),
                _owner: slf.clone().into_any().unbind(),
            },
        )?;
        Ok(RecordView {
            consumer: slf.clone().unbind(),
            export,
            buffer: buffer.unbind(),
            view: Mutex::new(None),
            seq,
            len,
        })
    }

    /// Sequence number of the next record this consumer reads.
    #[getter]
    fn position(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(lock_handle(py, &self.state)?.peek(py)?.position())
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

    /// Leaves the queue. BufferError while a record view is exported. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let mut g = lock_handle(py, &self.state)?;
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
    /// is raised if it died).
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.recv_impl(py, None)? {
            Ok(b) => Ok(Some(b)),
            Err(Error::Closed) => Ok(None),
            Err(e) => Err(to_py(py, e)),
        }
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let g = lock_handle(py, &self.state)?;
        Ok(match &g.consumer {
            Some(c) => format!(
                "<shmio.Consumer {} position={} lost={}>",
                c.info().path.display(),
                c.position(),
                c.lost()
            ),
            None => "<shmio.Consumer closed>".to_string(),
        })
    }
}

/// A record read in place by `Consumer.recv_view`.
#[pyclass(module = "shmio._shmio", name = "RecordView", frozen)]
struct RecordView {
    consumer: Py<PyConsumer>,
    export: Arc<Export>,
    buffer: Py<SlotBuffer>,
    /// The memoryview given by `__enter__`.
    view: Mutex<Option<Py<PyAny>>>,
    seq: u64,
    len: usize,
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

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.release(py)?;
        Ok(false)
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

// ---------------------------------------------------------------------------------------------
// Module functions

/// Creates a queue and becomes its producer.
#[pyfunction]
#[pyo3(signature = (name, slots=1024, slot_size=256, policy="overwrite", max_consumers=64, mode=0o600))]
fn create(
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
fn take_over(py: Python<'_>, name: &str) -> PyResult<PyProducer> {
    let p = py
        .detach(|| Producer::open(name))
        .map_err(|e| to_py(py, e))?;
    Ok(PyProducer::new(p))
}

/// Opens a queue as a new consumer.
#[pyfunction]
#[pyo3(signature = (name, start=None))]
fn open(py: Python<'_>, name: &str, start: Option<&Bound<'_, PyAny>>) -> PyResult<PyConsumer> {
    let start = match start {
        None => Start::Newest,
        Some(s) => start_arg(py, s)?,
    };
    let c = py
        .detach(|| Consumer::open(name, start))
        .map_err(|e| to_py(py, e))?;
    Ok(PyConsumer {
        state: Mutex::new(ConsumerState {
            consumer: Some(c),
            view: None,
            pid: current_pid(),
        }),
    })
}

/// Removes a queue file.
#[pyfunction]
fn unlink(py: Python<'_>, name: &str) -> PyResult<()> {
    queue::unlink(name).map_err(|e| to_py(py, e))
}

/// A snapshot of a queue's state, without joining it.
#[pyfunction]
fn stats<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
    let s = queue::inspect(name).map_err(|e| to_py(py, e))?;
    stats_dict(py, &s)
}

#[pymodule]
fn _shmio(m: &Bound<'_, PyModule>) -> PyResult<()> {
    init_pid();
    m.add_class::<PyProducer>()?;
    m.add_class::<PyConsumer>()?;
    m.add_class::<RecordView>()?;
    m.add_function(wrap_pyfunction!(create, m)?)?;
    m.add_function(wrap_pyfunction!(take_over, m)?)?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(unlink, m)?)?;
    m.add_function(wrap_pyfunction!(stats, m)?)?;
    m.add("MAX_SLOTS", queue::MAX_SLOTS)?;
    m.add("MAX_SLOT_SIZE", queue::MAX_SLOT_SIZE)?;
    m.add("MAX_CONSUMERS", queue::MAX_CONSUMERS)?;
    m.add("LAYOUT_VERSION", queue::LAYOUT_VERSION)?;
    Ok(())
}
