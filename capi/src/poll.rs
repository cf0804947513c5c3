//! The event poller: select, poll, epoll (level/edge), RT signals, signal-per-fd.

use std::ffi::{c_char, c_int};
use std::sync::{Mutex, MutexGuard, TryLockError};

use shmio_core::fork::Origin;
use shmio_core::poll::{self, Backend, Events, Interest, Poller, Stats, Waker};

use crate::ffi::{
    Failure, Out, Result, boundary, boundary_value, byte_len, handle_ref, non_null, str_arg,
    timeout,
};
use crate::sized::{Growable, SizedOut, growable, init};
use crate::status::shmio_status;

/// Backend: the best available (epoll, level-triggered).
pub const SHMIO_BACKEND_AUTO: u32 = 0;
/// Backend: select(2); fds >= FD_SETSIZE (1024) are refused with `SHMIO_ERR_INVALID_ARGUMENT`.
pub const SHMIO_BACKEND_SELECT: u32 = 1;
/// Backend: poll(2).
pub const SHMIO_BACKEND_POLL: u32 = 2;
/// Backend: epoll, level-triggered.
pub const SHMIO_BACKEND_EPOLL: u32 = 3;
/// Backend: epoll, edge-triggered (EPOLLET).
pub const SHMIO_BACKEND_EPOLL_ET: u32 = 4;
/// Backend: POSIX real-time signals (F_SETSIG), queue overflow recovered by a poll() rescan.
pub const SHMIO_BACKEND_RTSIG: u32 = 5;
/// Backend: real-time signals with signal-per-fd semantics.
pub const SHMIO_BACKEND_RTSIG_ONEFD: u32 = 6;

/// Interest: report readable.
pub const SHMIO_INTEREST_READABLE: u32 = 1;
/// Interest: report writable.
pub const SHMIO_INTEREST_WRITABLE: u32 = 2;
/// Interest: disable the fd after one event, until `shmio_poller_modify`.
pub const SHMIO_INTEREST_ONESHOT: u32 = 4;

/// Event flag: readable (or at end of file).
pub const SHMIO_EVENT_READABLE: u32 = 1;
/// Event flag: writable.
pub const SHMIO_EVENT_WRITABLE: u32 = 2;
/// Event flag: hang-up (not reported by select, which shows it as readable).
pub const SHMIO_EVENT_HANGUP: u32 = 4;
/// Event flag: error condition (select shows it as readable or writable).
pub const SHMIO_EVENT_ERROR: u32 = 8;

const BACKENDS: [(u32, Backend); 7] = [
    (SHMIO_BACKEND_AUTO, Backend::Auto),
    (SHMIO_BACKEND_SELECT, Backend::Select),
    (SHMIO_BACKEND_POLL, Backend::Poll),
    (SHMIO_BACKEND_EPOLL, Backend::Epoll),
    (SHMIO_BACKEND_EPOLL_ET, Backend::EpollEdge),
    (SHMIO_BACKEND_RTSIG, Backend::RtSig),
    (SHMIO_BACKEND_RTSIG_ONEFD, Backend::RtSigOneFd),
];

fn backend_from_c(b: u32) -> Result<Backend> {
    BACKENDS
        .iter()
        .find(|(n, _)| *n == b)
        .map(|(_, b)| *b)
        .ok_or_else(|| Failure::invalid(format!("backend {b} is not a SHMIO_BACKEND_* value")))
}

fn backend_to_c(b: Backend) -> u32 {
    BACKENDS
        .iter()
        .find(|(_, x)| *x == b)
        .map_or(SHMIO_BACKEND_AUTO, |(n, _)| *n)
}

fn interest_from_c(i: u32) -> Result<Interest> {
    let all = SHMIO_INTEREST_READABLE | SHMIO_INTEREST_WRITABLE | SHMIO_INTEREST_ONESHOT;
    if i & !all != 0 {
        return Err(Failure::invalid(format!(
            "interest {i:#x} has bits other than SHMIO_INTEREST_*"
        )));
    }
    Ok(Interest {
        readable: i & SHMIO_INTEREST_READABLE != 0,
        writable: i & SHMIO_INTEREST_WRITABLE != 0,
        oneshot: i & SHMIO_INTEREST_ONESHOT != 0,
    })
}

/// An event poller (opaque).
///
/// Threads: `shmio_poller_backend` and `shmio_poller_stats_get` may be called from any
/// thread at any time, also while another thread waits. The other calls on a poller
/// (`register`, `modify`, `deregister`, `wait`, `shmio_waker_new`) are for one thread at a
/// time: one that overlaps another thread's call on the same poller fails at once with
/// `SHMIO_ERR_WRONG_THREAD` (it neither waits nor corrupts anything); wake a waiting thread
/// with a waker instead. An RT-signal poller is waited on only from the thread that created
/// it. `shmio_poller_free` must not overlap or precede any other call on the poller.
///
/// fork: a poller inherited by a child is inert there: every call except `shmio_poller_backend`
/// and `shmio_poller_stats_get` returns `SHMIO_ERR_FORKED`, and `shmio_poller_free` in the
/// child leaves the files it shares with the parent as they are.
pub struct shmio_poller {
    /// `SHMIO_BACKEND_*`, fixed at creation.
    backend: u32,
    /// The process the poller was made in, checked before `state` is locked (see `with`).
    origin: Origin,
    /// The counters as of the last call that ended (read by `shmio_poller_stats_get` without
    /// waiting for a call in progress).
    stats: Mutex<Stats>,
    /// The poller; calls that change or wait on it take this without blocking.
    state: Mutex<PollerState>,
}

struct PollerState {
    inner: Poller,
    events: Events,
}

impl shmio_poller {
    /// Runs `f` on the poller, unless another thread is in a call on it; publishes the stats.
    fn with<T>(&self, f: impl FnOnce(&mut PollerState) -> Result<T>) -> Result<T> {
        // Before the lock: a thread of the parent may have been in a call at the fork, and in
        // the child nobody would ever give the lock back.
        if self.origin.is_inherited() {
            return Err(poll::Error::Forked.into());
        }
        let mut g: MutexGuard<'_, PollerState> = match self.state.try_lock() {
            Ok(g) => g,
            // A panic in an earlier call was caught at the boundary and reported; the poller's
            // state is still memory-safe and usable.
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(Failure::new(
                    shmio_status::SHMIO_ERR_WRONG_THREAD,
                    "another thread is in a call on this poller: register, modify, deregister, \
                     wait and shmio_waker_new are for one thread at a time (wake a waiting thread \
                     with a waker)",
                ));
            }
        };
        let r = f(&mut g);
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = g.inner.stats();
        r
    }
}

/// Wakes a poller from any thread (opaque). A waker may outlive its poller: after
/// `shmio_poller_free`, `shmio_waker_wake` does nothing and returns `SHMIO_OK`. Free it with
/// `shmio_waker_free`, before or after the poller. In a forked child, `shmio_waker_wake`
/// returns `SHMIO_ERR_FORKED` (it would wake the parent's poller).
pub struct shmio_waker {
    inner: Waker,
}

/// One event.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_event {
    /// The token given at registration.
    pub token: u64,
    /// `SHMIO_EVENT_*` bits.
    pub flags: u32,
}

/// A poller's counters. Fill with `shmio_poller_stats_init` first (it sets `struct_size`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_poller_stats {
    /// Size of this struct as the caller knows it; set by `shmio_poller_stats_init`.
    /// `shmio_poller_stats_get` sets it to the number of bytes it filled in.
    pub struct_size: u32,
    /// Always 0 (keeps the struct free of padding).
    pub reserved: u32,
    /// Calls of `shmio_poller_wait`.
    pub waits: u64,
    /// Events returned.
    pub events: u64,
    /// System calls made by the poller.
    pub syscalls: u64,
    /// RT-signal queue overflows recovered by a rescan.
    pub overflows: u64,
    /// RT signals taken.
    pub signals: u64,
    /// Stale RT signals (for an fd not armed or not registered).
    pub stale_signals: u64,
    /// The most RT signals taken for one fd in one wait.
    pub max_signals_per_fd: u64,
}

impl From<Stats> for shmio_poller_stats {
    fn from(s: Stats) -> Self {
        shmio_poller_stats {
            waits: s.waits,
            events: s.events,
            syscalls: s.syscalls,
            overflows: s.overflows,
            signals: s.signals,
            stale_signals: s.stale_signals,
            max_signals_per_fd: s.max_signals_per_fd,
            ..shmio_poller_stats::INIT
        }
    }
}

// SAFETY: `#[repr(C)]`, `struct_size: u32` first, then a `u32` and `u64`s only.
growable!(shmio_poller_stats, 8 + 7 * 8);

/// Creates a poller using `backend` (`SHMIO_BACKEND_*`). The RT-signal backends block their
/// signal (`SIGRTMIN+2`) and SIGIO in the calling thread and direct every registered fd's
/// signals to it: wait only from this thread (else `SHMIO_ERR_WRONG_THREAD`: only it can take
/// its signals); register, modify and deregister work from any thread, since the signals of an
/// armed file go to this thread whoever armed it. One RT-signal poller per thread (else
/// `SHMIO_ERR_ALREADY_EXISTS`).
///
/// Ownership: `*out` is owned by the caller; free it with `shmio_poller_free`. Does not block.
///
/// # Safety
/// `out` must be NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_poller_new(
    backend: u32,
    out: *mut *mut shmio_poller,
) -> shmio_status {
    boundary("shmio_poller_new", || {
        let out = Out::new(out, "out")?;
        // SAFETY: valid for writing a pointer by the contract.
        unsafe { out.write(std::ptr::null_mut()) };
        let inner = Poller::new(backend_from_c(backend)?)?;
        let h = Box::into_raw(Box::new(shmio_poller {
            backend: backend_to_c(inner.backend()),
            origin: inner.origin(),
            stats: Mutex::new(inner.stats()),
            state: Mutex::new(PollerState {
                inner,
                events: Events::with_capacity(1),
            }),
        }));
        // SAFETY: valid for writing a pointer by the contract.
        unsafe { out.write(h) };
        Ok(())
    })
}

/// Frees a poller (registered fds are not closed; the RT-signal backends put their flags,
/// signal and owner back as they were). NULL is a no-op. Its waker stays valid (see
/// `shmio_waker`). In a forked child: frees the child's copy only.
///
/// # Safety
/// `p` must be NULL or a poller from `shmio_poller_new` not freed yet, with no call on it in
/// progress in any thread and none after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_poller_free(p: *mut shmio_poller) {
    boundary("shmio_poller_free", || {
        if !p.is_null() {
            // SAFETY: a live handle is a `Box` we leaked in new; given back once (contract).
            drop(unsafe { Box::from_raw(p) });
        }
        Ok(())
    });
}

/// The backend of a poller (`SHMIO_BACKEND_*`, `AUTO` resolved to `EPOLL`); `UINT32_MAX` for
/// NULL. Any thread, any time (see `shmio_poller`).
///
/// # Safety
/// `p` must be NULL or a live poller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_poller_backend(p: *const shmio_poller) -> u32 {
    boundary_value("shmio_poller_backend", u32::MAX, || {
        // SAFETY: NULL or a live handle (contract).
        match unsafe { handle_ref(p, "p") } {
            Ok(p) => p.backend,
            Err(_) => u32::MAX,
        }
    })
}

/// The backend named `name` (`select`, `poll`, `epoll`, `epoll-et`, `rtsig`, `rtsig-onefd`,
/// `auto`) into `*backend_out`; an unknown name is `SHMIO_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string; `backend_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_backend_from_name(
    name: *const c_char,
    backend_out: *mut u32,
) -> shmio_status {
    boundary("shmio_backend_from_name", || {
        let out = Out::new(backend_out, "backend_out")?;
        // SAFETY: NUL-terminated by the contract, only used during the call.
        let name = unsafe { str_arg(name, "name") }?;
        let b = Backend::from_name(name).ok_or_else(|| {
            Failure::invalid(format!(
                "unknown backend {name:?} (select, poll, epoll, epoll-et, rtsig, rtsig-onefd, auto)"
            ))
        })?;
        // SAFETY: writable by the contract.
        unsafe { out.write(backend_to_c(b)) };
        Ok(())
    })
}

/// The name of a backend (`SHMIO_BACKEND_*`), or "unknown".
///
/// Ownership: a static string. Does not change the last-error message.
#[unsafe(no_mangle)]
pub extern "C" fn shmio_backend_name(backend: u32) -> *const c_char {
    boundary_value("shmio_backend_name", c"unknown".as_ptr(), || {
        match BACKENDS
            .iter()
            .find(|(n, _)| *n == backend)
            .map(|(_, b)| *b)
        {
            Some(Backend::Auto) => c"auto",
            Some(Backend::Select) => c"select",
            Some(Backend::Poll) => c"poll",
            Some(Backend::Epoll) => c"epoll",
            Some(Backend::EpollEdge) => c"epoll-et",
            Some(Backend::RtSig) => c"rtsig",
            Some(Backend::RtSigOneFd) => c"rtsig-onefd",
            None => c"unknown",
        }
        .as_ptr()
    })
}

/// Watches `fd` for `interest` (`SHMIO_INTEREST_*` bits; hang-up and error are always
/// reported), reporting `token`. Already registered: `SHMIO_ERR_ALREADY_EXISTS`; select with
/// fd >= 1024: `SHMIO_ERR_INVALID_ARGUMENT`; `fd` not open: `SHMIO_ERR_IO` (EBADF). The
/// RT-signal backends make the fd non-blocking until deregistered (then its flags, signal
/// and owner are put back), keep a duplicate of it until then (closing `fd` first does not
/// close the file), and refuse with `SHMIO_ERR_ALREADY_EXISTS` an open file another
/// RT-signal poller has (another thread's or process's, or this one's through a dup), which
/// would lose its signals. A consumer's `shmio_consumer_fd` can be registered like any fd.
///
/// # Safety
/// `p` must be NULL or a live poller (threads: see `shmio_poller`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_poller_register(
    p: *mut shmio_poller,
    fd: c_int,
    token: u64,
    interest: u32,
) -> shmio_status {
    boundary("shmio_poller_register", || {
        // SAFETY: a live handle (contract); it is only used through `&`.
        let p = unsafe { handle_ref(p, "p") }?;
        let interest = interest_from_c(interest)?;
        p.with(|s| Ok(s.inner.register(fd, token, interest)?))
    })
}

/// Changes the token and interest of a registered fd (re-enables a one-shot fd). Not
/// registered: `SHMIO_ERR_NOT_REGISTERED`.
///
/// # Safety
/// `p` must be NULL or a live poller (threads: see `shmio_poller`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_poller_modify(
    p: *mut shmio_poller,
    fd: c_int,
    token: u64,
    interest: u32,
) -> shmio_status {
    boundary("shmio_poller_modify", || {
        // SAFETY: a live handle (contract); it is only used through `&`.
        let p = unsafe { handle_ref(p, "p") }?;
        let interest = interest_from_c(interest)?;
        p.with(|s| Ok(s.inner.modify(fd, token, interest)?))
    })
}

/// Stops watching `fd` (call it before closing the fd). Not registered:
/// `SHMIO_ERR_NOT_REGISTERED`.
///
/// # Safety
/// `p` must be NULL or a live poller (threads: see `shmio_poller`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_poller_deregister(p: *mut shmio_poller, fd: c_int) -> shmio_status {
    boundary("shmio_poller_deregister", || {
        // SAFETY: a live handle (contract); it is only used through `&`.
        let p = unsafe { handle_ref(p, "p") }?;
        p.with(|s| Ok(s.inner.deregister(fd)?))
    })
}

/// Waits for events and stores up to `cap` of them in `events`; `*n_out` receives how many.
/// `timeout_ms < 0` waits without limit, `0` only checks, `> 0` waits at most that long.
/// Unlike the queue's calls, an expired timeout is not an error: it returns `SHMIO_OK` with
/// `*n_out == 0` (the usual event-loop convention). A signal handler may end the wait with
/// `SHMIO_ERR_INTERRUPTED`.
///
/// # Safety
/// `p` must be NULL or a live poller (threads: see `shmio_poller`); `events` NULL or valid for
/// writing `cap` events; `n_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_poller_wait(
    p: *mut shmio_poller,
    events: *mut shmio_event,
    cap: usize,
    timeout_ms: c_int,
    n_out: *mut usize,
) -> shmio_status {
    boundary("shmio_poller_wait", || {
        let n_out = Out::new(n_out, "n_out")?;
        // SAFETY: writable by the contract.
        unsafe { n_out.write(0) };
        // SAFETY: a live handle (contract); it is only used through `&`.
        let p = unsafe { handle_ref(p, "p") }?;
        let events = non_null(events, "events")?;
        let cap = byte_len(cap, "cap")?;
        if cap == 0 {
            return Err(Failure::invalid("`cap` is 0"));
        }
        p.with(|p| {
            if p.events.capacity() != cap {
                p.events = Events::with_capacity(cap);
            }
            let n = p.inner.wait(&mut p.events, timeout(timeout_ms))?;
            for (i, e) in p.events.iter().enumerate() {
                let mut flags = 0;
                if e.readable {
                    flags |= SHMIO_EVENT_READABLE;
                }
                if e.writable {
                    flags |= SHMIO_EVENT_WRITABLE;
                }
                if e.hangup {
                    flags |= SHMIO_EVENT_HANGUP;
                }
                if e.error {
                    flags |= SHMIO_EVENT_ERROR;
                }
                // SAFETY: `events` is valid for `cap` entries (contract) and `i < n <= cap`.
                unsafe {
                    events.as_ptr().add(i).write(shmio_event {
                        token: e.token,
                        flags,
                    })
                };
            }
            // SAFETY: writable by the contract.
            unsafe { n_out.write(n) };
            Ok(())
        })
    })
}

/// Fills `*out` with zeros and sets its `struct_size`.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL (-> `SHMIO_ERR_NULL_POINTER`) or valid for writing a
/// `shmio_poller_stats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_poller_stats_init(out: *mut shmio_poller_stats) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe { init("shmio_poller_stats_init", out, shmio_poller_stats::INIT) }
}

/// The poller's counters into `*out` (filled by `shmio_poller_stats_init`), as of the last
/// call on it that ended. Any thread, any time, also during another thread's wait (see
/// `shmio_poller`); never blocks.
///
/// # Safety
/// `p` must be NULL or a live poller; `out` NULL or a struct filled by
/// `shmio_poller_stats_init`, writable for its `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_poller_stats_get(
    p: *const shmio_poller,
    out: *mut shmio_poller_stats,
) -> shmio_status {
    boundary("shmio_poller_stats_get", || {
        // SAFETY: readable for its first `u32` (contract).
        let out = unsafe { SizedOut::new(out, "out") }?;
        // SAFETY: a live handle (contract).
        let p = unsafe { handle_ref(p, "p") }?;
        let s = *p.stats.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: writable for its `struct_size` bytes (contract).
        unsafe { out.write(s.into()) };
        Ok(())
    })
}

/// Creates the waker of a poller: `shmio_waker_wake` makes the poller's wait return an event
/// with `token` (use it for nothing else). A poller has one waker: a later call with the same
/// token returns another handle to it; with another token, `SHMIO_ERR_ALREADY_EXISTS`
/// (nothing changes).
///
/// Ownership: `*out` is owned by the caller; free it with `shmio_waker_free` (see
/// `shmio_waker` for its lifetime). Does not block.
///
/// # Safety
/// `p` must be NULL or a live poller (threads: see `shmio_poller`); `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_waker_new(
    p: *mut shmio_poller,
    token: u64,
    out: *mut *mut shmio_waker,
) -> shmio_status {
    boundary("shmio_waker_new", || {
        let out = Out::new(out, "out")?;
        // SAFETY: writable by the contract.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: a live handle (contract); it is only used through `&`.
        let p = unsafe { handle_ref(p, "p") }?;
        let w = p.with(|s| Ok(Waker::new(&mut s.inner, token)?))?;
        // SAFETY: writable by the contract.
        unsafe { out.write(Box::into_raw(Box::new(shmio_waker { inner: w }))) };
        Ok(())
    })
}

/// Wakes the poller. Thread-safe: any thread, any number of times (wakes before a wait give
/// one event); after the poller was freed, nothing (`SHMIO_OK`). Not async-signal-safe (it records the last error like every call): from a
/// signal handler, set a flag and rely on the wait returning `SHMIO_ERR_INTERRUPTED`.
///
/// # Safety
/// `w` must be NULL or a live waker.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_waker_wake(w: *const shmio_waker) -> shmio_status {
    boundary("shmio_waker_wake", || {
        // SAFETY: a live handle; `Waker` is `Sync` (contract).
        let w = unsafe { handle_ref(w, "w") }?;
        w.inner.wake()?;
        Ok(())
    })
}

/// Frees a waker. NULL is a no-op.
///
/// # Safety
/// `w` must be NULL or a waker from `shmio_waker_new` not freed yet, not in use elsewhere.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_waker_free(w: *mut shmio_waker) {
    boundary("shmio_waker_free", || {
        if !w.is_null() {
            // SAFETY: a live handle is a `Box` we leaked in new; given back once (contract).
            drop(unsafe { Box::from_raw(w) });
        }
        Ok(())
    });
}

/// Blocks the RT-signal backends' signal and SIGIO in the calling thread. Call it in `main`
/// before creating threads, so that every thread inherits the mask.
#[unsafe(no_mangle)]
pub extern "C" fn shmio_poll_block_rt_signals() -> shmio_status {
    boundary("shmio_poll_block_rt_signals", || {
        poll::block_rt_signals()?;
        Ok(())
    })
}

/// The real-time signal number the RT-signal backends use.
#[unsafe(no_mangle)]
pub extern "C" fn shmio_poll_rt_signal() -> c_int {
    boundary_value("shmio_poll_rt_signal", 0, Poller::rt_signal)
}
