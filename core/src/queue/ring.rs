//! The ring protocol: how a record is published, read, validated and released.
//!
//! These functions are the only code that orders slot stamps, payload accesses, the shared head
//! and consumer cursors. They take plain references to atomics so that the same code runs on the
//! shared mapping and, under `--cfg loom`, on heap memory in the model of `tests` below.
//!
//! Each slot carries a *stamp*: `0` for never written, `2s + 1` while record `s` is being
//! written, `2s + 2` once record `s` is complete. The head counts committed records: record `s`
//! is visible iff `s < head`. This is a per-slot sequence lock, so a reader in overwrite mode can
//! tell after copying whether the producer reused the slot meanwhile.

use crate::sync::{AtomicU32, AtomicU64, Ordering, fence};

/// Stamp of a slot holding complete record `seq`.
#[inline]
pub(crate) fn committed_stamp(seq: u64) -> u64 {
    seq.wrapping_mul(2).wrapping_add(2)
}

/// Producer, step 1: mark the slot as being rewritten with record `seq`.
///
/// The release fence orders the odd stamp before every payload store that follows, so a reader
/// that sees any of the new payload also sees a changed stamp on its second look.
#[inline]
pub(crate) fn begin_write(stamp: &AtomicU64, seq: u64) {
    stamp.store(seq.wrapping_mul(2).wrapping_add(1), Ordering::Relaxed);
    fence(Ordering::Release);
}

/// Producer, step 2 (after the payload is written): record the length and complete the stamp.
#[inline]
pub(crate) fn end_write(stamp: &AtomicU64, len_word: &AtomicU32, seq: u64, len: u32) {
    len_word.store(len, Ordering::Relaxed);
    stamp.store(committed_stamp(seq), Ordering::Release);
}

/// Producer, step 3: make record `seq` (and all before it) visible.
#[inline]
pub(crate) fn publish(head: &AtomicU64, seq: u64) {
    head.store(seq.wrapping_add(1), Ordering::Release);
}

/// The sleeper count: the low 30 bits of the word; bits 30 and 31 are [`FENCE_ACK`] and
/// [`FENCE_REQ`], the high 32 bits the count's epoch.
const COUNT_MASK: u64 = 0x3fff_ffff;

/// Set (for the file's lifetime) by a consumer that could not issue a heavy barrier
/// (`membarrier(2)` refused): producers must order each publish before their sleeper check
/// with a full fence again.
pub(crate) const FENCE_REQ: u64 = 1 << 31;

/// Set by a producer once it fences every publish because of [`FENCE_REQ`]: a consumer that
/// sees it may sleep without a heavy barrier and without a time limit.
pub(crate) const FENCE_ACK: u64 = 1 << 30;

/// The light barrier of the producer's hot path: a compiler fence only. The consumer about to
/// sleep issues the heavy one (`membarrier(2)`), which makes this one a full fence wherever it
/// matters (see [`must_wake`]). Under loom, where no such system call exists, the model
/// chooses what it stands for (see `crate::loom`).
#[inline]
fn light_barrier() {
    #[cfg(not(loom))]
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
    #[cfg(loom)]
    if crate::loom::light_is_fence() {
        fence(Ordering::SeqCst);
    }
}

/// Producer, after [`publish`]: whether any consumer may be asleep and needs a futex wake.
///
/// A Dekker handshake with [`announce_sleep`]: the consumer counts itself, then a barrier, then
/// re-checks the head; the producer stores the head, then a barrier, then loads the count.
/// Either the consumer's barrier comes first, and this load sees its announcement, or ours
/// does, and the consumer's re-check sees the record. The same barrier orders the head store
/// before the producer's next load of the consumer epoch (see [`join_barrier`]).
///
/// With `light` (this process is registered for `membarrier(2)` and no consumer asked for
/// fences) our barrier is [`light_barrier`], a compiler fence: the consumer's
/// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` runs a full barrier on our CPU, so our head
/// store is either before it (visible to the re-check) or our load after it (sees the count).
/// Otherwise, and from the first time a [`FENCE_REQ`] is seen on (acknowledged with
/// [`FENCE_ACK`]), it is a `SeqCst` fence.
#[inline]
pub(crate) fn must_wake(waiters: &AtomicU64, light: &mut bool) -> bool {
    if *light {
        light_barrier();
        let v = waiters.load(Ordering::Relaxed);
        if v & FENCE_REQ == 0 {
            return v & COUNT_MASK != 0;
        }
        *light = false;
        acknowledge_fences(waiters);
    }
    fence(Ordering::SeqCst);
    waiters.load(Ordering::Relaxed) & COUNT_MASK != 0
}

/// Producer: from now on every publish is fenced (a consumer asked with [`FENCE_REQ`]); tell
/// the consumers. The fence orders every head store before it ahead of the acknowledgement, so
/// a consumer that reads the acknowledgement (acquiring) sees them.
#[inline]
pub(crate) fn acknowledge_fences(waiters: &AtomicU64) {
    fence(Ordering::SeqCst);
    waiters.fetch_or(FENCE_ACK, Ordering::SeqCst);
}

/// Producer, on taking the role: whether it may use the light barrier: its process is
/// registered (`registered`) and no consumer of the file ever asked for fences (if one did, the
/// request is acknowledged here, before the first publish).
#[inline]
pub(crate) fn producer_may_be_light(waiters: &AtomicU64, registered: bool) -> bool {
    if registered && waiters.load(Ordering::SeqCst) & FENCE_REQ == 0 {
        return true;
    }
    acknowledge_fences(waiters);
    false
}

/// What [`announce_sleep`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Announced {
    /// The count's epoch the share was counted in.
    pub(crate) epoch: u32,
    /// Whether a sleep without a time limit is safe: the heavy barrier ran, or the producer
    /// acknowledged that it fences every publish. If not, the producer may still publish with
    /// a compiler fence only, and may miss this announcement until it sees [`FENCE_REQ`]: sleep
    /// in short slices (no wake-up is lost for longer than one).
    pub(crate) exact: bool,
}

/// Consumer, before sleeping: count itself among the sleepers, then the heavy barrier
/// (`heavy`, `membarrier(2)`: whether it ran); returns the count's epoch. Where the heavy
/// barrier is refused, asks producers for fences ([`FENCE_REQ`]) and reports whether one
/// acknowledged it. Where producers already acknowledged fences, the heavy barrier is not
/// needed and not issued.
///
/// After this, read the futex word's value with `Acquire`, check with [`epoch_of`] that the
/// epoch did not move (else retract and start over), re-check the head, and only then sleep
/// (see `queue::wait`). The read must acquire: if it sees a bump made after a publish, the
/// re-check must see that publish too, or the sleeper would wait for a wake-up that already
/// happened.
#[inline]
pub(crate) fn announce_sleep(waiters: &AtomicU64, heavy: impl FnOnce() -> bool) -> Announced {
    let light = announce_sleep_light(waiters);
    if light.exact || heavy() {
        return Announced {
            epoch: light.epoch,
            exact: true,
        };
    }
    Announced {
        epoch: light.epoch,
        exact: request_fences(waiters),
    }
}

/// Consumer, before a first, short sleep: counts itself among the sleepers as
/// [`announce_sleep`] does, without the heavy barrier. The answer is exact only where producers
/// acknowledged fences ([`FENCE_ACK`], read by the count's read-modify-write and acquired by
/// the fence after it, so the head stores before the acknowledgement are visible).
///
/// A producer on the light barrier misses this announcement only if its head store and its
/// load of the count cross ours within the moment its store takes to become visible (it then
/// sees our count on its next publish); a sleeper announced this way therefore sleeps one short
/// slice, and only a sleep that outlasts it pays the heavy barrier (see `queue::wait`). Most
/// sleeps end with a wake-up well inside the slice, with no `membarrier(2)` at all: the
/// system call interrupts every CPU running a registered process, and in a virtual machine one
/// whose virtual CPU is not running can hold it for milliseconds.
#[inline]
pub(crate) fn announce_sleep_light(waiters: &AtomicU64) -> Announced {
    let v = waiters.fetch_add(1, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    Announced {
        epoch: (v >> 32) as u32,
        exact: v & FENCE_ACK != 0,
    }
}

/// A process that cannot issue the heavy barrier: asks every producer of the file to fence
/// ([`FENCE_REQ`], for good); returns whether one acknowledged ([`FENCE_ACK`]). The
/// read-modify-write reads the acknowledgement with `SeqCst`, so the head stores before it are
/// visible from here on.
#[inline]
pub(crate) fn request_fences(waiters: &AtomicU64) -> bool {
    waiters.fetch_or(FENCE_REQ, Ordering::SeqCst) & FENCE_ACK != 0
}

/// The sleeper count's current epoch.
#[inline]
pub(crate) fn epoch_of(waiters: &AtomicU64) -> u32 {
    (waiters.load(Ordering::SeqCst) >> 32) as u32
}

/// Consumer, after sleeping (or whoever settles a dead consumer's share): removes one sleeper
/// counted in `epoch`. A share from an earlier epoch was already dropped by [`reset_sleepers`].
#[inline]
pub(crate) fn retract_sleep(waiters: &AtomicU64, epoch: u32) {
    let _ = waiters.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        ((v >> 32) as u32 == epoch && v & COUNT_MASK != 0).then(|| v - 1)
    });
}

/// Producer: drops every share of the count and opens a new epoch (keeping [`FENCE_REQ`] and
/// [`FENCE_ACK`]). Shares left behind by
/// consumers that died between counting themselves and recording it (which nobody can tell
/// apart) vanish with it; live sleepers must then be woken (bump the futex word and wake all),
/// and they count themselves again in the new epoch.
#[inline]
pub(crate) fn reset_sleepers(waiters: &AtomicU64) {
    let _ = waiters.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
        Some((((v >> 32) as u32).wrapping_add(1) as u64) << 32 | v & (FENCE_REQ | FENCE_ACK))
    });
}

/// Consumer: the number of committed records.
#[inline]
pub(crate) fn committed(head: &AtomicU64) -> u64 {
    head.load(Ordering::Acquire)
}

/// What a reader found in the slot it expected record `seq` in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// The slot holds complete record `seq` with this (untrusted, unchecked) length.
    Ready(u32),
    /// The slot holds, or is being rewritten with, the later record `occupant`.
    Overwritten { occupant: u64 },
    /// The stamp says neither (an older record, or garbage): the caller decides.
    Unexpected(u64),
}

/// Consumer, step 1: look at the slot stamp before reading the payload in place.
#[inline]
pub(crate) fn begin_read(stamp: &AtomicU64, len_word: &AtomicU32, seq: u64) -> SlotState {
    let s = stamp.load(Ordering::Acquire);
    if s == committed_stamp(seq) {
        SlotState::Ready(len_word.load(Ordering::Relaxed))
    } else if s > committed_stamp(seq) {
        SlotState::Overwritten {
            occupant: (s - 1) / 2,
        }
    } else {
        SlotState::Unexpected(s)
    }
}

/// Consumer, step 2 (after reading the payload): whether the slot still holds record `seq`, i.e.
/// whether what was read is the record and not a mix with a later one.
#[inline]
pub(crate) fn still_valid(stamp: &AtomicU64, seq: u64) -> bool {
    fence(Ordering::Acquire);
    stamp.load(Ordering::Relaxed) == committed_stamp(seq)
}

/// Consumer: release every record before `next` (back-pressure: the producer may reuse them).
#[inline]
pub(crate) fn release_to(cursor: &AtomicU64, next: u64) {
    cursor.store(next, Ordering::Release);
}

/// Consumer, after [`release_to`]: whether the producer may be asleep waiting for space.
///
/// Pairs with [`announce_space_wait`] as [`must_wake`] with [`announce_sleep`], the other way
/// round: with `light` (this process is registered for `membarrier(2)`) our barrier is
/// [`light_barrier`], a compiler fence, because a producer about to sleep for space issues
/// the heavy barrier after announcing itself (see `queue::wait::wait_for_space`), which runs
/// a full barrier on our CPU: our cursor store is either before it (visible to the
/// producer's re-scan) or our load after it (sees the announcement). A producer that could
/// not issue it sleeps in short slices. Without `light`, a `SeqCst` fence.
#[inline]
pub(crate) fn producer_sleeping(flag: &AtomicU32, light: bool) -> bool {
    if light {
        light_barrier();
    } else {
        fence(Ordering::SeqCst);
    }
    flag.load(Ordering::Relaxed) != 0
}

/// Back-pressure producer, before sleeping for space: announce it, then (for consumers on the
/// light barrier) the heavy barrier, then read the futex word, re-scan the cursors, and only
/// then sleep.
#[inline]
pub(crate) fn announce_space_wait(flag: &AtomicU32) {
    flag.store(1, Ordering::Relaxed);
    fence(Ordering::SeqCst);
}

/// Consumer, on joining: after publishing a provisional cursor and bumping the epoch, the
/// barrier orders both before its read of the head, pairing with the barrier in [`must_wake`]
/// that orders the producer's head store before its next epoch load: a `SeqCst` fence, then the
/// heavy barrier (`heavy`, for a producer whose barrier is light); returns whether that ran,
/// or else whether a producer acknowledged fences ([`request_fences`]). If neither, the caller
/// must not rely on the head it reads next (see `Consumer::open`).
#[inline]
pub(crate) fn join_barrier(waiters: &AtomicU64, heavy: impl FnOnce() -> bool) -> bool {
    fence(Ordering::SeqCst);
    heavy() || request_fences(waiters)
}

/// Back-pressure producer: may record `seq` be written, given the slowest live cursor?
#[inline]
pub(crate) fn has_space(seq: u64, min_cursor: u64, slot_count: u64) -> bool {
    seq < min_cursor.saturating_add(slot_count)
}

/// Where an overwrite-mode reader that found record `seq` overwritten by `occupant` resumes at
/// the earliest: every record up to `occupant - slot_count` has been, or is being, overwritten.
#[inline]
pub(crate) fn resume_after_overrun(seq: u64, occupant: u64, slot_count: u64) -> u64 {
    (occupant + 1).saturating_sub(slot_count).max(seq + 1)
}

/// Where an overwrite-mode reader that found record `seq` overwritten by `occupant` resumes
/// under its policy: `behind` records behind `head` (a head it read after the stamp; a stale
/// one only moves the answer earlier), never before [`resume_after_overrun`]'s answer (so never
/// at a record known to be overwritten, and always past `seq`). `None` resumes at the oldest
/// record still held, which the producer overwrites next. Every record from `seq` up to the
/// answer is lost; the caller counts them.
#[inline]
pub(crate) fn resume_at(
    seq: u64,
    occupant: u64,
    head: u64,
    slot_count: u64,
    behind: Option<u64>,
) -> u64 {
    let oldest = resume_after_overrun(seq, occupant, slot_count);
    match behind {
        None => oldest,
        Some(k) => head.saturating_sub(k).max(oldest),
    }
}
