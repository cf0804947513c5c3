//! `epoll(7)`: the instance and its waits through nix ([`Epoll`]); `epoll_ctl` raw.
//!
//! `epoll_ctl` stays raw because it names a caller's descriptor by number (`RawFd`): nix's
//! `Epoll::add` takes `AsFd`, and a `BorrowedFd` made from the caller's number would promise
//! that it is open, which the poller cannot (a caller may close an fd before deregistering it,
//! and `register` reports a number that is not open as `EBADF`).
//!
//! # References
//! - [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html)

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollTimeout};

use super::syscall;

/// `epoll_create1(EPOLL_CLOEXEC)` — a new epoll instance.
///
/// # References
/// - [epoll_create(2)](https://man7.org/linux/man-pages/man2/epoll_create.2.html)
pub(crate) fn create() -> io::Result<Epoll> {
    Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io::Error::from)
}

/// `epoll_ctl(ep, op, fd, &{events, data.u64 = token})` — adds, changes or removes the
/// caller's descriptor `fd` (`op`: `EPOLL_CTL_ADD`, `_MOD`, `_DEL`).
///
/// # References
/// - [epoll_ctl(2)](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html)
pub(crate) fn ctl(
    ep: &Epoll,
    op: libc::c_int,
    fd: RawFd,
    events: u32,
    token: u64,
) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` is a live epoll_event (ignored by the kernel for EPOLL_CTL_DEL); `fd` is
    // only a number to the kernel, which fails with EBADF if it is not open.
    syscall!(epoll_ctl(ep.0.as_raw_fd(), op, fd, &mut ev)).map(drop)
}

/// `epoll_wait(ep, buf, cap, timeout)` — waits for ready descriptors; the first `n` entries of
/// `buf` (grown to at least `cap`, at least 1) are the `n` events returned.
///
/// # References
/// - [epoll_wait(2)](https://man7.org/linux/man-pages/man2/epoll_wait.2.html)
pub(crate) fn wait(
    ep: &Epoll,
    buf: &mut Vec<EpollEvent>,
    cap: usize,
    timeout: libc::c_int,
) -> io::Result<usize> {
    let cap = cap.clamp(1, i32::MAX as usize);
    if buf.len() < cap {
        buf.resize(cap, EpollEvent::empty());
    }
    // -1 (no limit) or a count of milliseconds: both in range.
    let timeout = EpollTimeout::try_from(timeout).unwrap_or(EpollTimeout::NONE);
    ep.wait(&mut buf[..cap], timeout).map_err(io::Error::from)
}
