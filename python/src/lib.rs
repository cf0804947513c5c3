//! `shmio._shmio`: the Python extension module of shmio.
//!
//! This layer converts arguments and maps errors; all logic (queue, region, vm, poll) lives in
//! the `shmio` crate. Each core module's error enum maps to the `shmio` exception classes
//! through `ErrDesc`.
//! The user-facing API (`shmio.Queue`, the exception classes) is in the pure-Python package
//! beside this module.
//!
//! Concurrency: every handle keeps its core object behind a `HandleLock`: fair (first come,
//! first served), taken without blocking while the GIL is held (contention waits with the GIL
//! released), and aware of its holder, so that a re-entrant use from the holding thread raises
//! `ReentrantCall` instead of deadlocking. Blocking calls first try without waiting; only when
//! they must wait do they release the GIL (`py.detach`), and every interrupted wait (EINTR)
//! gives the lock back and runs Python's signal handlers (Ctrl-C raises KeyboardInterrupt; a
//! handler may close the handle), then takes the lock again (`wait_call`). `close()` does not
//! queue behind a blocked call: a queue handle's cancels the core handle's waits first
//! (`Canceller`), a poller's wakes the wait through its kick socket, and the call gives the lock
//! back and raises `Closed`. The same kick lets `register`, `modify`, `unregister`, `waker` and
//! `stats` run while another thread waits in `poll`, which then waits on with the change.
//! Handles inherited through `fork()` are refused before their lock is touched.
//!
//! Zero copy: `Producer.reserve` and `Consumer.recv_view` hand out memoryviews over the slot
//! itself, through a small exporter object (`_Buffer`) that counts its buffer exports and keeps
//! the handle (hence the mapping) alive. The slot is given back only when no export remains;
//! otherwise the call raises `BufferError`, as `mmap.close()` does.

use std::collections::VecDeque;
use std::ffi::c_int;
use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::ThreadId;
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
            Error::Cancelled => ErrDesc::new("Closed", CLOSED_DURING_CALL.to_string()),
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

/// The message of the `Closed` a call raises when its handle was closed while it waited.
const CLOSED_DURING_CALL: &str =
    "the handle was closed by another thread (or a signal handler) during this call";

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
            E::FileInUse(fd) => d("FileInUse").attr("fd", *fd),
            E::WakerExists { token } => d("WakerExists").attr("token", *token),
            E::Forked => ErrDesc::new("InvalidArgument", POLLER_FORKED.to_string()),
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

/// A handle's state behind a fair lock that knows who holds it.
///
/// - Fair: threads that find it taken queue in arrival order and the lock is handed to the
///   first of them when given back, so a thread looping on short calls (`poll(0.02)`,
///   `recv(timeout=0.02)`) cannot starve another.
/// - Never held across Python code that could use the handle again: blocking calls give it back
///   before they run Python's signal handlers (see `wait_call` and `PyPoller::poll`), so a
///   handler may close the handle its thread waits on. A thread that asks for a lock it holds
///   already (a finalizer run while it is held), or starts a second blocking call on a handle
///   it is inside one on (a signal handler), gets `ReentrantCall` instead of a deadlock.
/// - Fork-aware: a child that inherits it held (or queued for) by a thread of the parent, which
///   the child does not have, gets the fork error instead of waiting for ever.
///
/// The queue (`gate`) is a `std::sync::Mutex` held only for a few instructions and a `Condvar`
/// that waiters sleep on with the GIL released; the value has its own `std::sync::Mutex`, which
/// only the thread the gate let in ever locks, so it is never contended.
struct HandleLock<T> {
    gate: Gate,
    value: Mutex<T>,
}

struct Gate {
    state: Mutex<GateState>,
    turn: Condvar,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    Free,
    /// Handed to the waiter with this ticket, which has not woken up yet.
    Granted(u64),
    Held(ThreadId),
}

struct GateState {
    /// The process whose threads hold, wait for or are in calls on the lock.
    pid: u32,
    owner: Owner,
    /// Tickets of the waiting threads, first come first served.
    queue: VecDeque<u64>,
    next_ticket: u64,
    /// Threads inside a blocking call on the handle (which may give the lock back meanwhile).
    in_wait: Vec<ThreadId>,
}

/// Why a handle's lock was refused.
enum LockError {
    /// The calling thread holds the lock already, or is inside a blocking call on the handle.
    Reentrant,
    /// The lock was held or waited for by a thread of the parent process at `fork()`.
    Forked,
}

impl From<LockError> for ErrDesc {
    fn from(e: LockError) -> ErrDesc {
        match e {
            LockError::Reentrant => ErrDesc::new("ReentrantCall", REENTRANT.to_string()),
            LockError::Forked => ErrDesc::new("InvalidArgument", LOCK_FORKED.to_string()),
        }
    }
}

const REENTRANT: &str = "re-entrant call: this thread is already inside a call on this handle \
                         (this call came from a signal handler or a finalizer that ran during \
                         it); only non-blocking calls and close() may be made from there";

const LOCK_FORKED: &str = "this handle was in use by another thread when the process forked: \
                           it cannot be used in the child (open or create it again there)";

/// How long a thread queued for a lock sleeps before it runs Python's signal handlers.
const LOCK_SLICE: Duration = Duration::from_millis(50);

thread_local! {
    static THREAD: ThreadId = std::thread::current().id();
}

fn this_thread() -> ThreadId {
    THREAD.with(|t| *t)
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these; a poisoned value is as consistent as its methods
    // keep it (the old lock had no poisoning either).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GateState {
    /// In a forked child: takes the lock over if no thread of the parent held it or waited for
    /// it (their threads do not exist here), else refuses.
    fn adopt(&mut self) -> Result<(), LockError> {
        let pid = current_pid();
        if self.pid == pid {
            return Ok(());
        }
        if self.owner != Owner::Free || !self.queue.is_empty() || !self.in_wait.is_empty() {
            return Err(LockError::Forked);
        }
        self.pid = pid;
        Ok(())
    }

    /// Takes the lock if it is free and nobody queues; refuses the thread holding it, and for
    /// a `blocking` call one inside a blocking call on the handle already.
    fn try_take(&mut self, me: ThreadId, blocking: bool) -> Result<bool, LockError> {
        self.adopt()?;
        if blocking && self.in_wait.contains(&me) {
            return Err(LockError::Reentrant);
        }
        match self.owner {
            Owner::Held(t) if t == me => Err(LockError::Reentrant),
            Owner::Free if self.queue.is_empty() => {
                self.owner = Owner::Held(me);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl<T> HandleLock<T> {
    fn new(value: T) -> HandleLock<T> {
        HandleLock {
            gate: Gate {
                state: Mutex::new(GateState {
                    pid: current_pid(),
                    owner: Owner::Free,
                    queue: VecDeque::new(),
                    next_ticket: 0,
                    in_wait: Vec::new(),
                }),
                turn: Condvar::new(),
            },
            value: Mutex::new(value),
        }
    }

    /// Locks the state. Uncontended this never waits. If another thread holds it, runs
    /// `contended` (which makes that thread give it back sooner: a poller's kick, a queue
    /// handle's cancel for `close()`), then queues for it with the GIL released. Every
    /// `LOCK_SLICE` it steps out of the queue to run Python's signal handlers (which may use
    /// this handle without queueing behind their own thread), then steps back in at its place.
    fn lock(&self, py: Python<'_>, contended: &dyn Fn()) -> PyResult<HandleGuard<'_, T>> {
        self.lock_for(py, contended, false)
    }

    /// `lock`, for a call that may block (see `try_take`).
    fn lock_for(
        &self,
        py: Python<'_>,
        contended: &dyn Fn(),
        blocking: bool,
    ) -> PyResult<HandleGuard<'_, T>> {
        let me = this_thread();
        let mut kicked = false;
        let mut my_ticket = None;
        loop {
            let ticket = {
                let mut st = relock(&self.gate.state);
                if st.try_take(me, blocking).map_err(|e| to_py(py, e))? {
                    break;
                }
                let t = *my_ticket.get_or_insert_with(|| {
                    st.next_ticket += 1;
                    st.next_ticket
                });
                // Tickets only grow, so the queue is sorted: this is first-come order.
                let at = st.queue.partition_point(|&q| q < t);
                st.queue.insert(at, t);
                t
            };
            if !kicked {
                contended();
                kicked = true;
            }
            let gate = &self.gate;
            if py.detach(|| gate.wait_turn(ticket, me)) {
                break;
            }
            // Out of the queue: a handler may use this handle (e.g. close it) without waiting
            // behind this very thread.
            py.check_signals()?;
        }
        Ok(HandleGuard {
            value: relock(&self.value),
            _turn: Turn(&self.gate),
        })
    }

    /// Marks the calling thread, which holds the lock (taken by `lock_for(.., true)`), as
    /// inside a blocking call on the handle until the mark drops: from then on, a blocking call
    /// its signal handlers make on the handle is refused (`try_take`).
    fn mark_wait(&self) -> WaitMark<'_> {
        let me = this_thread();
        relock(&self.gate.state).in_wait.push(me);
        WaitMark(&self.gate, me)
    }
}

impl Gate {
    /// Waits (at most `LOCK_SLICE`) until the lock is handed to `ticket`, and takes it. On
    /// timeout, leaves the queue and returns false.
    fn wait_turn(&self, ticket: u64, me: ThreadId) -> bool {
        let deadline = Instant::now() + LOCK_SLICE;
        let mut st = relock(&self.state);
        loop {
            if st.owner == Owner::Granted(ticket) {
                st.owner = Owner::Held(me);
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                st.queue.retain(|&t| t != ticket);
                return false;
            }
            st = self
                .turn
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Gives the lock back: to the first waiter, if any.
    fn release(&self) {
        let mut st = relock(&self.state);
        match st.queue.pop_front() {
            Some(t) => {
                st.owner = Owner::Granted(t);
                drop(st);
                self.turn.notify_all();
            }
            None => st.owner = Owner::Free,
        }
    }
}

/// Exclusive access to a `HandleLock` value. The fields drop in order: the value's mutex
/// first, then the gate lets the next thread in.
struct HandleGuard<'a, T> {
    value: MutexGuard<'a, T>,
    _turn: Turn<'a>,
}

struct Turn<'a>(&'a Gate);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl<T> Deref for HandleGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for HandleGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

/// A thread's mark of being inside a blocking call on a handle (see `begin_wait`).
struct WaitMark<'a>(&'a Gate, ThreadId);

impl Drop for WaitMark<'_> {
    fn drop(&mut self) {
        relock(&self.0.state).in_wait.retain(|&t| t != self.1);
    }
}

/// Locks a lock whose holders never need waking up to give it back (short calls only).
fn lock<'a, T>(py: Python<'_>, m: &'a HandleLock<T>) -> PyResult<HandleGuard<'a, T>> {
    m.lock(py, &|| {})
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
    state: HandleLock<T>,
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
            state: HandleLock::new(state),
            pid: current_pid(),
            cancel,
        }
    }

    fn forked(&self) -> bool {
        self.pid != current_pid()
    }
}

/// Locks a handle's state, refusing a handle inherited through `fork()`.
fn lock_handle<'a, T>(py: Python<'_>, h: &'a Handle<T>) -> PyResult<HandleGuard<'a, T>> {
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
fn close_lock<'a, T>(py: Python<'_>, h: &'a Handle<T>) -> PyResult<Option<HandleGuard<'a, T>>> {
    if h.forked() {
        return Ok(None);
    }
    h.state.lock(py, &|| h.cancel.cancel()).map(Some)
}

/// A queue handle's state, as `wait_call` needs it.
trait QueueState: Send {
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
fn closed_error(what: &str) -> Error {
    Error::InvalidArgument(format!("I/O operation on a closed {what}"))
}

/// Runs a blocking call `op` on a queue handle's state: first without waiting, with the GIL
/// held; if it would block and `timeout` allows a wait, again with the GIL released, for the
/// rest of the timeout, holding the handle's lock. A wait that a signal interrupts gives the
/// lock back, runs Python's signal handlers (so Ctrl-C raises KeyboardInterrupt, and a handler
/// may use or close the handle), takes the lock again and resumes; if the handle was closed
/// meanwhile, raises `Closed`. Returns the lock with the result, for the caller to finish the
/// call. The outer result carries Python exceptions, the inner one the core's.
fn wait_call<'a, S, T, F>(
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

impl QueueState for ProducerState {
    const WHAT: &'static str = "producer";
    fn is_open(&self) -> bool {
        self.producer.is_some()
    }
}

impl ProducerState {
    fn producer(&mut self) -> Result<&mut Producer, Error> {
        self.producer
            .as_mut()
            .ok_or_else(|| closed_error(Self::WHAT))
    }
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

    /// The open consumer, for `wait_call` (after `prepare`).
    fn open_consumer(&mut self) -> Result<&mut Consumer, Error> {
        self.consumer
            .as_mut()
            .ok_or_else(|| closed_error(Self::WHAT))
    }

    fn peek(&self, py: Python<'_>) -> PyResult<&Consumer> {
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
struct PyConsumer {
    state: Handle<ConsumerState>,
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
        let timeout = timeout_arg(py, timeout)?;
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
            view: HandleLock::new(None),
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
    view: HandleLock<Option<Py<PyAny>>>,
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
    r.overlaps_mapping(ptr as *const u8, len)
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

/// The token of the poller's internal wake-up socket (`Kick`), refused in `register`,
/// `modify` and `waker`.
const KICK_TOKEN: u64 = u64::MAX;

/// How long one wait of a poller without a kick socket lasts at most: another thread's
/// `register` (or `close`) waits at most this for its turn.
const KICKLESS_SLICE: Duration = Duration::from_millis(20);

/// The message for a poller used in a forked child.
const POLLER_FORKED: &str = "this poller (or waker) was created by the parent process: pollers \
                             do not survive fork(); create one in the child";

/// The poller's wake-up socket pair: a thread that wants the lock while another waits in
/// `poll` writes a byte, the wait returns, gives the lock back (to the first in the queue),
/// takes it again and waits on with whatever was changed meanwhile.
struct Kick {
    tx: UnixStream,
    rx: UnixStream,
}

impl Kick {
    fn new(p: &mut poll::Poller) -> Option<Kick> {
        let (tx, rx) = UnixStream::pair().ok()?;
        tx.set_nonblocking(true).ok()?;
        rx.set_nonblocking(true).ok()?;
        p.register(rx.as_raw_fd(), KICK_TOKEN, poll::Interest::READABLE)
            .ok()?;
        Some(Kick { tx, rx })
    }

    fn kick(&self) {
        // A full socket buffer already holds a kick.
        let _ = (&self.tx).write(&[1]);
    }

    fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.rx).read(&mut buf), Ok(n) if n > 0) {}
    }
}

struct PollerState {
    poller: Option<poll::Poller>,
}

/// An event poller over one backend: "auto" (epoll), "select", "poll", "epoll", "epoll-et",
/// "rtsig", "rtsig-onefd".
#[pyclass(module = "shmio._shmio", name = "Poller", frozen)]
struct PyPoller {
    /// Declared before `kick`: the core poller goes first, while the kick socket it watches
    /// is still open.
    state: HandleLock<PollerState>,
    /// `None` if the socket could not be made or registered (e.g. its fd is too large for
    /// `select`): then `poll` waits in slices of `KICKLESS_SLICE`.
    kick: Option<Kick>,
    /// The process that created the poller: in a forked child it is inert (see `check`).
    pid: u32,
    backend: poll::Backend,
    capacity: usize,
}

impl Drop for PyPoller {
    fn drop(&mut self) {
        if self.pid != current_pid() {
            // A forked child must not drop the parent's core poller: the RT-signal backends
            // would restore the flags of (and clear O_ASYNC on) open files it shares with the
            // parent. Its descriptors stay open in the child until it exits. `get_mut` needs no
            // locking (nothing else can reach the value) even if the parent's thread held the
            // lock at the fork.
            let st = self
                .state
                .value
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::forget(st.poller.take());
        }
    }
}

impl PyPoller {
    /// Refuses a poller inherited through `fork()`: checked before the lock, which a thread of
    /// the parent may have held at the fork.
    fn check(&self, py: Python<'_>) -> PyResult<()> {
        if self.pid != current_pid() {
            return Err(invalid(py, POLLER_FORKED));
        }
        Ok(())
    }

    /// Locks the state, waking a thread that waits in `poll` so that it gives the lock back.
    fn lock(&self, py: Python<'_>) -> PyResult<HandleGuard<'_, PollerState>> {
        self.check(py)?;
        self.state.lock(py, &|| {
            if let Some(k) = &self.kick {
                k.kick();
            }
        })
    }

    /// Runs `f` on the open poller with `fd` converted (an int or an object with `fileno()`).
    fn with_fd(
        &self,
        py: Python<'_>,
        fd: &Bound<'_, PyAny>,
        f: impl FnOnce(&mut poll::Poller, std::os::fd::RawFd) -> Result<(), poll::Error>,
    ) -> PyResult<()> {
        let fd = fd_arg(fd)?;
        let mut g = self.lock(py)?;
        let p = g
            .poller
            .as_mut()
            .ok_or_else(|| closed_handle(py, "poller"))?;
        f(p, fd).map_err(|e| to_py(py, e))
    }
}

fn token_arg(py: Python<'_>, token: u64) -> PyResult<u64> {
    if token == KICK_TOKEN {
        return Err(invalid(
            py,
            "token 2**64-1 is reserved (the poller's internal wake-up uses it)",
        ));
    }
    Ok(token)
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
        let mut p = poll::Poller::new(b).map_err(|e| to_py(py, e))?;
        let kick = Kick::new(&mut p);
        Ok(PyPoller {
            backend: p.backend(),
            state: HandleLock::new(PollerState { poller: Some(p) }),
            kick,
            pid: current_pid(),
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
        let token = token_arg(py, token)?;
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
        let token = token_arg(py, token)?;
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
    /// `shmio.Event(token, readable, writable, hangup, error)` named tuples ([] on timeout).
    /// Releases the GIL; Ctrl-C raises KeyboardInterrupt. Other threads' calls on the poller
    /// (`register`, `close`, ...) wake the wait, run, and the wait goes on with their changes.
    #[pyo3(signature = (timeout=None))]
    fn poll<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyList>> {
        let timeout = timeout_arg(py, timeout)?;
        self.check(py)?;
        let mut mark = None;
        // A kick's event takes one of the `capacity`: the events it crowds out come next wait.
        let mut events = poll::Events::with_capacity(self.capacity);
        let mut out: Vec<poll::Event> = Vec::new();
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut first = true;
        let mut retried = false;
        loop {
            // Signal handlers run without the lock: they may use the poller, or close it.
            py.check_signals()?;
            // No kick for this thread's own turn: whoever holds the lock is not waiting.
            let mut g = self.state.lock_for(py, &|| {}, first)?;
            let Some(p) = g.poller.as_mut() else {
                return Err(if first {
                    closed_handle(py, "poller")
                } else {
                    to_py(py, Error::Cancelled)
                });
            };
            first = false;
            let left = match (timeout, deadline) {
                (Some(_), Some(d)) => Some(d.saturating_duration_since(Instant::now())),
                (Some(t), None) if t.is_zero() => Some(Duration::ZERO),
                _ => None,
            };
            let slice = match (&self.kick, left) {
                (Some(_), _) => left,
                (None, Some(l)) => Some(l.min(KICKLESS_SLICE)),
                (None, None) => Some(KICKLESS_SLICE),
            };
            // RT-signal pollers must wait in their creating thread: `detach` runs the wait in
            // this same thread, only without the GIL.
            match py.detach(|| p.wait(&mut events, slice)) {
                Ok(_) => {
                    let mut kicked = false;
                    for ev in events.iter() {
                        if ev.token == KICK_TOKEN {
                            kicked = true;
                        } else {
                            out.push(*ev);
                        }
                    }
                    if kicked {
                        if let Some(k) = &self.kick {
                            k.drain();
                        }
                    }
                    // Done with events, or with the time; else it was another thread's kick
                    // (or a kickless slice): give it the lock, then wait on. A kick that took
                    // the only slot of a last, zero wait gets that wait one retry.
                    let out_of_time = left == Some(Duration::ZERO) && (!kicked || retried);
                    if !out.is_empty() || out_of_time || (!kicked && slice == left) {
                        break;
                    }
                    retried |= left == Some(Duration::ZERO);
                }
                Err(poll::Error::Interrupted) if left == Some(Duration::ZERO) => {
                    drop(g);
                    py.check_signals()?;
                    break;
                }
                Err(poll::Error::Interrupted) => {}
                Err(e) => return Err(to_py(py, e)),
            }
            // Waiting on: from now on a second `poll` from a signal handler is refused.
            if mark.is_none() {
                mark = Some(self.state.mark_wait());
            }
        }
        drop(mark);
        let event = EVENT
            .get_or_try_init(py, || {
                py.import("shmio._event")
                    .and_then(|m| m.getattr("Event"))
                    .map(Bound::unbind)
            })?
            .bind(py);
        let list = PyList::empty(py);
        for ev in &out {
            list.append(event.call1((ev.token, ev.readable, ev.writable, ev.hangup, ev.error))?)?;
        }
        Ok(list)
    }

    /// A waker: `wake()` from any thread makes `poll` return an event with `token`. A poller
    /// has one waker: asking again with the same token gives another handle to it, another
    /// token raises `WakerExists`.
    fn waker(&self, py: Python<'_>, token: u64) -> PyResult<PyWaker> {
        let token = token_arg(py, token)?;
        let mut g = self.lock(py)?;
        let p = g
            .poller
            .as_mut()
            .ok_or_else(|| closed_handle(py, "poller"))?;
        let w = poll::Waker::new(p, token).map_err(|e| to_py(py, e))?;
        Ok(PyWaker {
            waker: w,
            token,
            pid: self.pid,
        })
    }

    /// Counters: waits, events, syscalls, overflows, signals, stale_signals,
    /// max_signals_per_fd (the poller's internal wake-ups included).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let g = self.lock(py)?;
        let p = g
            .poller
            .as_ref()
            .ok_or_else(|| closed_handle(py, "poller"))?;
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
        Ok(self.lock(py)?.poller.is_none())
    }

    /// Releases the poller's descriptors. A `poll` waiting in another thread (or interrupted
    /// by the signal handler that calls this) raises `Closed`. Idempotent; in a forked child,
    /// does nothing (the poller belongs to the parent).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.pid != current_pid() {
            return Ok(());
        }
        // Wakes a waiting `poll`, which gives the lock back before this drops the poller.
        let p = self.lock(py)?.poller.take();
        py.detach(move || drop(p));
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
    /// The process that made it: in a forked child, `wake` would wake the parent's poller.
    pid: u32,
}

#[pymethods]
impl PyWaker {
    /// Makes the poller's current or next `poll` return with this waker's token.
    fn wake(&self, py: Python<'_>) -> PyResult<()> {
        if self.pid != current_pid() {
            return Err(invalid(py, POLLER_FORKED));
        }
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
