//! `eventfd(2)`: a counter descriptor that pollers can wait on (a queue consumer's poll fd).
//!
//! # References
//! - [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html)

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};

/// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)` — a new counter at zero, not readable until
/// [`signal`]led.
///
/// # References
/// - [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html)
pub(crate) fn nonblocking() -> io::Result<OwnedFd> {
    EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map(OwnedFd::from)
        .map_err(io::Error::from)
}

/// `write(fd, &1u64, 8)` — makes the eventfd readable. `EAGAIN` (counter full, so readable
/// already) is ignored; retried on `EINTR`.
///
/// # References
/// - [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html)
pub(crate) fn signal(fd: BorrowedFd<'_>) -> io::Result<()> {
    loop {
        match nix::unistd::write(fd, &1u64.to_ne_bytes()) {
            Ok(_) | Err(Errno::EAGAIN) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `read(fd, &mut u64, 8)` on a non-blocking eventfd — resets it. Returns whether it was set;
/// retried on `EINTR`.
///
/// # References
/// - [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html)
pub(crate) fn drain(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut v = [0u8; 8];
    loop {
        match nix::unistd::read(fd, &mut v) {
            Ok(_) => return Ok(true),
            Err(Errno::EAGAIN) => return Ok(false),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
