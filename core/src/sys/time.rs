//! Clocks: absolute `CLOCK_MONOTONIC` deadlines, as futex waits take them.
//!
//! # References
//! - [clock_gettime(2)](https://man7.org/linux/man-pages/man2/clock_gettime.2.html)

use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

/// `clock_gettime(CLOCK_MONOTONIC)` — the monotonic clock as a `timespec`, for absolute futex
/// deadlines.
///
/// # References
/// - [clock_gettime(2)](https://man7.org/linux/man-pages/man2/clock_gettime.2.html)
pub(crate) fn monotonic_now() -> libc::timespec {
    // CLOCK_MONOTONIC always exists on Linux and the output is ours: the call cannot fail.
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(
        libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        |t| *t.as_ref(),
    )
}

/// An absolute `CLOCK_MONOTONIC` deadline `d` from now, saturating far in the future.
// `time_t` and `c_long` are i64 here but i32 on 32-bit targets: keep the conversions.
#[allow(clippy::useless_conversion)]
pub(crate) fn deadline_after(d: Duration) -> libc::timespec {
    let now = monotonic_now();
    let mut sec = i64::from(now.tv_sec).saturating_add(d.as_secs().min(i64::MAX as u64 / 2) as i64);
    let mut nsec = i64::from(now.tv_nsec) + i64::from(d.subsec_nanos());
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    }
}

/// The end of one sleep slice: `deadline`, or `slice` from now if that comes first (every
/// blocking wait sleeps at most one backstop period at a time).
pub(crate) fn slice_end(deadline: Option<&libc::timespec>, slice: Duration) -> libc::timespec {
    let b = deadline_after(slice);
    match deadline {
        Some(t) if (t.tv_sec, t.tv_nsec) < (b.tv_sec, b.tv_nsec) => *t,
        _ => b,
    }
}

/// Whether the absolute monotonic deadline has passed.
pub(crate) fn deadline_passed(deadline: &libc::timespec) -> bool {
    let now = monotonic_now();
    (now.tv_sec, now.tv_nsec) >= (deadline.tv_sec, deadline.tv_nsec)
}
