//! `Poller` and `Waker`: event polling over one backend, its wake-up (kick) socket and the
//! `Event` tuples it returns.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{IntoPyDict, PyDict, PyList};

use shmio::poll;
use shmio::queue::Error;

use shmio::fork::Origin;

use crate::errors::{closed_handle, invalid, to_py};
use crate::glue::{HandleGuard, HandleLock, Unsigned, timeout_arg};

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
pub(crate) struct PyPoller {
    /// Declared before `kick`: the core poller goes first, while the kick socket it watches
    /// is still open.
    state: HandleLock<PollerState>,
    /// `None` if the socket could not be made or registered (e.g. its fd is too large for
    /// `select`): then `poll` waits in slices of `KICKLESS_SLICE`.
    kick: Option<Kick>,
    /// The process that created the core poller: in a forked child it is inert (see `check`).
    origin: Origin,
    backend: poll::Backend,
    capacity: usize,
}

impl PyPoller {
    /// Refuses a poller inherited through `fork()` (as the core does, `shmio::fork`): checked
    /// before the lock, which a thread of the parent may have held at the fork. (Dropping an
    /// inherited poller is harmless: the core's drop leaves the parent's files alone.)
    fn check(&self, py: Python<'_>) -> PyResult<()> {
        if self.origin.is_inherited() {
            return Err(to_py(py, poll::Error::Forked));
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
        f: impl FnOnce(&mut poll::Poller, RawFd) -> poll::Result<()>,
    ) -> PyResult<()> {
        let fd = fd_arg(fd)?;
        let mut g = self.lock(py)?;
        let p = g
            .poller
            .as_mut()
            .ok_or_else(|| closed_handle(py, "poller"))?;
        f(p, fd).map_err(|e| to_py(py, e))
    }

    /// `register` or `modify` (`op`): the token checked, then `fd` converted (see `with_fd`).
    fn watch(
        &self,
        py: Python<'_>,
        fd: &Bound<'_, PyAny>,
        token: Unsigned,
        interest: poll::Interest,
        op: fn(&mut poll::Poller, RawFd, u64, poll::Interest) -> poll::Result<()>,
    ) -> PyResult<()> {
        let token = token_arg(py, token)?;
        self.with_fd(py, fd, |p, fd| op(p, fd, token, interest))
    }
}

fn interest(readable: bool, writable: bool, oneshot: bool) -> poll::Interest {
    poll::Interest {
        readable,
        writable,
        oneshot,
    }
}

fn token_arg(py: Python<'_>, token: Unsigned) -> PyResult<u64> {
    let Unsigned(token) = token;
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
            origin: p.origin(),
            state: HandleLock::new(PollerState { poller: Some(p) }),
            kick,
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
        token: Unsigned,
        readable: bool,
        writable: bool,
        oneshot: bool,
    ) -> PyResult<()> {
        let interest = interest(readable, writable, oneshot);
        self.watch(py, fd, token, interest, poll::Poller::register)
    }

    /// Changes the token and interest of a registered fd (and re-arms a oneshot one).
    #[pyo3(signature = (fd, token, readable=true, writable=false, oneshot=false))]
    fn modify(
        &self,
        py: Python<'_>,
        fd: &Bound<'_, PyAny>,
        token: Unsigned,
        readable: bool,
        writable: bool,
        oneshot: bool,
    ) -> PyResult<()> {
        let interest = interest(readable, writable, oneshot);
        self.watch(py, fd, token, interest, poll::Poller::modify)
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
    fn waker(&self, py: Python<'_>, token: Unsigned) -> PyResult<PyWaker> {
        let token = token_arg(py, token)?;
        let mut g = self.lock(py)?;
        let p = g
            .poller
            .as_mut()
            .ok_or_else(|| closed_handle(py, "poller"))?;
        let w = poll::Waker::new(p, token).map_err(|e| to_py(py, e))?;
        Ok(PyWaker { waker: w, token })
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
        [
            ("waits", s.waits),
            ("events", s.events),
            ("syscalls", s.syscalls),
            ("overflows", s.overflows),
            ("signals", s.signals),
            ("stale_signals", s.stale_signals),
            ("max_signals_per_fd", s.max_signals_per_fd),
        ]
        .into_py_dict(py)
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.lock(py)?.poller.is_none())
    }

    /// Releases the poller's descriptors. A `poll` waiting in another thread (or interrupted
    /// by the signal handler that calls this) raises `Closed`. Idempotent; in a forked child,
    /// does nothing (the poller belongs to the parent).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.origin.is_inherited() {
            return Ok(());
        }
        // Wakes a waiting `poll`, which gives the lock back before this drops the poller.
        let p = self.lock(py)?.poller.take();
        py.detach(move || drop(p));
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("<shmio.Poller backend={}>", self.backend.name())
    }
}

crate::glue::closing_context_manager!(PyPoller);

/// Wakes a poller from any thread.
#[pyclass(module = "shmio._shmio", name = "Waker", frozen)]
pub(crate) struct PyWaker {
    waker: poll::Waker,
    token: u64,
}

#[pymethods]
impl PyWaker {
    /// Makes the poller's current or next `poll` return with this waker's token.
    fn wake(&self, py: Python<'_>) -> PyResult<()> {
        // In a forked child the core refuses (it would wake the parent's poller).
        self.waker.wake().map_err(|e| to_py(py, e))
    }

    #[getter]
    fn token(&self) -> u64 {
        self.token
    }
}
