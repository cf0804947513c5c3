//! `shmio._shmio`: the Python extension module of shmio.
//!
//! This layer converts arguments and maps errors; all logic (queue, region, vm, poll) lives in
//! the `shmio` crate. Each core module's error enum maps to the `shmio` exception classes
//! through `ErrDesc`.
//! The user-facing API (`shmio.Queue`, the exception classes) is in the pure-Python package
//! beside this module.
//!
//! Concurrency: every handle keeps its core object behind a `Locked` flag, taken without blocking
//! while the GIL is held (contention waits with the GIL released). Blocking calls first try
//! without waiting; only when they must wait do they release the GIL (`py.detach`), and every
//! interrupted wait (EINTR) runs Python's signal handlers, so Ctrl-C raises KeyboardInterrupt.
//! A queue handle's `close()` does not queue behind a blocked call: it cancels the core handle's
//! waits first (`Canceller`), and the call raises `Closed`.
//!
//! Zero copy: `Producer.reserve` and `Consumer.recv_view` hand out memoryviews over the slot
//! itself, through a small exporter object (`_Buffer`) that counts its buffer exports and keeps
//! the handle (hence the mapping) alive. The slot is given back only when no export remains;
//! otherwise the call raises `BufferError`, as `mmap.close()` does.

use std::cell::UnsafeCell;
use std::ffi::c_int;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyMemoryView, PyString};

use shmio::{poll, region, vm};

use shmio::queue::{
    self, Canceller, Consumer, Error, Policy, Producer, ProducerStatus, QueueInfo, QueueOptions,
    QueueStats, Start,
};

// ---------------------------------------------------------------------------------------------
// Errors

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// A core error (of any module) described for Python: the exception class of `shmio._errors`,
/// its message, `(errno, filename)` for system-call errors and extra attributes.
struct ErrDesc {
    class: &'static str,
    msg: String,
    io: Option<(i32, Option<String>)>,
    filename: Option<String>,
    attrs: Vec<(&'static str, i64)>,
}

impl ErrDesc {
    fn new(class: &'static str, msg: String) -> ErrDesc {
        ErrDesc {
            class,
            msg,
            io: None,
            filename: None,
            attrs: Vec::new(),
        }
    }

    fn io(msg: String, source: &std::io::Error, path: Option<&std::path::Path>) -> ErrDesc {
        let mut d = ErrDesc::new("SyscallError", msg);
        d.io = Some((
            source.raw_os_error().unwrap_or(0),
            path.map(|p| p.display().to_string()),
        ));
        d
    }

    fn file(mut self, p: &std::path::Path) -> ErrDesc {
        self.filename = Some(p.display().to_string());
        self
    }

    fn attr(mut self, name: &'static str, v: impl TryInto<i64>) -> ErrDesc {
        self.attrs.push((name, v.try_into().unwrap_or(i64::MAX)));
        self
    }
}

impl From<Error> for ErrDesc {
    fn from(e: Error) -> ErrDesc {
        let msg = e.to_string();
        let d = |c| ErrDesc::new(c, msg.clone());
        match &e {
            Error::InvalidArgument(_) => d("InvalidArgument"),
            Error::AlreadyExists(p) => d("AlreadyExists").file(p),
            Error::NotFound(p) => d("NotFound").file(p),
            Error::PermissionDenied(p) => d("PermissionDenied").file(p),
            Error::Corrupt(_) => d("Corrupt"),
            Error::VersionMismatch { found, expected } => d("VersionMismatch")
                .attr("found", *found)
                .attr("expected", *expected),
            Error::NoSpace {
                path,
                needed,
                available,
            } => no_space(msg.clone(), path, *needed, *available),
            Error::WouldBlock => d("WouldBlock"),
            Error::Timeout => d("Timeout"),
            Error::Interrupted => d("Interrupted"),
            Error::ProducerDead => d("ProducerDead"),
            Error::Closed => d("Closed"),
            Error::ProducerExists { pid } => d("ProducerExists").attr("pid", *pid),
            Error::TooManyConsumers { max } => d("TooManyConsumers").attr("max", *max),
            Error::TooLarge { len, max } => d("TooLarge").attr("len", *len).attr("max", *max),
            Error::BufferTooSmall { needed } => d("BufferTooSmall").attr("needed", *needed),
            Error::Overrun => d("Overrun"),
            Error::Unsupported(_) => d("Unsupported"),
            // Only a wait that `close()` (from another thread) interrupts sees this.
            Error::Cancelled => ErrDesc::new(
                "Closed",
                "the handle was closed by another thread during this call".to_string(),
            ),
            Error::Forked => ErrDesc::new("InvalidArgument", FORKED.to_string()),
            Error::Io { source, path, .. } => ErrDesc::io(msg.clone(), source, path.as_deref()),
            _ => d("ShmioError"),
        }
    }
}

/// `NoSpace` (queue or region create): an `OSError(ENOSPC, message, path)` (built like
/// `SyscallError`, so that `str()` keeps the message), with the bytes `needed` and `available`.
fn no_space(msg: String, path: &std::path::Path, needed: u64, available: u64) -> ErrDesc {
    let mut d = ErrDesc::new("NoSpace", msg);
    d.io = Some((libc::ENOSPC, Some(path.display().to_string())));
    d.attr("needed", needed).attr("available", available)
}

/// The message for a queue handle used in a forked child (the Python wording of the fix).
const FORKED: &str = "this handle was opened by the parent process: handles do not survive \
                      fork(); open the queue again in the child (or use the 'spawn' start method)";

impl From<region::Error> for ErrDesc {
    fn from(e: region::Error) -> ErrDesc {
        use region::Error as E;
        let msg = e.to_string();
        let d = |c| ErrDesc::new(c, msg.clone());
        match &e {
            E::InvalidArgument(_) => d("InvalidArgument"),
            E::OutOfBounds { offset, len, size } => d("OutOfBounds")
                .attr("offset", *offset)
                .attr("len", *len)
                .attr("size", *size),
            E::AlreadyExists(p) => d("AlreadyExists").file(p),
            E::NotFound(p) => d("NotFound").file(p),
            E::PermissionDenied(p) => d("PermissionDenied").file(p),
            E::Corrupt(_) => d("Corrupt"),
            E::VersionMismatch { found, expected } => d("VersionMismatch")
                .attr("found", *found)
                .attr("expected", *expected),
            E::NoSpace {
                path,
                needed,
                available,
            } => no_space(msg.clone(), path, *needed, *available),
            E::Torn { offset, len } => d("Torn").attr("offset", *offset).attr("len", *len),
            E::WouldBlock => d("WouldBlock"),
            E::Timeout => d("Timeout"),
            E::Interrupted => d("Interrupted"),
            E::Unsupported(_) => d("Unsupported"),
            E::Io { source, path, .. } => ErrDesc::io(msg.clone(), source, path.as_deref()),
            _ => d("ShmioError"),
        }
    }
}

impl From<vm::Error> for ErrDesc {
    fn from(e: vm::Error) -> ErrDesc {
        use vm::Error as E;
        let msg = e.to_string();
        let d = |c| ErrDesc::new(c, msg.clone());
        match &e {
            E::InvalidArgument(_) => d("InvalidArgument"),
            E::PermissionDenied(p) => d("PermissionDenied").file(p),
            E::Unsupported(_) => d("Unsupported"),
            E::Io { source, path, .. } => ErrDesc::io(msg.clone(), source, path.as_deref()),
            _ => d("ShmioError"),
        }
    }
}

impl From<poll::Error> for ErrDesc {
    fn from(e: poll::Error) -> ErrDesc {
        use poll::Error as E;
        let msg = e.to_string();
        let d = |c| ErrDesc::new(c, msg.clone());
        match &e {
            E::InvalidArgument(_) => d("InvalidArgument"),
            E::FdTooLarge { fd, limit } => d("FdTooLarge").attr("fd", *fd).attr("limit", *limit),
            E::AlreadyRegistered(fd) => d("AlreadyRegistered").attr("fd", *fd),
            E::NotRegistered(fd) => d("NotRegistered").attr("fd", *fd),
            E::WrongThread { owner, caller } => d("WrongThread")
                .attr("owner", *owner)
                .attr("caller", *caller),
            E::RtSigInUse => d("RtSigInUse"),
            E::Interrupted => d("Interrupted"),
            E::Io { source, .. } => ErrDesc::io(msg.clone(), source, None),
            _ => d("ShmioError"),
        }
    }
}

/// Converts a core error into an instance of the matching `shmio` exception class.
fn to_py(py: Python<'_>, e: impl Into<ErrDesc>) -> PyErr {
    match build_error(py, e.into()) {
        Ok(err) | Err(err) => err,
    }
}

fn build_error(py: Python<'_>, e: ErrDesc) -> PyResult<PyErr> {
    let module = ERRORS
        .get_or_try_init(py, || py.import("shmio._errors").map(Bound::unbind))?
        .bind(py);
    let cls = module.getattr(e.class)?;
    let exc = match e.io {
        Some((errno, Some(p))) => cls.call1((errno, e.msg, p))?,
        Some((errno, None)) => cls.call1((errno, e.msg))?,
        None => cls.call1((e.msg,))?,
    };
    if let Some(f) = e.filename {
        exc.setattr("filename", f)?;
    }
    for (name, v) in e.attrs {
        exc.setattr(name, v)?;
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

/// A spin duration in seconds: a finite number >= 0 (above one second is clamped by the core).
fn spin_arg(py: Python<'_>, s: f64) -> PyResult<Duration> {
    if !s.is_finite() || s < 0.0 {
        return Err(invalid(
            py,
            format!("spin must be a finite number of seconds >= 0, not {s}"),
        ));
    }
    Ok(Duration::try_from_secs_f64(s.min(1.0)).unwrap_or(Duration::from_secs(1)))
}

/// Runs `op` without waiting, with the GIL held; if it would block and `timeout` allows a wait,
/// runs it again with the GIL released, for the rest of the timeout. A wait that a signal
/// interrupts runs Python's signal handlers (so Ctrl-C raises KeyboardInterrupt) and resumes.
/// The outer result carries Python exceptions from signal handlers, the inner one the core's.
fn wait_op<T, E, F>(py: Python<'_>, timeout: Option<Duration>, mut op: F) -> PyResult<Result<T, E>>
where
    T: Send,
    E: Blocking + Send,
    F: FnMut(Option<Duration>) -> Result<T, E> + Send,
{
    match op(Some(Duration::ZERO)) {
        Err(e) if e.would_block() && timeout != Some(Duration::ZERO) => {}
        r => return Ok(r),
    }
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        // A signal that arrived while we held the GIL has already been taken by the process:
        // handle it now, as the wait below would not see it.
        py.check_signals()?;
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match py.detach(|| op(left)) {
            Err(e) if e.interrupted() => py.check_signals()?,
            // The rest of the timeout was zero: the wait ran out.
            Err(e) if e.would_block() => return Ok(Err(E::timeout())),
            r => return Ok(r),
        }
    }
}

/// The error variants `wait_op` needs to tell apart, for each module's error type.
trait Blocking {
    fn would_block(&self) -> bool;
    fn interrupted(&self) -> bool;
    fn timeout() -> Self;
}

impl Blocking for Error {
    fn would_block(&self) -> bool {
        matches!(self, Error::WouldBlock)
    }
    fn interrupted(&self) -> bool {
        matches!(self, Error::Interrupted)
    }
    fn timeout() -> Self {
        Error::Timeout
    }
}

impl Blocking for region::Error {
    fn would_block(&self) -> bool {
        matches!(self, region::Error::WouldBlock)
    }
    fn interrupted(&self) -> bool {
        matches!(self, region::Error::Interrupted)
    }
    fn timeout() -> Self {
        region::Error::Timeout
    }
}

/// A handle's state behind a one-word lock. Taking it is one compare-and-swap and giving it
/// back one plain store: a `std::sync::Mutex` pays a second read-modify-write on unlock (to
/// learn whether to wake a sleeper), which is measurable on calls that cost ~100 ns. Nobody
/// ever sleeps on this lock, so there is nobody to wake: a caller that finds it taken (another
/// thread is inside a blocking call) polls with the GIL released (see `lock`). A panic while it
/// is held releases it as the guard unwinds (no poisoning: the state is kept consistent by
/// each method, as it was with the mutex whose poisoning was ignored).
struct Locked<T> {
    taken: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through a `LockedGuard`, and at most one guard exists at a
// time (the `taken` flag, set by a compare-and-swap with Acquire and cleared with Release,
// orders one holder's accesses before the next's), so sharing a `Locked` between threads
// hands the value from thread to thread, as a `std::sync::Mutex` does: `T: Send` suffices.
unsafe impl<T: Send> Sync for Locked<T> {}

impl<T> Locked<T> {
    fn new(value: T) -> Locked<T> {
        Locked {
            taken: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    fn try_lock(&self) -> Option<LockedGuard<'_, T>> {
        self.taken
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| LockedGuard {
                lock: self,
                _access: PhantomData,
            })
    }
}

/// Exclusive access to a `Locked` value; dropping it gives the lock back.
struct LockedGuard<'a, T> {
    lock: &'a Locked<T>,
    /// Shares like the `&mut T` it stands for: the guard is `Sync` only if `T` is (sharing a
    /// guard between threads hands out `&T` to each), and `Send` if `T` is.
    _access: PhantomData<&'a mut T>,
}

impl<T> Deref for LockedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (see `Locked`), so no `&mut` to the value exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for LockedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard is the only one, and `&mut self` makes this borrow exclusive.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for LockedGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.taken.store(false, Ordering::Release);
    }
}

/// Locks a handle's state. Uncontended (the normal case) this never waits; if another thread
/// holds the lock (it is inside a blocking call), waits with the GIL released.
fn lock<'a, T>(py: Python<'_>, m: &'a Locked<T>) -> PyResult<LockedGuard<'a, T>> {
    loop {
        if let Some(g) = m.try_lock() {
            return Ok(g);
        }
        py.detach(|| std::thread::sleep(Duration::from_millis(1)));
        py.check_signals()?;
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

/// A queue handle: its state behind the lock, and what must be reachable without the lock.
struct Handle<T> {
    state: Locked<T>,
    /// The process that opened the handle. Handles do not survive `fork()` (the core refuses
    /// them with `Error::Forked`); this is checked before the lock, since a thread of the parent
    /// may have held it at the fork, and in the child nobody would ever give it back.
    pid: u32,
    /// Ends the core handle's waits, so that `close()` can take the lock from a thread blocked
    /// in a call (see `close_lock`).
    cancel: Canceller,
}

impl<T> Handle<T> {
    fn new(state: T, cancel: Canceller) -> Handle<T> {
        Handle {
            state: Locked::new(state),
            pid: current_pid(),
            cancel,
        }
    }

    fn forked(&self) -> bool {
        self.pid != current_pid()
    }
}

/// Locks a handle's state, refusing a handle inherited through `fork()`.
fn lock_handle<'a, T>(py: Python<'_>, h: &'a Handle<T>) -> PyResult<LockedGuard<'a, T>> {
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
fn close_lock<'a, T>(py: Python<'_>, h: &'a Handle<T>) -> PyResult<Option<LockedGuard<'a, T>>> {
    if h.forked() {
        return Ok(None);
    }
    if let Some(g) = h.state.try_lock() {
        return Ok(Some(g));
    }
    h.cancel.cancel();
    lock(py, &h.state).map(Some)
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
}

/// The single writer of a queue.
#[pyclass(module = "shmio._shmio", name = "Producer", frozen)]
struct PyProducer {
    state: Handle<ProducerState>,
}

impl PyProducer {
    fn new(p: Producer) -> PyProducer {
        let cancel = p.canceller();
        PyProducer {
            state: Handle::new(
                ProducerState {
                    producer: Some(p),
                    reserved: None,
                },
                cancel,
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
        let mut g = lock_handle(py, &self.state)?;
        let p = g
            .producer
            .as_mut()
            .ok_or_else(|| closed_handle(py, "producer"))?;
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

    /// Seconds a wait for space (back-pressure) spins before it sleeps in the kernel: 20e-6 by
    /// default. 0 sleeps at once (no CPU burnt while waiting, a kernel wake-up per wait); at
    /// most 1.
    #[getter]
    fn spin(&self, py: Python<'_>) -> PyResult<f64> {
        let g = lock_handle(py, &self.state)?;
        let p = g
            .producer
            .as_ref()
            .ok_or_else(|| closed_handle(py, "producer"))?;
        Ok(p.spin().as_secs_f64())
    }

    #[setter]
    fn set_spin(&self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        let d = spin_arg(py, seconds)?;
        let mut g = lock_handle(py, &self.state)?;
        let p = g
            .producer
            .as_mut()
            .ok_or_else(|| closed_handle(py, "producer"))?;
        p.set_spin(d);
        Ok(())
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

    /// Waits until at least `count` live consumers are attached, at most `timeout` seconds
    /// (None: no limit), and returns how many are; Timeout if fewer joined in time (WouldBlock
    /// for a zero timeout, as `send`).
    #[pyo3(signature = (count, timeout=None))]
    fn wait_consumers(
        &self,
        py: Python<'_>,
        count: usize,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let timeout = timeout_arg(py, timeout)?;
        let mut g = lock_handle(py, &self.state)?;
        let p = g
            .producer
            .as_mut()
            .ok_or_else(|| closed_handle(py, "producer"))?;
        wait_op(py, timeout, |t| p.wait_consumers(count, t))?.map_err(|e| to_py(py, e))
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
    state: Handle<ConsumerState>,
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
            view: Locked::new(None),
            seq,
            len,
        })
    }

    /// Waits until a live producer holds the queue: at once if one does, else until a new one
    /// takes over (`Queue.take_over`) after a close or death, at most `timeout` seconds (None:
    /// no limit); Timeout if none did (WouldBlock for a zero timeout, as `recv`). Reading then
    /// resumes where this consumer stopped.
    #[pyo3(signature = (timeout=None))]
    fn wait_producer(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let timeout = timeout_arg(py, timeout)?;
        let mut g = lock_handle(py, &self.state)?;
        let c = g.consumer(py)?;
        wait_op(py, timeout, |t| c.wait_producer(t))?.map_err(|e| to_py(py, e))
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
    view: Locked<Option<Py<PyAny>>>,
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
// Region

fn region_options(mode: u32, o_sync: bool, populate: bool, lock: bool) -> region::RegionOptions {
    region::RegionOptions::new()
        .mode(mode)
        .o_sync(o_sync)
        .populate(populate)
        .lock_in_ram(lock)
}

fn page_cache_dict<'py>(py: Python<'py>, c: &vm::PageCache) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("page_size", c.page_size)?;
    d.set_item("cached", c.cached)?;
    d.set_item("dirty", c.dirty)?;
    d.set_item("writeback", c.writeback)?;
    d.set_item("evicted", c.evicted)?;
    d.set_item("recently_evicted", c.recently_evicted)?;
    Ok(d)
}

/// A named region of shared memory. Exposes its data through the buffer protocol
/// (`memoryview(region)`), and consistent `read`/`write` calls.
#[pyclass(module = "shmio._shmio", name = "Region", frozen)]
struct PyRegion {
    /// The mapping; `None` once closed. Calls clone the `Arc` out, so a thread blocked in
    /// `wait_changed` keeps the mapping alive even if another closes the handle.
    region: Locked<Option<Arc<region::Region>>>,
    /// Buffers exported over the mapping; `close` refuses while any remain.
    exports: AtomicUsize,
}

impl PyRegion {
    fn new(r: region::Region) -> PyRegion {
        PyRegion {
            region: Locked::new(Some(Arc::new(r))),
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

#[pymethods]
impl PyRegion {
    /// Creates a region of `size` zeroed bytes (AlreadyExists if the file exists; NoSpace if
    /// its file system cannot hold it: the blocks are reserved here).
    #[staticmethod]
    #[pyo3(signature = (name, size, *, mode=0o600, o_sync=false, populate=false, lock=false))]
    fn create(
        py: Python<'_>,
        name: std::path::PathBuf,
        size: u64,
        mode: u32,
        o_sync: bool,
        populate: bool,
        lock: bool,
    ) -> PyResult<PyRegion> {
        let name = name.to_string_lossy().into_owned();
        let opts = region_options(mode, o_sync, populate, lock);
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
        let opts = region_options(0o600, o_sync, populate, lock);
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
        offset: u64,
        n: usize,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let r = self.get(py)?;
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

    /// Copies `len(buffer)` bytes at `offset` into a writable bytes-like `buffer`,
    /// consistently; returns the version the copy belongs to.
    fn read_into(&self, py: Python<'_>, offset: u64, buffer: &Bound<'_, PyAny>) -> PyResult<u64> {
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
    fn write(&self, py: Python<'_>, offset: u64, data: &Bound<'_, PyAny>) -> PyResult<u64> {
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
    fn wait_changed(&self, py: Python<'_>, seen: u64, timeout: Option<f64>) -> PyResult<u64> {
        let timeout = timeout_arg(py, timeout)?;
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
    #[pyo3(signature = (offset=0, length=None))]
    fn flush(&self, py: Python<'_>, offset: u64, length: Option<u64>) -> PyResult<()> {
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

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let g = lock(py, &self.region)?;
        Ok(match g.as_ref() {
            Some(r) => format!(
                "<shmio.Region {} size={} version={}>",
                r.path().display(),
                r.len(),
                r.version()
            ),
            None => "<shmio.Region closed>".to_string(),
        })
    }
}

/// Whether `ptr..ptr+len` overlaps the region's data (a view of the region passed back in).
fn overlaps_mapping(r: &region::Region, ptr: usize, len: usize) -> bool {
    let start = r.as_ptr() as usize;
    let end = start + r.len();
    len != 0 && ptr < end && ptr + len > start
}

// ---------------------------------------------------------------------------------------------
// vm

fn knob_arg(py: Python<'_>, name: &str) -> PyResult<vm::Knob> {
    vm::Knob::ALL
        .into_iter()
        .find(|k| k.name() == name)
        .ok_or_else(|| {
            let names: Vec<&str> = vm::Knob::ALL.iter().map(|k| k.name()).collect();
            invalid(
                py,
                format!("unknown knob {name:?}; one of {}", names.join(", ")),
            )
        })
}

/// The six `vm.dirty_*` knobs, by name.
#[pyfunction]
fn vm_knobs<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let k = vm::knobs().map_err(|e| to_py(py, e))?;
    let d = PyDict::new(py);
    for knob in vm::Knob::ALL {
        d.set_item(knob.name(), k.get(knob))?;
    }
    Ok(d)
}

/// One knob's value.
#[pyfunction]
fn vm_knob(py: Python<'_>, name: &str) -> PyResult<u64> {
    let k = knob_arg(py, name)?;
    vm::knob(k).map_err(|e| to_py(py, e))
}

/// Sets a knob (needs privilege); returns its previous value.
#[pyfunction]
fn vm_set_knob(py: Python<'_>, name: &str, value: u64) -> PyResult<u64> {
    let k = knob_arg(py, name)?;
    vm::set_knob(k, value).map_err(|e| to_py(py, e))
}

/// The thresholds the knobs imply now, in bytes.
#[pyfunction]
fn vm_thresholds<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let t = vm::thresholds().map_err(|e| to_py(py, e))?;
    let d = PyDict::new(py);
    d.set_item("dirtyable_bytes", t.dirtyable_bytes)?;
    d.set_item("background_bytes", t.background_bytes)?;
    d.set_item("dirty_bytes", t.dirty_bytes)?;
    d.set_item("kernel_background_bytes", t.kernel_background_bytes)?;
    d.set_item("kernel_dirty_bytes", t.kernel_dirty_bytes)?;
    Ok(d)
}

/// System-wide Dirty and Writeback.
#[pyfunction]
fn vm_system<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let s = vm::system().map_err(|e| to_py(py, e))?;
    let d = PyDict::new(py);
    d.set_item("dirty_bytes", s.dirty_bytes)?;
    d.set_item("writeback_bytes", s.writeback_bytes)?;
    d.set_item("nr_dirty", s.nr_dirty)?;
    d.set_item("nr_writeback", s.nr_writeback)?;
    Ok(d)
}

/// The page-cache state of the file at `path` (cachestat(2)).
#[pyfunction]
fn vm_file_cache<'py>(py: Python<'py>, path: std::path::PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let c = py
        .detach(|| vm::file_cache(&path))
        .map_err(|e| to_py(py, e))?;
    page_cache_dict(py, &c)
}

/// The system page size.
#[pyfunction]
fn vm_page_size() -> u64 {
    vm::page_size()
}

// ---------------------------------------------------------------------------------------------
// Poller

/// `shmio._event.Event`, the named tuple `Poller.poll` returns.
static EVENT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// An int fd, or an object with `fileno()`.
fn fd_arg(obj: &Bound<'_, PyAny>) -> PyResult<i32> {
    if let Ok(fd) = obj.extract::<i32>() {
        return Ok(fd);
    }
    if obj.hasattr("fileno")? {
        return obj.call_method0("fileno")?.extract::<i32>();
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "expected an int fd or an object with fileno(), not {}",
        obj.get_type().name()?
    )))
}

/// An event poller over one backend: "auto" (epoll), "select", "poll", "epoll", "epoll-et",
/// "rtsig", "rtsig-onefd".
#[pyclass(module = "shmio._shmio", name = "Poller", frozen)]
struct PyPoller {
    poller: Locked<Option<poll::Poller>>,
    backend: poll::Backend,
    capacity: usize,
}

impl PyPoller {
    /// Runs `f` on the open poller with `fd` converted (an int or an object with `fileno()`).
    fn with_fd(
        &self,
        py: Python<'_>,
        fd: &Bound<'_, PyAny>,
        f: impl FnOnce(&mut poll::Poller, std::os::fd::RawFd) -> Result<(), poll::Error>,
    ) -> PyResult<()> {
        let fd = fd_arg(fd)?;
        let mut g = lock(py, &self.poller)?;
        let p = g.as_mut().ok_or_else(|| closed_handle(py, "poller"))?;
        f(p, fd).map_err(|e| to_py(py, e))
    }
}

#[pymethods]
impl PyPoller {
    #[new]
    #[pyo3(signature = (backend="auto", *, capacity=256))]
    fn new(py: Python<'_>, backend: &str, capacity: usize) -> PyResult<PyPoller> {
        let b = poll::Backend::from_name(backend).ok_or_else(|| {
            invalid(
                py,
                format!(
                    "backend must be one of auto, select, poll, epoll, epoll-et, rtsig, \
                     rtsig-onefd, not {backend:?}"
                ),
            )
        })?;
        let p = poll::Poller::new(b).map_err(|e| to_py(py, e))?;
        Ok(PyPoller {
            backend: p.backend(),
            poller: Locked::new(Some(p)),
            capacity: capacity.max(1),
        })
    }

    /// The backend in use ("auto" resolved).
    #[getter]
    fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// Watches `fd` (an int or an object with `fileno()`), reporting `token`.
    #[pyo3(signature = (fd, token, readable=true, writable=false, oneshot=false))]
    fn register(
        &self,
        py: Python<'_>,
        fd: &Bound<'_, PyAny>,
        token: u64,
        readable: bool,
        writable: bool,
        oneshot: bool,
    ) -> PyResult<()> {
        let interest = poll::Interest {
            readable,
            writable,
            oneshot,
        };
        self.with_fd(py, fd, |p, fd| p.register(fd, token, interest))
    }

    /// Changes the token and interest of a registered fd (and re-arms a oneshot one).
    #[pyo3(signature = (fd, token, readable=true, writable=false, oneshot=false))]
    fn modify(
        &self,
        py: Python<'_>,
        fd: &Bound<'_, PyAny>,
        token: u64,
        readable: bool,
        writable: bool,
        oneshot: bool,
    ) -> PyResult<()> {
        let interest = poll::Interest {
            readable,
            writable,
            oneshot,
        };
        self.with_fd(py, fd, |p, fd| p.modify(fd, token, interest))
    }

    /// Stops watching `fd`.
    fn unregister(&self, py: Python<'_>, fd: &Bound<'_, PyAny>) -> PyResult<()> {
        self.with_fd(py, fd, |p, fd| p.deregister(fd))
    }

    /// Waits at most `timeout` seconds (None: no limit) and returns a list of
    /// `shmio.Event(token, readable, writable, hangup, error)` named tuples ([] on timeout). Releases the GIL;
    /// Ctrl-C raises KeyboardInterrupt.
    #[pyo3(signature = (timeout=None))]
    fn poll<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyList>> {
        let timeout = timeout_arg(py, timeout)?;
        let mut g = lock(py, &self.poller)?;
        let p = g.as_mut().ok_or_else(|| closed_handle(py, "poller"))?;
        let mut events = poll::Events::with_capacity(self.capacity);
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            py.check_signals()?;
            let left = match (timeout, deadline) {
                (Some(_), Some(d)) => Some(d.saturating_duration_since(Instant::now())),
                (Some(t), None) if t.is_zero() => Some(Duration::ZERO),
                _ => None,
            };
            // RT-signal pollers must wait in their creating thread: `detach` runs the wait in
            // this same thread, only without the GIL.
            match py.detach(|| p.wait(&mut events, left)) {
                Ok(_) => break,
                Err(poll::Error::Interrupted) => {
                    py.check_signals()?;
                    if left == Some(Duration::ZERO) {
                        break;
                    }
                }
                Err(e) => return Err(to_py(py, e)),
            }
        }
        let event = EVENT
            .get_or_try_init(py, || {
                py.import("shmio._event")
                    .and_then(|m| m.getattr("Event"))
                    .map(Bound::unbind)
            })?
            .bind(py);
        let list = PyList::empty(py);
        for ev in events.iter() {
            list.append(event.call1((ev.token, ev.readable, ev.writable, ev.hangup, ev.error))?)?;
        }
        Ok(list)
    }

    /// A waker: `wake()` from any thread makes `poll` return an event with `token`. A poller
    /// has one waker; a second call replaces the first.
    fn waker(&self, py: Python<'_>, token: u64) -> PyResult<PyWaker> {
        let mut g = lock(py, &self.poller)?;
        let p = g.as_mut().ok_or_else(|| closed_handle(py, "poller"))?;
        let w = poll::Waker::new(p, token).map_err(|e| to_py(py, e))?;
        Ok(PyWaker { waker: w, token })
    }

    /// Counters: waits, events, syscalls, overflows, signals, stale_signals,
    /// max_signals_per_fd.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let g = lock(py, &self.poller)?;
        let p = g.as_ref().ok_or_else(|| closed_handle(py, "poller"))?;
        let s = p.stats();
        let d = PyDict::new(py);
        d.set_item("waits", s.waits)?;
        d.set_item("events", s.events)?;
        d.set_item("syscalls", s.syscalls)?;
        d.set_item("overflows", s.overflows)?;
        d.set_item("signals", s.signals)?;
        d.set_item("stale_signals", s.stale_signals)?;
        d.set_item("max_signals_per_fd", s.max_signals_per_fd)?;
        Ok(d)
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(lock(py, &self.poller)?.is_none())
    }

    /// Releases the poller's descriptors. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        drop(lock(py, &self.poller)?.take());
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

    fn __repr__(&self) -> String {
        format!("<shmio.Poller backend={}>", self.backend.name())
    }
}

/// Wakes a poller from any thread.
#[pyclass(module = "shmio._shmio", name = "Waker", frozen)]
struct PyWaker {
    waker: poll::Waker,
    token: u64,
}

#[pymethods]
impl PyWaker {
    /// Makes the poller's current or next `poll` return with this waker's token.
    fn wake(&self, py: Python<'_>) -> PyResult<()> {
        self.waker.wake().map_err(|e| to_py(py, e))
    }

    #[getter]
    fn token(&self) -> u64 {
        self.token
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
    let cancel = c.canceller();
    Ok(PyConsumer {
        state: Handle::new(
            ConsumerState {
                consumer: Some(c),
                view: None,
            },
            cancel,
        ),
    })
}

/// Removes a queue file; anything else at the path raises Corrupt and is left alone.
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
    m.add_class::<PyRegion>()?;
    m.add_class::<PyPoller>()?;
    m.add_class::<PyWaker>()?;
    m.add_function(wrap_pyfunction!(vm_knobs, m)?)?;
    m.add_function(wrap_pyfunction!(vm_knob, m)?)?;
    m.add_function(wrap_pyfunction!(vm_set_knob, m)?)?;
    m.add_function(wrap_pyfunction!(vm_thresholds, m)?)?;
    m.add_function(wrap_pyfunction!(vm_system, m)?)?;
    m.add_function(wrap_pyfunction!(vm_file_cache, m)?)?;
    m.add_function(wrap_pyfunction!(vm_page_size, m)?)?;
    m.add("REGION_MAX_SIZE", region::MAX_SIZE)?;
    m.add("MAX_SLOTS", queue::MAX_SLOTS)?;
    m.add("MAX_SLOT_SIZE", queue::MAX_SLOT_SIZE)?;
    m.add("MAX_CONSUMERS", queue::MAX_CONSUMERS)?;
    m.add("LAYOUT_VERSION", queue::LAYOUT_VERSION)?;
    m.add("BACKSTOP", queue::BACKSTOP.as_secs_f64())?;
    Ok(())
}
