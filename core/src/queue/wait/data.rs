//! The consumer's waits (for the next record, for a live producer) and the producer's wake
//! of the consumers asleep on the notify word.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::liveness::{View, evict_dead_consumers, pass_on_death, producer_view};
use super::{Backstop, Deadline, SHORT_SLICE, sleep_on, spin_until};
use crate::queue::layout::{ConsumerSlot, PRODUCER_BYTE, SLEEP_COUNTED, Shared};
use crate::queue::{Error, Result, ring};
use crate::sys::futex::{self, FUTEX_WAITERS, WaitOutcome};
use crate::sys::membarrier;
use crate::sys::robust::{Owner, mark_waiting};

/// Test hook: `SHMIO_TEST_HOOK=die-after-announce` kills the process (SIGKILL) right after a
/// consumer counted itself among the sleepers, before it recorded that in its slot: the window
/// that leaves an over-count behind. Read once; costs one relaxed load on the sleep path only.
fn hook_die_after_announce() -> bool {
    static HOOK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HOOK.get_or_init(|| {
        std::env::var_os("SHMIO_TEST_HOOK").is_some_and(|v| v == "die-after-announce")
    })
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
    // The first sleep of this wait is announced without the heavy barrier, for one short slice.
    let mut first_sleep = true;
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
        let announced = if std::mem::take(&mut first_sleep) {
            ring::announce_sleep_light(&h.waiters.0)
        } else {
            ring::announce_sleep(&h.waiters.0, membarrier::global_expedited)
        };
        let epoch = announced.epoch;
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
            // Not exact: the producer may not see us (until its next publish, or until it
            // sees the fence request); a short slice bounds what a wake-up lost meanwhile costs.
            let until = if announced.exact {
                deadline.slice()
            } else {
                deadline.slice_within(SHORT_SLICE)
            };
            sleep_on(&words[..2 + k], &until)
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
/// wake system calls in `wake_calls`. `light`: the producer's barrier (see [`ring::must_wake`]).
///
/// `idle_wakes` counts wakes that found nobody asleep: a consumer killed while asleep, or
/// between counting itself and recording it, leaves its share in the count. After a run of
/// those, dead consumers are evicted and the count is reset (see [`repair_sleepers`]).
#[inline]
pub(crate) fn wake_consumers(
    shared: &Shared,
    light: &mut bool,
    idle_wakes: &mut u32,
    wake_calls: &mut u64,
) {
    let h = shared.header();
    if ring::must_wake(&h.waiters.0, light) {
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
fn repair_sleepers(shared: &Shared) {
    evict_dead_consumers(shared);
    let h = shared.header();
    ring::reset_sleepers(&h.waiters.0);
    h.prod.0.notify.fetch_add(1, Ordering::SeqCst);
    futex::wake_all(&h.prod.0.notify);
}

/// Consumer that could not issue the heavy barrier, joining a back-pressure queue: waits until a
/// producer acknowledged its fence request ([`ring::FENCE_ACK`]), which a publishing producer
/// does on its next record, or until the head stood still for [`IDLE_ENOUGH`]: a producer that
/// publishes nothing writes nothing, and one idle that long has long made its last head store
/// visible and will load the consumer epoch afresh. (That second exit is a timing argument, not
/// a memory-model one: it serves only processes that `membarrier(2)` is refused to.)
pub(crate) fn await_fence_ack(shared: &Shared) {
    let h = shared.header();
    let mut head = ring::committed(&h.prod.0.head);
    let mut still_since = std::time::Instant::now();
    while !ring::request_fences(&h.waiters.0) {
        std::thread::sleep(Duration::from_micros(100));
        let now = ring::committed(&h.prod.0.head);
        if now != head {
            head = now;
            still_since = std::time::Instant::now();
        } else if still_since.elapsed() >= IDLE_ENOUGH {
            return;
        }
    }
}

/// See [`await_fence_ack`].
const IDLE_ENOUGH: Duration = Duration::from_millis(2);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::queue::testing::Cleanup;
    use crate::queue::{Consumer, Policy, Producer, QueueOptions, Start};
    use crate::sys::membarrier::CALLS;

    /// A blocked receive woken within its first slice issues no `membarrier(2)` (the design's
    /// point: a wake-up usually comes well inside it); one that outlasts the slice pays the
    /// heavy barrier and still gets its record.
    #[test]
    fn only_a_sleep_outlasting_the_first_slice_pays_the_heavy_barrier() {
        let name = format!("shmio-unit-light-sleep-{}", std::process::id());
        let _cleanup = Cleanup(name.clone());
        let opts = QueueOptions::new()
            .slots(8)
            .slot_size(8)
            .policy(Policy::BackPressure);
        let mut p = Producer::create(&name, &opts).unwrap();
        let mut c = Consumer::open(&name, Start::Oldest).unwrap();
        c.set_spin(Duration::ZERO);
        const N: u64 = 100;
        let sender = std::thread::spawn(move || {
            for i in 0..N {
                std::thread::sleep(Duration::from_micros(100));
                p.send(&i.to_le_bytes()).unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
            p.send(&N.to_le_bytes()).unwrap();
            p
        });
        let mut buf = [0u8; 8];
        let calls = || CALLS.with(|c| c.get());
        let before = calls();
        for want in 0..N {
            assert_eq!(c.recv(&mut buf).unwrap(), 8);
            assert_eq!(u64::from_le_bytes(buf), want);
        }
        let short = calls() - before;
        // About N sleeps of ~100 us each; a loaded machine may stretch a few past the slice.
        assert!(
            short <= N / 4,
            "{short} heavy barriers for {N} short sleeps"
        );
        let before = calls();
        assert_eq!(c.recv(&mut buf).unwrap(), 8);
        assert_eq!(u64::from_le_bytes(buf), N);
        assert!(
            calls() > before,
            "a 20 ms sleep never issued the heavy barrier"
        );
        drop(sender.join().unwrap());
    }
}
