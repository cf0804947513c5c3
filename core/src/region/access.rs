//! Consistent access: writes under the writer lock and the sequence counter, optimistic
//! reads that retry, and the wait for a change.

use std::mem::MaybeUninit;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::layout::{after_rewrite, overlaps};
use super::lock::TornOnUnwind;
use super::{Error, Region, Result, seqlock};
use crate::racy::{RacyBytes, RacyBytesMut};
use crate::sys::futex::{self, WaitOutcome};

/// How long a reader that finds a write in progress spins before it blocks on the writer
/// lock (about the cost of waking a sleeping vCPU on these machines).
const SPIN_FOR: Duration = Duration::from_micros(20);

impl Region {
    /// Writes `data` at `offset` so that no reader sees it half-done; returns the new version.
    /// Blocks while another writer holds the lock (writes are short). A write that wholly
    /// covers a torn range (or its start or end) makes it readable again.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<u64> {
        self.write_inner(offset, data.len() as u64, |mut buf| {
            buf.copy_from(data);
        })
        .map(|(_, v)| v)
    }

    /// Like [`Region::write`], but lets `f` change the `len` bytes at `offset` in place (it
    /// sees their current contents). Returns what `f` returns. If `f` panics, the range is
    /// marked torn and the panic goes on. `f` must not call consistent methods of this region
    /// (they fail with [`Error::InvalidArgument`]).
    ///
    /// `f` gets a [`RacyBytesMut`]: readers copy these bytes while `f` changes them (and
    /// discard what they copied), and raw-access users may write them without the lock, so
    /// the view reads and writes atomically; `unsafe` [`RacyBytesMut::as_mut_slice`] borrows
    /// them as `&mut [u8]` where the caller knows no other process touches them.
    pub fn write_with<R>(
        &self,
        offset: u64,
        len: u64,
        f: impl FnOnce(RacyBytesMut<'_>) -> R,
    ) -> Result<R> {
        self.write_inner(offset, len, f).map(|(r, _)| r)
    }

    /// Publishes a change made through raw access: moves the version and wakes
    /// [`Region::wait_changed`] sleepers. Returns the new version.
    pub fn touch(&self) -> Result<u64> {
        self.write_inner(0, 0, |_| ()).map(|(_, v)| v)
    }

    pub(super) fn write_inner<R>(
        &self,
        offset: u64,
        len: u64,
        f: impl FnOnce(RacyBytesMut<'_>) -> R,
    ) -> Result<(R, u64)> {
        self.check_range(offset, len)?;
        self.section((offset, len), false, |version| {
            // SAFETY: `offset + len <= size` (checked), so the view lies inside the mapping's
            // data, which lives as long as `self`. Readers copy these bytes concurrently
            // (atomically) and discard what they read while the counter is odd or moved (the
            // seqlock protocol); the view's own accesses are atomic too.
            let buf = unsafe {
                RacyBytesMut::from_raw_parts(self.as_ptr().add(offset as usize), len as usize)
            };
            let r = f(buf);
            let s = &self.header().seq.0;
            let torn = (
                s.torn_off.load(Ordering::Relaxed),
                s.torn_len.load(Ordering::Relaxed),
            );
            let left = after_rewrite(torn, (offset, len));
            if left != torn {
                s.torn_off.store(left.0, Ordering::Relaxed);
                s.torn_len.store(left.1, Ordering::Relaxed);
            }
            self.stamp(offset, len, version);
            r
        })
    }

    /// The write section every change goes through: takes the writer lock (and, unless
    /// `as_replica`, refuses with [`Error::ReadOnly`] if the region is a replica), records
    /// `pending` (the range a repairer marks torn should we die), turns the counter odd, runs
    /// `body` with the version the write moves the region to, stores that version (or one
    /// past a version `body` moved the counter to, as [`Region::promote`] does), turns the
    /// counter even, unlocks and wakes change waiters. If `body` panics, `pending` is marked
    /// torn and the panic goes on. Returns `body`'s result and the new version.
    pub(super) fn section<R>(
        &self,
        pending: (u64, u64),
        as_replica: bool,
        body: impl FnOnce(u64) -> R,
    ) -> Result<(R, u64)> {
        let lock = self.lock()?;
        if !as_replica {
            // Checked under the lock: a bridge that makes the region a replica does so under
            // it too, so no local write slips in after.
            self.refuse_if_replica()?;
        }
        let s = &self.header().seq.0;
        // Recorded before the counter turns odd: a repairer after our death reads them.
        s.pending_off.store(pending.0, Ordering::Relaxed);
        s.pending_len.store(pending.1, Ordering::Relaxed);
        let seq = seqlock::begin_write(&s.seq);
        // If `body` panics, the guard (dropped before `lock`) marks the range torn.
        let torn_guard = TornOnUnwind { r: self };
        let version = s.version.load(Ordering::Relaxed).wrapping_add(1);
        let r = body(version);
        std::mem::forget(torn_guard);
        let version = version.max(s.version.load(Ordering::Relaxed).wrapping_add(1));
        s.version.store(version, Ordering::Relaxed);
        seqlock::end_write(&s.seq, seq);
        let wake = self.has_waiters();
        let unlocked = lock.unlock();
        // Woken after unlocking, so that a woken waiter does not find the lock still held.
        if wake {
            self.wake_waiters();
        }
        unlocked?;
        // The data went to a page patched after the file shrank: not written to the file.
        self.intact(false)?;
        Ok((r, version))
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`, consistently: never a mix of two
    /// writes. Returns the version the copy belongs to. Fails with [`Error::Torn`] if the range
    /// overlaps data whose writer died mid-write. Spins briefly while a write is in progress,
    /// then sleeps on the writer lock.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<u64> {
        // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and `read_uninit` only
        // ever writes initialised bytes into the buffer.
        let buf = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
        self.read_uninit(offset, buf)
    }

    /// Like [`Region::read`], into a buffer that may be uninitialised (for callers such as the
    /// C API that hand over raw memory). On success every byte of `buf` is initialised.
    pub fn read_uninit(&self, offset: u64, buf: &mut [MaybeUninit<u8>]) -> Result<u64> {
        let len = buf.len() as u64;
        self.check_range(offset, len)?;
        let dst = buf.as_mut_ptr().cast::<u8>();
        self.read_inner(offset, len, |src| {
            // SAFETY: `src` is valid for `len` bytes of the mapping (checked range) and `dst`
            // for `len` bytes of the caller's buffer; they do not overlap (the caller's `&mut`
            // cannot alias the mapping unless made by an `unsafe` call that forbids it). A
            // concurrent write may change `src` meanwhile: a byte-wise atomic copy, which the
            // seqlock check discards.
            unsafe { crate::racy::load(dst, src, len as usize) }
        })
        .map(|((), v)| v)
    }

    /// Calls `f` on the `len` bytes at `offset` in place and returns its result once a call
    /// saw a consistent state (no write overlapped it). `f` may be called more than once and,
    /// in calls whose result is discarded, may see a write half-done: that is why it gets a
    /// [`RacyBytes`] view (copies and single bytes, read atomically), not a `&[u8]`; it must
    /// not trust the bytes (no panics on them); only the returned result is guaranteed to come
    /// from a consistent view.
    pub fn read_with<R>(
        &self,
        offset: u64,
        len: u64,
        mut f: impl FnMut(RacyBytes<'_>) -> R,
    ) -> Result<R> {
        self.check_range(offset, len)?;
        self.read_inner(offset, len, |src| {
            // SAFETY: `src` is valid for `len` bytes inside the mapping (checked range), which
            // lives as long as `self`.
            f(unsafe { RacyBytes::from_raw_parts(src, len as usize) })
        })
        .map(|(r, _)| r)
    }

    fn read_inner<R>(
        &self,
        offset: u64,
        len: u64,
        mut f: impl FnMut(*const u8) -> R,
    ) -> Result<(R, u64)> {
        let s = &self.header().seq.0;
        // SAFETY: `offset <= size` (checked by the caller).
        let src = unsafe { self.as_ptr().add(offset as usize) } as *const u8;
        let mut spin_start: Option<Instant> = None;
        loop {
            let Some(s1) = seqlock::read_begin(&s.seq) else {
                let start = *spin_start.get_or_insert_with(Instant::now);
                if start.elapsed() < SPIN_FOR {
                    std::hint::spin_loop();
                } else {
                    // A writer is slow, stopped or dead: wait for (or repair after) it.
                    drop(self.lock()?);
                    spin_start = None;
                }
                continue;
            };
            // Checked before use, but trusted only once the counter confirms it (a write in
            // progress may be changing it): an out-of-range value seen in a consistent state
            // is corruption.
            let torn = self.torn_range();
            let version = s.version.load(Ordering::Relaxed);
            let r = f(src);
            let consistent = seqlock::read_valid(&s.seq, s1);
            // A page patched by the SIGBUS handler during the read: not the data.
            self.intact(false)?;
            if consistent {
                let torn = torn?;
                if overlaps(torn, (offset, len)) {
                    return Err(Error::Torn {
                        offset: torn.0,
                        len: torn.1,
                    });
                }
                return Ok((r, version));
            }
        }
    }

    /// Sleeps until the version differs from `seen` (returns the new version), or `timeout`
    /// passes ([`Error::Timeout`]; `Some(ZERO)`: do not wait, [`Error::WouldBlock`]; `None`:
    /// no limit). Sleeps on a futex in the header (shared, so any process's writer wakes it).
    /// It registers as a waiter under the writer lock, which writers hold only briefly; the
    /// timeout also bounds the wait for that lock. A writer that dies mid-write is noticed
    /// within [`crate::queue::BACKSTOP`]: its range is marked torn (see [`Region::torn`]), which
    /// moves the version, so the call returns the new version.
    pub fn wait_changed(&self, seen: u64, timeout: Option<Duration>) -> Result<u64> {
        let h = self.header();
        let (seq, waiters) = (&h.seq.0.seq, &h.notify.0.waiters);
        let deadline = timeout.map(crate::sys::time::deadline_after);
        let started = Instant::now();
        loop {
            self.intact(true)?;
            let v = self.version();
            if v != seen {
                return Ok(v);
            }
            match (&deadline, timeout) {
                (_, Some(d)) if d.is_zero() => return Err(Error::WouldBlock),
                (Some(t), _) if crate::sys::time::deadline_passed(t) => return Err(Error::Timeout),
                _ => {}
            }
            // Register under the writer lock (see `has_waiters`); `seq` moves on every write,
            // so sleep only while it holds the value seen here: the kernel checks that
            // atomically with queueing us, and a writer that saw us registered wakes us.
            let expected = {
                let left = deadline.map(|_| {
                    timeout
                        .unwrap_or_default()
                        .saturating_sub(started.elapsed())
                        .max(Duration::from_millis(1))
                });
                let _lock = self.lock_within(left)?;
                let v = self.version();
                if v != seen {
                    return Ok(v);
                }
                waiters.fetch_add(1, Ordering::Relaxed);
                seq.load(Ordering::Relaxed)
            };
            // Sleep at most one backstop period: a writer that dies mid-write never wakes us,
            // and the next round's lock finds it dead, repairs, and moves the version.
            let until = crate::sys::time::slice_end(deadline.as_ref(), crate::queue::BACKSTOP);
            // The queue's sleep, so that a signal ends both kinds of wait alike (see
            // `futex::sleep`: `SA_RESTART` handlers do not end it, others do).
            let res = futex::sleep(&[(seq, expected)], &until);
            waiters.fetch_sub(1, Ordering::Relaxed);
            match res {
                Ok(WaitOutcome::Interrupted) => return Err(Error::Interrupted),
                Ok(_) => {}
                Err((call, e)) => return Err(Error::io(call, None, e)),
            }
        }
    }
}
