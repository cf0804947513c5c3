//! Receiving by copy, and the wait for the next record that every read path shares.

use std::mem::MaybeUninit;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Consumer;
use super::notify::ARMED_PRODUCER;
use crate::queue::layout::MAX_SEQ;
use crate::queue::ring::{self, SlotState};
use crate::queue::wait::{self, DataWait, Deadline, ROLE_READER};
use crate::queue::{Error, MAX_LAPS_PER_READ, Policy, Result};
use crate::sys::robust::{Owner, owner_of};

impl Consumer {
    /// Receives the next record into `buf`, waiting as long as needed; returns its length.
    /// Fails with [`Error::ProducerDead`] or [`Error::Closed`] once every committed record has
    /// been received and the producer is gone, and with [`Error::BufferTooSmall`] (consuming
    /// nothing) if the record does not fit.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_for(buf, None)
    }

    /// Like [`recv`](Self::recv) but fails with [`Error::WouldBlock`] instead of waiting.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_for(buf, Some(Duration::ZERO))
    }

    /// Like [`recv`](Self::recv), waiting at most `timeout` (`None`: no limit).
    pub fn recv_for(&mut self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize> {
        self.recv_seq_for(buf, timeout).map(|(_, n)| n)
    }

    /// Like [`recv_for`](Self::recv_for), also returning the record's sequence number.
    pub fn recv_seq_for(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<(u64, usize)> {
        // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and the callee only
        // writes initialised bytes into it.
        let buf = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
        self.recv_uninit_for(buf, timeout)
    }

    /// Like [`recv_seq_for`](Self::recv_seq_for) into a buffer that need not be initialised
    /// (as a C caller's). On success the first `len` bytes are initialised.
    pub fn recv_uninit_for(
        &mut self,
        buf: &mut [MaybeUninit<u8>],
        timeout: Option<Duration>,
    ) -> Result<(u64, usize)> {
        self.usable()?;
        if self.pending.is_some() {
            return Err(Error::InvalidArgument(
                "a zero-copy read is open: release it first".into(),
            ));
        }
        self.recv_one(buf, &Deadline::after(timeout), true)
    }

    /// Receives the next record into `buf` (see [`recv_uninit_for`](Self::recv_uninit_for)).
    /// With `publish` false, the consumer moves past it without publishing its cursor and
    /// counters (a batch publishes them once, with [`publish_position`](Self::publish_position)).
    pub(super) fn recv_one(
        &mut self,
        buf: &mut [MaybeUninit<u8>],
        deadline: &Deadline,
        publish: bool,
    ) -> Result<(u64, usize)> {
        let mut laps = 0;
        loop {
            let (seq, ptr, len) = self.next_record(deadline, &mut laps)?;
            if len > buf.len() {
                if self.check(seq) {
                    return Err(Error::BufferTooSmall { needed: len });
                }
                continue;
            }
            // SAFETY: `ptr` is the payload of a slot inside our mapping and `len` was checked
            // against the slot size; `buf` is the caller's memory of at least `len` bytes. The
            // source may be rewritten concurrently by the producer (overwrite mode): a
            // byte-wise atomic copy, and a torn one is detected by `check` below and discarded.
            unsafe { crate::racy::load(buf.as_mut_ptr().cast::<u8>(), ptr, len) };
            // A page patched by the SIGBUS handler during the copy: the bytes are not the record.
            self.shared.intact(false)?;
            if self.check(seq) {
                if publish {
                    self.advance(seq + 1);
                } else {
                    self.received += 1;
                    self.cursor = seq + 1;
                }
                return Ok((seq, len));
            }
        }
    }

    /// Receives the next record into a new vector.
    pub fn recv_vec_for(&mut self, timeout: Option<Duration>) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.shared.layout.slot_size as usize];
        let n = self.recv_for(&mut v, timeout)?;
        v.truncate(n);
        Ok(v)
    }

    /// Waits for the record at the cursor and locates it: (seq, payload, checked length).
    /// Skips, and counts, records lost to overwriting, resuming per the consumer's [`Resume`]
    /// policy; `laps` counts the resumes of this read (across the caller's retries after a torn
    /// copy): past [`MAX_LAPS_PER_READ`] it resumes at the newest committed record, so one call
    /// never chases the producer through the ring.
    ///
    /// [`Resume`]: crate::queue::Resume
    ///
    /// Fast path: the slot stamp alone says whether the record is complete, so a consumer that
    /// keeps up reads neither the head nor anything else the producer writes per record but the
    /// slot itself. Only when the slot is not ready yet does it wait on the head.
    pub(super) fn next_record(
        &mut self,
        deadline: &Deadline,
        laps: &mut u32,
    ) -> Result<(u64, *const u8, usize)> {
        let n = u64::from(self.shared.layout.slot_count);
        let max = self.shared.layout.slot_size as usize;
        let mut waited = false;
        loop {
            let c = self.cursor;
            let (slot, payload) = self.shared.slot(c);
            match ring::begin_read(&slot.stamp, &slot.len, c) {
                SlotState::Ready(len) if (len as usize) <= max => {
                    return Ok((c, payload.cast_const(), len as usize));
                }
                SlotState::Ready(len) => {
                    if ring::still_valid(&slot.stamp, c) {
                        return Err(Error::Corrupt(format!(
                            "record {c} claims {len} bytes, slot size is {max}"
                        )));
                    }
                    // Torn by a concurrent rewrite: look again.
                }
                SlotState::Overwritten { occupant }
                    if self.shared.layout.policy == Policy::Overwrite =>
                {
                    if occupant > MAX_SEQ {
                        return Err(Error::Corrupt(format!(
                            "slot for record {c} names record {occupant}, past any sequence number"
                        )));
                    }
                    *laps += 1;
                    let behind = if *laps > MAX_LAPS_PER_READ {
                        Some(1)
                    } else {
                        self.resume.behind(n)
                    };
                    let head = ring::committed(&self.shared.header().prod.0.head);
                    let next = ring::resume_at(c, occupant, head.min(MAX_SEQ), n, behind);
                    self.lost += next - c;
                    self.me().lost.store(self.lost, Ordering::Relaxed);
                    self.set_cursor(next);
                }
                SlotState::Unexpected(stamp) if !waited => {
                    // Not written yet. Spin on the slot's own stamp first: that is the line the
                    // record is read from anyway, so it arrives with the news (spinning on the
                    // head would add a cache-line transfer to every hand-over). Then wait on
                    // the head, sleeping, and look again.
                    // The spin also watches the producer's owner word and this slot's death
                    // word (read-mostly lines, cheap to poll): a long spin must not hide a
                    // death or a take-over.
                    let (owner, death) = (
                        &self.shared.header().owner.0.owner,
                        &self.shared.consumer(self.index).death,
                    );
                    let (ow, dw) = (owner.load(Ordering::Relaxed), death.load(Ordering::Relaxed));
                    // No spin at all once the producer looks gone: the wait below says so.
                    let alive = matches!(owner_of(ow), Owner::Alive(_))
                        && matches!(owner_of(dw), Owner::Alive(_));
                    if !matches!(deadline, Deadline::Now)
                        && alive
                        && wait::spin_until(self.spin, || {
                            slot.stamp.load(Ordering::Relaxed) != stamp
                                || self.cancel.is_cancelled()
                                || owner.load(Ordering::Relaxed) != ow
                                || death.load(Ordering::Relaxed) != dw
                        })
                        && !self.cancel.is_cancelled()
                        && slot.stamp.load(Ordering::Relaxed) != stamp
                    {
                        continue;
                    }
                    let waited_for = wait::wait_for_data(
                        &self.shared,
                        self.me(),
                        ROLE_READER,
                        c,
                        deadline,
                        Duration::ZERO,
                        &[self.cancel.word()],
                    );
                    // What the wait read may come from a page patched after the file shrank.
                    self.shared.intact(false)?;
                    match waited_for {
                        Ok(DataWait::Data) => waited = true,
                        Ok(DataWait::Gone(owner)) => {
                            // A record completed but not published before the producer went is
                            // visible by its stamp: deliver it first, as other consumers may have.
                            if let SlotState::Ready(_) = ring::begin_read(&slot.stamp, &slot.len, c)
                            {
                                continue;
                            }
                            // Tell a poller once, then only again on a take-over.
                            self.arm_for(ARMED_PRODUCER);
                            return Err(if owner == Owner::Died {
                                Error::ProducerDead
                            } else {
                                Error::Closed
                            });
                        }
                        Ok(DataWait::Kicked(_)) => return Err(Error::Cancelled),
                        Err(Error::WouldBlock) => {
                            self.arm();
                            return Err(Error::WouldBlock);
                        }
                        Err(e) => return Err(e),
                    }
                    continue;
                }
                other => {
                    return Err(Error::Corrupt(format!(
                        "slot for record {c} holds {other:?} although the head is past it"
                    )));
                }
            }
            waited = false;
        }
    }
}
