//! System calls, kept in one place: one file per kernel subsystem.
//!
//! | file | subsystem | through |
//! |---|---|---|
//! | `epoll.rs` | epoll instance, waits; `epoll_ctl` | nix; raw |
//! | `poll.rs`, `select.rs` | poll(2), select(2) | raw |
//! | `pipe.rs`, `eventfd.rs` | wake-up descriptors | nix |
//! | `fcntl.rs` | status flags; duplicates, `F_SETSIG`, `F_SETOWN_EX` | nix; raw |
//! | `ofd.rs` | open-file-description locks (liveness) | nix |
//! | `signal.rs` | signal sets, masks, signalfd; `sigtimedwait`, RT signals | nix; raw |
//! | `sigbus.rs` | the `SIGBUS` handler for shrunk files | nix (+ one raw query) |
//! | `futex.rs` | futex, futex_waitv, the robust list | raw |
//! | `robust.rs`, `rlock.rs` | robust owner words and the robust lock, on `futex.rs` | — |
//! | `fork.rs` | `pthread_atfork` handlers | raw |
//! | `cachestat.rs` | page-cache state of a file | raw |
//! | `membarrier.rs` | expedited global memory barriers | raw |
//! | `time.rs`, `process.rs` | the monotonic clock; tids, pids, page size | nix |
//! | `zc.rs` | `sendfile`, `splice`, `vmsplice`, `MSG_ZEROCOPY` and its error queue, the `SIGPIPE` guard | nix; raw |
//!
//! nix serves every call it has a wrapper for whose types fit. Raw `libc` stays where nix has
//! none (futex, `futex_waitv`, the robust list, `cachestat`, `membarrier`, `pthread_atfork`,
//! `sigtimedwait`, `F_SETSIG`/`F_SETOWN_EX`), and for calls that name a descriptor a caller lent by number
//! (`RawFd`: the poller's fds): nix takes `AsFd`, and a `BorrowedFd` made from such a number
//! would promise that it is open, which those callers cannot. Every raw wrapper turns the
//! kernel's `-1`/`errno` convention into [`io::Result`](std::io::Result) through the
//! [`syscall!`] macro and is documented as "`call()` — summary", with `# Safety` for an
//! `unsafe fn` and `# References` to the manual page. Nothing outside this module issues a
//! raw `libc::syscall`.

pub(crate) mod cachestat;
pub(crate) mod epoll;
pub(crate) mod eventfd;
pub(crate) mod fcntl;
pub(crate) mod fork;
pub(crate) mod futex;
pub(crate) mod membarrier;
pub(crate) mod ofd;
pub(crate) mod pipe;
pub(crate) mod poll;
pub(crate) mod process;
pub(crate) mod rlock;
pub(crate) mod robust;
pub(crate) mod select;
pub(crate) mod sigbus;
pub(crate) mod signal;
pub(crate) mod time;
pub(crate) mod zc;

/// Calls a libc function (`libc::syscall` included), turning a `-1` return into
/// `Err(io::Error::last_os_error())` and any other into `Ok`; precede it with a `// SAFETY:`
/// comment on its arguments.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        #[allow(unused_unsafe)]
        // SAFETY: the caller of the macro states why the call's arguments are valid.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;
