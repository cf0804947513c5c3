//! Waiting without burning a core, and without trusting any one signal of a peer's death.
//!
//! A wait spins briefly, then sleeps on futex words with `futex_waitv`. Three things end a
//! consumer's sleep when the producer dies, each independent of the others:
//! 1. the kernel's robust-futex wake on the consumer's *own* death word (`ConsumerSlot::death`,
//!    held by the producer's keeper): the kernel wakes one sleeper per word, so each consumer
//!    slot has its word and no consumer depends on another being alive to pass a wake on;
//! 2. every path that sees the producer dead passes the wake on (to the other sleeper of the
//!    same slot, the poll notifier, and to sleepers on the owner word);
//! 3. a **backstop**: no sleep lasts longer than [`BACKSTOP`]; after each slice the waiter
//!    re-reads the words and, at least once per [`BACKSTOP`], checks the producer's liveness
//!    lock (`sys::ofd`), which no write to the mapping can forge. So a lost wake, or a peer that
//!    scribbles the words, delays the news by at most one backstop period.
//!
//! A back-pressure producer waiting for space is protected the same way against consumers.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::layout::{ConsumerSlot, PRODUCER_BYTE, SLEEP_COUNTED, Shared, consumer_byte};
use super::{Error, Result, ring};
use crate::sys::futex::{self, FUTEX_WAITERS, WaitOutcome};
use crate::sys::robust::{EVICTING, Owner, mark_waiting, owner_of};
use crate::sys::time::{deadline_after, deadline_passed};

/// How long a waiter spins before it sleeps, by default (each handle may set its own). Waking a
/// sleeping CPU costs 15-50 us on a virtual machine, so spinning for a comparable time first is
/// what keeps a busy stream out of the kernel (the classic competitive bound: at most twice the
/// cost of sleeping at once), while an idle wait still costs only this much CPU before it sleeps.
pub(crate) const SPIN_FOR: Duration = Duration::from_micros(20);

/// The longest spin a handle may set.
pub(crate) const MAX_SPIN: Duration = Duration::from_secs(1);

/// The first part of a spin, spent without yielding the CPU.
const PURE_SPIN: Duration = Duration::from_micros(2);

/// The longest a sleep lasts before the sleeper re-checks its peer's liveness by itself.
pub const BACKSTOP: Duration = Duration::from_millis(200);

/// Which of a consumer's two possible sleepers is counted (its `sleep` word).
pub(crate) const ROLE_READER: usize = 0;
pub(crate) const ROLE_NOTIFIER: usize = 1;

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
    pub(crate) fn passed(&self) -> bool {
        match self {
            Deadline::Now => true,
            Deadline::At(t) => deadline_passed(t),
            Deadline::Never => false,
        }
    }
    /// The error for a wait that gave up.
    pub(crate) fn expired(&self) -> Error {
        if matches!(self, Deadline::Now) {
            Error::WouldBlock
        } else {
            Error::Timeout
        }
    }
    /// The end of the next sleep: the deadline, or one backstop period from now if sooner.
    fn slice(&self) -> libc::timespec {
        let at = match self {
            Deadline::At(t) => Some(t),
            _ => None,
        };
        crate::sys::time::slice_end(at, BACKSTOP)
    }
}

/// A point in time at least one backstop period after the last liveness-lock check.
struct Backstop(libc::timespec);

impl Backstop {
    fn new() -> Backstop {
        Backstop(deadline_after(BACKSTOP))
    }
    /// Whether a check is due; if so, the next one is due one period from now.
    fn due(&mut self) -> bool {
        if deadline_passed(&self.0) {
            self.0 = deadline_after(BACKSTOP);
            true
        } else {
            false
        }
    }
}

/// Whether `futex_waitv` is usable: absent before Linux 5.16 (`ENOSYS`), refused by container
/// seccomp profiles (`EPERM`). Without it, sleeps are cut into 10 ms slices on the first word,
/// so that the other words' changes are still noticed promptly.
static NO_WAITV: AtomicU32 = AtomicU32::new(0);

/// Sleeps until one of `words` is woken or changes, or `until` passes.
fn sleep_on(words: &[(&AtomicU32, u32)], until: &libc::timespec) -> Result<WaitOutcome> {
    if NO_WAITV.load(Ordering::Relaxed) == 0 {
        match futex::waitv(words, Some(until)) {
            Ok(o) => return Ok(o),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                NO_WAITV.store(1, Ordering::Relaxed);
            }
            Err(e) => return Err(Error::io("futex_waitv", None, e)),
        }
    }
    let slice = deadline_after(Duration::from_millis(10));
    let short = (until.tv_sec, until.tv_nsec) < (slice.tv_sec, slice.tv_nsec);
    let (word, expected) = words[0];
    match futex::wait(word, expected, Some(if short { until } else { &slice })) {
        Ok(WaitOutcome::TimedOut) if !short => Ok(WaitOutcome::Woken(0)),
        Ok(o) => Ok(o),
        Err(e) => Err(Error::io("futex", None, e)),
    }
}

/// Test hook: `SHMIO_TEST_HOOK=die-after-announce` kills the process (SIGKILL) right after a
/// consumer counted itself among the sleepers, before it recorded that in its slot: the window
/// that leaves an over-count behind. Read once; costs one relaxed load on the sleep path only.
fn hook_die_after_announce() -> bool {
    static HOOK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HOOK.get_or_init(|| {
        std::env::var_os("SHMIO_TEST_HOOK").is_some_and(|v| v == "die-after-announce")
    })
}

/// The producer as one consumer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    /// Held by the live keeper with this thread id; the consumer's death word agrees.
    Alive,
    /// Closed cleanly ([`Owner::Free`]) or died ([`Owner::Died`]).
    Gone(Owner),
}

/// Reads the producer's owner word and the consumer's death word and reconciles them. The
/// producer claims every death word before its owner word and releases its owner word first,
/// so a live owner with a death word that disagrees is a death or a clean close in progress
/// (the owner word, re-read, says which), or a scribbled file.
fn producer_view(shared: &Shared, me: &ConsumerSlot) -> Result<View> {
    let owner = &shared.header().owner.0.owner;
    let mut ow = owner.load(Ordering::SeqCst);
    for _ in 0..4 {
        let tid = match owner_of(ow) {
            Owner::Alive(t) => t,
            Owner::Evicting => {
                return Err(Error::Corrupt(
                    "the producer's owner word holds a consumer eviction mark".into(),
                ));
            }
            gone => return Ok(View::Gone(gone)),
        };
        let dw = me.death.load(Ordering::SeqCst);
        if owner_of(dw) == Owner::Alive(tid) {
            return Ok(View::Alive);
        }
        let again = owner.load(Ordering::SeqCst);
        if again == ow {
            return if owner_of(dw) == Owner::Died {
                // The owner word was overwritten with a live-looking id, but the kernel marked
                // the producer's words: it is dead.
                Ok(View::Gone(Owner::Died))
            } else {
                Err(Error::Corrupt(format!(
                    "the producer's liveness words disagree (owner {ow:#x}, death word {dw:#x})"
                )))
            };
        }
        ow = again;
    }
    Err(Error::Corrupt(
        "the producer's owner word keeps changing".into(),
    ))
}

/// Passes a death on to every other sleeper that may depend on the wake we consumed: the
/// kernel wakes one sleeper per word.
fn pass_on_death(shared: &Shared, me: &ConsumerSlot) {
    let owner = &shared.header().owner.0.owner;
    if owner.load(Ordering::SeqCst) & FUTEX_WAITERS != 0 {
        futex::wake_all(owner);
    }
    if me.death.load(Ordering::SeqCst) & FUTEX_WAITERS != 0 {
        futex::wake_all(&me.death);
    }
}

/// What a consumer-side wait ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataWait {
    /// A record beyond the cursor is committed.
    Data,
    /// No producer, and nothing left to read: it closed ([`Owner::Free`]) or died.
    Gone(Owner),
    /// One of the extra words changed (its index): a kick of the poll notifier, or a
    /// cancellation.
    Kicked(usize),
}

/// Waits until record `cursor` is committed, the producer is gone (after every committed record
/// is visible), the deadline passes, or one of `extra` (words and the values they had) changes.
/// `role` names the sleeper ([`ROLE_READER`] or [`ROLE_NOTIFIER`]). Spins for up to `spin`
/// first.
pub(crate) fn wait_for_data(
    shared: &Shared,
    me: &ConsumerSlot,
    role: usize,
    cursor: u64,
    deadline: &Deadline,
    spin: Duration,
    extra: &[(&AtomicU32, u32)],
) -> Result<DataWait> {
    let h = shared.header();
    let head = &h.prod.0.head;
    let kicked = || {
        extra
            .iter()
            .position(|(w, v)| w.load(Ordering::SeqCst) != *v)
    };
    if !matches!(deadline, Deadline::Now)
        && spin_until(spin, || {
            ring::committed(head) > cursor || kicked().is_some()
        })
        && ring::committed(head) > cursor
    {
        return Ok(DataWait::Data);
    }
    let mut backstop = Backstop::new();
    loop {
        shared.intact(false)?;
        if ring::committed(head) > cursor {
            return Ok(DataWait::Data);
        }
        let view = producer_view(shared, me)?;
        let lock_lost = view == View::Alive && backstop.due() && !shared.role_held(PRODUCER_BYTE);
        let gone = match view {
            View::Gone(state) => Some(state),
            View::Alive if lock_lost => Some(Owner::Died),
            View::Alive => None,
        };
        if let Some(state) = gone {
            // Records committed before the death or close are visible now: drain first.
            if ring::committed(head) > cursor {
                return Ok(DataWait::Data);
            }
            if state == Owner::Died {
                pass_on_death(shared, me);
            }
            return Ok(DataWait::Gone(state));
        }
        if let Some(i) = kicked() {
            return Ok(DataWait::Kicked(i));
        }
        if deadline.passed() {
            return Err(deadline.expired());
        }
        // Before sleeping: the file must still be whole (a shrunk file is reported, not slept
        // on: its futex words may be gone).
        shared.intact(true)?;
        let Some(dw) = mark_waiting(&me.death) else {
            continue;
        };
        // Count in `waiters`, then record it in the slot (and undo in the reverse order): a
        // death in between over-counts, which costs wake system calls until the producer resets
        // the count (see `wake_consumers`), never a lost wake-up.
        let epoch = ring::announce_sleep(&h.waiters.0);
        if hook_die_after_announce() {
            // SIGKILL ends the process here.
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
        me.sleep[role].store(SLEEP_COUNTED | (epoch & !SLEEP_COUNTED), Ordering::SeqCst);
        let n = h.prod.0.notify.load(Ordering::Acquire);
        let res = if ring::epoch_of(&h.waiters.0) != epoch || ring::committed(head) > cursor {
            Ok(WaitOutcome::Changed)
        } else {
            let mut words: [(&AtomicU32, u32); 4] = [(&h.prod.0.notify, n); 4];
            words[1] = (&me.death, dw);
            let k = extra.len().min(2);
            words[2..2 + k].copy_from_slice(&extra[..k]);
            sleep_on(&words[..2 + k], &deadline.slice())
        };
        me.sleep[role].store(0, Ordering::SeqCst);
        ring::retract_sleep(&h.waiters.0, epoch);
        shared.intact(true)?;
        if let WaitOutcome::Interrupted = res? {
            // A signal: report it, unless the record or the death (whose wake we may have
            // taken) is already there.
            if ring::committed(head) > cursor {
                return Ok(DataWait::Data);
            }
            if let View::Alive = producer_view(shared, me)? {
                return Err(Error::Interrupted);
            }
        }
    }
}

/// Waits until a live producer holds the queue (a take-over after a death or a close), the
/// deadline passes or one of `extra` changes (its index is returned). Returns at once if one
/// holds it now.
pub(crate) fn wait_for_producer(
    shared: &Shared,
    me: &ConsumerSlot,
    deadline: &Deadline,
    extra: &[(&AtomicU32, u32)],
) -> Result<Option<usize>> {
    let owner = &shared.header().owner.0.owner;
    loop {
        // Announce a sleeper (a claim keeps the bit and wakes the word's sleepers only if set).
        let ow = owner.fetch_or(FUTEX_WAITERS, Ordering::SeqCst) | FUTEX_WAITERS;
        // A live-looking word counts only with the producer's liveness lock behind it.
        if producer_view(shared, me)? == View::Alive && shared.role_held(PRODUCER_BYTE) {
            return Ok(None);
        }
        if let Some(i) = extra
            .iter()
            .position(|(w, v)| w.load(Ordering::SeqCst) != *v)
        {
            return Ok(Some(i));
        }
        if deadline.passed() {
            return Err(deadline.expired());
        }
        shared.intact(true)?;
        // A new producer's claim wakes every sleeper on the owner word.
        let mut words: [(&AtomicU32, u32); 3] = [(owner, ow); 3];
        let k = extra.len().min(2);
        words[1..1 + k].copy_from_slice(&extra[..k]);
        if let WaitOutcome::Interrupted = sleep_on(&words[..1 + k], &deadline.slice())? {
            return Err(Error::Interrupted);
        }
    }
}

/// Producer: wakes every consumer asleep on `notify`, if any announced it sleeps. Counts the
/// wake system calls in `wake_calls`.
///
/// `idle_wakes` counts wakes that found nobody asleep: a consumer killed while asleep, or
/// between counting itself and recording it, leaves its share in the count. After a run of
/// those, dead consumers are evicted and the count is reset (see [`repair_sleepers`]).
#[inline]
pub(crate) fn wake_consumers(shared: &Shared, idle_wakes: &mut u32, wake_calls: &mut u64) {
    let h = shared.header();
    if ring::must_wake(&h.waiters.0) {
        h.prod.0.notify.fetch_add(1, Ordering::SeqCst);
        *wake_calls += 1;
        match futex::wake(&h.prod.0.notify, u32::MAX) {
            Ok(0) => {
                *idle_wakes += 1;
                if *idle_wakes >= 64 {
                    *idle_wakes = 0;
                    repair_sleepers(shared);
                }
            }
            _ => *idle_wakes = 0,
        }
    }
}

/// Producer: evicts dead consumers, then resets the sleeper count to a new epoch and wakes
/// everyone, so that live sleepers count themselves again and shares that no slot records
/// (a consumer killed between counting itself and recording it) are gone.
pub(crate) fn repair_sleepers(shared: &Shared) {
    evict_dead_consumers(shared);
    let h = shared.header();
    ring::reset_sleepers(&h.waiters.0);
    h.prod.0.notify.fetch_add(1, Ordering::SeqCst);
    futex::wake_all(&h.prod.0.notify);
}

/// Frees consumer slot `i` if its holder died, undoing its share of the sleeper count.
/// Returns the slot's owner state after the call.
///
/// Exactly one party settles a dead slot: the one whose CAS moves the owner word from "died"
/// to [`EVICTING`]; claims skip such a word, so no new consumer can add to the slot's
/// sleep words while it is settled.
pub(crate) fn evict_if_dead(shared: &Shared, i: u32) -> Owner {
    let c = shared.consumer(i);
    let ow = c.owner.load(Ordering::SeqCst);
    let state = owner_of(ow);
    if state != Owner::Died {
        return state;
    }
    settle_from(shared, i, ow)
}

/// Frees consumer slot `i` whose owner word shows a live holder but whose liveness lock nobody
/// holds: the holder is dead (its word was scribbled or its wake lost). Returns the slot's
/// state after the call.
pub(crate) fn evict_if_abandoned(shared: &Shared, i: u32) -> Owner {
    let c = shared.consumer(i);
    let ow = c.owner.load(Ordering::SeqCst);
    match owner_of(ow) {
        Owner::Alive(_) if !shared.role_held(consumer_byte(i)) => {
            // Re-read: a consumer takes its lock before its word, so an owner that appeared
            // since our read holds the lock and the CAS below fails on its new value.
            settle_from(shared, i, ow)
        }
        state => state,
    }
}

fn settle_from(shared: &Shared, i: u32, observed: u32) -> Owner {
    let c = shared.consumer(i);
    if c.owner
        .compare_exchange(observed, EVICTING, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return owner_of(c.owner.load(Ordering::SeqCst));
    }
    settle_sleepers(shared, c);
    c.owner.store(0, Ordering::SeqCst);
    // A producer may sleep on this word (back-pressure; it set the waiters bit): it re-scans.
    if observed & FUTEX_WAITERS != 0 {
        futex::wake_all(&c.owner);
    }
    Owner::Free
}

/// Removes a slot's recorded shares from the sleeper count. Only the slot's owner or its
/// evictor calls this.
pub(crate) fn settle_sleepers(shared: &Shared, c: &ConsumerSlot) {
    let waiters = &shared.header().waiters.0;
    for w in &c.sleep {
        let v = w.swap(0, Ordering::SeqCst);
        if v & SLEEP_COUNTED != 0 {
            let epoch = ring::epoch_of(waiters);
            if (epoch & !SLEEP_COUNTED) == (v & !SLEEP_COUNTED) {
                ring::retract_sleep(waiters, epoch);
            }
        }
    }
}

/// Evicts every dead consumer.
pub(crate) fn evict_dead_consumers(shared: &Shared) {
    for i in 0..shared.consumer_scan_len() {
        evict_if_dead(shared, i);
    }
}

/// Back-pressure producer: the smallest cursor of the live consumers (`u64::MAX` if none), and
/// the slot indices of those whose cursor blocks record `seq`. Evicts dead consumers on the way;
/// with `check_locks`, also those whose liveness lock is gone.
pub(crate) fn scan_consumers(
    shared: &Shared,
    seq: u64,
    blockers: &mut Vec<u32>,
    check_locks: bool,
) -> u64 {
    blockers.clear();
    let n = u64::from(shared.layout.slot_count);
    let mut min = u64::MAX;
    for i in 0..shared.consumer_scan_len() {
        let mut state = evict_if_dead(shared, i);
        if check_locks && matches!(state, Owner::Alive(_)) {
            state = evict_if_abandoned(shared, i);
        }
        if let Owner::Alive(_) = state {
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
/// another scan). A change of `cancel` (a word and the value it had) ends the wait with
/// [`Error::Cancelled`].
pub(crate) fn wait_for_space(
    shared: &Shared,
    seq: u64,
    deadline: &Deadline,
    spin: Duration,
    cancel: (&AtomicU32, u32),
) -> Result<u64> {
    let h = shared.header();
    let n = u64::from(shared.layout.slot_count);
    let mut blockers = Vec::new();
    let mut spun = false;
    let mut backstop = Backstop::new();
    let mut check_locks = false;
    loop {
        let min = scan_consumers(shared, seq, &mut blockers, check_locks);
        check_locks = false;
        if ring::has_space(seq, min, n) {
            return Ok(min.saturating_add(n));
        }
        if cancel.0.load(Ordering::SeqCst) != cancel.1 {
            return Err(Error::Cancelled);
        }
        if deadline.passed() {
            return Err(deadline.expired());
        }
        if !spun {
            spun = true;
            // Wait for the slowest consumer's cursor to move, then scan again.
            let cursors: Vec<&std::sync::atomic::AtomicU64> = blockers
                .iter()
                .map(|&i| &shared.consumer(i).cursor)
                .collect();
            let before: Vec<u64> = cursors.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            // Also the blockers' owner words: a long spin must not hide a consumer's death.
            let owners: Vec<&AtomicU32> = blockers
                .iter()
                .map(|&i| &shared.consumer(i).owner)
                .collect();
            let owned: Vec<u32> = owners.iter().map(|o| o.load(Ordering::Relaxed)).collect();
            spin_until(spin, || {
                cancel.0.load(Ordering::Relaxed) != cancel.1
                    || cursors
                        .iter()
                        .zip(&before)
                        .any(|(c, b)| c.load(Ordering::Relaxed) != *b)
                    || owners.iter().zip(&owned).any(|(o, v)| {
                        // Changed, or already showing no live holder: a consumer that died
                        // between the scan and the snapshot left a marked word that will not
                        // change again (a 1 s spin stalled on it in the kill suite).
                        let now = o.load(Ordering::Relaxed);
                        now != *v || !matches!(owner_of(now), Owner::Alive(_))
                    })
            });
            continue;
        }
        shared.intact(true)?;
        let space = &h.space.0;
        ring::announce_space_wait(&space.producer_waiting);
        let sn = space.space_notify.load(Ordering::Acquire);
        let min = scan_consumers(shared, seq, &mut blockers, false);
        if ring::has_space(seq, min, n) {
            space.producer_waiting.store(0, Ordering::Relaxed);
            return Ok(min.saturating_add(n));
        }
        // Sleep on the space word, the cancel word and the owner words of the consumers in the
        // way, so that their death wakes us too.
        let mut words: Vec<(&AtomicU32, u32)> = Vec::with_capacity(blockers.len() + 2);
        words.push((&space.space_notify, sn));
        words.push(cancel);
        let mut gone = false;
        for &i in blockers.iter().take(futex::WAITV_MAX - 2) {
            let w = &shared.consumer(i).owner;
            match mark_waiting(w) {
                Some(v) => words.push((w, v)),
                None => gone = true,
            }
        }
        let res = if gone {
            Ok(WaitOutcome::Changed)
        } else {
            sleep_on(&words, &deadline.slice())
        };
        space.producer_waiting.store(0, Ordering::Relaxed);
        check_locks = backstop.due();
        if let WaitOutcome::Interrupted = res? {
            return Err(Error::Interrupted);
        }
    }
}

/// Producer: waits until at least `count` live consumers are attached; returns how many are.
pub(crate) fn wait_for_consumers(
    shared: &Shared,
    count: usize,
    deadline: &Deadline,
    cancel: (&AtomicU32, u32),
) -> Result<usize> {
    let space = &shared.header().space.0;
    let mut backstop = Backstop::new();
    loop {
        let check = backstop.due();
        let live = (0..shared.consumer_scan_len())
            .filter(|&i| {
                let mut s = evict_if_dead(shared, i);
                if check && matches!(s, Owner::Alive(_)) {
                    s = evict_if_abandoned(shared, i);
                }
                // Attached means joined: its start is chosen, so whatever is sent now is its.
                matches!(s, Owner::Alive(_))
                    && shared.consumer(i).joined.load(Ordering::SeqCst) == 1
            })
            .count();
        if live >= count {
            return Ok(live);
        }
        if cancel.0.load(Ordering::SeqCst) != cancel.1 {
            return Err(Error::Cancelled);
        }
        if deadline.passed() {
            return Err(deadline.expired());
        }
        shared.intact(true)?;
        // A joining consumer bumps the epoch and wakes a producer that announced it waits.
        ring::announce_space_wait(&space.producer_waiting);
        let sn = space.space_notify.load(Ordering::Acquire);
        let epoch = space.consumers_epoch.load(Ordering::SeqCst);
        let res = sleep_on(
            &[
                (&space.space_notify, sn),
                (&space.consumers_epoch, epoch),
                cancel,
            ],
            &deadline.slice(),
        );
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
