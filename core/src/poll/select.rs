//! The `select(2)` backend: level-triggered, O(highest fd) per wait, fds below `FD_SETSIZE`
//! only (a larger fd is refused at registration with [`Error::FdTooLarge`]).
//!
//! `select` has no hang-up or error bits: a hang-up shows as readable, an error as readable
//! and/or writable, as the kernel reports them (the exception set means out-of-band data, not
//! errors, and is not used).

use std::os::fd::RawFd;
use std::time::Duration;

use super::{Error, Event, Interest, Result, Selector, Stats, Table};
use crate::sys::poll as sys;

#[derive(Debug, Clone, Copy)]
struct Reg {
    token: u64,
    interest: Interest,
    enabled: bool,
}

pub(crate) struct Select {
    regs: Table<Reg>,
    /// Where the next scan of ready fds starts (fairness when `cap` is reached).
    next_fd: RawFd,
}

impl Select {
    pub(crate) fn new() -> Select {
        Select {
            regs: Table::default(),
            next_fd: 0,
        }
    }
}

fn check(fd: RawFd) -> Result<()> {
    let limit = libc::FD_SETSIZE as RawFd;
    if fd >= limit {
        return Err(Error::FdTooLarge { fd, limit });
    }
    Ok(())
}

impl Selector for Select {
    fn register(&mut self, fd: RawFd, token: u64, interest: Interest, _: &mut Stats) -> Result<()> {
        check(fd)?;
        self.regs.insert(
            fd,
            Reg {
                token,
                interest,
                enabled: true,
            },
        )
    }

    fn modify(&mut self, fd: RawFd, token: u64, interest: Interest, _: &mut Stats) -> Result<()> {
        let r = self.regs.get_mut(fd).ok_or(Error::NotRegistered(fd))?;
        *r = Reg {
            token,
            interest,
            enabled: true,
        };
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd, _: &mut Stats) -> Result<()> {
        self.regs.remove(fd).map(drop)
    }

    fn wait(
        &mut self,
        out: &mut Vec<Event>,
        cap: usize,
        timeout: Option<Duration>,
        st: &mut Stats,
    ) -> Result<()> {
        let (mut r, mut w, mut e) = (sys::fd_set_new(), sys::fd_set_new(), sys::fd_set_new());
        let mut nfds = 0;
        for (fd, reg) in self.regs.iter().filter(|(_, g)| g.enabled) {
            if reg.interest.readable {
                sys::fd_set_add(&mut r, fd);
            }
            if reg.interest.writable {
                sys::fd_set_add(&mut w, fd);
            }
            nfds = fd + 1;
        }
        st.syscalls += 1;
        let n = sys::select(nfds, &mut r, &mut w, &mut e, timeout)
            .map_err(|err| Error::io("select", None, err))?;
        if n == 0 {
            return Ok(());
        }
        // Start at the fd where the last full wait stopped, so that with more ready fds than
        // `cap` the high ones are not starved.
        let start = self.next_fd;
        self.next_fd = 0;
        let (high, low): (Vec<_>, Vec<_>) = self
            .regs
            .iter_mut()
            .filter(|(fd, g)| *fd < nfds && g.enabled)
            .partition(|(fd, _)| *fd >= start);
        for (fd, reg) in high.into_iter().chain(low) {
            let ready = sys::fd_set_has(&r, fd) || sys::fd_set_has(&w, fd);
            if ready && out.len() == cap {
                self.next_fd = fd;
                break;
            }
            let ev = Event {
                token: reg.token,
                readable: sys::fd_set_has(&r, fd),
                writable: sys::fd_set_has(&w, fd),
                hangup: false,
                error: false,
            };
            if ev.readable || ev.writable {
                if reg.interest.oneshot {
                    reg.enabled = false;
                }
                out.push(ev);
            }
        }
        Ok(())
    }
}
