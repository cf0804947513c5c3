//! The POSIX real-time signal backend (`Backend::RtSig`), as in the HP Labs study
//! "Scalability of Linux Event-Dispatch Mechanisms".
//!
//! Registration puts the fd in `O_ASYNC | O_NONBLOCK` mode, sets `F_SETSIG` to the poller's
//! real-time signal and `F_SETOWN_EX`/`F_OWNER_TID` to the thread that created the poller.
//! That thread blocks the signal and `SIGIO`; the kernel then queues one signal, carrying the
//! fd in `si_fd`, each time an fd becomes readable or writable (or hangs up). A wait takes the
//! first signal with `sigtimedwait` and then every further pending one in batches from a
//! non-blocking `signalfd` (one `read` returns up to 64), so a busy wait costs a few system
//! calls, not one per signal. The signals only name fds: one `poll()` over exactly the
//! signalled fds (deduplicated) then reads their current state, so the event flags are
//! accurate and a signal whose readiness was already consumed yields nothing.
//!
//! Semantics are edge-triggered: an fd is reported once per signal; an fd that is ready when
//! it is registered or modified is reported at the next wait.
//!
//! **Overflow.** The kernel queue of RT signals is bounded (`RLIMIT_SIGPENDING`, per user).
//! When it is full the kernel drops the RT signal and raises `SIGIO` instead, and the
//! identity of the fd is lost. `SIGIO` (a lower number) is taken before the queued RT
//! signals. On it the poller drains every queued RT signal (they are stale), then rescans
//! every registered fd with one `poll()` and reports those ready, so no readiness is ever
//! lost; [`Stats::overflows`](crate::poll::Stats::overflows) counts the recoveries. Events beyond
//! the caller's capacity are kept and returned by the next waits.
//!
//! Files without signal-driven I/O (`F_GETFL` shows no `O_ASYNC` after setting it: an
//! eventfd, such as a queue consumer's fd) are watched by `poll()` together with the
//! signalfd instead, level-triggered.
//!
//! Threads: the poller must be waited on from the thread that created it, and a thread holds
//! at most one RT-signal poller (module docs of [`poll`](crate::poll)).
//!
//! **What belongs to the open file.** `O_ASYNC`, the other status flags (`O_NONBLOCK`,
//! `O_APPEND`), `F_SETSIG` and `F_SETOWN_EX` are state of the open file description, shared by
//! every fd (`dup`, fork, `SCM_RIGHTS`) that refers to it, not of the fd number or the poller.
//! So:
//!
//! - *Identity.* Registration keeps a duplicate of the fd (`F_DUPFD_CLOEXEC`), and every
//!   `fcntl` the poller makes afterwards (arming, disarming, restoring) and every readiness
//!   check goes through that duplicate; the kernel's signals name it (`si_fd`). The poller
//!   therefore only ever touches the file it registered: if the caller closes the fd and the
//!   number is reused by another file (an `O_APPEND` log, say), deregister and drop restore
//!   the registered file, never the new one. This is exact (no `st_dev`/`st_ino` or `kcmp`
//!   guess, and `kcmp` is often blocked by seccomp in containers). The price: one descriptor
//!   per registration, and a file closed by the caller while still registered stays open (a
//!   socket's peer sees no EOF) until it is deregistered or the poller dropped. Deregister
//!   before closing, as with every backend.
//! - *Restore.* Registration saves the status flags, the signal and the owner as they were and
//!   deregister/drop put all three back (a blocking pipe is blocking again).
//! - *One poller per open file.* If two RT-signal pollers armed the same open file (the same
//!   socket registered in two threads' pollers, an fd and its `dup` in one poller, or a file
//!   shared with another process), the last `F_SETOWN_EX`/`F_SETSIG` would silently take every
//!   signal from the first. Registration therefore refuses, with [`Error::FileInUse`], a file
//!   that is signal-driven already: `O_ASYNC` on, or `F_SETSIG` set to the RT-signal pollers'
//!   signal (a signal-per-fd poller keeps that while a delivered fd is disarmed). The check
//!   reads the open file's own state, so it covers other threads and other processes alike;
//!   within this process it runs under a lock with the arming, so two threads cannot both
//!   pass it. Files without signal-driven I/O (watched by `poll()`) keep their signal and owner
//!   and may be registered in several pollers. Code that uses `O_ASYNC` on a file itself gets
//!   the same refusal, which is the point: the poller would take its signals.
//! - *Fork.* A child has copies of the poller's descriptors, but they refer to the parent's
//!   open files. A poller inherited through `fork()` is inert (every call returns
//!   [`Error::Forked`], checked in [`Poller`](crate::poll::Poller)), and its drop in the child
//!   restores nothing: it only closes the child's copies, which leaves the shared files as
//!   they are.

use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::SigSet;

use super::{Selector, Table, poll_now};
use crate::fork::Origin;
use crate::poll::{Error, Event, Events, Interest, Result, Stats};
use crate::sys::{self, fcntl, signal};

/// Threads that own an RT-signal poller.
static OWNERS: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

/// Held while an RT-signal poller checks and arms a file, or disarms and restores one, so
/// that two threads cannot both find the same open file free and both arm it.
static ARMING: Mutex<()> = Mutex::new(());

fn arming() -> std::sync::MutexGuard<'static, ()> {
    ARMING.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Reg {
    pub(crate) token: u64,
    pub(crate) interest: Interest,
    /// Not a fired one-shot.
    pub(crate) enabled: bool,
    /// The fd supports signal-driven I/O.
    pub(crate) fasync: bool,
    /// `O_ASYNC` is on (always, except for a delivered fd under signal-per-fd).
    pub(crate) armed: bool,
    /// The poller's duplicate of the fd: every `fcntl` and readiness check goes through it,
    /// and signals name it (module docs, "What belongs to the open file").
    pub(crate) dup: RawFd,
    /// File status flags without `O_ASYNC` (`O_NONBLOCK` included).
    pub(crate) flags: libc::c_int,
    /// What registration found, put back by deregister and drop: the status flags, the
    /// `F_SETSIG` signal and the owner.
    saved: Saved,
    /// The wait in which the fd was last made a candidate (deduplication).
    pub(crate) mark: u64,
    /// The wait in which `sigs` was counted, and the signals taken for the fd in it.
    pub(crate) sig_mark: u64,
    pub(crate) sigs: u64,
}

/// An open file's signal-driven I/O state as registration found it.
#[derive(Debug, Clone, Copy)]
struct Saved {
    flags: libc::c_int,
    sig: libc::c_int,
    owner: fcntl::FOwnerEx,
}

impl Saved {
    /// Puts the state back on `dup` (the registered file); errors ignored (best effort: the
    /// file is the registered one, so there is nothing else to protect).
    fn restore(&self, dup: BorrowedFd<'_>) {
        let _ = fcntl::set_fl(dup, self.flags);
        let _ = fcntl::set_sig(dup, self.sig);
        let _ = fcntl::set_owner(dup, self.owner);
    }
}

pub(crate) struct RtSig {
    pub(crate) onefd: bool,
    sig: libc::c_int,
    tid: u32,
    set: SigSet,
    sigfd: OwnedFd,
    pub(crate) regs: Table<Reg>,
    /// The duplicates, keyed by their number: the registered fd each stands for.
    dups: Table<(RawFd, OwnedFd)>,
    /// Registered fds without signal-driven I/O, watched by poll().
    nosig: Vec<RawFd>,
    /// Fds to check at the next wait: just registered or modified, or ready beyond capacity.
    pending: Vec<RawFd>,
    /// Signal-per-fd: fds reported by the last wait, disarmed, to re-arm at the next.
    pub(crate) delivered: Vec<RawFd>,
    /// This wait's candidates (fds to check with poll()).
    pub(crate) cand: Vec<RawFd>,
    pub(crate) mark: u64,
    buf: Vec<libc::signalfd_siginfo>,
    pfds: Vec<libc::pollfd>,
    /// The process the poller was made in: a forked child's drop restores nothing.
    origin: Origin,
}

impl RtSig {
    pub(crate) fn new(onefd: bool, st: &mut Stats) -> Result<RtSig> {
        let tid = crate::sys::process::gettid();
        {
            let mut g = OWNERS.lock().unwrap_or_else(|e| e.into_inner());
            if !g.get_or_insert_with(HashSet::new).insert(tid) {
                return Err(Error::RtSigInUse);
            }
        }
        let release = |e| {
            forget_owner(tid);
            e
        };
        let sig = rt_signal();
        let set = signal::sigset(&[sig, libc::SIGIO]);
        st.syscalls += 2;
        signal::block_signals(&set).map_err(|e| release(Error::io("pthread_sigmask", None, e)))?;
        let sigfd = signal::signalfd(&set).map_err(|e| release(Error::io("signalfd", None, e)))?;
        Ok(RtSig {
            onefd,
            sig,
            tid,
            set,
            sigfd,
            regs: Table::default(),
            dups: Table::default(),
            nosig: Vec::new(),
            pending: Vec::new(),
            delivered: Vec::new(),
            cand: Vec::new(),
            mark: 0,
            buf: vec![signal::signalfd_siginfo_zeroed(); 64],
            pfds: Vec::new(),
            origin: Origin::current(),
        })
    }

    /// Makes `fd` a candidate of this wait (once).
    pub(crate) fn add_cand(&mut self, fd: RawFd) {
        if let Some(r) = self.regs.get_mut(fd) {
            if r.enabled && r.mark != self.mark {
                r.mark = self.mark;
                self.cand.push(fd);
            }
        }
    }

    /// The poller's duplicate number `dup`, borrowed from the table that owns it (`None` for
    /// a number that is not one of its duplicates).
    fn dup_fd(dups: &Table<(RawFd, OwnedFd)>, dup: RawFd) -> Option<BorrowedFd<'_>> {
        dups.get(dup).map(|(_, own)| own.as_fd())
    }

    /// `F_SETFL` with or without `O_ASYNC`.
    pub(crate) fn set_async(&mut self, fd: RawFd, on: bool, st: &mut Stats) -> Result<()> {
        let Some(r) = self.regs.get_mut(fd) else {
            return Ok(());
        };
        let Some(dup) = Self::dup_fd(&self.dups, r.dup) else {
            return Ok(());
        };
        let flags = if on { r.flags | libc::O_ASYNC } else { r.flags };
        st.syscalls += 1;
        fcntl::set_fl(dup, flags).map_err(|e| Error::io("fcntl(F_SETFL)", Some(fd), e))?;
        r.armed = on;
        Ok(())
    }

    /// The pollfd that checks registered `fd` through its duplicate (`fd: -1`, ignored by
    /// poll(), if `fd` is not registered).
    pub(crate) fn pollfd(&self, fd: RawFd, events: impl Fn(&Reg) -> libc::c_short) -> libc::pollfd {
        match self.regs.get(fd) {
            Some(r) => libc::pollfd {
                fd: r.dup,
                events: events(r),
                revents: 0,
            },
            None => libc::pollfd {
                fd: -1,
                events: 0,
                revents: 0,
            },
        }
    }

    /// A signal naming `dup` (`si_fd`): taken for the fd that duplicate stands for.
    /// Refuses a caller other than the thread that made the poller ([`Error::WrongThread`]):
    /// its signals go to that thread, and only that thread can take them from its queue.
    /// (Registering, changing and deregistering only set up or restore a file, whose signals
    /// go to the owner whoever arms it: any thread may, one call at a time, which is how
    /// another thread adds an fd while the owner waits.)
    fn on_owner_thread(&self) -> Result<()> {
        let caller = crate::sys::process::gettid();
        if caller != self.tid {
            return Err(Error::WrongThread {
                owner: self.tid,
                caller,
            });
        }
        Ok(())
    }

    fn take_signal(&mut self, signo: u32, dup: RawFd, overflow: &mut bool, st: &mut Stats) {
        st.signals += 1;
        if signo == libc::SIGIO as u32 {
            *overflow = true;
            return;
        }
        if signo != self.sig as u32 {
            return;
        }
        let mark = self.mark;
        let onefd = self.onefd;
        let Some(fd) = self.dups.get(dup).map(|d| d.0) else {
            st.stale_signals += 1;
            return;
        };
        let Some(r) = self.regs.get_mut(fd).filter(|r| r.dup == dup) else {
            st.stale_signals += 1;
            return;
        };
        if r.sig_mark != mark {
            r.sig_mark = mark;
            r.sigs = 0;
        }
        r.sigs += 1;
        st.max_signals_per_fd = st.max_signals_per_fd.max(r.sigs);
        if !r.fasync || (onefd && !r.armed) {
            st.stale_signals += 1;
            return;
        }
        self.add_cand(fd);
    }

    /// Reads every pending signal from the signalfd (at most `limit`, unless draining).
    fn read_batch(&mut self, overflow: &mut bool, drain: bool, st: &mut Stats) -> Result<()> {
        let mut taken = 0usize;
        loop {
            st.syscalls += 1;
            let n = signal::signalfd_read(self.sigfd.as_fd(), &mut self.buf)
                .map_err(|e| Error::io("read(signalfd)", None, e))?;
            for i in 0..n {
                let (signo, fd) = (self.buf[i].ssi_signo, self.buf[i].ssi_fd);
                if drain {
                    st.signals += 1;
                } else {
                    self.take_signal(signo, fd, overflow, st);
                }
            }
            taken += n;
            if n < self.buf.len() || (!drain && taken >= 4096) {
                return Ok(());
            }
        }
    }

    /// Takes signals, blocking at most `timeout` if `block`; fills `cand`.
    fn take_signals(
        &mut self,
        block: bool,
        timeout: Option<Duration>,
        st: &mut Stats,
    ) -> Result<()> {
        let mut overflow = false;
        let t = if block { timeout } else { Some(Duration::ZERO) };
        if self.nosig.is_empty() {
            st.syscalls += 1;
            match signal::sigtimedwait(&self.set, t) {
                Ok(Some(info)) => {
                    let fd = signal::siginfo_fd(&info);
                    self.take_signal(info.si_signo as u32, fd, &mut overflow, st);
                    if !overflow {
                        self.read_batch(&mut overflow, false, st)?;
                    }
                }
                Ok(None) => {}
                Err(e) => return Err(Error::io("sigtimedwait", None, e)),
            }
        } else {
            self.pfds.clear();
            self.pfds.push(libc::pollfd {
                fd: self.sigfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            for &fd in &self.nosig {
                let mut p = self.pollfd(fd, |r| if r.enabled { r.interest.poll_bits() } else { 0 });
                if p.events == 0 {
                    p.fd = -1;
                }
                self.pfds.push(p);
            }
            st.syscalls += 1;
            sys::poll::poll(&mut self.pfds, sys::poll::timeout_ms(t))
                .map_err(|e| Error::io("poll", None, e))?;
            let ready: Vec<RawFd> = self.pfds[1..]
                .iter()
                .zip(&self.nosig)
                .filter(|(p, _)| p.revents != 0 && p.fd >= 0)
                .map(|(_, &fd)| fd)
                .collect();
            if self.pfds[0].revents != 0 && !overflow {
                self.read_batch(&mut overflow, false, st)?;
            }
            for fd in ready {
                self.add_cand(fd);
            }
        }
        if overflow {
            // The queue overflowed: what is still queued is incomplete. Drain it, then rescan.
            self.read_batch(&mut overflow, true, st)?;
            st.overflows += 1;
            let all: Vec<RawFd> = self.regs.iter().map(|(fd, _)| fd).collect();
            for fd in all {
                self.add_cand(fd);
            }
        }
        Ok(())
    }

    /// Checks the candidates with one poll() and reports those ready (the rest of the ready
    /// ones beyond `out`'s capacity go to `pending`).
    fn report(&mut self, out: &mut Events, st: &mut Stats) -> Result<()> {
        if self.cand.is_empty() {
            return Ok(());
        }
        self.pfds.clear();
        for i in 0..self.cand.len() {
            let p = self.pollfd(self.cand[i], |r| r.interest.poll_bits());
            self.pfds.push(p);
        }
        poll_now(&mut self.pfds, st)?;
        let pfds = std::mem::take(&mut self.pfds);
        let mut cand = std::mem::take(&mut self.cand);
        let mut result = Ok(());
        for (p, &fd) in pfds.iter().zip(&cand) {
            let Some(r) = self.regs.get(fd).copied() else {
                continue;
            };
            let Some(ev) = Event::from_poll(r.token, p.revents, r.interest) else {
                if self.onefd {
                    super::rtsig_onefd::not_reported(self, fd);
                }
                continue;
            };
            if out.is_full() {
                self.pending.push(fd);
                if self.onefd {
                    super::rtsig_onefd::not_reported(self, fd);
                }
                continue;
            }
            out.push(ev);
            if r.interest.oneshot {
                if let Some(r) = self.regs.get_mut(fd) {
                    r.enabled = false;
                }
            }
            if self.onefd {
                if let Err(e) = super::rtsig_onefd::delivered(self, fd, st) {
                    result = Err(e);
                    break;
                }
            }
        }
        self.pfds = pfds;
        cand.clear();
        self.cand = cand;
        result
    }
}

/// The real-time signal the RT-signal backends use (`SIGRTMIN + 2`).
pub(crate) fn rt_signal() -> libc::c_int {
    (signal::sigrtmin() + 2).min(signal::sigrtmax())
}

fn forget_owner(tid: u32) {
    let mut g = OWNERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = g.as_mut() {
        s.remove(&tid);
    }
}

impl Drop for RtSig {
    fn drop(&mut self) {
        if self.origin.is_inherited() {
            // A forked child's copy: the files are the parent's; closing the child's
            // descriptors (the duplicates, the signalfd) is all that happens.
            return;
        }
        let _g = arming();
        for (_, r) in self.regs.iter() {
            if let Some(dup) = Self::dup_fd(&self.dups, r.dup) {
                r.saved.restore(dup);
            }
        }
        drop(_g);
        forget_owner(self.tid);
    }
}

impl Selector for RtSig {
    fn register(
        &mut self,
        fd: RawFd,
        token: u64,
        interest: Interest,
        st: &mut Stats,
    ) -> Result<()> {
        self.regs.vacant(fd)?;
        let io = |op, e| Error::io(op, Some(fd), e);
        st.syscalls += 1;
        let own = fcntl::dup_cloexec(fd).map_err(|e| io("fcntl(F_DUPFD_CLOEXEC)", e))?;
        let dup = own.as_fd();
        let _g = arming();
        st.syscalls += 3;
        let saved = Saved {
            flags: fcntl::get_fl(dup).map_err(|e| io("fcntl(F_GETFL)", e))?,
            sig: fcntl::get_sig(dup).map_err(|e| io("fcntl(F_GETSIG)", e))?,
            owner: fcntl::get_owner(dup).map_err(|e| io("fcntl(F_GETOWN_EX)", e))?,
        };
        if saved.flags & libc::O_ASYNC != 0 || saved.sig == self.sig {
            return Err(Error::FileInUse(fd));
        }
        let flags = saved.flags | libc::O_NONBLOCK;
        // Signal and owner first, so the first signal already goes to the right place.
        st.syscalls += 4;
        let armed = fcntl::set_sig(dup, self.sig)
            .map_err(|e| io("fcntl(F_SETSIG)", e))
            .and_then(|()| {
                fcntl::set_owner_tid(dup, self.tid).map_err(|e| io("fcntl(F_SETOWN_EX)", e))
            })
            .and_then(|()| {
                fcntl::set_fl(dup, flags | libc::O_ASYNC).map_err(|e| io("fcntl(F_SETFL)", e))
            })
            .and_then(|()| fcntl::get_fl(dup).map_err(|e| io("fcntl(F_GETFL)", e)));
        let fasync = match armed {
            Ok(f) => f & libc::O_ASYNC != 0,
            Err(e) => {
                saved.restore(dup);
                return Err(e);
            }
        };
        if !fasync {
            // No signal-driven I/O (an eventfd): watched by poll(); the signal and owner are
            // put back, so that other pollers may watch the file too.
            st.syscalls += 2;
            let _ = fcntl::set_sig(dup, saved.sig);
            let _ = fcntl::set_owner(dup, saved.owner);
        }
        drop(_g);
        let dup = own.as_raw_fd();
        self.dups.insert(dup, (fd, own))?;
        self.regs.insert(
            fd,
            Reg {
                token,
                interest,
                enabled: true,
                fasync,
                armed: fasync,
                dup,
                flags,
                saved,
                mark: 0,
                sig_mark: 0,
                sigs: 0,
            },
        )?;
        if fasync {
            // Readiness that predates O_ASYNC raised no signal: check it at the next wait.
            self.pending.push(fd);
        } else {
            self.nosig.push(fd);
        }
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, token: u64, interest: Interest, st: &mut Stats) -> Result<()> {
        let r = self.regs.get_mut(fd).ok_or(Error::NotRegistered(fd))?;
        r.token = token;
        r.interest = interest;
        r.enabled = true;
        let (fasync, armed) = (r.fasync, r.armed);
        if fasync {
            if !armed {
                self.set_async(fd, true, st)?;
            }
            self.pending.push(fd);
        }
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd, st: &mut Stats) -> Result<()> {
        let r = self.regs.remove(fd)?;
        // Through the duplicate: the registered file, even if `fd` was closed and its number
        // reused since.
        st.syscalls += 3;
        if let Some(dup) = Self::dup_fd(&self.dups, r.dup) {
            let _g = arming();
            r.saved.restore(dup);
        }
        if !r.fasync {
            self.nosig.retain(|&f| f != fd);
        }
        // Closes the duplicate. A signal it raised that is still queued names a number that
        // is no longer (or not yet again) a duplicate: stale.
        drop(self.dups.remove(r.dup));
        Ok(())
    }

    fn wait(&mut self, out: &mut Events, timeout: Option<Duration>, st: &mut Stats) -> Result<()> {
        self.on_owner_thread()?;
        // A timeout too large for an Instant is no limit (as epoll and poll saturate it).
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        self.mark += 1;
        self.cand.clear();
        // Fds left over from the last wait (ready beyond its capacity) come first, so that a
        // small event array cannot starve them.
        for fd in std::mem::take(&mut self.pending) {
            self.add_cand(fd);
        }
        loop {
            if self.onefd {
                // Before every block: an fd left disarmed by the last report (not ready after
                // all) would raise no signal while this wait sleeps.
                super::rtsig_onefd::rearm(self, st)?;
            }
            let block = self.cand.is_empty();
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            self.take_signals(block, left, st)?;
            self.report(out, st)?;
            if !out.is_empty() || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(());
            }
            // Nothing ready (candidates not ready, or only stale signals): wait on for the
            // rest of the timeout.
            self.mark += 1;
        }
    }
}
