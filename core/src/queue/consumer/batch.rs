//! Receiving a batch of records with one wait and one release.

use std::mem::MaybeUninit;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Consumer;
use crate::queue::wait::Deadline;
use crate::queue::{Error, Result};

impl Consumer {
    /// Receives up to `lens.len()` records into `buf`, back to back: record `i` is `lens[i]`
    /// bytes long and follows record `i - 1`. Waits (up to `timeout`, `None`: no limit) only
    /// for the first record; takes the others only if they are already committed and fit in
    /// what is left of `buf`. Returns how many were received (at least 1).
    ///
    /// The consumer's position is published once, after the batch: a back-pressure producer
    /// sees the whole batch released at once, and is woken (if it sleeps for space) once.
    ///
    /// Fails as [`recv_for`](Self::recv_for) does when no record was received: with
    /// [`Error::BufferTooSmall`] if the first record does not fit in `buf`, with
    /// [`Error::InvalidArgument`] if `lens` is empty. A failure after the first record (the
    /// producer gone, a record torn by a rewrite) ends the batch instead: the next call
    /// reports it.
    pub fn recv_many(
        &mut self,
        buf: &mut [u8],
        lens: &mut [usize],
        timeout: Option<Duration>,
    ) -> Result<usize> {
        // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and the callee only
        // writes initialised bytes into it.
        let buf = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
        self.recv_many_uninit(buf, lens, timeout)
    }

    /// Like [`recv_many`](Self::recv_many) into a buffer that need not be initialised (as a C
    /// caller's). On success the first `lens[..n].sum()` bytes are initialised.
    pub fn recv_many_uninit(
        &mut self,
        buf: &mut [MaybeUninit<u8>],
        lens: &mut [usize],
        timeout: Option<Duration>,
    ) -> Result<usize> {
        self.usable()?;
        if self.pending.is_some() {
            return Err(Error::InvalidArgument(
                "a zero-copy read is open: release it first".into(),
            ));
        }
        if lens.is_empty() {
            return Err(Error::InvalidArgument(
                "no room for any record: `lens` is empty".into(),
            ));
        }
        let res = self.recv_one(buf, &Deadline::after(timeout), false);
        let mut at = match res {
            Ok((_, len)) => len,
            Err(e) => {
                // A resume after an overrun may have moved the cursor: keep it published.
                self.publish_position();
                return Err(e);
            }
        };
        lens[0] = at;
        let mut n = 1;
        while n < lens.len() {
            match self.recv_one(&mut buf[at..], &Deadline::Now, false) {
                Ok((_, len)) => {
                    lens[n] = len;
                    at += len;
                    n += 1;
                }
                // Nothing more now, no room left, or news for the next call.
                Err(_) => break,
            }
        }
        self.publish_position();
        Ok(n)
    }

    /// Publishes the cursor and the received count (after records taken without publishing).
    pub(super) fn publish_position(&mut self) {
        self.me().received.store(self.received, Ordering::Relaxed);
        self.set_cursor(self.cursor);
    }
}
