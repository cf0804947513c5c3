//! shmio: shared-memory IPC for multi-process middleware on Linux.
//!
//! - [`queue`]: a broadcast ring in shared memory, one producer and many consumer processes,
//!   zero copy, blocking waits without spinning, crash detection.
//! - [`poll`]: one event poller over select, poll, epoll (level/edge) and real-time signals
//!   (with overflow recovery, and with signal-per-fd semantics).
//! - [`tqueue`]: the in-process hand-off queue (`TQueue`) that separates a module's input
//!   thread from its processing threads.
//!
//! Linux only. Raw system calls live in one private module (`sys`), each unsafe block with the
//! reason it holds.

#![cfg_attr(loom, allow(dead_code, unused_imports))]

#[cfg(not(loom))]
pub mod poll;
#[cfg(not(loom))]
pub mod queue;
#[cfg(loom)]
pub mod queue {
    //! Under `--cfg loom` only the ring protocol is built, for the model checker.
    pub(crate) mod ring;
}
pub(crate) mod sync;
#[cfg(not(loom))]
pub(crate) mod sys;
#[cfg(not(loom))]
pub mod tqueue;

#[cfg(loom)]
#[doc(hidden)]
pub mod loom_model;

/// The library version, `MAJOR.MINOR.PATCH`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
