//! The writer lock: taking it (and repairing what a dead holder left), releasing it, and
//! waking the change waiters a write or repair concerns.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::layout::hull;
use super::{Error, Region, Result, seqlock};
use crate::sys::futex;
use crate::sys::rlock::{self, Locked};

std::thread_local! {
    /// Regions (by file identity) whose writer lock this thread holds.
    static HELD: std::cell::RefCell<Vec<(u64, u64)>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Region {
    /// Takes the writer lock, repairing what a dead holder left.
    pub(super) fn lock(&self) -> Result<LockGuard<'_>> {
        self.lock_within(None)
    }

    /// Takes the writer lock, giving up with [`Error::Timeout`] after `timeout` (if any).
    pub(super) fn lock_within(&self, timeout: Option<Duration>) -> Result<LockGuard<'_>> {
        if HELD.with(|h| h.borrow().contains(&self.id)) {
            return Err(Error::InvalidArgument(
                "this thread already holds the region's writer lock (a call from inside \
                 write_with)"
                    .into(),
            ));
        }
        let deadline = timeout.map(crate::sys::time::deadline_after);
        let (held, how) = self.lock.lock(deadline.as_ref()).map_err(|e| match e {
            rlock::LockError::Timeout => Error::Timeout,
            rlock::LockError::Io(e) => Error::io("spawn lock keeper thread", None, e),
        })?;
        HELD.with(|h| h.borrow_mut().push(self.id));
        let g = LockGuard {
            r: self,
            held: Some(held),
        };
        // With the lock held no write is in progress, so an odd counter was left by a holder
        // that died (the kernel marked the word) or by a peer that scribbled it (no mark): the
        // same repair either way, or every reader would spin on it for ever.
        if how == Locked::OwnerDied || self.header().seq.0.seq.load(Ordering::Relaxed) & 1 == 1 {
            self.repair();
        }
        Ok(g)
    }

    /// With the lock held: if a write was in progress (the counter is odd), its range becomes
    /// torn and the counter is released.
    pub(super) fn repair(&self) {
        let s = &self.header().seq.0;
        let seq = s.seq.load(Ordering::Relaxed);
        if seq & 1 == 0 {
            return;
        }
        let pending = (
            s.pending_off.load(Ordering::Relaxed),
            s.pending_len.load(Ordering::Relaxed),
        );
        let torn = hull(
            (
                s.torn_off.load(Ordering::Relaxed),
                s.torn_len.load(Ordering::Relaxed),
            ),
            pending,
        );
        // Clamp what we read from the file: a torn range never reaches past the data.
        let torn = if torn.1 != 0 {
            let start = torn.0.min(self.size);
            (start, torn.1.min(self.size - start))
        } else {
            torn
        };
        s.torn_off.store(torn.0, Ordering::Relaxed);
        s.torn_len.store(torn.1, Ordering::Relaxed);
        s.torn_writes.fetch_add(1, Ordering::Relaxed);
        let version = s.version.load(Ordering::Relaxed).wrapping_add(1);
        // The dead writer's bytes changed (partly). On a primary they are a change like any
        // other: a replica receives them, and the torn range with them. On a replica (the
        // writer was its bridge, mid-apply) their generation drops to 0, older than any the
        // primary sends, so that the bridge's next fetch of the range takes them all again.
        if pending.1 != 0 && pending.0 < self.size {
            let pending = (pending.0, pending.1.min(self.size - pending.0));
            if self.is_replica() {
                self.unstamp(pending.0, pending.1);
            } else {
                self.stamp(pending.0, pending.1, version);
            }
        }
        s.version.store(version, Ordering::Relaxed);
        seqlock::end_repair(&s.seq, seq);
        if self.has_waiters() {
            self.wake_waiters();
        }
    }

    /// Whether change waiters are registered. Call with the writer lock held: waiters
    /// register under the same lock, so either a waiter registered before this critical
    /// section (and is counted here) or it takes the lock after it (and sees the new `seq`
    /// and version, so it does not sleep). No memory fence needed on the write path.
    pub(super) fn has_waiters(&self) -> bool {
        self.header().notify.0.waiters.load(Ordering::Relaxed) != 0
    }

    pub(super) fn wake_waiters(&self) {
        futex::wake_all(&self.header().seq.0.seq);
    }
}

/// Holds the writer lock; unlocks on drop.
pub(super) struct LockGuard<'a> {
    r: &'a Region,
    held: Option<rlock::Held<'a>>,
}

impl LockGuard<'_> {
    /// Releases the lock; [`Error::Corrupt`] if another process overwrote the lock word while
    /// we held it (what we wrote stands: it stayed inside the mapping).
    pub(super) fn unlock(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        let id = self.r.id;
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|x| *x == id) {
                h.swap_remove(i);
            }
        });
        held.unlock().map_err(|s| {
            Error::Corrupt(format!(
                "the region's writer lock word was overwritten while held (found {:#x})",
                s.found
            ))
        })
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// Marks the pending write torn if dropped during a panic in a `write_with` closure.
pub(super) struct TornOnUnwind<'a> {
    pub(super) r: &'a Region,
}

impl Drop for TornOnUnwind<'_> {
    fn drop(&mut self) {
        self.r.repair();
    }
}
