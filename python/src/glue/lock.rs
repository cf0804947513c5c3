//! The handle lock (`HandleLock`): fair, holder-aware and fork-aware (a forked child tells an
//! inherited lock apart by the core's `shmio::fork::Origin`).

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use shmio::fork::Origin;

use crate::errors::to_py;

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
pub(crate) struct HandleLock<T> {
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
    origin: Origin,
    owner: Owner,
    /// Tickets of the waiting threads, first come first served.
    queue: VecDeque<u64>,
    next_ticket: u64,
    /// Threads inside a blocking call on the handle (which may give the lock back meanwhile).
    in_wait: Vec<ThreadId>,
}

/// Why a handle's lock was refused.
pub(crate) enum LockError {
    /// The calling thread holds the lock already, or is inside a blocking call on the handle.
    Reentrant,
    /// The lock was held or waited for by a thread of the parent process at `fork()`.
    Forked,
}

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
        if !self.origin.is_inherited() {
            return Ok(());
        }
        if self.owner != Owner::Free || !self.queue.is_empty() || !self.in_wait.is_empty() {
            return Err(LockError::Forked);
        }
        self.origin = Origin::current();
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
    pub(crate) fn new(value: T) -> HandleLock<T> {
        HandleLock {
            gate: Gate {
                state: Mutex::new(GateState {
                    origin: Origin::current(),
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
    pub(crate) fn lock(
        &self,
        py: Python<'_>,
        contended: &dyn Fn(),
    ) -> PyResult<HandleGuard<'_, T>> {
        self.lock_for(py, contended, false)
    }

    /// `lock`, for a call that may block (see `try_take`).
    pub(crate) fn lock_for(
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
    pub(crate) fn mark_wait(&self) -> WaitMark<'_> {
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
pub(crate) struct HandleGuard<'a, T> {
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
pub(crate) struct WaitMark<'a>(&'a Gate, ThreadId);

impl Drop for WaitMark<'_> {
    fn drop(&mut self) {
        relock(&self.0.state).in_wait.retain(|&t| t != self.1);
    }
}

/// Locks a lock whose holders never need waking up to give it back (short calls only).
pub(crate) fn lock<'a, T>(py: Python<'_>, m: &'a HandleLock<T>) -> PyResult<HandleGuard<'a, T>> {
    m.lock(py, &|| {})
}
