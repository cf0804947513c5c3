//! The `poll(2)` backend: level-triggered, O(registered fds) per wait. The `pollfd` array is
//! kept between waits (an fd → index map, removal by swap), so a wait is one system call.

use std::os::fd::RawFd;
use std::time::Duration;

use super::{Error, Event, Interest, Result, Selector, Stats, Table};
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
}

impl Poll {
    pub(crate) fn new() -> Poll {
        Poll {
            regs: Table::default(),
            fds: Vec::new(),
            meta: Vec::new(),
        }
    }
}

impl Selector for Poll {
    fn register(&mut self, fd: RawFd, token: u64, interest: Interest, _: &mut Stats) -> Result<()> {
        self.regs.insert(
            fd,
            Reg {
                index: self.fds.len(),
            },
        )?;
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

    fn wait(
        &mut self,
        out: &mut Vec<Event>,
        cap: usize,
        timeout: Option<Duration>,
        st: &mut Stats,
    ) -> Result<()> {
        st.syscalls += 1;
        let n = sys::poll(&mut self.fds, sys::timeout_ms(timeout))
            .map_err(|e| Error::io("poll", None, e))?;
        if n == 0 {
            return Ok(());
        }
        for (p, &(fd, token, interest)) in self.fds.iter_mut().zip(&self.meta) {
            if out.len() == cap {
                break;
            }
            if p.revents == 0 || p.fd < 0 {
                continue;
            }
            if let Some(ev) = Event::from_poll(token, p.revents, interest) {
                if interest.oneshot {
                    p.fd = -1;
                }
                out.push(ev);
            }
            let _ = fd;
        }
        Ok(())
    }
}
