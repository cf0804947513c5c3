//! The backends, one file each behind the private [`Selector`] trait (as in mio), and what
//! they share: the registration [`Table`], the open-fd check and the zero-timeout `poll()`.

mod epoll;
mod poll;
mod rtsig;
mod rtsig_onefd;
mod select;

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{Backend, Error, Events, Interest, Result, Stats};
use crate::sys;

pub(crate) use rtsig::rt_signal;

/// The selector for `backend` (`Auto` is `Epoll`).
pub(crate) fn new(backend: Backend, st: &mut Stats) -> Result<Box<dyn Selector>> {
    Ok(match backend {
        Backend::Select => Box::new(select::Select::new()),
        Backend::Poll => Box::new(poll::Poll::new()),
        Backend::Epoll | Backend::Auto => Box::new(epoll::Epoll::new(false, st)?),
        Backend::EpollEdge => Box::new(epoll::Epoll::new(true, st)?),
        Backend::RtSig => Box::new(rtsig::RtSig::new(false, st)?),
        Backend::RtSigOneFd => Box::new(rtsig_onefd::new(st)?),
    })
}

/// What every backend implements (one file each).
pub(crate) trait Selector: Send {
    fn register(&mut self, fd: RawFd, token: u64, interest: Interest, st: &mut Stats)
    -> Result<()>;
    fn modify(&mut self, fd: RawFd, token: u64, interest: Interest, st: &mut Stats) -> Result<()>;
    fn deregister(&mut self, fd: RawFd, st: &mut Stats) -> Result<()>;
    /// Fills `out` (empty on entry) with up to its capacity.
    fn wait(&mut self, out: &mut Events, timeout: Option<Duration>, st: &mut Stats) -> Result<()>;
}

/// Registration table keyed by fd, shared by the backends that keep their own: a vector
/// indexed by fd for fds below [`DENSE_FDS`], a map above, so that one large fd costs one
/// entry, not a table up to its value.
#[derive(Debug)]
pub(crate) struct Table<T> {
    slots: Vec<Option<T>>,
    sparse: BTreeMap<RawFd, T>,
}

/// Fds below this are kept in the fd-indexed vector (at most this many slots).
pub(crate) const DENSE_FDS: usize = 1 << 16;

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            slots: Vec::new(),
            sparse: BTreeMap::new(),
        }
    }
}

impl<T> Table<T> {
    pub(crate) fn get(&self, fd: RawFd) -> Option<&T> {
        let i = usize::try_from(fd).ok()?;
        if i < DENSE_FDS {
            self.slots.get(i)?.as_ref()
        } else {
            self.sparse.get(&fd)
        }
    }
    pub(crate) fn get_mut(&mut self, fd: RawFd) -> Option<&mut T> {
        let i = usize::try_from(fd).ok()?;
        if i < DENSE_FDS {
            self.slots.get_mut(i)?.as_mut()
        } else {
            self.sparse.get_mut(&fd)
        }
    }
    /// [`Error::AlreadyRegistered`] if `fd` has an entry.
    pub(crate) fn vacant(&self, fd: RawFd) -> Result<()> {
        match self.get(fd) {
            Some(_) => Err(Error::AlreadyRegistered(fd)),
            None => Ok(()),
        }
    }
    /// Registers `fd` with `v` for a backend that makes no system call of its own at
    /// registration: refused if registered already, then (one counted `fcntl`) unless open.
    pub(crate) fn insert_open(&mut self, fd: RawFd, v: T, st: &mut Stats) -> Result<()> {
        self.vacant(fd)?;
        check_open(fd, st)?;
        self.insert(fd, v)
    }
    pub(crate) fn insert(&mut self, fd: RawFd, v: T) -> Result<()> {
        let i = usize::try_from(fd).map_err(|_| bad_fd(fd))?;
        if i >= DENSE_FDS {
            return match self.sparse.entry(fd) {
                std::collections::btree_map::Entry::Occupied(_) => {
                    Err(Error::AlreadyRegistered(fd))
                }
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(v);
                    Ok(())
                }
            };
        }
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || None);
        }
        if self.slots[i].is_some() {
            return Err(Error::AlreadyRegistered(fd));
        }
        self.slots[i] = Some(v);
        Ok(())
    }
    pub(crate) fn remove(&mut self, fd: RawFd) -> Result<T> {
        let i = usize::try_from(fd).map_err(|_| Error::NotRegistered(fd))?;
        let v = if i < DENSE_FDS {
            self.slots.get_mut(i).and_then(Option::take)
        } else {
            self.sparse.remove(&fd)
        };
        v.ok_or(Error::NotRegistered(fd))
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = (RawFd, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|v| (i as RawFd, v)))
            .chain(self.sparse.iter().map(|(&fd, v)| (fd, v)))
    }
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (RawFd, &mut T)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.as_mut().map(|v| (i as RawFd, v)))
            .chain(self.sparse.iter_mut().map(|(&fd, v)| (fd, v)))
    }
}

/// Fails with `EBADF` unless `fd` is open (for the backends that make no system call at
/// registration, so that a stray number is refused rather than watched).
fn check_open(fd: RawFd, st: &mut Stats) -> Result<()> {
    st.syscalls += 1;
    sys::fcntl::check_open(fd).map_err(|e| Error::io("fcntl(F_GETFD)", Some(fd), e))
}

pub(crate) fn bad_fd(fd: RawFd) -> Error {
    Error::InvalidArgument(format!("fd {fd} is negative"))
}

/// `poll()` with zero timeout on `fds`, counting the call; `revents` filled in.
pub(crate) fn poll_now(fds: &mut [libc::pollfd], st: &mut Stats) -> Result<()> {
    if fds.is_empty() {
        return Ok(());
    }
    st.syscalls += 1;
    loop {
        match sys::poll::poll(fds, 0) {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(Error::io("poll", None, e)),
        }
    }
}
