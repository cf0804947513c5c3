//! Waiting without burning a core: a short bounded spin, then a futex sleep that also watches
//! the robust owner words, so a peer's death wakes the sleeper at once.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::layout::{ConsumerSlot, Shared};
use super::{Error, Result, ring};
use crate::sys::futex::{self, WaitOutcome};
use crate::sys::robust::{EVICTING, FUTEX_WAITERS, Owner, mark_waiting, owner_of};
use crate::sys::{deadline_after, deadline_passed};

/// How long a waiter spins before it sleeps, by default (each handle may set its own). Waking a sleeping CPU costs 15-50 us on a virtual
/// machine, so spinning for a comparable time first is what keeps a busy stream out of the
/// kernel (the classic competitive bound: at most twice the cost of sleeping at once), while an
/// idle wait still costs only this much CPU before it sleeps.
pub(crate) const SPIN_FOR: Duration = Duration::from_micros(20);

/// The longest spin a handle may set.
pub(crate) const MAX_SPIN: Duration = Duration::from_secs(1);

/// The first part of a spin, spent without yielding the CPU.
const PURE_SPIN: Duration = Duration::from_micros(2);

/// Spins until `ready` holds (true) or `spin` has passed (false). A zero `spin` checks once.
#[inline]
pub(crate) fn spin_until(spin: Duration, mut ready: impl FnMut() -> bool) -> bool {
    if spin.is_zero() {
        return ready();
    }
    let start = std::time::Instant::now();
    loop {
        for _ in 0..64 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= spin {
            return false;
        }
        // After a short pure spin (a round trip between two cores is well under this), let a
        // runnable peer have the CPU between rounds: when processes outnumber cores (a producer
        // and several consumers on two vCPUs) a pure spin would starve the very producer it
        // waits for.
        if start.elapsed() >= PURE_SPIN {
            std::thread::yield_now();
        }
    }
}

/// When a wait gives up.
#[derive(Clone, Copy)]
pub(crate) enum Deadline {
    /// Do not wait at all.
    Now,
    /// Until this absolute `CLOCK_MONOTONIC` time.
    At(libc::timespec),
    /// For ever.
    Never,
}

impl Deadline {
    pub(crate) fn after(timeout: Option<Duration>) -> Deadline {
        match timeout {
            None => Deadline::Never,
            Some(d) if d.is_zero() => Deadline::Now,
            Some(d) => Deadline::At(deadline_after(d)),
        }
    }
    fn passed(&self) -> bool {
        match self {
            Deadline::Now => true,
            Deadline::At(t) => deadline_passed(t),
            Deadline::Never => false,
        }
    }
    fn as_ts(&self) -> Option<&libc::timespec> {
        match self {
            Deadline::At(t) => Some(t),
            _ => None,
        }
    }
}

/// Whether `futex_waitv` can be used: it exists from Linux 5.16 (`ENOSYS` before), and container
/// runtimes' default seccomp profiles (Podman/CRI-O until 2026) refuse it with `EPERM`.
/// Without it, sleeps are cut into 10 ms slices so that a peer's death is still noticed within
/// the promised 50 ms.
static NO_WAITV: AtomicU32 = AtomicU32::new(0);

/// Sleeps until one of `words` is woken or changes, or the deadline passes.
fn sleep_on(words: &[(&AtomicU32, u32)], deadline: &Deadline) -> Result<WaitOutcome> {
    if NO_WAITV.load(Ordering::Relaxed) == 0 {
        match futex::waitv(words, deadline.as_ts()) {
            Ok(o) => return Ok(o),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                NO_WAITV.store(1, Ordering::Relaxed);
            }
            Err(e) => return Err(Error::io("futex_waitv", None, e)),
        }
    }
    let slice = deadline_after(Duration::from_millis(10));
    let until = match deadline.as_ts() {
        Some(t) if (t.tv_sec, t.tv_nsec) < (slice.tv_sec, slice.tv_nsec) => *t,
        _ => slice,
    };
    let (word, expected) = words[0];
    match futex::wait(word, expected, Some(&until)) {
        Ok(WaitOutcome::TimedOut) if !deadline.passed() => Ok(WaitOutcome::Woken(0)),
        Ok(o) => Ok(o),
        Err(e) => Err(Error::io("futex", None, e)),
    }
}

/// What a consumer-side wait ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataWait {
    /// A record beyond the cursor is committed.
    Data,
    /// No producer, and nothing left to read: it closed ([`Owner::Free`]) or died.
    Gone(Owner),
    /// The extra word was kicked (used by the poll notifier).
    Kicked,
}

/// Waits until record `cursor` is committed, the producer is gone (after every committed record
/// is visible), the deadline passes, or `extra` (a word and the value it had) changes. Spins
/// for up to `spin` first (not when `extra` is given: the poll notifier only ever sleeps).
pub(crate) fn wait_for_data(
    shared: &Shared,
    me: &ConsumerSlot,
    cursor: u64,
    deadline: &Deadline,
    spin: Duration,
    extra: Option<(&AtomicU32, u32)>,
) -> Result<DataWait> {
    let h = shared.header();
    let head = &h.prod.0.head;
    let owner = &h.owner.0.owner;
    if !matches!(deadline, Deadline::Now)
        && extra.is_none()
        && spin_until(spin, || ring::committed(head) > cursor)
    {
        return Ok(DataWait::Data);
    }
    loop {
        if ring::committed(head) > cursor {
            return Ok(DataWait::Data);
        }
        if let Some((w, v)) = extra {
            if w.load(Ordering::SeqCst) != v {
                return Ok(DataWait::Kicked);
            }
        }
        let ow = owner.load(Ordering::SeqCst);
        let state = owner_of(ow);
        if state != Owner::Alive(ow & crate::sys::robust::FUTEX_TID_MASK) {
            // Records committed before the death or close are visible now: drain first.
            if ring::committed(head) > cursor {
                return Ok(DataWait::Data);
            }
            if state == Owner::Died && ow & FUTEX_WAITERS != 0 {
                // The kernel wakes one sleeper per death; pass it on to the others.
                futex::wake_all(owner);
            }
            return Ok(DataWait::Gone(state));
        }
        if deadline.passed() {
            return Err(if matches!(deadline, Deadline::Now) {
                Error::WouldBlock
            } else {
                Error::Timeout
            });
        }
        let Some(ow) = mark_waiting(owner) else {
            continue;
        };
        // Count in `waiters` before `sleeping` (and undo in the reverse order): a death in
        // between over-counts, which costs wake system calls, never a lost wake-up.
        ring::announce_sleep(&h.waiters.0);
        me.sleeping.fetch_add(1, Ordering::Relaxed);
        let n = h.prod.0.notify.load(Ordering::Acquire);
        let res = if ring::committed(head) > cursor {
            Ok(WaitOutcome::Changed)
        } else {
            match extra {
                Some(x) => sleep_on(&[(&h.prod.0.notify, n), (owner, ow), x], deadline),
                None => sleep_on(&[(&h.prod.0.notify, n), (owner, ow)], deadline),
            }
        };
        me.sleeping.fetch_sub(1, Ordering::Relaxed);
        ring::retract_sleep(&h.waiters.0);
        if let WaitOutcome::Interrupted = res? {
            if ring::committed(head) > cursor {
                return Ok(DataWait::Data);
            }
            return Err(Error::Interrupted);
        }
    }
}

/// Producer: wakes every consumer asleep on `notify`, if any announced it sleeps.
///
/// `idle_wakes` counts wakes that found nobody asleep: a consumer killed while asleep leaves
/// its share in the count until evicted, so after a run of those, dead consumers are evicted.
#[inline]
pub(crate) fn wake_consumers(shared: &Shared, idle_wakes: &mut u32) {
    let h = shared.header();
    if ring::must_wake(&h.waiters.0) {
        h.prod.0.notify.fetch_add(1, Ordering::SeqCst);
        match futex::wake(&h.prod.0.notify, u32::MAX) {
            Ok(0) => {
                *idle_wakes += 1;
                if *idle_wakes >= 64 {
                    *idle_wakes = 0;
                    evict_dead_consumers(shared);
                }
            }
            _ => *idle_wakes = 0,
        }
    }
}

/// Frees consumer slot `i` if its holder died, undoing its share of the sleeper count.
/// Returns the slot's owner state after the call.
///
/// Exactly one party settles a dead slot: the one whose CAS moves the owner word from "died"
/// to [`EVICTING`]; claims skip such a word, so no new consumer can add to the slot's
/// `sleeping` count while it is settled.
pub(crate) fn evict_if_dead(shared: &Shared, i: u32) -> Owner {
    let c = shared.consumer(i);
    let ow = c.owner.load(Ordering::SeqCst);
    let state = owner_of(ow);
    if state != Owner::Died {
        return state;
    }
    if c.owner
        .compare_exchange(ow, EVICTING, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return owner_of(c.owner.load(Ordering::SeqCst));
    }
    settle_sleepers(shared, c);
    c.owner.store(0, Ordering::SeqCst);
    Owner::Free
}

/// Removes a slot's leftover share from the sleeper count. Only the slot's owner or its
/// evictor calls this. A hostile value is bounded (a consumer and its notifier: at most 2).
pub(crate) fn settle_sleepers(shared: &Shared, c: &ConsumerSlot) {
    let asleep = c.sleeping.swap(0, Ordering::SeqCst);
    if (1..=2).contains(&asleep) {
        ring::retract_many(&shared.header().waiters.0, asleep);
    }
}

/// Evicts every dead consumer (the producer calls this when its wakes find nobody asleep, so
/// that a consumer killed while asleep stops costing a wake per record).
pub(crate) fn evict_dead_consumers(shared: &Shared) {
    for i in 0..shared.consumer_scan_len() {
        evict_if_dead(shared, i);
    }
}

/// Back-pressure producer: the smallest cursor of the live consumers (`u64::MAX` if none), and
/// the slot indices of those whose cursor blocks record `seq`. Evicts dead consumers on the way.
pub(crate) fn scan_consumers(shared: &Shared, seq: u64, blockers: &mut Vec<u32>) -> u64 {
    blockers.clear();
    let n = u64::from(shared.layout.slot_count);
    let mut min = u64::MAX;
    for i in 0..shared.consumer_scan_len() {
        if let Owner::Alive(_) = evict_if_dead(shared, i) {
            let cur = shared.consumer(i).cursor.load(Ordering::Acquire);
            min = min.min(cur);
            if !ring::has_space(seq, cur, n) {
                blockers.push(i);
            }
        }
    }
    min
}

/// Back-pressure producer: waits until record `seq` may be written, spinning for up to `spin`
/// before it sleeps. Returns the new write limit (records below it may be written without
/// another scan).
pub(crate) fn wait_for_space(
    shared: &Shared,
    seq: u64,
    deadline: &Deadline,
    spin: Duration,
) -> Result<u64> {
    let h = shared.header();
    let n = u64::from(shared.layout.slot_count);
    let mut blockers = Vec::new();
    let mut spun = false;
    loop {
        let min = scan_consumers(shared, seq, &mut blockers);
        if ring::has_space(seq, min, n) {
            return Ok(min.saturating_add(n));
        }
        if deadline.passed() {
            return Err(if matches!(deadline, Deadline::Now) {
                Error::WouldBlock
            } else {
                Error::Timeout
            });
        }
        if !spun {
            spun = true;
            // Wait for the slowest consumer's cursor to move, then scan again.
            let cursors: Vec<&std::sync::atomic::AtomicU64> = blockers
                .iter()
                .map(|&i| &shared.consumer(i).cursor)
                .collect();
            let before: Vec<u64> = cursors.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            spin_until(spin, || {
                cursors
                    .iter()
                    .zip(&before)
                    .any(|(c, b)| c.load(Ordering::Relaxed) != *b)
            });
            continue;
        }
        let space = &h.space.0;
        ring::announce_space_wait(&space.producer_waiting);
        let sn = space.space_notify.load(Ordering::Acquire);
        let min = scan_consumers(shared, seq, &mut blockers);
        if ring::has_space(seq, min, n) {
            space.producer_waiting.store(0, Ordering::Relaxed);
            return Ok(min.saturating_add(n));
        }
        // Sleep on the space word and on the owner words of the consumers in the way, so that
        // their death wakes us too.
        let mut words: Vec<(&AtomicU32, u32)> = Vec::with_capacity(blockers.len() + 1);
        words.push((&space.space_notify, sn));
        let mut gone = false;
        for &i in blockers.iter().take(futex::WAITV_MAX - 1) {
            let w = &shared.consumer(i).owner;
            match mark_waiting(w) {
                Some(v) => words.push((w, v)),
                None => gone = true,
            }
        }
        let res = if gone {
            Ok(WaitOutcome::Changed)
        } else {
            sleep_on(&words, deadline)
        };
        space.producer_waiting.store(0, Ordering::Relaxed);
        if let WaitOutcome::Interrupted = res? {
            return Err(Error::Interrupted);
        }
    }
}

/// Consumer (back-pressure): after releasing records, wakes the producer if it sleeps.
#[inline]
pub(crate) fn wake_producer(shared: &Shared) {
    let space = &shared.header().space.0;
    if ring::producer_sleeping(&space.producer_waiting) {
        space.space_notify.fetch_add(1, Ordering::SeqCst);
        futex::wake_all(&space.space_notify);
    }
}
