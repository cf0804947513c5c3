//! The event poller: one API over select, poll, epoll (level- and edge-triggered), POSIX
//! real-time signals with queue-overflow recovery, and real-time signals with signal-per-fd
//! semantics.
//!
//! ```
//! use shmio::poll::{Backend, Events, Interest, Poller};
//! use std::io::Write;
//! use std::os::fd::AsRawFd;
//! use std::os::unix::net::UnixStream;
//! use std::time::Duration;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (a, mut b) = UnixStream::pair()?;
//! let mut poller = Poller::new(Backend::Auto)?; // epoll
//! poller.register(a.as_raw_fd(), 7, Interest::READABLE)?;
//! b.write_all(b"x")?;
//! let mut events = Events::with_capacity(256);
//! poller.wait(&mut events, Some(Duration::from_millis(100)))?;
//! let ev = events.iter().next().expect("a readable event");
//! assert!(ev.token == 7 && ev.readable);
//! poller.deregister(a.as_raw_fd())?;
//! # Ok(()) }
//! ```
//!
//! Every backend lives in its own file under `selector/`, behind the private `Selector` trait,
//! as in mio:
//!
//! | backend | file | triggering | cost per wait |
//! |---|---|---|---|
//! | [`Backend::Select`] | `selector/select.rs` | level | O(highest fd); refuses fds >= `FD_SETSIZE` |
//! | [`Backend::Poll`] | `selector/poll.rs` | level | O(registered fds) |
//! | [`Backend::Epoll`] | `selector/epoll.rs` | level | O(ready fds) |
//! | [`Backend::EpollEdge`] | `selector/epoll.rs` | edge | O(ready fds) |
//! | [`Backend::RtSig`] | `selector/rtsig.rs` | edge (one signal per readiness change) | O(signals) |
//! | [`Backend::RtSigOneFd`] | `selector/rtsig_onefd.rs` | signal-per-fd, re-checked on the next wait | O(signals + fds reported last time) |
//!
//! Semantics common to all backends:
//!
//! - `register(fd, token, interest)`: an fd may be registered once per poller; the token is
//!   returned in its events. Hang-up and error are always reported.
//! - Edge-triggered backends (`EpollEdge`, `RtSig`) report an fd again only after new
//!   readiness; read or write until `EAGAIN` before waiting again. Level-triggered ones report
//!   a ready fd on every wait. Every backend reports an fd that is already ready when it is
//!   registered or modified.
//! - `Interest::oneshot`: after one event the fd is disabled until `modify`.
//! - `wait(events, timeout)` returns the number of events (0 on timeout); `None` waits without
//!   limit. At most `events.capacity()` are returned; the rest come on the next wait.
//! - `register` refuses an fd that is not open (`EBADF`), on every backend; a large fd costs
//!   one table entry, not a table up to its value.
//! - The RT-signal backends put registered fds in `O_ASYNC | O_NONBLOCK` mode, through a
//!   duplicate of the fd they keep until deregistration, and put the status flags, signal and
//!   owner back as they were on deregister and drop (only ever on the registered file, even
//!   if its fd number was closed and reused). They refuse, with [`Error::FileInUse`], an open
//!   file that another RT-signal poller has (another thread's or process's, or this one's
//!   through a `dup`), which would otherwise silently lose its signals. Files that do not
//!   support signal-driven I/O (an eventfd, e.g. a queue consumer's fd) are still accepted:
//!   they are watched with `poll()` alongside the signal queue. Details: `selector/rtsig.rs`.
//! - A poller has one [`Waker`]; a waker may outlive its poller (its wakes then do nothing).
//! - `fork()`: a [`Poller`] or [`Waker`] made before a fork is inert in the child: every call
//!   returns [`Error::Forked`], and dropping it there leaves the files it shares with the
//!   parent as they are (an RT-signal poller's drop restores nothing in the child).
//!
//! RT signals and threads: signal masks are per thread. An RT-signal poller directs its
//! signals to the thread that created it (`F_SETOWN_EX`/`F_OWNER_TID`) and blocks its signal
//! and `SIGIO` in that thread; it must be waited on from that thread, which alone can take its
//! signals ([`Error::WrongThread`] otherwise). Registering, changing and deregistering only
//! arm or restore a file, whose signals go to the creator whichever thread armed it, so they
//! work from any thread (one call at a time, as for every backend). A thread holds at most one
//! RT-signal poller. Because
//! the signals are directed at that thread, other threads' masks do not matter for delivery;
//! still, to be safe against a process-directed `SIGIO` from other code, call
//! [`block_rt_signals`] in `main` before spawning threads (threads inherit the mask).

mod backend;
mod error;
mod event;
mod interest;
mod selector;
mod waker;

use std::fmt;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

pub use backend::Backend;
pub use error::{Error, Result};
pub use event::{Event, Events};
pub use interest::Interest;
pub use waker::Waker;

use crate::fork::Origin;
use crate::sys;
use selector::{Selector, bad_fd, rt_signal};
use waker::WakerPipe;

/// Per-poller counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls of `wait`.
    pub waits: u64,
    /// Events returned.
    pub events: u64,
    /// System calls made by the poller (registration, waiting, re-arming, rescans).
    pub syscalls: u64,
    /// RT-signal queue overflows (`SIGIO`) recovered by a rescan.
    pub overflows: u64,
    /// RT signals taken (RT-signal backends).
    pub signals: u64,
    /// Signals for an fd that was not armed or not registered (stale; RT-signal backends).
    pub stale_signals: u64,
    /// The most RT signals taken for one fd in one wait (RT-signal backends).
    pub max_signals_per_fd: u64,
}

/// An event poller over one [`Backend`].
pub struct Poller {
    backend: Backend,
    sel: Box<dyn Selector>,
    stats: Stats,
    waker: Option<(Arc<WakerPipe>, u64)>,
    /// The process the poller was made in (see [`crate::fork`]).
    origin: Origin,
}

impl fmt::Debug for Poller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Poller")
            .field("backend", &self.backend)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Poller {
    /// A poller using `backend` (`Auto` is `Epoll`).
    pub fn new(backend: Backend) -> Result<Poller> {
        let backend = if backend == Backend::Auto {
            Backend::Epoll
        } else {
            backend
        };
        let origin = Origin::current();
        let mut stats = Stats::default();
        let sel = selector::new(backend, &mut stats)?;
        Ok(Poller {
            backend,
            sel,
            stats,
            waker: None,
            origin,
        })
    }

    /// [`Error::Forked`] in a child that inherited the poller (one relaxed load).
    fn usable(&self) -> Result<()> {
        if self.origin.is_inherited() {
            Err(Error::Forked)
        } else {
            Ok(())
        }
    }

    /// [`usable`](Self::usable), and `fd` not negative.
    fn usable_for(&self, fd: RawFd) -> Result<()> {
        self.usable()?;
        if fd < 0 {
            return Err(bad_fd(fd));
        }
        Ok(())
    }

    /// The process the poller was made in: in a forked child, every call but
    /// [`backend`](Self::backend) and [`stats`](Self::stats) returns [`Error::Forked`] (see
    /// [`crate::fork`]).
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The backend in use (`Auto` resolved).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Watches `fd` for `interest`, reporting `token`. The fd must be open (an `EBADF`
    /// [`Error::Io`] otherwise) and should stay open until deregistered (closing it first is
    /// tolerated by every backend but leaves a stale entry in `select`/`poll`, which then
    /// report it with `error` on every wait, and keeps the file open in the RT-signal
    /// backends, which hold a duplicate until deregistration). RT-signal backends:
    /// [`Error::FileInUse`] for a file another RT-signal poller has.
    pub fn register(&mut self, fd: RawFd, token: u64, interest: Interest) -> Result<()> {
        self.usable_for(fd)?;
        self.sel.register(fd, token, interest, &mut self.stats)
    }

    /// Changes the token and interest of a registered fd (and re-enables a one-shot fd).
    pub fn modify(&mut self, fd: RawFd, token: u64, interest: Interest) -> Result<()> {
        self.usable_for(fd)?;
        self.sel.modify(fd, token, interest, &mut self.stats)
    }

    /// Stops watching `fd`.
    pub fn deregister(&mut self, fd: RawFd) -> Result<()> {
        self.usable_for(fd)?;
        self.sel.deregister(fd, &mut self.stats)
    }

    /// Waits for events (at most `timeout`; `None`: no limit) and fills `events` with up to
    /// its capacity. Returns how many (0 when the timeout expired).
    pub fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<usize> {
        events.clear();
        self.usable()?;
        self.stats.waits += 1;
        self.sel.wait(events, timeout, &mut self.stats)?;
        if let Some((pipe, token)) = &self.waker {
            if events.iter().any(|e| e.token == *token) {
                self.stats.syscalls += pipe.drain();
            }
        }
        self.stats.events += events.len() as u64;
        Ok(events.len())
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The real-time signal the RT-signal backends use (`SIGRTMIN + 2`).
    pub fn rt_signal() -> libc::c_int {
        rt_signal()
    }
}

/// Blocks the RT-signal backends' signal and `SIGIO` in the calling thread. Call it in `main`
/// before spawning threads, so that every thread inherits the mask.
pub fn block_rt_signals() -> Result<()> {
    let set = sys::signal::sigset(&[rt_signal(), libc::SIGIO]);
    sys::signal::block_signals(&set).map_err(|e| Error::io("pthread_sigmask", None, e))
}
