//! Ending another thread's wait on a handle.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys::futex;

/// Ends the waits of a [`Producer`](super::Producer) or [`Consumer`](super::Consumer) from
/// another thread: a thread blocked in `recv`, `read`, `wait_producer`, a back-pressure `send`
/// or `reserve`, or `wait_consumers` returns [`Error::Cancelled`](super::Error::Cancelled)
/// within microseconds, and so does every later wait on that handle. Meant for closing a
/// handle that another thread is blocked on (the Python bindings' `close()` uses it); calls that
/// do not wait keep working.
///
/// Obtained with `canceller()` on the handle; cheap to clone, `Send` and `Sync`.
#[derive(Debug, Clone)]
pub struct Canceller(pub(crate) Arc<AtomicU32>);

impl Canceller {
    pub(crate) fn new() -> Canceller {
        Canceller(Arc::new(AtomicU32::new(0)))
    }

    /// Cancels every current and future wait on the handle.
    pub fn cancel(&self) {
        self.0.store(1, Ordering::SeqCst);
        futex::wake_all(&self.0);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst) != 0
    }

    /// The word and the value it has while not cancelled, for a futex wait.
    pub(crate) fn word(&self) -> (&AtomicU32, u32) {
        (&self.0, 0)
    }
}
