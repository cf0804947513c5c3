//! `poll(2)`, raw.
//!
//! nix's `poll` takes `PollFd`s, each borrowing a descriptor (`BorrowedFd`, which can be
//! neither -1 nor a number that is not open). The poll backends keep an array of callers'
//! numbers across waits, with -1 for an entry to skip (a fired one-shot, an unregistered fd),
//! and report a number that was closed meanwhile as `POLLNVAL`: that array is `libc::pollfd`.
//!
//! # References
//! - [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html)

use std::io;
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

/// `poll(fds, nfds, timeout)` — waits until an entry is ready or `timeout` milliseconds pass
/// (-1: no limit); returns the number of entries with non-zero `revents`.
///
/// # References
/// - [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html)
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout: libc::c_int) -> io::Result<usize> {
    // SAFETY: `fds` is a live, writable array of `fds.len()` pollfd entries.
    let n = syscall!(poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout))?;
    Ok(n as usize)
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
}
