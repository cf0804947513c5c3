//! `select(2)`, raw.
//!
//! nix's `FdSet` takes `BorrowedFd`s, which promise that each number is open. The select
//! backend puts callers' numbers in its sets and must tolerate one closed meanwhile (select then
//! fails with `EBADF`, and the backend finds and reports it): its sets are `libc::fd_set`.
//!
//! # References
//! - [select(2)](https://man7.org/linux/man-pages/man2/select.2.html)

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::syscall;

/// `FD_ZERO()` — an empty `fd_set` (`FD_SETSIZE` bits).
///
/// # References
/// - [select(2)](https://man7.org/linux/man-pages/man2/select.2.html), "File descriptor sets"
pub(crate) fn fd_set_new() -> libc::fd_set {
    // SAFETY: fd_set is plain bits; all-zero is the empty set (what FD_ZERO produces).
    unsafe { std::mem::zeroed() }
}

/// `FD_SET(fd, set)` — adds `fd`, which must be in `0..FD_SETSIZE` (checked).
///
/// # References
/// - [select(2)](https://man7.org/linux/man-pages/man2/select.2.html), "File descriptor sets"
pub(crate) fn fd_set_add(set: &mut libc::fd_set, fd: RawFd) {
    assert!((0..libc::FD_SETSIZE as RawFd).contains(&fd));
    // SAFETY: `set` is a valid fd_set and `fd` is within its bounds (asserted).
    unsafe { libc::FD_SET(fd, set) }
}

/// `FD_ISSET(fd, set)` — whether `fd` is in the set; `fd` must be in `0..FD_SETSIZE`
/// (checked).
///
/// # References
/// - [select(2)](https://man7.org/linux/man-pages/man2/select.2.html), "File descriptor sets"
pub(crate) fn fd_set_has(set: &libc::fd_set, fd: RawFd) -> bool {
    assert!((0..libc::FD_SETSIZE as RawFd).contains(&fd));
    // SAFETY: `set` is a valid fd_set and `fd` is within its bounds (asserted).
    unsafe { libc::FD_ISSET(fd, set) }
}

/// `select(nfds, r, w, e, timeout)` — waits until a descriptor of the sets is ready or the
/// timeout passes (`None`: no limit); returns the number of ready bits.
///
/// # References
/// - [select(2)](https://man7.org/linux/man-pages/man2/select.2.html)
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
