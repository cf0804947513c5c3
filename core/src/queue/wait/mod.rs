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
//!
//! Here: the spin, the deadline and backstop clocks, and the futex sleep every wait uses. The
//! consumer's waits are in `data`, the back-pressure producer's in `space`, and the reading of
//! a peer's liveness from the file (and the eviction of dead consumers) in `liveness`.

mod data;
mod liveness;
mod space;

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use super::{Error, Result};
use crate::sys::futex::{self, WaitOutcome};
use crate::sys::time::{deadline_after, deadline_passed};

pub(crate) use data::{
    DataWait, await_fence_ack, wait_for_data, wait_for_producer, wake_consumers,
};
pub(crate) use liveness::{evict_if_abandoned, evict_if_dead, settle_sleepers};
pub(crate) use space::{wait_for_consumers, wait_for_space, wake_producer};

/// How long a waiter spins before it sleeps, by default (each handle may set its own). Waking a
/// sleeping CPU costs 15-50 us on a virtual machine, so spinning for a comparable time first is
/// what keeps a busy stream out of the kernel (the classic competitive bound: at most twice the
/// cost of sleeping at once), while an idle wait still costs only this much CPU before it sleeps.
pub(crate) const SPIN_FOR: Duration = Duration::from_micros(20);

/// The longest spin a handle may set.
pub(crate) const MAX_SPIN: Duration = Duration::from_secs(1);

/// The first part of a spin, spent without yielding the CPU.
const PURE_SPIN: Duration = Duration::from_micros(2);

/// The longest sleep of a waiter whose announcement the other side may miss: a consumer's or
/// a back-pressure producer's first sleep of a wait, announced without the heavy barrier (see
/// `ring::announce_sleep_light`), or any sleep of one whose heavy barrier was refused (a
/// consumer until its fence request is acknowledged, a producer always). A wake-up lost
/// meanwhile costs at most this.
const SHORT_SLICE: Duration = Duration::from_millis(1);

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
        self.slice_within(BACKSTOP)
    }

    /// The end of the next sleep slice, at most `max` from now.
    fn slice_within(&self, max: Duration) -> libc::timespec {
        let at = match self {
            Deadline::At(t) => Some(t),
            _ => None,
        };
        crate::sys::time::slice_end(at, max)
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

/// Sleeps until one of `words` is woken or changes, or `until` passes (see [`futex::sleep`],
/// also for what a signal does).
fn sleep_on(words: &[(&AtomicU32, u32)], until: &libc::timespec) -> Result<WaitOutcome> {
    futex::sleep(words, until).map_err(|(call, e)| Error::io(call, None, e))
}
