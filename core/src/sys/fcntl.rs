//! `fcntl(2)` on descriptors: status flags, duplicates, and the signal-driven I/O settings of an
//! open file (`F_SETSIG`, `F_SETOWN_EX`). Byte-range locks are in `sys::ofd`.
//!
//! The status flags of a descriptor shmio owns go through nix (`F_GETFL`, `F_SETFL`). Raw
//! `libc` stays for the signal-driven I/O commands, which nix lacks, and for calls on a number a
//! caller lent (`RawFd`): nix takes `AsFd`, and a `BorrowedFd` made from a caller's number
//! would promise that it stays open, which [`check_open`] exists to find out and which a poller
//! cannot promise for a file the caller may close while it is registered.
//!
//! # References
//! - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html)

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

use super::syscall;

/// `fcntl(fd, F_GETFL)` — the open file's status flags (and access mode).
///
/// # References
/// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), "File status flags"
pub(crate) fn get_fl(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)
}

/// `fcntl(fd, F_SETFL, flags)` — sets the open file's status flags (the kernel ignores the
/// access mode and creation bits).
///
/// # References
/// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), "File status flags"
pub(crate) fn set_fl(fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<()> {
    fcntl(fd, FcntlArg::F_SETFL(OFlag::from_bits_retain(flags)))
        .map(drop)
        .map_err(io::Error::from)
}

/// `fcntl(fd, F_GETFD)` — fails with `EBADF` when the number `fd` is not an open descriptor.
///
/// # References
/// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), "File descriptor flags"
pub(crate) fn check_open(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFD takes no pointer; any number is a valid argument.
    syscall!(fcntl(fd, libc::F_GETFD)).map(drop)
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, 0)` — a new close-on-exec descriptor for the open file
/// description behind the caller's number `fd`.
///
/// # References
/// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), "Duplicating a file
///   descriptor"
pub(crate) fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes no pointer; any number is a valid argument.
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

/// `fcntl(fd, F_GETSIG)` — the signal sent for signal-driven I/O on the open file (0:
/// `SIGIO`).
///
/// # References
/// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), "Managing signals"
pub(crate) fn get_sig(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: F_GETSIG takes no pointer.
    syscall!(fcntl(fd.as_raw_fd(), F_GETSIG))
}

/// `fcntl(fd, F_SETSIG, sig)` — signal-driven I/O on the open file raises `sig`, with `si_fd`
/// set.
///
/// # References
/// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), "Managing signals"
pub(crate) fn set_sig(fd: BorrowedFd<'_>, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: F_SETSIG takes a plain integer.
    syscall!(fcntl(fd.as_raw_fd(), F_SETSIG, sig)).map(drop)
}

/// `fcntl(fd, F_GETOWN_EX, &owner)` — the owner of the open file's signals.
///
/// # References
/// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), "Managing signals"
pub(crate) fn get_owner(fd: BorrowedFd<'_>) -> io::Result<FOwnerEx> {
    let mut owner = FOwnerEx::default();
    // SAFETY: `owner` is a live, writable `struct f_owner_ex` for the duration of the call.
    syscall!(fcntl(
        fd.as_raw_fd(),
        F_GETOWN_EX,
        &mut owner as *mut FOwnerEx
    ))?;
    Ok(owner)
}

/// `fcntl(fd, F_SETOWN_EX, &owner)` — puts back an owner read by [`get_owner`].
///
/// # References
/// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), "Managing signals"
pub(crate) fn set_owner(fd: BorrowedFd<'_>, owner: FOwnerEx) -> io::Result<()> {
    // SAFETY: `owner` is a live `struct f_owner_ex` for the duration of the call.
    syscall!(fcntl(
        fd.as_raw_fd(),
        F_SETOWN_EX,
        &owner as *const FOwnerEx
    ))
    .map(drop)
}

/// `fcntl(fd, F_SETOWN_EX, &{F_OWNER_TID, tid})` — the open file's signals go to thread `tid`
/// only.
///
/// # References
/// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), "Managing signals"
pub(crate) fn set_owner_tid(fd: BorrowedFd<'_>, tid: u32) -> io::Result<()> {
    set_owner(
        fd,
        FOwnerEx {
            type_: F_OWNER_TID,
            pid: tid as libc::pid_t,
        },
    )
}
