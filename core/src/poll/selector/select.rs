//! The `select(2)` backend: level-triggered, O(highest fd) per wait, fds below `FD_SETSIZE`
//! only (a larger fd is refused at registration with [`Error::FdTooLarge`]).
//!
//! `select` has no hang-up or error bits: a hang-up shows as readable, an error as readable
//! and/or writable, as the kernel reports them (the exception set means out-of-band data, not
//! errors, and is not used).
//!
//! A registered fd closed before it was deregistered makes `select` fail with `EBADF`; the
//! wait then finds the closed fds (`fcntl(F_GETFD)` on each), reports them with `error`, as
//! the `poll` backend reports `POLLNVAL`, and checks the others again without blocking, so
//! one stale fd does not starve the live ones. Registration checks that the fd is open.

use std::os::fd::RawFd;
use std::time::Duration;

use super::{Selector, Table};
use crate::poll::{Error, Event, Events, Interest, Result, Stats};
use crate::sys::fcntl;
use crate::sys::select as sys;

#[derive(Debug, Clone, Copy)]
struct Reg {
    token: u64,
    interest: Interest,
    enabled: bool,
}

impl Reg {
    /// A registration, enabled.
    fn new(token: u64, interest: Interest) -> Reg {
        Reg {
            token,
            interest,
            enabled: true,
        }
    }
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
    fn register(
        &mut self,
        fd: RawFd,
        token: u64,
        interest: Interest,
        st: &mut Stats,
    ) -> Result<()> {
        check(fd)?;
        self.regs.insert_open(fd, Reg::new(token, interest), st)
    }

    fn modify(&mut self, fd: RawFd, token: u64, interest: Interest, _: &mut Stats) -> Result<()> {
        let r = self.regs.get_mut(fd).ok_or(Error::NotRegistered(fd))?;
        *r = Reg::new(token, interest);
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd, _: &mut Stats) -> Result<()> {
        self.regs.remove(fd).map(drop)
    }

    fn wait(&mut self, out: &mut Events, timeout: Option<Duration>, st: &mut Stats) -> Result<()> {
        // Registered fds found closed (select fails the whole call with EBADF for one): they
        // are left out of the sets and reported with `error`, as poll() reports POLLNVAL.
        let mut closed: Vec<RawFd> = Vec::new();
        let (r, w, nfds) = loop {
            let (mut r, mut w, mut e) = (sys::fd_set_new(), sys::fd_set_new(), sys::fd_set_new());
            let mut nfds = 0;
            for (fd, reg) in self.regs.iter().filter(|(_, g)| g.enabled) {
                nfds = fd + 1;
                if closed.contains(&fd) {
                    continue;
                }
                if reg.interest.readable {
                    sys::fd_set_add(&mut r, fd);
                }
                if reg.interest.writable {
                    sys::fd_set_add(&mut w, fd);
                }
            }
            // With closed fds to report, only check the others.
            let t = if closed.is_empty() {
                timeout
            } else {
                Some(Duration::ZERO)
            };
            st.syscalls += 1;
            match sys::select(nfds, &mut r, &mut w, &mut e, t) {
                Ok(0) if closed.is_empty() => return Ok(()),
                Ok(_) => break (r, w, nfds),
                Err(err) if err.raw_os_error() == Some(libc::EBADF) => {
                    let before = closed.len();
                    for (fd, _) in self.regs.iter().filter(|(_, g)| g.enabled) {
                        st.syscalls += 1;
                        if !closed.contains(&fd) && fcntl::check_open(fd).is_err() {
                            closed.push(fd);
                        }
                    }
                    if closed.len() == before {
                        return Err(Error::io("select", None, err));
                    }
                }
                Err(err) => return Err(Error::io("select", None, err)),
            }
        };
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
            let error = closed.contains(&fd);
            let ready = error || sys::fd_set_has(&r, fd) || sys::fd_set_has(&w, fd);
            if ready && out.is_full() {
                self.next_fd = fd;
                break;
            }
            let ev = Event {
                token: reg.token,
                readable: !error && sys::fd_set_has(&r, fd),
                writable: !error && sys::fd_set_has(&w, fd),
                hangup: false,
                error,
            };
            if ready {
                if reg.interest.oneshot {
                    reg.enabled = false;
                }
                out.push(ev);
            }
        }
        Ok(())
    }
}
