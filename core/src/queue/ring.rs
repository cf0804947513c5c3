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
///
/// Sequentially consistent so that, together with [`must_wake`], a consumer that announced it
/// is going to sleep is either seen by the producer or sees the new head (no lost wake-up).
#[inline]
pub(crate) fn publish(head: &AtomicU64, seq: u64) {
    head.store(seq.wrapping_add(1), Ordering::SeqCst);
}

/// Producer, after [`publish`]: whether any consumer may be asleep and needs a futex wake.
#[inline]
pub(crate) fn must_wake(waiters: &AtomicU32) -> bool {
    waiters.load(Ordering::SeqCst) != 0
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
///
/// Sequentially consistent so that, with [`producer_sleeping`], a producer that announced it
/// waits for space either sees the new cursor or is woken.
#[inline]
pub(crate) fn release_to(cursor: &AtomicU64, next: u64) {
    cursor.store(next, Ordering::SeqCst);
}

/// Consumer, after [`release_to`]: whether the producer may be asleep waiting for space.
#[inline]
pub(crate) fn producer_sleeping(flag: &AtomicU32) -> bool {
    flag.load(Ordering::SeqCst) != 0
}

/// Back-pressure producer: may record `seq` be written, given the slowest live cursor?
#[inline]
pub(crate) fn has_space(seq: u64, min_cursor: u64, slot_count: u64) -> bool {
    seq < min_cursor.saturating_add(slot_count)
}

/// Where an overwrite-mode reader that found record `seq` overwritten by `occupant` resumes:
/// every record up to `occupant - slot_count` has been, or is being, overwritten.
#[inline]
pub(crate) fn resume_after_overrun(seq: u64, occupant: u64, slot_count: u64) -> u64 {
    (occupant + 1).saturating_sub(slot_count).max(seq + 1)
}
