//! Raw system calls, kept in one place.
//!
//! Every wrapper here turns the kernel's `-1`/`errno` convention into [`io::Result`] through the
//! [`syscall!`] macro, and documents the C call it stands for. Nothing outside this module issues
//! a raw `libc::syscall`.

pub(crate) mod cachestat;
pub(crate) mod fork;
pub(crate) mod futex;
pub(crate) mod ofd;
pub(crate) mod poll;
pub(crate) mod rlock;
pub(crate) mod robust;
pub(crate) mod sigbus;

use std::io;

/// Calls a libc function, turning a `-1` return into `Err(io::Error::last_os_error())`.
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

/// `gettid()` — the calling thread's kernel thread id.
///
/// # References
/// - gettid(2)
pub(crate) fn gettid() -> u32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    tid as u32
}

/// `getpid()` — the calling process id.
pub(crate) fn getpid() -> u32 {
    std::process::id()
}

/// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)` — a counter fd that pollers can wait on.
///
/// # References
/// - eventfd(2)
pub(crate) fn eventfd_nonblocking() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let fd = syscall!(eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))?;
    // SAFETY: eventfd returned a fresh descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// `write(fd, &1u64, 8)` on an eventfd: makes it readable. `EAGAIN` (counter full) is ignored.
pub(crate) fn eventfd_signal(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let one: u64 = 1;
    loop {
        // SAFETY: `one` is a live 8-byte buffer for the duration of the call.
        let r = unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        if r == 8 {
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

/// `read(fd, &mut u64, 8)` on a non-blocking eventfd: resets it. Returns whether it was set.
pub(crate) fn eventfd_drain(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut v: u64 = 0;
    loop {
        // SAFETY: `v` is a live, writable 8-byte buffer for the duration of the call.
        let r = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        if r == 8 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Monotonic clock reading as a `timespec`, for absolute futex deadlines.
pub(crate) fn monotonic_now() -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts
}

/// An absolute `CLOCK_MONOTONIC` deadline `d` from now, saturating far in the future.
// `time_t` and `c_long` are i64 here but i32 on 32-bit targets: keep the conversions.
#[allow(clippy::useless_conversion)]
pub(crate) fn deadline_after(d: std::time::Duration) -> libc::timespec {
    let now = monotonic_now();
    let mut sec = i64::from(now.tv_sec).saturating_add(d.as_secs().min(i64::MAX as u64 / 2) as i64);
    let mut nsec = i64::from(now.tv_nsec) + i64::from(d.subsec_nanos());
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    }
}

/// The end of one sleep slice: `deadline`, or `slice` from now if that comes first (every
/// blocking wait sleeps at most one backstop period at a time).
pub(crate) fn slice_end(
    deadline: Option<&libc::timespec>,
    slice: std::time::Duration,
) -> libc::timespec {
    let b = deadline_after(slice);
    match deadline {
        Some(t) if (t.tv_sec, t.tv_nsec) < (b.tv_sec, b.tv_nsec) => *t,
        _ => b,
    }
}

/// Whether the absolute monotonic deadline has passed.
pub(crate) fn deadline_passed(deadline: &libc::timespec) -> bool {
    let now = monotonic_now();
    (now.tv_sec, now.tv_nsec) >= (deadline.tv_sec, deadline.tv_nsec)
}

/// `sysconf(_SC_PAGESIZE)` — the page size in bytes.
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf takes a plain integer and has no memory effects.
    let r = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if r > 0 { r as u64 } else { 4096 }
}
