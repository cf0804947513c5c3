//! `cachestat(2)` (Linux 6.5): page-cache state of a file. Raw: nix has no wrapper, and the
//! libc crate no syscall number.
//!
//! # References
//! - [cachestat(2)](https://man7.org/linux/man-pages/man2/cachestat.2.html)

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use super::syscall;

/// `struct cachestat` from `<linux/mman.h>`: counts of pages.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CacheStat {
    pub(crate) nr_cache: u64,
    pub(crate) nr_dirty: u64,
    pub(crate) nr_writeback: u64,
    pub(crate) nr_evicted: u64,
    pub(crate) nr_recently_evicted: u64,
}

/// `struct cachestat_range` from `<linux/mman.h>`.
#[repr(C)]
struct CacheStatRange {
    off: u64,
    len: u64,
}

/// The syscall number: 451 in the unified table (x86_64, aarch64 and most others).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const SYS_CACHESTAT: libc::c_long = 451;

/// `cachestat(fd, &{off, len}, &cstat, 0)` — page-cache counts of `[off, off+len)` of the file
/// (`len == 0`: to the end of the file). `ENOSYS` on kernels before 6.5.
///
/// # References
/// - [cachestat(2)](https://man7.org/linux/man-pages/man2/cachestat.2.html)
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn cachestat(fd: BorrowedFd<'_>, off: u64, len: u64) -> io::Result<CacheStat> {
    let range = CacheStatRange { off, len };
    let mut out = CacheStat::default();
    // SAFETY: `range` and `out` are live, correctly laid out structs for the duration of the
    // call; the kernel reads the first and writes the second; `fd` is an open descriptor.
    syscall!(syscall(
        SYS_CACHESTAT,
        fd.as_raw_fd(),
        &range as *const CacheStatRange,
        &mut out as *mut CacheStat,
        0 as libc::c_uint,
    ))?;
    Ok(out)
}

/// Other architectures: reported as `ENOSYS`.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) fn cachestat(_fd: BorrowedFd<'_>, _off: u64, _len: u64) -> io::Result<CacheStat> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}
