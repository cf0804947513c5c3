//! System calls of the event poller: select, poll, epoll, signal-driven I/O (`fcntl`
//! `F_SETSIG`/`F_SETOWN_EX`), signal masks, `sigtimedwait`, `signalfd`, pipes.
//!
//! Each wrapper stands for one C call and returns `io::Result`; callers count syscalls.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::syscall;

/// Milliseconds for `poll`/`epoll_wait`: `None` is -1 (no limit); a partial millisecond is
/// rounded up so that a short timeout never becomes a busy loop.
pub(crate) fn timeout_ms(t: Option<Duration>) -> libc::c_int {
    match t {
        None => -1,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

/// `poll(fds, nfds, timeout)`: the number of entries with non-zero `revents`.
///
/// # References
/// - poll(2)
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout: libc::c_int) -> io::Result<usize> {
    let n = syscall!(poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout))?;
    Ok(n as usize)
}

/// An `fd_set` (FD_SETSIZE bits), zeroed.
pub(crate) fn fd_set_new() -> libc::fd_set {
    // SAFETY: fd_set is plain bits; all-zero is the empty set (what FD_ZERO produces).
    unsafe { std::mem::zeroed() }
}

/// `FD_SET(fd, set)`. `fd` must be in `0..FD_SETSIZE` (checked).
pub(crate) fn fd_set_add(set: &mut libc::fd_set, fd: RawFd) {
    assert!((0..libc::FD_SETSIZE as RawFd).contains(&fd));
    // SAFETY: `set` is a valid fd_set and `fd` is within its bounds (asserted).
    unsafe { libc::FD_SET(fd, set) }
}

/// `FD_ISSET(fd, set)`. `fd` must be in `0..FD_SETSIZE` (checked).
pub(crate) fn fd_set_has(set: &libc::fd_set, fd: RawFd) -> bool {
    assert!((0..libc::FD_SETSIZE as RawFd).contains(&fd));
    // SAFETY: `set` is a valid fd_set and `fd` is within its bounds (asserted).
    unsafe { libc::FD_ISSET(fd, set) }
}

/// `select(nfds, r, w, e, timeout)`: the number of ready bits.
///
/// # References
/// - select(2)
pub(crate) fn select(
    nfds: RawFd,
    r: &mut libc::fd_set,
    w: &mut libc::fd_set,
    e: &mut libc::fd_set,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let mut tv = timeout.map(|d| libc::timeval {
        tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    });
    let tvp = tv
        .as_mut()
        .map_or(std::ptr::null_mut(), |t| t as *mut libc::timeval);
    // SAFETY: the three sets are valid, writable fd_sets; `tvp` is NULL or a live timeval.
    let n = syscall!(select(nfds, r, w, e, tvp))?;
    Ok(n as usize)
}

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub(crate) fn epoll_create() -> io::Result<OwnedFd> {
    let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `epoll_ctl(epfd, op, fd, &{events, data.u64 = token})`.
///
/// # References
/// - epoll_ctl(2)
pub(crate) fn epoll_ctl(
    epfd: RawFd,
    op: libc::c_int,
    fd: RawFd,
    events: u32,
    token: u64,
) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` is a live epoll_event (ignored by the kernel for EPOLL_CTL_DEL).
    syscall!(epoll_ctl(epfd, op, fd, &mut ev))?;
    Ok(())
}

/// `epoll_wait(epfd, buf, cap, timeout)`: fills `buf` (cleared first) with ready events.
pub(crate) fn epoll_wait(
    epfd: RawFd,
    buf: &mut Vec<libc::epoll_event>,
    cap: usize,
    timeout: libc::c_int,
) -> io::Result<usize> {
    buf.clear();
    let cap = cap.clamp(1, i32::MAX as usize);
    buf.reserve(cap);
    // SAFETY: `buf` has room for `cap` events; the kernel writes at most that many.
    let n = syscall!(epoll_wait(
        epfd,
        buf.as_mut_ptr(),
        cap as libc::c_int,
        timeout
    ))?;
    // SAFETY: the kernel initialised the first `n` (<= cap) entries.
    unsafe { buf.set_len(n as usize) };
    Ok(n as usize)
}

/// `pipe2(O_NONBLOCK | O_CLOEXEC)`: (read end, write end).
pub(crate) fn pipe_nonblocking() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a live array of two ints.
    syscall!(pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC))?;
    // SAFETY: pipe2 returned two fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `write(fd, "x", 1)`, ignoring `EAGAIN` (a full pipe is already readable).
pub(crate) fn write_byte(fd: RawFd) -> io::Result<()> {
    loop {
        // SAFETY: a live one-byte buffer.
        let r = unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(()),
            _ => return Err(e),
        }
    }
}

/// Reads a non-blocking fd until `EAGAIN`/EOF, discarding the bytes; returns the read calls.
pub(crate) fn drain(fd: RawFd) -> u64 {
    let mut buf = [0u8; 256];
    let mut calls = 0;
    loop {
        calls += 1;
        // SAFETY: a live, writable buffer of `buf.len()` bytes.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return calls;
        }
    }
}

/// `fcntl(fd, F_GETFL)`.
pub(crate) fn get_fl(fd: RawFd) -> io::Result<libc::c_int> {
    syscall!(fcntl(fd, libc::F_GETFL))
}

/// `fcntl(fd, F_SETFL, flags)`.
pub(crate) fn set_fl(fd: RawFd, flags: libc::c_int) -> io::Result<()> {
    syscall!(fcntl(fd, libc::F_SETFL, flags))?;
    Ok(())
}

/// `fcntl(fd, F_GETFD)`: fails with `EBADF` when `fd` is not an open descriptor.
pub(crate) fn check_open(fd: RawFd) -> io::Result<()> {
    syscall!(fcntl(fd, libc::F_GETFD))?;
    Ok(())
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, 0)`: a new descriptor for the same open file description.
pub(crate) fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    let new = syscall!(fcntl(fd, libc::F_DUPFD_CLOEXEC, 0))?;
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

// Linux values (asm-generic/fcntl.h); the libc crate does not export them for glibc.
const F_SETSIG: libc::c_int = 10;
const F_GETSIG: libc::c_int = 11;
const F_SETOWN_EX: libc::c_int = 15;
const F_GETOWN_EX: libc::c_int = 16;
const F_OWNER_TID: libc::c_int = 0;

/// `struct f_owner_ex`: who receives an open file's I/O signals.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FOwnerEx {
    type_: libc::c_int,
    pid: libc::pid_t,
}

/// `fcntl(fd, F_GETSIG)`: the signal sent for signal-driven I/O (0: `SIGIO`).
pub(crate) fn get_sig(fd: RawFd) -> io::Result<libc::c_int> {
    syscall!(fcntl(fd, F_GETSIG))
}

/// `fcntl(fd, F_GETOWN_EX)`: the owner of the open file's signals.
pub(crate) fn get_owner(fd: RawFd) -> io::Result<FOwnerEx> {
    let mut owner = FOwnerEx::default();
    // SAFETY: `owner` is a live, writable `struct f_owner_ex` for the duration of the call.
    syscall!(fcntl(fd, F_GETOWN_EX, &mut owner as *mut FOwnerEx))?;
    Ok(owner)
}

/// `fcntl(fd, F_SETOWN_EX, owner)`: puts back an owner read by [`get_owner`].
pub(crate) fn set_owner(fd: RawFd, owner: FOwnerEx) -> io::Result<()> {
    // SAFETY: `owner` is a live `struct f_owner_ex` for the duration of the call.
    syscall!(fcntl(fd, F_SETOWN_EX, &owner as *const FOwnerEx))?;
    Ok(())
}

/// `fcntl(fd, F_SETSIG, sig)`: signal-driven I/O on `fd` raises `sig` with `si_fd` set.
///
/// # References
/// - fcntl(2), "File descriptor owner", "Managing signals"
pub(crate) fn set_sig(fd: RawFd, sig: libc::c_int) -> io::Result<()> {
    syscall!(fcntl(fd, F_SETSIG, sig))?;
    Ok(())
}

/// `fcntl(fd, F_SETOWN_EX, {F_OWNER_TID, tid})`: signals for `fd` go to thread `tid` only.
pub(crate) fn set_owner_tid(fd: RawFd, tid: u32) -> io::Result<()> {
    set_owner(
        fd,
        FOwnerEx {
            type_: F_OWNER_TID,
            pid: tid as libc::pid_t,
        },
    )
}

/// A signal set holding `sigs`.
pub(crate) fn sigset(sigs: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset below.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for &s in sigs {
        // SAFETY: `set` is a valid sigset_t; an invalid number only makes sigaddset fail.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    set
}

/// `pthread_sigmask(SIG_BLOCK, set)`: blocks the signals in the calling thread.
pub(crate) fn block_signals(set: &libc::sigset_t) -> io::Result<()> {
    // SAFETY: `set` is a valid sigset_t; the old mask is not wanted (NULL).
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// `sigtimedwait(set, &info, timeout)`: `Ok(Some(info))` for a signal taken, `Ok(None)` when
/// the timeout expired (`EAGAIN`). `EINTR` is returned as an error.
///
/// # References
/// - sigtimedwait(2)
pub(crate) fn sigtimedwait(
    set: &libc::sigset_t,
    timeout: Option<Duration>,
) -> io::Result<Option<libc::siginfo_t>> {
    // SAFETY: siginfo_t is plain data; the kernel fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let ts = timeout.map(timespec);
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `set`, `info` and `tsp` (NULL or a live timespec) are valid for the call.
    match syscall!(sigtimedwait(set, &mut info, tsp)) {
        Ok(_) => Ok(Some(info)),
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The `si_fd` of a signal raised by signal-driven I/O.
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

/// `signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC)`: reads take pending signals of `set`.
///
/// # References
/// - signalfd(2)
pub(crate) fn signalfd(set: &libc::sigset_t) -> io::Result<OwnedFd> {
    let fd = syscall!(signalfd(-1, set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC))?;
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads pending signals from a non-blocking signalfd into `buf`; returns how many (0 when
/// none is pending).
pub(crate) fn signalfd_read(fd: RawFd, buf: &mut [libc::signalfd_siginfo]) -> io::Result<usize> {
    let size = size_of::<libc::signalfd_siginfo>();
    loop {
        // SAFETY: `buf` is a live, writable array of `buf.len()` signalfd_siginfo records.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), std::mem::size_of_val(buf)) };
        if r >= 0 {
            return Ok(r as usize / size);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(0),
            _ => return Err(e),
        }
    }
}

/// An all-zero `signalfd_siginfo`, for buffers.
pub(crate) fn signalfd_siginfo_zeroed() -> libc::signalfd_siginfo {
    // SAFETY: signalfd_siginfo is plain integers; all-zero is valid.
    unsafe { std::mem::zeroed() }
}

/// The lowest real-time signal number (glibc keeps the first few for itself).
pub(crate) fn sigrtmin() -> libc::c_int {
    libc::SIGRTMIN()
}

/// The highest real-time signal number.
pub(crate) fn sigrtmax() -> libc::c_int {
    libc::SIGRTMAX()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_rounds_up_and_saturates() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1500))), 2);
        assert_eq!(
            timeout_ms(Some(Duration::from_secs(u64::MAX))),
            libc::c_int::MAX
        );
    }

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
}
