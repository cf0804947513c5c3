//! The poll descriptor: an eventfd that the consumer's keeper thread signals when a record
//! or a producer change is there.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::Consumer;
use crate::queue::layout::Shared;
use crate::queue::wait::{self, DataWait, Deadline, ROLE_NOTIFIER};
use crate::queue::{Error, Result};
use crate::sys::futex;
use crate::sys::robust::KeeperCtl;

/// State shared with the keeper thread, which doubles as the poll notifier.
pub(super) struct PollState {
    pub(super) efd: OnceLock<OwnedFd>,
    /// [`ARMED_DATA`] while the notifier should signal `efd` when a record past `at` is
    /// committed or the producer goes; [`ARMED_PRODUCER`] while it should signal it when a live
    /// producer holds the queue again; 0 while disarmed.
    pub(super) armed: AtomicU32,
    pub(super) at: AtomicU64,
}

pub(super) const ARMED_DATA: u32 = 1;
pub(super) const ARMED_PRODUCER: u32 = 2;

impl Consumer {
    /// A file descriptor that becomes readable when a record is available or the producer is
    /// gone, for select/poll/epoll. After it polls readable, call [`try_recv`](Self::try_recv)
    /// (or [`try_read`](Self::try_read)) until it fails with [`Error::WouldBlock`]: that re-arms
    /// it. There is no need to read the descriptor itself. It stays owned by the consumer.
    ///
    /// Design: an eventfd owned by this process, signalled by the consumer's keeper thread,
    /// which sleeps on the same futex words as a blocking `recv` (data and producer death) only
    /// while the descriptor is armed. So the producer never makes a system call for pollers and
    /// needs no access to other processes' descriptors, and a producer's death makes the
    /// descriptor readable through the same kernel wake-up. The cost is one extra thread wake
    /// per notification.
    pub fn fd(&mut self) -> Result<RawFd> {
        self.usable()?;
        if self.poll.efd.get().is_none() {
            let fd =
                crate::sys::eventfd::nonblocking().map_err(|e| Error::io("eventfd", None, e))?;
            let _ = self.poll.efd.set(fd);
            self.arm();
        }
        Ok(self.poll.efd.get().map_or(-1, |f| f.as_raw_fd()))
    }

    /// Re-arms the poll descriptor (if one was asked for) from the current cursor.
    pub(super) fn arm(&self) {
        self.arm_for(ARMED_DATA);
    }

    pub(super) fn arm_for(&self, mode: u32) {
        let Some(fd) = self.poll.efd.get() else {
            return;
        };
        let _ = crate::sys::eventfd::drain(fd.as_fd());
        self.poll.at.store(self.cursor, Ordering::SeqCst);
        self.poll.armed.store(mode, Ordering::SeqCst);
        let kick = &self.keeper.ctl().kick;
        kick.fetch_add(1, Ordering::SeqCst);
        futex::wake_all(kick);
    }
}

/// Runs on the consumer's keeper thread: while armed for data, sleeps until a record past `at`
/// is committed or the producer is gone; while armed for the producer, until a live producer
/// holds the queue; then signals the eventfd once and disarms.
pub(super) fn notifier_loop(shared: &Shared, index: u32, poll: &PollState, ctl: &KeeperCtl) {
    let me = shared.consumer(index);
    loop {
        // Read the kick word before the release flag: `Keeper::drop` sets the flag, then bumps
        // the word, so a close between the two reads makes the sleep below return at once.
        let k = ctl.kick.load(Ordering::SeqCst);
        if ctl.releasing() {
            return;
        }
        let mode = poll.armed.load(Ordering::SeqCst);
        let fire = match mode {
            ARMED_DATA => {
                let at = poll.at.load(Ordering::SeqCst);
                !matches!(
                    wait::wait_for_data(
                        shared,
                        me,
                        ROLE_NOTIFIER,
                        at,
                        &Deadline::Never,
                        Duration::ZERO,
                        &[(&ctl.kick, k)],
                    ),
                    Ok(DataWait::Kicked(_)) | Err(Error::Interrupted)
                )
            }
            ARMED_PRODUCER => {
                matches!(
                    wait::wait_for_producer(shared, me, &Deadline::Never, &[(&ctl.kick, k)]),
                    Ok(None) | Err(Error::Corrupt(_))
                )
            }
            _ => {
                let _ = futex::wait(&ctl.kick, k, None);
                false
            }
        };
        if fire
            && poll
                .armed
                .compare_exchange(mode, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            if let Some(fd) = poll.efd.get() {
                let _ = crate::sys::eventfd::signal(fd.as_fd());
            }
        }
    }
}
