//! Signals: signal sets and masks, `sigtimedwait`, `signalfd`, the real-time signal range.
//!
//! Masks and signalfds go through nix ([`SigSet`], `pthread_sigmask`, [`SignalFd`]). Raw
//! `libc` stays where nix has no wrapper: `sigaddset` for real-time signals (nix's `Signal` enum
//! has no `SIGRTMIN + n`), `sigtimedwait`, the `si_fd` member of a `siginfo_t`, and
//! `SIGRTMIN`/`SIGRTMAX` (glibc functions, not constants). The `SIGBUS` handler is in
//! `sys::sigbus`.
//!
//! # References
//! - [signal(7)](https://man7.org/linux/man-pages/man7/signal.7.html)

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::syscall;

/// `sigemptyset()` and `sigaddset()` — a signal set holding `sigs` (real-time signals too).
///
/// # References
/// - [sigsetops(3)](https://man7.org/linux/man-pages/man3/sigsetops.3.html)
pub(crate) fn sigset(sigs: &[libc::c_int]) -> SigSet {
    let mut set = *SigSet::empty().as_ref();
    for &s in sigs {
        // SAFETY: `set` is a valid sigset_t (made by sigemptyset); an invalid number only makes
        // sigaddset fail, leaving the set as it was.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    // SAFETY: `set` was initialised by sigemptyset and changed only by sigaddset.
    unsafe { SigSet::from_sigset_t_unchecked(set) }
}

/// `pthread_sigmask(SIG_BLOCK, set, NULL)` — blocks the signals of `set` in the calling thread.
///
/// # References
/// - [pthread_sigmask(3)](https://man7.org/linux/man-pages/man3/pthread_sigmask.3.html)
pub(crate) fn block_signals(set: &SigSet) -> io::Result<()> {
    // `SIG_BLOCK` and a valid set: the call cannot fail (its only error is `EINVAL` for a bad
    // `how`), so nix's reading of the return value (an error number, not -1) never matters.
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(set), None).map_err(io::Error::from)
}

/// `pthread_sigmask(SIG_BLOCK, all but the faults, NULL)` — for a library thread (a keeper):
/// it takes none of the application's signals, which the kernel then delivers to the
/// application's own threads. Faults stay deliverable: a blocked `SIGBUS` from a shrunk file
/// would kill the process instead of reaching shmio's handler (see `sys::sigbus`).
///
/// # References
/// - [pthread_sigmask(3)](https://man7.org/linux/man-pages/man3/pthread_sigmask.3.html)
pub(crate) fn block_all_but_faults() {
    let mut all = SigSet::all();
    for sig in [
        Signal::SIGBUS,
        Signal::SIGSEGV,
        Signal::SIGILL,
        Signal::SIGFPE,
    ] {
        all.remove(sig);
    }
    // SIG_BLOCK with a valid set cannot fail.
    let _ = block_signals(&all);
}

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

/// `sigtimedwait(set, &info, timeout)` — takes one pending signal of `set`: `Ok(Some(info))`
/// for a signal taken, `Ok(None)` when the timeout expired (`EAGAIN`). `EINTR` is returned as
/// an error. Raw: nix has no `sigtimedwait`.
///
/// # References
/// - [sigtimedwait(2)](https://man7.org/linux/man-pages/man2/sigtimedwait.2.html)
pub(crate) fn sigtimedwait(
    set: &SigSet,
    timeout: Option<Duration>,
) -> io::Result<Option<libc::siginfo_t>> {
    // SAFETY: siginfo_t is plain data; the kernel fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let ts = timeout.map(timespec);
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `set`, `info` and `tsp` (NULL or a live timespec) are valid for the call.
    match syscall!(sigtimedwait(set.as_ref(), &mut info, tsp)) {
        Ok(_) => Ok(Some(info)),
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The `si_fd` of a signal raised by signal-driven I/O (the libc crate has no accessor).
pub(crate) fn siginfo_fd(info: &libc::siginfo_t) -> RawFd {
    // The SIGPOLL layout: si_signo, si_errno, si_code, (pad on 64-bit), si_band (long), si_fd.
    #[repr(C)]
    struct SigPoll {
        signo: libc::c_int,
        errno: libc::c_int,
        code: libc::c_int,
        band: libc::c_long,
        fd: libc::c_int,
    }
    // SAFETY: siginfo_t is at least 128 bytes, larger than and aligned like `SigPoll`, whose
    // fields mirror the kernel's `_sigpoll` member; any bit pattern is a valid int.
    let p = unsafe { &*(info as *const libc::siginfo_t).cast::<SigPoll>() };
    p.fd
}

/// `signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC)` — a descriptor whose reads take pending
/// signals of `set`.
///
/// # References
/// - [signalfd(2)](https://man7.org/linux/man-pages/man2/signalfd.2.html)
pub(crate) fn signalfd(set: &SigSet) -> io::Result<OwnedFd> {
    SignalFd::with_flags(set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map(OwnedFd::from)
        .map_err(io::Error::from)
}

/// `read(fd, buf, sizeof buf)` on a non-blocking signalfd — takes pending signals into `buf`
/// (several per call, where nix's `SignalFd::read_signal` takes one); returns how many (0 when
/// none is pending). Retried on `EINTR`.
///
/// # References
/// - [signalfd(2)](https://man7.org/linux/man-pages/man2/signalfd.2.html)
pub(crate) fn signalfd_read(
    fd: BorrowedFd<'_>,
    buf: &mut [libc::signalfd_siginfo],
) -> io::Result<usize> {
    let size = size_of::<libc::signalfd_siginfo>();
    // SAFETY: `buf` is a live, writable array of `size_of_val(buf)` bytes, borrowed mutably for
    // as long as the byte view lives; signalfd_siginfo is plain integers, valid for any bytes
    // the kernel writes.
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(buf))
    };
    loop {
        match nix::unistd::read(fd, bytes) {
            Ok(n) => return Ok(n / size),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Ok(0),
            Err(e) => return Err(e.into()),
        }
    }
}

/// An all-zero `signalfd_siginfo`, for buffers.
pub(crate) fn signalfd_siginfo_zeroed() -> libc::signalfd_siginfo {
    // SAFETY: signalfd_siginfo is plain integers; all-zero is valid.
    unsafe { std::mem::zeroed() }
}

/// `SIGRTMIN` — the lowest real-time signal number (glibc keeps the first few for itself).
///
/// # References
/// - [signal(7)](https://man7.org/linux/man-pages/man7/signal.7.html), "Real-time signals"
pub(crate) fn sigrtmin() -> libc::c_int {
    libc::SIGRTMIN()
}

/// `SIGRTMAX` — the highest real-time signal number.
///
/// # References
/// - [signal(7)](https://man7.org/linux/man-pages/man7/signal.7.html), "Real-time signals"
pub(crate) fn sigrtmax() -> libc::c_int {
    libc::SIGRTMAX()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siginfo_fd_reads_the_sigpoll_member() {
        // SAFETY: siginfo_t is plain data; all-zero is valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // The kernel's layout on 64-bit: si_fd at byte 24 (after si_band at 16).
        let off = if size_of::<libc::c_long>() == 8 {
            24
        } else {
            16
        };
        // SAFETY: `off + 4` is within the 128-byte siginfo_t; the write is unaligned-safe.
        unsafe {
            (&mut info as *mut libc::siginfo_t)
                .cast::<u8>()
                .add(off)
                .cast::<i32>()
                .write_unaligned(1234)
        };
        assert_eq!(siginfo_fd(&info), 1234);
    }

    #[test]
    fn sigset_holds_real_time_signals() {
        let rt = sigrtmin() + 2;
        let set = sigset(&[rt, libc::SIGIO]);
        // SAFETY: `set` is a valid, initialised sigset_t.
        let has = |s| unsafe { libc::sigismember(set.as_ref(), s) } == 1;
        assert!(has(rt) && has(libc::SIGIO));
        assert!(!has(libc::SIGINT));
    }
}
