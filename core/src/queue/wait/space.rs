//! The back-pressure producer's waits (for space, for consumers) and the consumer's wake of
//! a producer asleep on the space word.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::liveness::{evict_if_abandoned, evict_if_dead};
use super::{Backstop, Deadline, SHORT_SLICE, sleep_on, spin_until};
use crate::queue::layout::Shared;
use crate::queue::{Error, Result, ring};
use crate::sys::futex::{self, WaitOutcome};
use crate::sys::membarrier;
use crate::sys::robust::{Owner, mark_waiting, owner_of};

/// Back-pressure producer: the smallest cursor of the live consumers (`u64::MAX` if none), and
/// the slot indices of those whose cursor blocks record `seq`. Evicts dead consumers on the way;
/// with `check_locks`, also those whose liveness lock is gone.
fn scan_consumers(shared: &Shared, seq: u64, blockers: &mut Vec<u32>, check_locks: bool) -> u64 {
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
    let mut first_sleep = true;
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
        // Consumers release with a compiler fence only (`ring::producer_sleeping`): the heavy
        // barrier makes it a full one, so that the re-scan below sees their cursor stores or
        // they see the announcement. Not on the first sleep of this wait, which is one short
        // slice: most end with a wake-up well inside it (see `ring::announce_sleep_light`).
        let exact = !std::mem::take(&mut first_sleep) && membarrier::global_expedited();
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
        } else if exact {
            sleep_on(&words, &deadline.slice())
        } else {
            sleep_on(&words, &deadline.slice_within(SHORT_SLICE))
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
/// `light`: the consumer's barrier (see [`ring::producer_sleeping`]).
#[inline]
pub(crate) fn wake_producer(shared: &Shared, light: bool) {
    let space = &shared.header().space.0;
    if ring::producer_sleeping(&space.producer_waiting, light) {
        space.space_notify.fetch_add(1, Ordering::SeqCst);
        futex::wake_all(&space.space_notify);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::queue::testing::Cleanup;
    use crate::queue::{Consumer, Policy, Producer, QueueOptions, Start};
    use crate::sys::membarrier::CALLS;

    /// A producer blocked for space whose consumer frees a slot within the first slice issues
    /// no `membarrier(2)` (consumers release behind a compiler fence, and the heavy barrier is
    /// paid only by a sleep that outlasts the slice); one that waits longer pays it and still
    /// gets its slot.
    #[test]
    fn only_a_space_wait_outlasting_the_first_slice_pays_the_heavy_barrier() {
        let name = format!("shmio-unit-light-space-{}", std::process::id());
        let _cleanup = Cleanup(name.clone());
        let opts = QueueOptions::new()
            .slots(2)
            .slot_size(8)
            .policy(Policy::BackPressure);
        let mut p = Producer::create(&name, &opts).unwrap();
        p.set_spin(Duration::ZERO);
        let mut c = Consumer::open(&name, Start::Oldest).unwrap();
        const N: u64 = 100;
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8];
            for want in 0..N + 3 {
                std::thread::sleep(Duration::from_micros(if want == N { 20_000 } else { 100 }));
                assert_eq!(c.recv(&mut buf).unwrap(), 8);
                assert_eq!(u64::from_le_bytes(buf), want);
            }
            c
        });
        let calls = || CALLS.with(|c| c.get());
        // The first two fill the ring; every later send waits for the reader.
        let before = calls();
        for i in 0..N + 2 {
            p.send(&i.to_le_bytes()).unwrap();
        }
        let short = calls() - before;
        assert!(short <= N / 4, "{short} heavy barriers for {N} short waits");
        // The reader pauses 20 ms before record N: that wait outlasts the slice.
        let before = calls();
        p.send(&(N + 2).to_le_bytes()).unwrap();
        assert!(
            calls() > before,
            "a 20 ms wait for space never issued the heavy barrier"
        );
        drop(reader.join().unwrap());
    }
}
