//! `membarrier(2)` (Linux 4.16 for the expedited global commands): a full memory barrier on
//! every CPU that runs a thread of a registered process, issued by one caller. Raw: nix has no
//! wrapper.
//!
//! shmio uses it for its asymmetric wake-up handshakes (see `queue::ring`): the side that
//! sleeps rarely pays this system call, so that the side on the hot path needs only a compiler
//! fence where it would otherwise need a `SeqCst` fence per record. Where the kernel or a
//! seccomp filter refuses the call, callers fall back to the symmetric fences.
//!
//! # References
//! - [membarrier(2)](https://man7.org/linux/man-pages/man2/membarrier.2.html)

use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::syscall;

/// `membarrier(cmd, 0, 0)`.
fn membarrier(cmd: libc::c_int) -> io::Result<libc::c_long> {
    // SAFETY: membarrier takes no pointers; with flags 0 the third argument is ignored.
    syscall!(syscall(
        libc::SYS_membarrier,
        cmd,
        0 as libc::c_uint,
        0 as libc::c_int
    ))
}

/// `membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED)` — registers this process as a
/// target of expedited global barriers; whether it is. Registered once per process: the answer
/// is cached with the pid that got it, so a forked child registers itself again rather than
/// trust its parent's answer.
///
/// Returns `false` where the kernel lacks the command (`EINVAL`, `ENOSYS`) or a filter refuses
/// it (`EPERM`, or any other error): the process must then use full fences itself.
///
/// # References
/// - [membarrier(2)](https://man7.org/linux/man-pages/man2/membarrier.2.html)
pub(crate) fn registered() -> bool {
    // The pid the answer is for, and the answer in the top bit.
    static STATE: AtomicU64 = AtomicU64::new(0);
    let pid = u64::from(super::process::getpid());
    let s = STATE.load(Ordering::Acquire);
    if s != 0 && s & !YES == pid {
        return s & YES != 0;
    }
    let yes = !test_denied()
        && membarrier(libc::MEMBARRIER_CMD_QUERY as libc::c_int).is_ok_and(|cmds| {
            let want = (libc::MEMBARRIER_CMD_GLOBAL_EXPEDITED
                | libc::MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED)
                as libc::c_long;
            cmds & want == want
        })
        && membarrier(libc::MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED as libc::c_int).is_ok();
    STATE.store(pid | if yes { YES } else { 0 }, Ordering::Release);
    yes
}

/// The answer bit of `registered`'s cache.
const YES: u64 = 1 << 63;

/// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` — a full memory barrier on every CPU running
/// a thread of a registered process, and in the caller, before it returns: every access such a
/// thread made before the barrier is visible to the caller's accesses after it, and every
/// access the caller made before it is visible to theirs after it. (Threads not running pass a
/// context switch, which is a full barrier, before they run again.)
///
/// Returns `false` if the call failed (refused by a filter, or not supported): the caller must
/// then not rely on the other side's compiler fences.
///
/// # References
/// - [membarrier(2)](https://man7.org/linux/man-pages/man2/membarrier.2.html)
pub(crate) fn global_expedited() -> bool {
    #[cfg(test)]
    CALLS.with(|c| c.set(c.get() + 1));
    !test_denied() && membarrier(libc::MEMBARRIER_CMD_GLOBAL_EXPEDITED as libc::c_int).is_ok()
}

#[cfg(test)]
thread_local! {
    /// Unit tests: how many heavy barriers this thread asked for.
    pub(crate) static CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Test hook: `SHMIO_TEST_HOOK=no-membarrier` behaves as if a filter refused membarrier (the
/// containers tests also use a real seccomp filter). Read once.
fn test_denied() -> bool {
    static DENIED: OnceLock<bool> = OnceLock::new();
    *DENIED
        .get_or_init(|| std::env::var_os("SHMIO_TEST_HOOK").is_some_and(|v| v == "no-membarrier"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_issues_where_the_kernel_has_it() {
        // Every kernel this project supports (4.16+) has the expedited global commands; a
        // filter could still refuse them, which the containers tests cover.
        assert!(
            registered(),
            "membarrier registration refused on this machine"
        );
        assert!(global_expedited());
        assert!(registered(), "cached");
    }
}
