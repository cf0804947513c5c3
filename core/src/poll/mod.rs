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
//! Every backend lives in its own file behind the private `Selector` trait, as in mio:
//!
//! | backend | file | triggering | cost per wait |
//! |---|---|---|---|
//! | [`Backend::Select`] | `select.rs` | level | O(highest fd); refuses fds >= `FD_SETSIZE` |
//! | [`Backend::Poll`] | `poll.rs` | level | O(registered fds) |
//! | [`Backend::Epoll`] | `epoll.rs` | level | O(ready fds) |
//! | [`Backend::EpollEdge`] | `epoll.rs` | edge | O(ready fds) |
//! | [`Backend::RtSig`] | `rtsig.rs` | edge (one signal per readiness change) | O(signals) |
//! | [`Backend::RtSigOneFd`] | `rtsig_onefd.rs` | signal-per-fd, re-checked on the next wait | O(signals + fds reported last time) |
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
//!   they are watched with `poll()` alongside the signal queue. Details: `rtsig.rs`.
//! - A poller has one [`Waker`]; a waker may outlive its poller (its wakes then do nothing).
//! - `fork()`: a [`Poller`] or [`Waker`] made before a fork is inert in the child: every call
//!   returns [`Error::Forked`], and dropping it there leaves the files it shares with the
//!   parent as they are (an RT-signal poller's drop restores nothing in the child).
//!
//! RT signals and threads: signal masks are per thread. An RT-signal poller directs its
//! signals to the thread that created it (`F_SETOWN_EX`/`F_OWNER_TID`) and blocks its signal
//! and `SIGIO` in that thread; it must be waited on from that thread
//! ([`Error::WrongThread`] otherwise), and a thread holds at most one RT-signal poller. Because
//! the signals are directed at that thread, other threads' masks do not matter for delivery;
//! still, to be safe against a process-directed `SIGIO` from other code, call
//! [`block_rt_signals`] in `main` before spawning threads (threads inherit the mask).

mod epoll;
// The poll(2) backend; the file name follows the one-file-per-backend layout.
#[allow(clippy::module_inception)]
mod poll;
mod rtsig;
mod rtsig_onefd;
mod select;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ErrorKind, IoError};
use crate::fork::Origin;
use crate::sys;

/// Which kernel mechanism a [`Poller`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The best available: epoll, level-triggered.
    Auto,
    /// `select(2)`.
    Select,
    /// `poll(2)`.
    Poll,
    /// `epoll(7)`, level-triggered.
    Epoll,
    /// `epoll(7)`, edge-triggered (`EPOLLET`).
    EpollEdge,
    /// POSIX real-time signals (`F_SETSIG`), overflow recovered by a `poll()` rescan.
    RtSig,
    /// Real-time signals with signal-per-fd semantics.
    RtSigOneFd,
}

impl Backend {
    /// Every concrete backend (not `Auto`).
    pub const ALL: [Backend; 6] = [
        Backend::Select,
        Backend::Poll,
        Backend::Epoll,
        Backend::EpollEdge,
        Backend::RtSig,
        Backend::RtSigOneFd,
    ];

    /// The name used by the C demos' `-b` option: `select`, `poll`, `epoll`, `epoll-et`,
    /// `rtsig`, `rtsig-onefd` (`auto` for `Auto`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Select => "select",
            Backend::Poll => "poll",
            Backend::Epoll => "epoll",
            Backend::EpollEdge => "epoll-et",
            Backend::RtSig => "rtsig",
            Backend::RtSigOneFd => "rtsig-onefd",
        }
    }

    /// The backend with this [`name`](Backend::name).
    pub fn from_name(name: &str) -> Option<Backend> {
        [Backend::Auto]
            .into_iter()
            .chain(Backend::ALL)
            .find(|b| b.name() == name)
    }

    /// Whether the backend reports an fd only on new readiness (edge-triggered).
    pub fn is_edge_triggered(self) -> bool {
        matches!(self, Backend::EpollEdge | Backend::RtSig)
    }
}

/// What readiness to report for an fd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Interest {
    /// Report when readable (data, EOF, or a pending connection).
    pub readable: bool,
    /// Report when writable.
    pub writable: bool,
    /// Disable the fd after one event, until `modify`.
    pub oneshot: bool,
}

impl Interest {
    /// Readable only.
    pub const READABLE: Interest = Interest {
        readable: true,
        writable: false,
        oneshot: false,
    };
    /// Writable only.
    pub const WRITABLE: Interest = Interest {
        readable: false,
        writable: true,
        oneshot: false,
    };
    /// Readable and writable.
    pub const BOTH: Interest = Interest {
        readable: true,
        writable: true,
        oneshot: false,
    };

    /// The same interest, one-shot.
    pub fn oneshot(self) -> Interest {
        Interest {
            oneshot: true,
            ..self
        }
    }

    /// `POLLIN`/`POLLOUT` bits for this interest (plus `POLLRDHUP`).
    pub(crate) fn poll_bits(self) -> libc::c_short {
        let mut b = libc::POLLRDHUP;
        if self.readable {
            b |= libc::POLLIN;
        }
        if self.writable {
            b |= libc::POLLOUT;
        }
        b
    }
}

/// One readiness event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Event {
    /// The token given at registration.
    pub token: u64,
    /// Readable (or at end of file).
    pub readable: bool,
    /// Writable.
    pub writable: bool,
    /// Hang-up: the peer closed (`POLLHUP`/`POLLRDHUP`). Not reported by `select`, which
    /// shows a hang-up as readable.
    pub hangup: bool,
    /// An error condition (`POLLERR`); `select` shows it as readable or writable.
    pub error: bool,
}

impl Event {
    /// The event for `revents` from poll(2) under `interest`, or `None` if nothing of interest.
    pub(crate) fn from_poll(
        token: u64,
        revents: libc::c_short,
        interest: Interest,
    ) -> Option<Event> {
        let ev = Event {
            token,
            readable: interest.readable && revents & libc::POLLIN != 0,
            writable: interest.writable && revents & libc::POLLOUT != 0,
            hangup: revents & (libc::POLLHUP | libc::POLLRDHUP) != 0,
            error: revents & (libc::POLLERR | libc::POLLNVAL) != 0,
        };
        (ev.readable || ev.writable || ev.hangup || ev.error).then_some(ev)
    }
}

/// The event array [`Poller::wait`] fills.
#[derive(Debug, Clone)]
pub struct Events {
    list: Vec<Event>,
    cap: usize,
}

impl Events {
    /// Room for `cap` events per wait (at least 1).
    pub fn with_capacity(cap: usize) -> Events {
        let cap = cap.max(1);
        Events {
            list: Vec::with_capacity(cap),
            cap,
        }
    }
    /// The events of the last wait.
    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.list.iter()
    }
    /// The events of the last wait, as a slice.
    pub fn as_slice(&self) -> &[Event] {
        &self.list
    }
    /// How many events the last wait returned.
    pub fn len(&self) -> usize {
        self.list.len()
    }
    /// Whether the last wait returned none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    /// The most events one wait returns.
    pub fn capacity(&self) -> usize {
        self.cap
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

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

/// A poller error.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An argument was out of range (e.g. a negative fd).
    InvalidArgument(String),
    /// `select` cannot watch an fd at or above `FD_SETSIZE`.
    FdTooLarge {
        /// The fd.
        fd: RawFd,
        /// `FD_SETSIZE`.
        limit: RawFd,
    },
    /// The fd is registered already.
    AlreadyRegistered(RawFd),
    /// The fd is not registered.
    NotRegistered(RawFd),
    /// An RT-signal poller was waited on from a thread other than its creator.
    WrongThread {
        /// The thread that created the poller (its signals go there).
        owner: u32,
        /// The calling thread.
        caller: u32,
    },
    /// The calling thread has an RT-signal poller already (they would share the signal).
    RtSigInUse,
    /// RT-signal backends: the fd's open file is signal-driven already (`O_ASYNC` on, or its
    /// `F_SETSIG` signal is the RT-signal pollers'), so another RT-signal poller has it: one in
    /// another thread or process, or this one through another fd (a `dup`). Registering it
    /// would silently take all of its signals from that poller, so it is refused.
    FileInUse(RawFd),
    /// The poller has a waker already, with another token (a poller has one waker: clone it,
    /// or ask for it again with the same token).
    WakerExists {
        /// The existing waker's token.
        token: u64,
    },
    /// The poller (or waker) was made by a parent of this process: it does not survive
    /// `fork()`. Make a new one in the child; dropping the inherited one is harmless (it
    /// leaves the files it shares with the parent as they are).
    Forked,
    /// A signal handler interrupted the wait (EINTR); call again.
    Interrupted,
    /// A system call failed (its [`IoError`] names the fd involved, if any).
    Io(IoError),
}

crate::error::io_variant!(Error);

impl Error {
    /// `op` failed with `source` (on `fd`): [`Error::Interrupted`] for `EINTR`, else
    /// [`Error::Io`].
    pub(crate) fn io(op: &'static str, fd: Option<RawFd>, source: io::Error) -> Error {
        if source.raw_os_error() == Some(libc::EINTR) {
            return Error::Interrupted;
        }
        Error::Io(IoError::new(op, source).on_fd(fd))
    }

    /// The class of the error ([`ErrorKind`]), named alike in every module.
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            Error::InvalidArgument(_) => K::InvalidArgument,
            Error::FdTooLarge { .. } => K::FdTooLarge,
            Error::AlreadyRegistered(_) => K::AlreadyRegistered,
            Error::NotRegistered(_) => K::NotRegistered,
            Error::WrongThread { .. } => K::WrongThread,
            Error::RtSigInUse => K::RtSigInUse,
            Error::FileInUse(_) => K::FileInUse,
            Error::WakerExists { .. } => K::WakerExists,
            Error::Forked => K::Forked,
            Error::Interrupted => K::Interrupted,
            Error::Io(_) => K::Io,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(s) => write!(f, "invalid argument: {s}"),
            Error::FdTooLarge { fd, limit } => write!(
                f,
                "fd {fd} is too large for select(): it only handles fds below FD_SETSIZE ({limit}); use the poll or epoll backend"
            ),
            Error::AlreadyRegistered(fd) => write!(f, "fd {fd} is already registered"),
            Error::NotRegistered(fd) => write!(f, "fd {fd} is not registered"),
            Error::WrongThread { owner, caller } => write!(
                f,
                "an RT-signal poller must be waited on from the thread that created it (tid {owner}), not tid {caller}"
            ),
            Error::RtSigInUse => f.write_str("this thread already has an RT-signal poller"),
            Error::FileInUse(fd) => write!(
                f,
                "fd {fd}: its open file is signal-driven already (O_ASYNC, or F_SETSIG to the RT-signal pollers' signal): another RT-signal poller has it (in another thread or process, or this poller through another fd of the same file); registering it would take its signals"
            ),
            Error::WakerExists { token } => write!(
                f,
                "this poller has a waker already (token {token}); a poller has one waker: clone it, or ask again with the same token"
            ),
            Error::Forked => f.write_str(
                "this poller was made by the parent process: pollers do not survive fork(); make a new one in the child",
            ),
            Error::Interrupted => f.write_str("interrupted by a signal"),
            Error::Io(e) => e.fmt(f),
        }
    }
}

/// Poller result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What every backend implements (one file each).
pub(crate) trait Selector: Send {
    fn register(&mut self, fd: RawFd, token: u64, interest: Interest, st: &mut Stats)
    -> Result<()>;
    fn modify(&mut self, fd: RawFd, token: u64, interest: Interest, st: &mut Stats) -> Result<()>;
    fn deregister(&mut self, fd: RawFd, st: &mut Stats) -> Result<()>;
    /// Appends at most `cap` events to `out` (empty on entry).
    fn wait(
        &mut self,
        out: &mut Vec<Event>,
        cap: usize,
        timeout: Option<Duration>,
        st: &mut Stats,
    ) -> Result<()>;
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
pub(crate) fn check_open(fd: RawFd, st: &mut Stats) -> Result<()> {
    st.syscalls += 1;
    sys::fcntl::check_open(fd).map_err(|e| Error::io("fcntl(F_GETFD)", Some(fd), e))
}

pub(crate) fn bad_fd(fd: RawFd) -> Error {
    Error::InvalidArgument(format!("fd {fd} is negative"))
}

/// The waker's shared state: a non-blocking pipe.
#[derive(Debug)]
struct WakerPipe {
    read: OwnedFd,
    write: OwnedFd,
}

/// Wakes a [`Poller`] from any thread: the poller reports an event with the waker's token.
///
/// A poller has one waker. A waker may outlive its poller: once the poller is dropped, a wake
/// does nothing (and succeeds). Neither survives `fork()`: in a child, `wake` returns
/// [`Error::Forked`] (it would wake the parent's poller).
#[derive(Debug, Clone)]
pub struct Waker {
    pipe: Arc<WakerPipe>,
    origin: Origin,
}

impl Waker {
    /// The waker of `poller`, reported with `token` (which must not be used for an fd).
    ///
    /// A poller has one waker: the first call makes it; a later call with the same token
    /// returns another handle to it (like `clone`), one with another token fails with
    /// [`Error::WakerExists`] and changes nothing.
    pub fn new(poller: &mut Poller, token: u64) -> Result<Waker> {
        poller.usable()?;
        if let Some((pipe, t)) = &poller.waker {
            if *t != token {
                return Err(Error::WakerExists { token: *t });
            }
            return Ok(Waker {
                pipe: pipe.clone(),
                origin: poller.origin,
            });
        }
        let (r, w) = sys::pipe::nonblocking().map_err(|e| Error::io("pipe2", None, e))?;
        poller.stats.syscalls += 1;
        let pipe = Arc::new(WakerPipe { read: r, write: w });
        poller.register(pipe.read.as_raw_fd(), token, Interest::READABLE)?;
        poller.waker = Some((pipe.clone(), token));
        Ok(Waker {
            pipe,
            origin: poller.origin,
        })
    }

    /// The process its poller was made in: in a forked child, [`wake`](Self::wake) returns
    /// [`Error::Forked`] (see [`crate::fork`]).
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// Makes the poller's current or next wait return with the waker's event. Thread-safe;
    /// several wakes before a wait give one event. After the poller was dropped: nothing.
    pub fn wake(&self) -> Result<()> {
        if self.origin.is_inherited() {
            return Err(Error::Forked);
        }
        sys::pipe::write_byte(self.pipe.write.as_fd()).map_err(|e| Error::io("write", None, e))
    }
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
        let sel: Box<dyn Selector> = match backend {
            Backend::Select => Box::new(select::Select::new()),
            Backend::Poll => Box::new(poll::Poll::new()),
            Backend::Epoll | Backend::Auto => Box::new(epoll::Epoll::new(false, &mut stats)?),
            Backend::EpollEdge => Box::new(epoll::Epoll::new(true, &mut stats)?),
            Backend::RtSig => Box::new(rtsig::RtSig::new(false, &mut stats)?),
            Backend::RtSigOneFd => Box::new(rtsig_onefd::new(&mut stats)?),
        };
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
        self.usable()?;
        if fd < 0 {
            return Err(bad_fd(fd));
        }
        self.sel.register(fd, token, interest, &mut self.stats)
    }

    /// Changes the token and interest of a registered fd (and re-enables a one-shot fd).
    pub fn modify(&mut self, fd: RawFd, token: u64, interest: Interest) -> Result<()> {
        self.usable()?;
        if fd < 0 {
            return Err(bad_fd(fd));
        }
        self.sel.modify(fd, token, interest, &mut self.stats)
    }

    /// Stops watching `fd`.
    pub fn deregister(&mut self, fd: RawFd) -> Result<()> {
        self.usable()?;
        if fd < 0 {
            return Err(bad_fd(fd));
        }
        self.sel.deregister(fd, &mut self.stats)
    }

    /// Waits for events (at most `timeout`; `None`: no limit) and fills `events` with up to
    /// its capacity. Returns how many (0 when the timeout expired).
    pub fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<usize> {
        events.list.clear();
        self.usable()?;
        self.stats.waits += 1;
        self.sel
            .wait(&mut events.list, events.cap, timeout, &mut self.stats)?;
        if let Some((pipe, token)) = &self.waker {
            if events.list.iter().any(|e| e.token == *token) {
                self.stats.syscalls += sys::pipe::drain(pipe.read.as_fd());
            }
        }
        self.stats.events += events.list.len() as u64;
        Ok(events.list.len())
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

pub(crate) fn rt_signal() -> libc::c_int {
    (sys::signal::sigrtmin() + 2).min(sys::signal::sigrtmax())
}

/// Blocks the RT-signal backends' signal and `SIGIO` in the calling thread. Call it in `main`
/// before spawning threads, so that every thread inherits the mask.
pub fn block_rt_signals() -> Result<()> {
    let set = sys::signal::sigset(&[rt_signal(), libc::SIGIO]);
    sys::signal::block_signals(&set).map_err(|e| Error::io("pthread_sigmask", None, e))
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
