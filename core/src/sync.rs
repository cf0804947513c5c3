//! Atomics facade: `std` in normal builds, `loom` under `--cfg loom`, so the ring protocol in
//! [`crate::queue::ring`] is model-checked on heap memory with the very code the queue runs.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
