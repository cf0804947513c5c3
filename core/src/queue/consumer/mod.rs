//! The consumer side.

mod batch;
mod notify;
mod read;
mod recv;

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::cancel::Canceller;
use super::layout::{ConsumerSlot, MAX_SEQ, Shared, consumer_byte, resolve};
use super::ring;
use super::wait::{self, Deadline};
use super::{Error, Policy, Result, Resume, Start};
use crate::fork::Origin;
use crate::sys::robust::{Claim, Keeper, KeeperCtl, Owner, SharedWord};
use crate::sys::{fork, membarrier};
use notify::{PollState, notifier_loop};

pub use read::ReadGuard;

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
    /// Where it resumes after being lapped (overwrite mode).
    resume: Resume,
    cancel: Canceller,
    /// The process the handle was opened in (see [`crate::fork`]).
    origin: Origin,
    /// Its process is registered for `membarrier(2)`: a release checks for a sleeping
    /// producer behind a compiler fence only (see [`ring::producer_sleeping`]).
    light: bool,
}

super::handle_common!(Consumer, "consumer");

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
        if !ring::join_barrier(&h.waiters.0, membarrier::global_expedited)
            && shared.layout.policy == Policy::BackPressure
        {
            // No heavy barrier and no acknowledged fences yet: the producer's epoch load may
            // not see the bump while it writes on (only back-pressure relies on it).
            wait::await_fence_ack(&shared);
        }
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
        // (The join's own wake with a full fence: joining is rare.)
        wait::wake_producer(&shared, false);
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
            resume: Resume::default(),
            cancel: Canceller::new(),
            origin: Origin::current(),
            light: membarrier::registered(),
        })
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

    /// Where this consumer resumes after the producer lapped it (overwrite mode):
    /// [`Resume::NearOldest`] by default.
    pub fn resume(&self) -> Resume {
        self.resume
    }

    /// Sets where this consumer resumes after the producer lapped it ([`Resume`]). Every
    /// record skipped is counted in [`lost`](Self::lost) either way.
    pub fn set_resume(&mut self, resume: Resume) {
        self.resume = resume;
    }

    /// Whether record `seq`, read in place, is still intact. If not, the cursor stays and the
    /// next look finds the overwrite and counts the loss.
    pub(super) fn check(&self, seq: u64) -> bool {
        let (slot, _) = self.shared.slot(seq);
        ring::still_valid(&slot.stamp, seq)
    }

    pub(super) fn set_cursor(&mut self, next: u64) {
        self.cursor = next;
        match self.shared.layout.policy {
            Policy::BackPressure => {
                ring::release_to(&self.me().cursor, next);
                wait::wake_producer(&self.shared, self.light);
            }
            Policy::Overwrite => self.me().cursor.store(next, Ordering::Release),
        }
    }

    pub(super) fn advance(&mut self, next: u64) {
        self.received += 1;
        self.me().received.store(self.received, Ordering::Relaxed);
        self.set_cursor(next);
    }
}
