//! The region's sequence lock, as a protocol: the orderings of every step, and nothing else.
//!
//! Writers are serialised by the region's writer lock; readers take no lock. One 32-bit
//! counter in the file, even while no write is in progress:
//!
//! - writer: [`begin_write`] (counter odd, then a release fence, so that a reader that sees any
//!   byte of the new data also sees the odd counter), the data stores, [`end_write`] (counter
//!   even again, a release store after the data);
//! - reader: [`read_begin`] (an acquire load; odd means a write is in progress: retry or wait),
//!   the data loads, [`read_valid`] (an acquire fence, then the counter again: unchanged means
//!   no write overlapped the loads, so they are one consistent state);
//! - repair, by whoever takes the lock after a writer died mid-write: [`end_repair`] turns the
//!   counter even again once the torn range is recorded.
//!
//! The data loads and stores are atomic (relaxed words, or the byte-wise atomic copies of
//! `crate::racy`), so racing them is not undefined behaviour; the counter decides what is kept.
//! These are the functions `Region` calls; under `--cfg loom` they run on loom's atomics in
//! the model (`crate::loom::region`), which checks that no accepted read mixes two writes.
//!
//! # References
//! - Hans-J. Boehm, "Can Seqlocks Get Along With Programming Language Memory Models?" (2012)

use crate::sync::{AtomicU32, Ordering, fence};

/// Writer, lock held: marks a write in progress. Returns the (even) value it started from,
/// for [`end_write`]. An odd value found here was left by a dead writer and is repaired before
/// any write (`Region::lock`), so the caller always starts from an even counter.
#[inline]
pub(crate) fn begin_write(seq: &AtomicU32) -> u32 {
    let start = seq.load(Ordering::Relaxed);
    seq.store(start.wrapping_add(1), Ordering::Relaxed);
    // Orders the odd counter before every data store that follows.
    fence(Ordering::Release);
    start
}

/// Writer: the write is complete; readers that saw `start` and read during it will fail
/// [`read_valid`].
#[inline]
pub(crate) fn end_write(seq: &AtomicU32, start: u32) {
    seq.store(start.wrapping_add(2), Ordering::Release);
}

/// Repairer, lock held, the counter found odd (`odd`): the dead writer's range is recorded as
/// torn; the counter turns even.
#[inline]
pub(crate) fn end_repair(seq: &AtomicU32, odd: u32) {
    seq.store(odd.wrapping_add(1), Ordering::Release);
}

/// Reader: the counter before the data loads, or `None` while a write is in progress.
#[inline]
pub(crate) fn read_begin(seq: &AtomicU32) -> Option<u32> {
    let s = seq.load(Ordering::Acquire);
    (s & 1 == 0).then_some(s)
}

/// Reader, after the data loads: whether they saw one consistent state (no write since
/// `begun`, the value [`read_begin`] returned).
#[inline]
pub(crate) fn read_valid(seq: &AtomicU32, begun: u32) -> bool {
    // Orders the data loads before the second counter load.
    fence(Ordering::Acquire);
    seq.load(Ordering::Relaxed) == begun
}
