//! Loom models of shmio's lock-free protocols: the queue's ring and the region's sequence lock,
//! on heap memory.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p shmio --lib --release --target-dir target/loom`
//! (see `scripts/test.sh`). Loom explores every interleaving (and every allowed reordering of
//! the atomics) of small scenarios built from the very functions of [`crate::queue::ring`]:
//!
//! - overwrite: a producer laps a two-slot ring while a consumer reads; every record the
//!   consumer accepts is whole, in order, and `received + lost` is exact, whether it resumes at
//!   the oldest record still held or near the head ([`ring::resume_at`]);
//! - back-pressure: the producer never reuses a slot the consumer has not released, so the
//!   consumer gets every record, whole, in order;
//! - wake-up: the sleep announcement of `queue::wait` and the producer's `publish`/`must_wake`
//!   never lose a wake-up (a lost one is a deadlock, which loom reports), in each of the three
//!   ways the barriers pair: the consumer's `membarrier(2)` with the producer's compiler fence,
//!   a consumer refused `membarrier` asking a light producer for fences (sleeping in slices
//!   until it acknowledged), and a producer that fences from the start;
//! - joining: a back-pressure consumer that joins while the producer runs (its slot holding a
//!   stale cursor from a dead predecessor) never has a record it claimed overwritten;
//! - the region's sequence lock ([`crate::region::seqlock`]): a reader racing two writes never
//!   accepts a mix of them, and one that reads after the writes accepts the last.
//!
//! Loom has no `membarrier(2)`. Where a model says the heavy barrier ran, the producer's light
//! barrier is modelled as the full fence the kernel's barrier makes of it (the IPI runs one on
//! the producer's CPU, between its head store and its sleeper load or before both); where it
//! says the barrier was refused, the light barrier is modelled as nothing at all
//! ([`light_is_fence`]).
//!
//! The payload is modelled as atomic words (the real queue copies bytes with `memcpy`; the
//! stamp check discards what a concurrent rewrite tore).

use crate::queue::ring::{self, SlotState};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// A heap ring: per slot a stamp, a length and two payload words.
pub struct Ring {
    head: AtomicU64,
    stamps: Vec<AtomicU64>,
    lens: Vec<AtomicU32>,
    words: Vec<[AtomicU64; 2]>,
    cursor: AtomicU64,
    waiters: AtomicU64,
    notify: AtomicU32,
}

impl Ring {
    pub fn new(slots: usize) -> Ring {
        Ring {
            head: AtomicU64::new(0),
            stamps: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            lens: (0..slots).map(|_| AtomicU32::new(0)).collect(),
            words: (0..slots)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
            cursor: AtomicU64::new(0),
            waiters: AtomicU64::new(0),
            notify: AtomicU32::new(0),
        }
    }

    fn n(&self) -> u64 {
        self.stamps.len() as u64
    }

    fn idx(&self, seq: u64) -> usize {
        (seq % self.n()) as usize
    }

    /// The producer's steps for record `seq`, as `Producer::reserve_raw` + `commit_raw` do.
    pub fn write(&self, seq: u64) {
        let i = self.idx(seq);
        ring::begin_write(&self.stamps[i], seq);
        self.words[i][0].store(seq, Ordering::Relaxed);
        self.words[i][1].store(seq, Ordering::Relaxed);
        ring::end_write(&self.stamps[i], &self.lens[i], seq, 16);
        ring::publish(&self.head, seq);
    }

    /// One read attempt at `seq`, resuming at the oldest record still held after an overrun.
    pub fn read(&self, seq: u64) -> Result<Option<[u64; 2]>, u64> {
        self.read_resuming(seq, None)
    }

    /// One read attempt at `seq`, as `Consumer::next_record` + the copy + `check` do: the
    /// stamp alone says whether the record is there. `Ok(None)`: not written yet.
    /// `Err(next)`: overwritten (or torn); resume at `next`, `behind` records behind the head
    /// (`None`: the oldest still held), as [`ring::resume_at`] says.
    pub fn read_resuming(&self, seq: u64, behind: Option<u64>) -> Result<Option<[u64; 2]>, u64> {
        let i = self.idx(seq);
        match ring::begin_read(&self.stamps[i], &self.lens[i], seq) {
            SlotState::Ready(len) => {
                assert_eq!(len, 16);
                let w = [
                    self.words[i][0].load(Ordering::Relaxed),
                    self.words[i][1].load(Ordering::Relaxed),
                ];
                if ring::still_valid(&self.stamps[i], seq) {
                    Ok(Some(w))
                } else {
                    Err(seq)
                }
            }
            SlotState::Overwritten { occupant } => {
                let head = ring::committed(&self.head);
                Err(ring::resume_at(seq, occupant, head, self.n(), behind))
            }
            SlotState::Unexpected(_) => Ok(None),
        }
    }
}

thread_local! {
    /// What `ring::light_barrier` stands for in the running model: loom runs a model's
    /// threads as coroutines on the test's own thread, so one flag per test thread is one per
    /// model.
    static LIGHT_IS_FENCE: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Whether the producer's light barrier is modelled as a full fence (the consumers' heavy
/// barrier runs) or as nothing (it is refused).
pub(crate) fn light_is_fence() -> bool {
    LIGHT_IS_FENCE.with(|c| c.get())
}

/// Runs `f` (a `loom::model` call) with the light barrier modelled as `fence` or as nothing.
#[cfg(test)]
pub(crate) fn with_light_barrier<R>(fence: bool, f: impl FnOnce() -> R) -> R {
    let before = LIGHT_IS_FENCE.with(|c| c.replace(fence));
    let r = f();
    LIGHT_IS_FENCE.with(|c| c.set(before));
    r
}

#[cfg(test)]
mod queue;
#[cfg(test)]
mod region;
