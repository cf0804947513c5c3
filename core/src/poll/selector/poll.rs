//! The `poll(2)` backend: level-triggered, O(registered fds) per wait. The `pollfd` array is
//! kept between waits (an fd → index map, removal by swap), so a wait is one system call.

use std::os::fd::RawFd;
use std::time::Duration;

use super::{Selector, Table};
use crate::poll::{Error, Event, Events, Interest, Result, Stats};
use crate::sys::poll as sys;

#[derive(Debug, Clone, Copy)]
struct Reg {
    index: usize,
}

pub(crate) struct Poll {
    regs: Table<Reg>,
    /// The array passed to poll(); a disabled (one-shot fired) entry has `fd == -1`.
    fds: Vec<libc::pollfd>,
    /// Per entry: real fd, token, interest.
    meta: Vec<(RawFd, u64, Interest)>,
    /// Where the next scan of ready entries starts (fairness when `cap` is reached).
    start: usize,
}

impl Poll {
    pub(crate) fn new() -> Poll {
        Poll {
            regs: Table::default(),
            fds: Vec::new(),
            meta: Vec::new(),
            start: 0,
        }
    }
}

impl Selector for Poll {
    fn register(
        &mut self,
        fd: RawFd,
        token: u64,
        interest: Interest,
        st: &mut Stats,
    ) -> Result<()> {
        let index = self.fds.len();
        self.regs.insert_open(fd, Reg { index }, st)?;
        self.fds.push(libc::pollfd {
            fd,
            events: interest.poll_bits(),
            revents: 0,
        });
        self.meta.push((fd, token, interest));
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, token: u64, interest: Interest, _: &mut Stats) -> Result<()> {
        let i = self.regs.get(fd).ok_or(Error::NotRegistered(fd))?.index;
        self.fds[i] = libc::pollfd {
            fd,
            events: interest.poll_bits(),
            revents: 0,
        };
        self.meta[i] = (fd, token, interest);
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd, _: &mut Stats) -> Result<()> {
        let i = self.regs.remove(fd)?.index;
        self.fds.swap_remove(i);
        self.meta.swap_remove(i);
        if let Some(&(moved, _, _)) = self.meta.get(i) {
            if let Some(r) = self.regs.get_mut(moved) {
                r.index = i;
            }
        }
        Ok(())
    }

    fn wait(&mut self, out: &mut Events, timeout: Option<Duration>, st: &mut Stats) -> Result<()> {
        st.syscalls += 1;
        let n = sys::poll(&mut self.fds, sys::timeout_ms(timeout))
            .map_err(|e| Error::io("poll", None, e))?;
        if n == 0 {
            return Ok(());
        }
        // Start where the last full wait stopped, so that with more ready fds than `cap` the
        // ones at the end of the array are not starved.
        let len = self.fds.len();
        let start = self.start.min(len.saturating_sub(1));
        for k in 0..len {
            let i = (start + k) % len;
            let p = &mut self.fds[i];
            let (_, token, interest) = self.meta[i];
            if p.revents == 0 || p.fd < 0 {
                continue;
            }
            if out.is_full() {
                self.start = i;
                return Ok(());
            }
            if let Some(ev) = Event::from_poll(token, p.revents, interest) {
                if interest.oneshot {
                    p.fd = -1;
                }
                out.push(ev);
            }
        }
        self.start = 0;
        Ok(())
    }
}
