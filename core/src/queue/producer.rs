//! The producer side.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::cancel::Canceller;
use super::layout::{MAX_SEQ, PRODUCER_BYTE, Shared, link_into_place, resolve};
use super::wait::{self, Deadline};
use super::{Error, Policy, QueueOptions, Result, ring};
use crate::fork::Origin;
use crate::sys::robust::{Claim, Keeper, SharedWord};
use crate::sys::{fork, membarrier};

/// The single writer of a queue. Created with [`Producer::create`], or taken over from a dead
/// or closed producer with [`Producer::open`]. Dropping it closes the queue for consumers
/// (they drain, then get [`Error::Closed`]); the file stays until [`super::unlink`].
///
/// A producer may be moved between threads; it is not `Sync` (one writer at a time).
pub struct Producer {
    shared: Arc<Shared>,
    keeper: Keeper,
    /// The next sequence number to write (equal to the head).
    next: u64,
    /// Back-pressure: sequence numbers below this may be written without a scan.
    limit: u64,
    /// Back-pressure: the consumer epoch `limit` was computed at.
    epoch: u32,
    /// A raw reservation is open.
    pending: bool,
    /// Consecutive wakes that found nobody asleep (see `wait::wake_consumers`).
    idle_wakes: u32,
    /// How long a wait for space spins before it sleeps.
    spin: Duration,
    /// Wake-up system calls made for sleeping consumers.
    wake_calls: u64,
    /// Whether publishes are ordered before the sleeper check by a compiler fence only
    /// (`membarrier(2)` registered; see `ring::must_wake`), rather than a full fence.
    light: bool,
    cancel: Canceller,
    /// The process the handle was opened in (see [`crate::fork`]).
    origin: Origin,
}

super::handle_common!(Producer, "producer");

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("path", &self.shared.path)
            .field("next", &self.next)
            .finish()
    }
}

impl Producer {
    /// Creates a queue (failing if the file exists) and becomes its producer.
    ///
    /// `name` is a bare name, placed in [`super::queue_dir`] (`/dev/shm` by default), or a path
    /// (starting with `/`, `./` or `../`; see [`super::resolve`]). The file gets `opts.mode` (0600 by default) exactly.
    pub fn create(name: &str, opts: &QueueOptions) -> Result<Producer> {
        let path = resolve(name)?;
        // Held until the last descriptor of the new file that is not registered to be closed
        // in forked children (the temporary file's own) is closed: a fork meanwhile would
        // leave the child a copy of it, carrying the producer's liveness lock.
        let guard = fork::guard();
        let (shared, tmp) = Shared::create_tmp(&path, opts)?;
        // On failure, dropping `tmp` removes the unpublished file.
        let producer = Producer::claim(Arc::new(shared), &guard)?;
        let linked = link_into_place(tmp, &path);
        // Released before a failed producer is dropped: its keeper thread may drop the last
        // reference to the mapping, which takes the guard, while we wait for it to end.
        drop(guard);
        linked?;
        Ok(producer)
    }

    /// Takes over an existing queue whose producer closed or died. Fails with
    /// [`Error::ProducerExists`] while a live producer holds it. Writing resumes at the head:
    /// a record the previous producer had not committed is overwritten, never delivered.
    pub fn open(name: &str) -> Result<Producer> {
        // Held from the open to the registration of the descriptor (see `create`).
        let guard = fork::guard();
        let shared = Shared::open(&resolve(name)?)?;
        Producer::claim(Arc::new(shared), &guard)
    }

    fn claim(shared: Arc<Shared>, guard: &fork::Guard) -> Result<Producer> {
        let h = shared.header();
        // The liveness lock decides who may produce: the kernel drops it only once a dead
        // producer's words are marked, so holding it proves no live producer exists, whatever
        // the words show (a leftover id from a lost death, or a scribble).
        if !shared.lock_role(guard, PRODUCER_BYTE)? {
            return Err(Error::ProducerExists {
                pid: h.owner.0.pid.load(Ordering::Relaxed),
            });
        }
        let mapping: Arc<dyn Send + Sync> = shared.clone();
        // The owner word first (claimed last, marked first on death), then each consumer
        // slot's death word (see `ConsumerSlot::death`).
        let mut words = Vec::with_capacity(shared.layout.max_consumers as usize + 1);
        // SAFETY: the owner word is an aligned atomic inside the mapping that `mapping` keeps.
        words.push(unsafe { SharedWord::new(&h.owner.0.owner, Arc::clone(&mapping)) });
        for i in 0..shared.layout.max_consumers {
            // SAFETY: as above, for the death word of consumer slot `i < max_consumers`.
            words.push(unsafe { SharedWord::new(&shared.consumer(i).death, Arc::clone(&mapping)) });
        }
        let keeper = match Keeper::spawn("shmio-producer", words, Claim::Force, |_| {}) {
            Ok(Ok(k)) => k,
            Ok(Err(_)) => unreachable!("a forced claim never finds the words held"),
            Err(e) => {
                shared.unlock_role(PRODUCER_BYTE);
                return Err(Error::io("spawn keeper thread", None, e));
            }
        };
        h.owner
            .0
            .pid
            .store(crate::sys::process::getpid(), Ordering::Relaxed);
        h.owner.0.generation.fetch_add(1, Ordering::SeqCst);
        let mut next = h.prod.0.head.load(Ordering::SeqCst);
        if next > MAX_SEQ {
            // Dropping the keeper and the mapping gives the role back.
            return Err(Error::Corrupt(format!(
                "head {next} is past any sequence number"
            )));
        }
        // A predecessor that died between completing a record and publishing it: consumers may
        // already have read that record by its stamp, so publish it rather than rewrite it.
        let (slot, _) = shared.slot(next);
        if slot.stamp.load(Ordering::Acquire) == ring::committed_stamp(next) {
            ring::publish(&h.prod.0.head, next);
            next += 1;
        }
        let epoch = h.space.0.consumers_epoch.load(Ordering::SeqCst);
        let light = ring::producer_may_be_light(&h.waiters.0, membarrier::registered());
        Ok(Producer {
            shared,
            keeper,
            next,
            limit: 0,
            epoch,
            pending: false,
            idle_wakes: 0,
            spin: wait::SPIN_FOR,
            wake_calls: 0,
            light,
            cancel: Canceller::new(),
            origin: Origin::current(),
        })
    }

    /// Wake-up system calls this producer made for sleeping consumers (diagnostics: a busy
    /// stream whose consumers keep up makes none).
    pub fn wake_calls(&self) -> u64 {
        self.wake_calls
    }

    /// Waits until at least `count` live consumers are attached, at most `timeout` (`None`: no
    /// limit); returns how many are. Records sent while no consumer is attached are not kept
    /// for consumers that join later beyond what the ring holds (and in back-pressure mode a
    /// record sent with no consumer attached waits for nobody): a producer that must not lose
    /// its first records waits for its consumers first.
    pub fn wait_consumers(&mut self, count: usize, timeout: Option<Duration>) -> Result<usize> {
        self.usable()?;
        wait::wait_for_consumers(
            &self.shared,
            count,
            &Deadline::after(timeout),
            self.cancel.word(),
        )
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// How long a wait for space spins before it sleeps in the kernel (20 µs by default).
    pub fn spin(&self) -> Duration {
        self.spin
    }

    /// Sets how long a wait for space spins before it sleeps in the kernel. Zero sleeps at
    /// once (no CPU burnt while waiting, a wake-up system call's latency on every wait);
    /// longer spins keep a busy stream out of the kernel at the cost of CPU while idle.
    /// Values above one second are clamped to one second.
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin.min(wait::MAX_SPIN);
    }

    /// The thread id stored in the producer's owner word (for diagnostics).
    pub fn keeper_tid(&self) -> u32 {
        self.keeper.tid()
    }

    /// Reserves the next slot for writing in place, waiting for space in back-pressure mode.
    pub fn reserve(&mut self) -> Result<Reservation<'_>> {
        self.reserve_for(None)
    }

    /// Like [`reserve`](Self::reserve) but fails with [`Error::WouldBlock`] instead of waiting.
    pub fn try_reserve(&mut self) -> Result<Reservation<'_>> {
        self.reserve_for(Some(Duration::ZERO))
    }

    /// Like [`reserve`](Self::reserve), waiting at most `timeout` (`None`: no limit,
    /// `Some(ZERO)`: not at all). Overwrite mode never waits.
    pub fn reserve_for(&mut self, timeout: Option<Duration>) -> Result<Reservation<'_>> {
        let (seq, buf, cap) = self.reserve_raw(timeout)?;
        Ok(Reservation {
            producer: self,
            seq,
            buf,
            cap,
        })
    }

    /// Copies `data` into the next slot and commits it; returns its sequence number. Waits for
    /// space in back-pressure mode (never in overwrite mode).
    pub fn send(&mut self, data: &[u8]) -> Result<u64> {
        self.send_for(data, None)
    }

    /// Like [`send`](Self::send) but fails with [`Error::WouldBlock`] instead of waiting.
    pub fn try_send(&mut self, data: &[u8]) -> Result<u64> {
        self.send_for(data, Some(Duration::ZERO))
    }

    /// Like [`send`](Self::send), waiting at most `timeout` for space.
    pub fn send_for(&mut self, data: &[u8], timeout: Option<Duration>) -> Result<u64> {
        let max = self.shared.layout.slot_size as usize;
        if data.len() > max {
            return Err(Error::TooLarge {
                len: data.len(),
                max,
            });
        }
        let (_, buf, _) = self.reserve_raw(timeout)?;
        self.copy_in(buf.as_ptr(), data);
        self.commit_raw(data.len())
    }

    /// Copies `data` into the payload area `buf` of the slot being written.
    fn copy_in(&self, buf: *mut u8, data: &[u8]) {
        debug_assert!(data.len() <= self.shared.layout.slot_size as usize);
        if self.shared.layout.policy == Policy::Overwrite {
            // SAFETY: `buf` is the payload area of the slot being written, `slot_size >=
            // data.len()` bytes inside our mapping (both callers check the length), and `data`
            // is a separate slice of our own memory. A lapped consumer may be copying the slot
            // meanwhile: atomic stores.
            unsafe { crate::racy::store(buf, data.as_ptr(), data.len()) };
        } else {
            // SAFETY: as above; in back-pressure mode no consumer reads a slot before its
            // commit, so nothing races with this copy.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len()) };
        }
    }

    /// Sends each record of `records`, in order; returns how many were sent. Each is published
    /// as it is written (a consumer that keeps up reads it at once), but sleeping consumers
    /// are woken once, after the batch (and before any wait for space), not per record.
    ///
    /// Waits for space in back-pressure mode up to `timeout` in all (`None`: no limit,
    /// `Some(ZERO)`: not at all). Like `write(2)`, a batch that cannot go on after at least one
    /// record (no space within the timeout, a record larger than the slot size) ends there and
    /// returns the count: the next call, starting at the first record not sent, reports why.
    /// With none sent, fails as [`send_for`](Self::send_for) does.
    pub fn send_many<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a [u8]>,
        timeout: Option<Duration>,
    ) -> Result<usize> {
        self.usable()?;
        if self.pending {
            return Err(Error::InvalidArgument(
                "a reservation is already open: commit or abort it first".into(),
            ));
        }
        let max = self.shared.layout.slot_size as usize;
        let deadline = Deadline::after(timeout);
        let (mut sent, mut unwoken) = (0, false);
        for data in records {
            let seq = self.next;
            let room = if data.len() > max {
                Err(Error::TooLarge {
                    len: data.len(),
                    max,
                })
            } else if self.shared.layout.policy == Policy::BackPressure && !self.has_room(seq) {
                // Consumers asleep on records of this batch must hear of them before we
                // sleep, or they would never free the space we wait for.
                if std::mem::take(&mut unwoken) {
                    self.wake();
                }
                self.ensure_space(seq, &deadline)
            } else {
                Ok(())
            };
            if let Err(e) = room {
                if sent == 0 {
                    return Err(e);
                }
                break;
            }
            let (slot, payload) = self.shared.slot(seq);
            ring::begin_write(&slot.stamp, seq);
            self.copy_in(payload, data);
            ring::end_write(&slot.stamp, &slot.len, seq, data.len() as u32);
            ring::publish(&self.shared.header().prod.0.head, seq);
            self.next = seq + 1;
            sent += 1;
            unwoken = true;
        }
        if unwoken {
            self.wake();
        }
        Ok(sent)
    }

    /// Wakes the consumers asleep on the notify word, if any announced it.
    fn wake(&mut self) {
        wait::wake_consumers(
            &self.shared,
            &mut self.light,
            &mut self.idle_wakes,
            &mut self.wake_calls,
        );
    }

    /// Binding-level reservation: returns the sequence number, the slot's payload pointer and
    /// its capacity. The slot is the caller's until [`commit_raw`](Self::commit_raw) or
    /// [`abort_raw`](Self::abort_raw); another reservation before then is refused.
    pub fn reserve_raw(&mut self, timeout: Option<Duration>) -> Result<(u64, NonNull<u8>, usize)> {
        self.usable()?;
        if self.pending {
            return Err(Error::InvalidArgument(
                "a reservation is already open: commit or abort it first".into(),
            ));
        }
        let seq = self.next;
        if self.shared.layout.policy == Policy::BackPressure {
            self.ensure_space(seq, &Deadline::after(timeout))?;
        }
        let (slot, payload) = self.shared.slot(seq);
        ring::begin_write(&slot.stamp, seq);
        self.pending = true;
        let payload = NonNull::new(payload).ok_or_else(|| Error::Corrupt("null slot".into()))?;
        Ok((seq, payload, self.shared.layout.slot_size as usize))
    }

    /// Commits the open reservation with `len` bytes; returns its sequence number. With `len`
    /// larger than the slot, fails with [`Error::TooLarge`] and the reservation stays open.
    pub fn commit_raw(&mut self, len: usize) -> Result<u64> {
        self.usable()?;
        if !self.pending {
            return Err(Error::InvalidArgument("no reservation is open".into()));
        }
        let max = self.shared.layout.slot_size as usize;
        if len > max {
            return Err(Error::TooLarge { len, max });
        }
        let seq = self.next;
        let (slot, _) = self.shared.slot(seq);
        ring::end_write(&slot.stamp, &slot.len, seq, len as u32);
        ring::publish(&self.shared.header().prod.0.head, seq);
        self.wake();
        self.next = seq + 1;
        self.pending = false;
        Ok(seq)
    }

    /// Abandons the open reservation: nothing is published. (In overwrite mode the record that
    /// slot held before is gone.)
    pub fn abort_raw(&mut self) {
        self.pending = false;
    }

    /// Back-pressure: whether record `seq` may be written without a scan of the cursors (no
    /// consumer joined since the last scan, and `seq` is below the limit it found).
    fn has_room(&self, seq: u64) -> bool {
        let space = &self.shared.header().space.0;
        space.consumers_epoch.load(Ordering::SeqCst) == self.epoch && seq < self.limit
    }

    fn ensure_space(&mut self, seq: u64, deadline: &Deadline) -> Result<()> {
        if self.has_room(seq) {
            return Ok(());
        }
        let epoch = self
            .shared
            .header()
            .space
            .0
            .consumers_epoch
            .load(Ordering::SeqCst);
        self.epoch = epoch;
        self.limit = 0;
        self.limit =
            wait::wait_for_space(&self.shared, seq, deadline, self.spin, self.cancel.word())?;
        Ok(())
    }

    /// Closes the queue for consumers (as dropping does).
    pub fn close(self) {}
}

/// A reserved slot: write the record into [`buf`](Self::buf), then [`commit`](Self::commit).
/// Dropping it without committing publishes nothing.
pub struct Reservation<'a> {
    producer: &'a mut Producer,
    seq: u64,
    buf: NonNull<u8>,
    cap: usize,
}

impl Reservation<'_> {
    /// The sequence number this record will have.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The slot's payload area (the slot size), to write in place.
    pub fn buf(&mut self) -> &mut [u8] {
        // SAFETY: the reserved slot's payload is `cap` bytes inside the mapping, which lives as
        // long as the producer we borrow. Until commit only this producer writes it (consumers
        // of an overwrite queue may read it, and detect the rewrite by the slot stamp).
        unsafe { std::slice::from_raw_parts_mut(self.buf.as_ptr(), self.cap) }
    }

    /// Publishes the first `len` bytes as the record; returns its sequence number.
    pub fn commit(self, len: usize) -> Result<u64> {
        let mut this = std::mem::ManuallyDrop::new(self);
        let res = this.producer.commit_raw(len);
        if res.is_err() {
            this.producer.abort_raw();
        }
        res
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.producer.abort_raw();
    }
}
