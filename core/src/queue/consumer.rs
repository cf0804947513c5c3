//! The consumer side.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::cancel::Canceller;
use super::layout::{ConsumerSlot, MAX_SEQ, Shared, consumer_byte, resolve};
use super::ring::{self, SlotState};
use super::wait::{self, DataWait, Deadline, ROLE_NOTIFIER, ROLE_READER};
use super::{Error, Policy, QueueInfo, QueueStats, Result, Start, info_of, stats_of};
use crate::fork::Origin;
use crate::racy::RacyBytes;
use crate::sys::robust::{Claim, Keeper, KeeperCtl, Owner, SharedWord, owner_of};
use crate::sys::{fork, futex};

/// State shared with the keeper thread, which doubles as the poll notifier.
struct PollState {
    efd: OnceLock<OwnedFd>,
    /// [`ARMED_DATA`] while the notifier should signal `efd` when a record past `at` is
    /// committed or the producer goes; [`ARMED_PRODUCER`] while it should signal it when a live
    /// producer holds the queue again; 0 while disarmed.
    armed: AtomicU32,
    at: AtomicU64,
}

const ARMED_DATA: u32 = 1;
const ARMED_PRODUCER: u32 = 2;

/// One reader of a queue, with its own cursor: it receives every record (broadcast).
///
/// A consumer may be moved between threads; it is not `Sync`.
pub struct Consumer {
    shared: Arc<Shared>,
    keeper: Keeper,
    index: u32,
    /// Next sequence number to read (mirrors the shared cursor).
    cursor: u64,
    lost: u64,
    received: u64,
    poll: Arc<PollState>,
    /// A raw zero-copy read is open.
    pending: Option<u64>,
    /// How long a blocking read spins before it sleeps.
    spin: Duration,
    cancel: Canceller,
    /// The process the handle was opened in (see [`crate::fork`]).
    origin: Origin,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("path", &self.shared.path)
            .field("index", &self.index)
            .field("cursor", &self.cursor)
            .field("lost", &self.lost)
            .finish()
    }
}

impl Consumer {
    /// Opens a queue as a new consumer starting at `start`.
    pub fn open(name: &str, start: Start) -> Result<Consumer> {
        // Held from the open to the registration of the descriptor that carries our liveness
        // lock: a fork in between would leave the child an unregistered copy of it.
        let guard = fork::guard();
        let shared = Arc::new(Shared::open(&resolve(name)?)?);
        let poll = Arc::new(PollState {
            efd: OnceLock::new(),
            armed: AtomicU32::new(0),
            at: AtomicU64::new(0),
        });
        let max = shared.layout.max_consumers;
        let mut claimed = None;
        for i in 0..max {
            // The slot's liveness lock first: while we hold it no live consumer is in the slot,
            // so a word showing a live holder is a leftover (a lost death or a scribble).
            if !shared.lock_role(&guard, consumer_byte(i))? {
                continue;
            }
            let mut state = wait::evict_if_dead(&shared, i);
            if let Owner::Alive(_) = state {
                state = wait::evict_if_abandoned(&shared, i);
            }
            if state != Owner::Free {
                shared.unlock_role(consumer_byte(i));
                continue;
            }
            shared.consumer(i).joined.store(0, Ordering::SeqCst);
            let mapping: Arc<dyn Send + Sync> = shared.clone();
            // SAFETY: the owner word is an aligned atomic inside the mapping `mapping` keeps.
            let word = unsafe { SharedWord::new(&shared.consumer(i).owner, mapping) };
            let notifier = {
                let shared = Arc::clone(&shared);
                let poll = Arc::clone(&poll);
                move |ctl: &KeeperCtl| notifier_loop(&shared, i, &poll, ctl)
            };
            match Keeper::spawn("shmio-consumer", vec![word], Claim::IfFree, notifier) {
                Ok(Ok(k)) => {
                    claimed = Some((i, k));
                    break;
                }
                Ok(Err(_)) => shared.unlock_role(consumer_byte(i)),
                Err(e) => {
                    shared.unlock_role(consumer_byte(i));
                    return Err(Error::io("spawn keeper thread", None, e));
                }
            }
        }
        drop(guard);
        let Some((index, keeper)) = claimed else {
            return Err(Error::TooManyConsumers { max });
        };
        let h = shared.header();
        h.space
            .0
            .consumers_hwm
            .fetch_max(index + 1, Ordering::SeqCst);
        let me = shared.consumer(index);
        me.pid
            .store(crate::sys::process::getpid(), Ordering::Relaxed);
        me.lost.store(0, Ordering::Relaxed);
        me.received.store(0, Ordering::Relaxed);
        // A predecessor that died asleep may have left its share in the sleeper count; the
        // slot is ours now, so nobody else settles it concurrently.
        wait::settle_sleepers(&shared, me);

        // Registration: publish a conservative cursor, tell the producer to rescan, then read
        // the head. Any record the producer writes without having seen us is at most `head`,
        // so records from `head - slot_count + 1` on are safe to claim.
        let n = u64::from(shared.layout.slot_count);
        let provisional = h.prod.0.head.load(Ordering::SeqCst).saturating_sub(n);
        ring::release_to(&me.cursor, provisional);
        // SeqCst (a release): a producer whose epoch load sees the bump also sees the cursor.
        h.space.0.consumers_epoch.fetch_add(1, Ordering::SeqCst);
        ring::join_fence();
        let head = h.prod.0.head.load(Ordering::Acquire);
        if head > MAX_SEQ {
            return Err(Error::Corrupt(format!(
                "head {head} is past any sequence number"
            )));
        }
        let oldest = head.saturating_add(1).saturating_sub(n);
        let start = match start {
            Start::Newest => head.saturating_sub(1),
            Start::Oldest => oldest,
            Start::Sequence(s) if s > head => {
                return Err(Error::InvalidArgument(format!(
                    "sequence {s} is ahead of the producer (next is {head})"
                )));
            }
            Start::Sequence(s) if s < oldest && shared.layout.policy == Policy::BackPressure => {
                return Err(Error::InvalidArgument(format!(
                    "sequence {s} is no longer held (oldest is {oldest})"
                )));
            }
            Start::Sequence(s) => s,
        };
        ring::release_to(&me.cursor, start);
        me.joined.store(1, Ordering::SeqCst);
        wait::wake_producer(&shared);
        Ok(Consumer {
            shared,
            keeper,
            index,
            cursor: start,
            lost: 0,
            received: 0,
            poll,
            pending: None,
            spin: wait::SPIN_FOR,
            cancel: Canceller::new(),
            origin: Origin::current(),
        })
    }

    /// Refuses a handle inherited through `fork()`.
    #[inline]
    fn usable(&self) -> Result<()> {
        super::usable(self.origin, &self.shared)
    }

    /// The process the handle was opened in: in a forked child, every call on the handle
    /// returns [`Error::Forked`] (see [`crate::fork`]).
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// A handle that ends this consumer's waits from another thread (see [`Canceller`]).
    pub fn canceller(&self) -> Canceller {
        self.cancel.clone()
    }

    /// Waits until a live producer holds the queue: at once if one does, else until a new
    /// producer takes over after a death or a close ([`Producer::open`](super::Producer::open)),
    /// at most `timeout` (`None`: no limit). Reading then resumes where this consumer stopped.
    ///
    /// After [`Error::ProducerDead`] or [`Error::Closed`], every read fails at once the same
    /// way until a producer takes over: this is the call to wait for that. The poll descriptor
    /// ([`fd`](Self::fd)) polls readable once on the death or close and once more on the
    /// take-over.
    pub fn wait_producer(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.usable()?;
        let deadline = Deadline::after(timeout);
        match wait::wait_for_producer(&self.shared, self.me(), &deadline, &[self.cancel.word()])? {
            None => Ok(()),
            Some(_) => Err(Error::Cancelled),
        }
    }

    fn me(&self) -> &ConsumerSlot {
        self.shared.consumer(self.index)
    }

    /// The queue's geometry.
    pub fn info(&self) -> QueueInfo {
        info_of(&self.shared)
    }

    /// A snapshot of the queue's state.
    pub fn stats(&self) -> QueueStats {
        stats_of(&self.shared)
    }

    /// The sequence number of the next record this consumer reads.
    pub fn position(&self) -> u64 {
        self.cursor
    }

    /// Records lost to overwriting since this consumer opened (overwrite mode only).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Records received since this consumer opened.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// This consumer's slot index in the file.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How long a blocking read spins before it sleeps in the kernel (20 µs by default).
    pub fn spin(&self) -> Duration {
        self.spin
    }

    /// Sets how long a blocking read spins before it sleeps in the kernel. Zero sleeps at once
    /// (no CPU burnt while idle; every record that finds the consumer waiting then costs the
    /// producer a wake-up system call and the consumer a scheduler wake-up); longer spins keep
    /// a busy stream out of the kernel. Values above one second are clamped to one second.
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin.min(wait::MAX_SPIN);
    }

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
        let deadline = Deadline::after(timeout);
        loop {
            let (seq, ptr, len) = self.next_record(&deadline)?;
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
                self.advance(seq + 1);
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
        let (seq, ptr, len) = self.next_record(&Deadline::after(timeout))?;
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

    /// Whether record `seq`, read in place, is still intact. If not, the cursor stays and the
    /// next look finds the overwrite and counts the loss.
    fn check(&self, seq: u64) -> bool {
        let (slot, _) = self.shared.slot(seq);
        ring::still_valid(&slot.stamp, seq)
    }

    fn set_cursor(&mut self, next: u64) {
        self.cursor = next;
        match self.shared.layout.policy {
            Policy::BackPressure => {
                ring::release_to(&self.me().cursor, next);
                wait::wake_producer(&self.shared);
            }
            Policy::Overwrite => self.me().cursor.store(next, Ordering::Release),
        }
    }

    fn advance(&mut self, next: u64) {
        self.received += 1;
        self.me().received.store(self.received, Ordering::Relaxed);
        self.set_cursor(next);
    }

    /// Waits for the record at the cursor and locates it: (seq, payload, checked length).
    /// Skips, and counts, records lost to overwriting.
    ///
    /// Fast path: the slot stamp alone says whether the record is complete, so a consumer that
    /// keeps up reads neither the head nor anything else the producer writes per record but the
    /// slot itself. Only when the slot is not ready yet does it wait on the head.
    fn next_record(&mut self, deadline: &Deadline) -> Result<(u64, *const u8, usize)> {
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
                    let next = ring::resume_after_overrun(c, occupant, n);
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

    /// A file descriptor that becomes readable when a record is available or the producer is
    /// gone, for select/poll/epoll. After it polls readable, call [`try_recv`](Self::try_recv)
    /// (or [`try_read`](Self::try_read)) until it fails with [`Error::WouldBlock`]: that re-arms
    /// it. There is no need to read the descriptor itself. It stays owned by the consumer.
    ///
    /// Design: an eventfd owned by this process, signalled by the consumer's keeper thread,
    /// which sleeps on the same futex words as a blocking `recv` (data and producer death) only
    /// while the descriptor is armed. So the producer never makes a system call for pollers and
    /// needs no access to other processes' descriptors, and a producer's death makes the
    /// descriptor readable through the same kernel wake-up. The cost is one extra thread wake
    /// per notification.
    pub fn fd(&mut self) -> Result<RawFd> {
        self.usable()?;
        if self.poll.efd.get().is_none() {
            let fd =
                crate::sys::eventfd::nonblocking().map_err(|e| Error::io("eventfd", None, e))?;
            let _ = self.poll.efd.set(fd);
            self.arm();
        }
        Ok(self.poll.efd.get().map_or(-1, |f| f.as_raw_fd()))
    }

    /// Re-arms the poll descriptor (if one was asked for) from the current cursor.
    fn arm(&self) {
        self.arm_for(ARMED_DATA);
    }

    fn arm_for(&self, mode: u32) {
        let Some(fd) = self.poll.efd.get() else {
            return;
        };
        let _ = crate::sys::eventfd::drain(fd.as_fd());
        self.poll.at.store(self.cursor, Ordering::SeqCst);
        self.poll.armed.store(mode, Ordering::SeqCst);
        let kick = &self.keeper.ctl().kick;
        kick.fetch_add(1, Ordering::SeqCst);
        futex::wake_all(kick);
    }
}

/// Runs on the consumer's keeper thread: while armed for data, sleeps until a record past `at`
/// is committed or the producer is gone; while armed for the producer, until a live producer
/// holds the queue; then signals the eventfd once and disarms.
fn notifier_loop(shared: &Shared, index: u32, poll: &PollState, ctl: &KeeperCtl) {
    let me = shared.consumer(index);
    loop {
        // Read the kick word before the release flag: `Keeper::drop` sets the flag, then bumps
        // the word, so a close between the two reads makes the sleep below return at once.
        let k = ctl.kick.load(Ordering::SeqCst);
        if ctl.releasing() {
            return;
        }
        let mode = poll.armed.load(Ordering::SeqCst);
        let fire = match mode {
            ARMED_DATA => {
                let at = poll.at.load(Ordering::SeqCst);
                !matches!(
                    wait::wait_for_data(
                        shared,
                        me,
                        ROLE_NOTIFIER,
                        at,
                        &Deadline::Never,
                        Duration::ZERO,
                        &[(&ctl.kick, k)],
                    ),
                    Ok(DataWait::Kicked(_)) | Err(Error::Interrupted)
                )
            }
            ARMED_PRODUCER => {
                matches!(
                    wait::wait_for_producer(shared, me, &Deadline::Never, &[(&ctl.kick, k)]),
                    Ok(None) | Err(Error::Corrupt(_))
                )
            }
            _ => {
                let _ = futex::wait(&ctl.kick, k, None);
                false
            }
        };
        if fire
            && poll
                .armed
                .compare_exchange(mode, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            if let Some(fd) = poll.efd.get() {
                let _ = crate::sys::eventfd::signal(fd.as_fd());
            }
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
