//! Pipes: the poller's waker is a non-blocking pipe.
//!
//! # References
//! - [pipe(2)](https://man7.org/linux/man-pages/man2/pipe.2.html)

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;

/// `pipe2(O_NONBLOCK | O_CLOEXEC)` — a pipe: (read end, write end).
///
/// # References
/// - [pipe(2)](https://man7.org/linux/man-pages/man2/pipe.2.html)
pub(crate) fn nonblocking() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// `write(fd, "x", 1)` — makes the pipe readable. `EAGAIN` (a full pipe, readable already) is
/// ignored; retried on `EINTR`.
///
/// # References
/// - [write(2)](https://man7.org/linux/man-pages/man2/write.2.html)
pub(crate) fn write_byte(fd: BorrowedFd<'_>) -> io::Result<()> {
    loop {
        match nix::unistd::write(fd, b"x") {
            Ok(_) | Err(Errno::EAGAIN) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `read(fd, buf, 256)` until `EAGAIN` or end of file on a non-blocking descriptor — discards
/// what is there; returns how many read calls it took. Retried on `EINTR`.
///
/// # References
/// - [read(2)](https://man7.org/linux/man-pages/man2/read.2.html)
pub(crate) fn drain(fd: BorrowedFd<'_>) -> u64 {
    let mut buf = [0u8; 256];
    let mut calls = 0;
    loop {
        calls += 1;
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => return calls,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return calls,
        }
    }
}
