//! shmio: shared-memory IPC for multi-process middleware on Linux.
//!
//! - [`queue`]: a broadcast ring in shared memory, one producer and many consumer processes,
//!   zero copy, blocking waits without spinning, crash detection.
//! - [`region`]: a named region mapped by several processes: raw access, torn-read-free
//!   consistent access with a robust writer lock, change notification, explicit durability.
//! - [`vm`]: dirty-page observability: the six `vm.dirty_*` knobs, the thresholds they imply,
//!   system and per-file dirty / writeback pages.
//! - [`poll`]: one event poller over select, poll, epoll (level/edge) and real-time signals
//!   (with overflow recovery, and with signal-per-fd semantics).
//! - [`racy`]: views of and copies from memory another process may write meanwhile.
//! - [`tqueue`]: the in-process hand-off queue (`TQueue`) that separates a module's input
//!   thread from its processing threads.
//! - [`zc`]: zero-copy sending: `sendfile`, `vmsplice` + `splice` through a reused pipe,
//!   `MSG_ZEROCOPY` with completion reaping, and a shared cache of files in a region.
//!
//! Every module has its own error type; they share one vocabulary ([`error`]): a failed system
//! call is an [`IoError`], and every error reports its class as an [`ErrorKind`].
//!
//! Linux only. Raw system calls live in one private module (`sys`), each unsafe block with the
//! reason it holds.

#![warn(missing_docs)]
#![cfg_attr(loom, allow(dead_code, unused_imports, missing_docs))]

#[cfg(not(loom))]
pub mod error;
#[cfg(not(loom))]
pub mod fork;
#[cfg(not(loom))]
pub mod poll;
#[cfg(not(loom))]
pub mod queue;
#[cfg(loom)]
pub mod queue {
    //! Under `--cfg loom` only the ring protocol is built, for the model checker.
    pub(crate) mod ring;
}
#[cfg(not(loom))]
pub mod racy;
#[cfg(not(loom))]
pub mod region;
#[cfg(loom)]
pub mod region {
    //! Under `--cfg loom` only the sequence-lock protocol is built, for the model checker.
    pub(crate) mod seqlock;
}
#[cfg(not(loom))]
pub(crate) mod shm;
pub(crate) mod sync;
#[cfg(not(loom))]
pub(crate) mod sys;
#[cfg(not(loom))]
pub use shm::file::human_bytes;
#[cfg(not(loom))]
pub mod tqueue;
#[cfg(not(loom))]
pub mod vm;
#[cfg(not(loom))]
pub mod zc;

#[cfg(loom)]
#[doc(hidden)]
pub mod loom;

#[cfg(not(loom))]
pub use error::{ErrorKind, IoError};

/// The library version, `MAJOR.MINOR.PATCH`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
