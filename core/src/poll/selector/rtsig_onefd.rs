//! Real-time signals with signal-per-fd semantics (`Backend::RtSigOneFd`).
//!
//! Chandra and Mosberger's signal-per-fd kernel patch (Linux 2.4) collapsed the queued RT
//! signals of one fd into one, so the signal queue could never hold more entries than there
//! are fds, and could not overflow with fewer fds than its limit. Mainline Linux never merged
//! it; this backend gives the same contract from user space, on top of the [`RtSig`] machinery
//! (registration, `sigtimedwait` + signalfd batches, `poll()` checks, overflow rescan):
//!
//! **Design.** Each fd is in one of two states.
//!
//! - *Armed*: `O_ASYNC` on. The next readiness change queues a signal.
//! - *Delivered*: the fd was reported by a wait; `O_ASYNC` is off (`F_SETFL`, one system call),
//!   so it queues nothing, however much data arrives, until the caller asks for more.
//!
//! When the caller waits again (it has had its chance to read/write the fds reported last
//! time), every delivered fd is re-armed with a readiness re-check, ordered to close the race
//! with data arriving meanwhile:
//!
//! 1. one `poll()` over all delivered fds: those still ready are reported again at once and
//!    stay disarmed (no system call per fd, no signal possible);
//! 2. the others get `O_ASYNC` back (armed);
//! 3. one more `poll()` over those just armed: an fd that became ready between 1 and 2 raised
//!    no signal if it did so before 2, so it is reported now (and disarmed again).
//!
//! An fd found still ready in step 1 stays disarmed and becomes a candidate. If it is then not
//! reported after all (the candidate check finds it not ready, or it lands beyond the caller's
//! event capacity and is carried to the next wait), it goes back on the re-arm list: every
//! disarmed fd is either reported by this wait or on the list. The re-arm runs before every
//! block of a wait, not only at its start, so no disarmed fd is left deaf while the wait
//! sleeps.
//!
//! An event can therefore never be lost: it happens either while armed (a signal) or while
//! disarmed, in which case the re-check of step 1 or 3 sees it. (The property test in
//! `core/tests/poll_property.rs` checks this against epoll.) Reports are level-like across
//! waits (an fd that stays ready is reported on each wait, like level-triggered epoll) but cost
//! nothing while the fd is untouched by the kernel.
//!
//! **Race analysis.**
//!
//! - Step 3 may find an fd ready whose readiness *also* raised a signal after step 2. The fd
//!   is reported once (candidates are deduplicated per wait) and disarmed; the signal, when
//!   taken later, finds the fd disarmed and is dropped as stale
//!   ([`Stats::stale_signals`](crate::poll::Stats::stale_signals)).
//! - While armed, the kernel queues a signal per readiness change (per packet or write). The
//!   fd is disarmed when its first signal is *taken*, not when it is *queued*: changes that
//!   happen between the two queue more signals. User space cannot close this window (the
//!   kernel offers no "queue at most one" flag), so the guarantee is: an fd that has been
//!   delivered queues nothing until re-armed, and an armed fd queues at most one signal per
//!   readiness change that happens before the poller takes the first. In the study's setting
//!   (a request arrives, is read, the reply written) that is one signal per fd.
//!   [`Stats::max_signals_per_fd`](crate::poll::Stats::max_signals_per_fd) shows how many one wait
//!   took for one fd.
//! - Overflow (`SIGIO`) is still possible with more armed fds than the queue limit; it is
//!   recovered exactly as in [`RtSig`]: drain, `poll()` rescan of every registered fd, every
//!   ready fd reported and disarmed.
//! - A signal queued before `deregister` and taken after it names an fd that is not
//!   registered (or registered again under a new token after fd reuse): it is dropped or
//!   causes one `poll()` check, never a false event.

use std::os::fd::RawFd;

use super::poll_now;
use super::rtsig::RtSig;
use crate::poll::{Result, Stats};

pub(crate) fn new(st: &mut Stats) -> Result<RtSig> {
    RtSig::new(true, st)
}

/// A wait reported `fd`: disarm it, remember to re-arm it at the next wait.
pub(crate) fn delivered(rt: &mut RtSig, fd: RawFd, st: &mut Stats) -> Result<()> {
    let Some(r) = rt.regs.get(fd).copied() else {
        return Ok(());
    };
    if r.armed && r.fasync {
        rt.set_async(fd, false, st)?;
    }
    if r.enabled && r.fasync {
        rt.delivered.push(fd);
    }
    Ok(())
}

/// A candidate of this wait was not reported (not ready when checked, or beyond the caller's
/// capacity and carried in `pending`): if it is disarmed, it goes back on the re-arm list, or
/// it would never queue a signal again.
pub(crate) fn not_reported(rt: &mut RtSig, fd: RawFd) {
    if let Some(r) = rt.regs.get(fd) {
        if r.fasync && r.enabled && !r.armed {
            rt.delivered.push(fd);
        }
    }
}

/// Re-arms the fds delivered by the previous wait (steps 1-3 of the module docs); those
/// found ready become candidates of this wait.
pub(crate) fn rearm(rt: &mut RtSig, st: &mut Stats) -> Result<()> {
    let mut list = std::mem::take(&mut rt.delivered);
    list.retain(|&fd| rt.regs.get(fd).is_some_and(|r| r.enabled && !r.armed));
    list.dedup();
    // The checks go through the poller's duplicates (`RtSig` docs); `list[i]` is `pfds[i]`'s fd.
    let mut pfds: Vec<libc::pollfd> = list
        .iter()
        .map(|&fd| rt.pollfd(fd, |r| r.interest.poll_bits()))
        .collect();
    // 1. Still ready: report again, stay disarmed.
    poll_now(&mut pfds, st)?;
    let mut armed = Vec::new();
    let mut armed_fds = Vec::new();
    for (p, &fd) in pfds.iter().zip(&list) {
        if p.revents != 0 {
            rt.add_cand(fd);
        } else {
            // 2. Arm.
            rt.set_async(fd, true, st)?;
            armed.push(libc::pollfd { revents: 0, ..*p });
            armed_fds.push(fd);
        }
    }
    // 3. Ready between 1 and 2: possibly no signal; report now.
    poll_now(&mut armed, st)?;
    for (p, &fd) in armed.iter().zip(&armed_fds) {
        if p.revents != 0 {
            rt.add_cand(fd);
        }
    }
    Ok(())
}
