//! Who is calling, and the page size: process and thread ids, `sysconf`.
//!
//! # References
//! - [gettid(2)](https://man7.org/linux/man-pages/man2/gettid.2.html)
//! - [sysconf(3)](https://man7.org/linux/man-pages/man3/sysconf.3.html)

use nix::unistd::{SysconfVar, sysconf};

/// `gettid()` — the calling thread's kernel thread id.
///
/// # References
/// - [gettid(2)](https://man7.org/linux/man-pages/man2/gettid.2.html)
pub(crate) fn gettid() -> u32 {
    nix::unistd::gettid().as_raw() as u32
}

/// `getpid()` — the calling process id.
///
/// # References
/// - [getpid(2)](https://man7.org/linux/man-pages/man2/getpid.2.html)
pub(crate) fn getpid() -> u32 {
    std::process::id()
}

/// `sysconf(_SC_PAGESIZE)` — the page size in bytes (4096 if the call fails, which it does not
/// on Linux).
///
/// # References
/// - [sysconf(3)](https://man7.org/linux/man-pages/man3/sysconf.3.html)
pub(crate) fn page_size() -> u64 {
    match sysconf(SysconfVar::PAGE_SIZE) {
        Ok(Some(r)) if r > 0 => r as u64,
        _ => 4096,
    }
}
