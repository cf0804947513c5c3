//! Reading a peer's liveness from the file, and settling the slots of dead consumers.

use std::sync::atomic::Ordering;

use crate::queue::layout::{ConsumerSlot, SLEEP_COUNTED, Shared, consumer_byte};
use crate::queue::{Error, Result, ring};
use crate::sys::futex::{self, FUTEX_WAITERS};
use crate::sys::robust::{EVICTING, Owner, owner_of};

/// The producer as one consumer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum View {
    /// Held by the live keeper with this thread id; the consumer's death word agrees.
    Alive,
    /// Closed cleanly ([`Owner::Free`]) or died ([`Owner::Died`]).
    Gone(Owner),
}

/// Reads the producer's owner word and the consumer's death word and reconciles them. The
/// producer claims every death word before its owner word and releases its owner word first,
/// so a live owner with a death word that disagrees is a death or a clean close in progress
/// (the owner word, re-read, says which), or a scribbled file.
pub(super) fn producer_view(shared: &Shared, me: &ConsumerSlot) -> Result<View> {
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
pub(super) fn pass_on_death(shared: &Shared, me: &ConsumerSlot) {
    let owner = &shared.header().owner.0.owner;
    if owner.load(Ordering::SeqCst) & FUTEX_WAITERS != 0 {
        futex::wake_all(owner);
    }
    if me.death.load(Ordering::SeqCst) & FUTEX_WAITERS != 0 {
        futex::wake_all(&me.death);
    }
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

pub(super) fn settle_from(shared: &Shared, i: u32, observed: u32) -> Owner {
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
pub(super) fn evict_dead_consumers(shared: &Shared) {
    for i in 0..shared.consumer_scan_len() {
        evict_if_dead(shared, i);
    }
}
