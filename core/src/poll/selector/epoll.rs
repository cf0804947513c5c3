//! The `epoll(7)` backend, level-triggered or edge-triggered (`EPOLLET`): O(ready fds) per
//! wait. The token is the `epoll_event` data; the kernel keeps the registrations.

use std::os::fd::RawFd;
use std::time::Duration;

use nix::sys::epoll::EpollEvent;

use super::Selector;
use crate::poll::{Error, Event, Events, Interest, Result, Stats};
use crate::sys::{self, epoll};

pub(crate) struct Epoll {
    ep: nix::sys::epoll::Epoll,
    edge: bool,
    buf: Vec<EpollEvent>,
}

impl Epoll {
    pub(crate) fn new(edge: bool, st: &mut Stats) -> Result<Epoll> {
        st.syscalls += 1;
        let ep = epoll::create().map_err(|e| Error::io("epoll_create1", None, e))?;
        Ok(Epoll {
            ep,
            edge,
            buf: Vec::new(),
        })
    }

    fn bits(&self, i: Interest) -> u32 {
        let mut b = libc::EPOLLRDHUP as u32;
        if i.readable {
            b |= libc::EPOLLIN as u32;
        }
        if i.writable {
            b |= libc::EPOLLOUT as u32;
        }
        if i.oneshot {
            b |= libc::EPOLLONESHOT as u32;
        }
        if self.edge {
            b |= libc::EPOLLET as u32;
        }
        b
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, bits: u32, token: u64, st: &mut Stats) -> Result<()> {
        st.syscalls += 1;
        epoll::ctl(&self.ep, op, fd, bits, token).map_err(|e| match e.raw_os_error() {
            Some(libc::EEXIST) => Error::AlreadyRegistered(fd),
            Some(libc::ENOENT) => Error::NotRegistered(fd),
            _ => Error::io("epoll_ctl", Some(fd), e),
        })
    }
}

impl Selector for Epoll {
    fn register(
        &mut self,
        fd: RawFd,
        token: u64,
        interest: Interest,
        st: &mut Stats,
    ) -> Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, self.bits(interest), token, st)
    }

    fn modify(&mut self, fd: RawFd, token: u64, interest: Interest, st: &mut Stats) -> Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, self.bits(interest), token, st)
    }

    fn deregister(&mut self, fd: RawFd, st: &mut Stats) -> Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0, st)
    }

    fn wait(&mut self, out: &mut Events, timeout: Option<Duration>, st: &mut Stats) -> Result<()> {
        st.syscalls += 1;
        let n = epoll::wait(
            &self.ep,
            &mut self.buf,
            out.capacity(),
            sys::poll::timeout_ms(timeout),
        )
        .map_err(|e| Error::io("epoll_wait", None, e))?;
        for e in &self.buf[..n] {
            let b = e.events().bits() as u32;
            out.push(Event {
                token: e.data(),
                readable: b & libc::EPOLLIN as u32 != 0,
                writable: b & libc::EPOLLOUT as u32 != 0,
                hangup: b & (libc::EPOLLHUP | libc::EPOLLRDHUP) as u32 != 0,
                error: b & libc::EPOLLERR as u32 != 0,
            });
        }
        Ok(())
    }
}
