//! Zero-copy reads: the record read in place ([`ReadGuard`]) and its release.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Consumer;
use crate::queue::ring;
use crate::queue::wait::Deadline;
use crate::queue::{Error, Policy, Result};
use crate::racy::RacyBytes;

impl Consumer {
    /// Reads the next record in place, waiting as long as needed. See [`ReadGuard`].
    pub fn read(&mut self) -> Result<ReadGuard<'_>> {
        self.read_for(None)
    }

    /// Like [`read`](Self::read) but fails with [`Error::WouldBlock`] instead of waiting.
    pub fn try_read(&mut self) -> Result<ReadGuard<'_>> {
        self.read_for(Some(Duration::ZERO))
    }

    /// Like [`read`](Self::read), waiting at most `timeout`.
    pub fn read_for(&mut self, timeout: Option<Duration>) -> Result<ReadGuard<'_>> {
        let (seq, ptr, len) = self.read_raw(timeout)?;
        Ok(ReadGuard {
            consumer: self,
            seq,
            ptr,
            len,
        })
    }

    /// Binding-level zero-copy read: the record's sequence number, payload pointer and length.
    /// The memory stays readable until [`release_raw`](Self::release_raw); in overwrite mode it
    /// may be overwritten meanwhile, which `release_raw` reports.
    pub fn read_raw(&mut self, timeout: Option<Duration>) -> Result<(u64, *const u8, usize)> {
        self.usable()?;
        if self.pending.is_some() {
            return Err(Error::InvalidArgument(
                "a zero-copy read is open: release it first".into(),
            ));
        }
        let (seq, ptr, len) = self.next_record(&Deadline::after(timeout), &mut 0)?;
        self.pending = Some(seq);
        Ok((seq, ptr, len))
    }

    /// Ends the open zero-copy read and moves past the record. In back-pressure mode this frees
    /// the slot for the producer. In overwrite mode, fails with [`Error::Overrun`] if the record
    /// was overwritten while it was read (it then counts as lost).
    pub fn release_raw(&mut self) -> Result<()> {
        self.usable()?;
        let Some(seq) = self.pending.take() else {
            return Err(Error::InvalidArgument("no zero-copy read is open".into()));
        };
        let (slot, _) = self.shared.slot(seq);
        let valid = ring::still_valid(&slot.stamp, seq);
        if valid {
            self.advance(seq + 1);
            Ok(())
        } else {
            self.lost += 1;
            self.me().lost.store(self.lost, Ordering::Relaxed);
            self.set_cursor(seq + 1);
            Err(Error::Overrun)
        }
    }
}

/// A record read in place: [`bytes`](Self::bytes) views the slot itself, no copy.
///
/// In back-pressure mode the slot is the consumer's until the guard is released: the bytes are
/// stable and [`data`](Self::data) borrows them as a `&[u8]`. In overwrite mode the producer
/// may rewrite the slot while it is read, so the bytes can change under the view: `data`
/// refuses, and [`bytes`](Self::bytes) gives a [`RacyBytes`] view whose copies are atomic;
/// trust what you copied only once [`release`](Self::release) returns `Ok` (it reports
/// [`Error::Overrun`] if the slot was rewritten meanwhile). Dropping the guard releases it,
/// ignoring the verdict.
pub struct ReadGuard<'a> {
    consumer: &'a mut Consumer,
    seq: u64,
    ptr: *const u8,
    len: usize,
}

impl ReadGuard<'_> {
    /// The record's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The record's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the record is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The record's bytes in the shared mapping, as a view that tolerates a concurrent
    /// rewrite (any mode).
    pub fn bytes(&self) -> RacyBytes<'_> {
        // SAFETY: `ptr..ptr+len` lies in a slot's payload inside the mapping kept alive by the
        // consumer we borrow (`len` was checked against the slot size).
        unsafe { RacyBytes::from_raw_parts(self.ptr, self.len) }
    }

    /// The record's bytes borrowed in place, in a back-pressure queue (where no producer
    /// rewrites a slot before its consumers release it). Fails with
    /// [`Error::InvalidArgument`] in overwrite mode: use [`bytes`](Self::bytes) there.
    pub fn data(&self) -> Result<&[u8]> {
        if self.consumer.shared.layout.policy != Policy::BackPressure {
            return Err(Error::InvalidArgument(
                "overwrite mode: the producer may rewrite the slot while it is borrowed; \
                 use ReadGuard::bytes()"
                    .into(),
            ));
        }
        // SAFETY: the view is valid (see `bytes`), and in back-pressure mode the producer
        // keeps to the protocol's rule that a slot is not rewritten before every attached
        // consumer released it, so nothing writes it while the guard (and the borrow) lives.
        // A peer that breaks the protocol is the caveat of every shared mapping.
        Ok(unsafe { self.bytes().as_slice() })
    }

    /// Moves past the record; see [`Consumer::release_raw`].
    pub fn release(self) -> Result<()> {
        let mut this = std::mem::ManuallyDrop::new(self);
        this.consumer.release_raw()
    }
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        let _ = self.consumer.release_raw();
    }
}
