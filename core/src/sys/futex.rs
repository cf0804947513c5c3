//! The futex subsystem: `futex(2)` waits and wakes, `futex_waitv(2)`, and the robust-futex list
//! (`set_robust_list(2)`) with the bits the kernel sets in an owner word.
//!
//! All raw: nix has no futex, `futex_waitv` or robust-list wrappers. Every wait and wake uses
//! *shared* futexes (never `FUTEX_PRIVATE_FLAG`): the words live in file mappings shared
//! between processes, and a private futex would key on the address in one process only.
//!
//! # References
//! - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
//! - [futex_waitv(2)](https://man7.org/linux/man-pages/man2/futex_waitv.2.html)
//! - [set_robust_list(2)](https://man7.org/linux/man-pages/man2/set_robust_list.2.html)
//! - Linux `Documentation/locking/robust-futex-ABI.rst`,
//!   `Documentation/userspace-api/futex2.rst`

use std::io;
use std::sync::atomic::{AtomicIsize, AtomicPtr, AtomicU32, Ordering};

use super::syscall;

/// Set by a sleeper before it waits on an owner word: the kernel wakes only if it is set.
pub(crate) const FUTEX_WAITERS: u32 = 0x8000_0000;
/// Set by the kernel when the owner died.
pub(crate) const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
/// The owner's thread id.
pub(crate) const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

/// What a futex wait ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitOutcome {
    /// Woken by a `FUTEX_WAKE` (or spuriously); for `futex_waitv`, the index of the word.
    Woken(usize),
    /// A word no longer held the expected value when the kernel checked it (`EAGAIN`).
    Changed,
    /// The absolute deadline passed (`ETIMEDOUT`).
    TimedOut,
    /// A signal handler ran (`EINTR`).
    Interrupted,
}

fn outcome(res: io::Result<libc::c_long>) -> io::Result<WaitOutcome> {
    match res {
        Ok(i) => Ok(WaitOutcome::Woken(i as usize)),
        Err(e) => match e.raw_os_error() {
            Some(libc::EAGAIN) => Ok(WaitOutcome::Changed),
            Some(libc::ETIMEDOUT) => Ok(WaitOutcome::TimedOut),
            Some(libc::EINTR) => Ok(WaitOutcome::Interrupted),
            _ => Err(e),
        },
    }
}

/// `futex(word, FUTEX_WAIT_BITSET, expected, deadline, NULL, FUTEX_BITSET_MATCH_ANY)` — sleeps
/// while `*word == expected`, until woken or until the absolute `CLOCK_MONOTONIC` deadline.
///
/// # References
/// - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
pub(crate) fn wait(
    word: &AtomicU32,
    expected: u32,
    deadline: Option<&libc::timespec>,
) -> io::Result<WaitOutcome> {
    let ts = deadline.map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned 32-bit atomic; `ts` is null or points at a live timespec.
    // The kernel only reads both for the duration of the call.
    outcome(syscall!(syscall(
        libc::SYS_futex,
        word.as_ptr(),
        libc::FUTEX_WAIT_BITSET,
        expected,
        ts,
        std::ptr::null::<u32>(),
        libc::FUTEX_BITSET_MATCH_ANY,
    )))
}

/// `futex(word, FUTEX_WAKE, n)` — wakes up to `n` sleepers on `word`; returns how many woke.
///
/// # References
/// - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
pub(crate) fn wake(word: &AtomicU32, n: u32) -> io::Result<usize> {
    let n = n.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE does not dereference the
    // other arguments.
    syscall!(syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n)).map(|n| n as usize)
}

/// `futex(word, FUTEX_WAKE, INT_MAX)` — wakes every sleeper on `word`.
///
/// # References
/// - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
pub(crate) fn wake_all(word: &AtomicU32) {
    // A failing wake can only mean a bad address, which `&AtomicU32` rules out.
    let _ = wake(word, u32::MAX);
}

/// `struct futex_waitv` from `<linux/futex.h>`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// `FUTEX2_SIZE_U32`: the word is 32 bits. No `FUTEX2_PRIVATE`: the words are shared.
const FUTEX2_SIZE_U32: u32 = 0x02;

/// At most this many words per `futex_waitv` call (`FUTEX_WAITV_MAX`).
pub(crate) const WAITV_MAX: usize = 128;

/// `futex_waitv(waiters, n, 0, deadline, CLOCK_MONOTONIC)` — sleeps until any one of the words
/// is woken, or any no longer holds its expected value, or the absolute deadline passes.
///
/// Returns `Err` with `ENOSYS` on kernels older than 5.16, and with `EPERM` where a seccomp
/// filter refuses it (container runtimes' default profiles); callers fall back to [`wait`].
///
/// # References
/// - [futex_waitv(2)](https://man7.org/linux/man-pages/man2/futex_waitv.2.html)
/// - Linux `Documentation/userspace-api/futex2.rst`
pub(crate) fn waitv(
    words: &[(&AtomicU32, u32)],
    deadline: Option<&libc::timespec>,
) -> io::Result<WaitOutcome> {
    assert!(!words.is_empty() && words.len() <= WAITV_MAX);
    let mut v = [FutexWaitv::default(); 4];
    let mut big = Vec::new();
    let list: &mut [FutexWaitv] = if words.len() <= v.len() {
        &mut v[..words.len()]
    } else {
        big.resize(words.len(), FutexWaitv::default());
        &mut big[..]
    };
    for (slot, (word, expected)) in list.iter_mut().zip(words) {
        slot.val = u64::from(*expected);
        slot.uaddr = word.as_ptr() as usize as u64;
        slot.flags = FUTEX2_SIZE_U32;
    }
    let ts = deadline.map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `list` is a live array of `list.len()` correctly laid out `futex_waitv` entries,
    // each naming a live aligned 32-bit word borrowed for the duration of the call; `ts` is null
    // or a live timespec. The kernel only reads them.
    outcome(syscall!(syscall(
        libc::SYS_futex_waitv,
        list.as_ptr(),
        list.len() as libc::c_uint,
        0 as libc::c_uint,
        ts,
        libc::CLOCK_MONOTONIC,
    )))
}

/// Whether `futex_waitv` is usable: absent before Linux 5.16 (`ENOSYS`), refused by container
/// seccomp profiles (`EPERM`). Without it, [`sleep`] cuts sleeps into 10 ms slices on the
/// first word, so that the other words' changes are still noticed promptly.
static NO_WAITV: AtomicU32 = AtomicU32::new(0);

/// Sleeps until one of `words` is woken or changes, or the absolute `until` passes: with
/// [`waitv`], or where that is missing or refused, with [`wait`] on the first word in 10 ms
/// slices (a slice that ends reports `Woken(0)`, so the caller re-reads every word).
///
/// Signals: `futex_waitv` with a deadline is restarted by the kernel after a handler installed
/// with `SA_RESTART` (its absolute deadline unchanged), and ends with
/// [`WaitOutcome::Interrupted`] after any other handler, as `read(2)` does. `FUTEX_WAIT` with a
/// deadline ends with `Interrupted` after any handler, so where `futex_waitv` is missing so does
/// this. On error, the name of the call that failed.
pub(crate) fn sleep(
    words: &[(&AtomicU32, u32)],
    until: &libc::timespec,
) -> Result<WaitOutcome, (&'static str, io::Error)> {
    if NO_WAITV.load(Ordering::Relaxed) == 0 {
        match waitv(words, Some(until)) {
            Ok(o) => return Ok(o),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                NO_WAITV.store(1, Ordering::Relaxed);
            }
            Err(e) => return Err(("futex_waitv", e)),
        }
    }
    let slice = super::time::deadline_after(std::time::Duration::from_millis(10));
    let short = (until.tv_sec, until.tv_nsec) < (slice.tv_sec, slice.tv_nsec);
    let (word, expected) = words[0];
    match wait(word, expected, Some(if short { until } else { &slice })) {
        Ok(WaitOutcome::TimedOut) if !short => Ok(WaitOutcome::Woken(0)),
        Ok(o) => Ok(o),
        Err(e) => Err(("futex", e)),
    }
}

/// `struct robust_list` from `<linux/futex.h>`: a node of a thread's robust list. The kernel
/// finds each listed futex word at the node's address plus the head's `futex_offset`.
///
/// The link is atomic: other threads of the process may relink a node while the kernel could
/// read it (at the listing thread's exit).
#[repr(C)]
pub(crate) struct RobustList {
    pub(crate) next: AtomicPtr<RobustList>,
}

/// `struct robust_list_head` from `<linux/futex.h>` (`futex_offset` is a `long`, the size of
/// `isize` on Linux).
#[repr(C)]
pub(crate) struct RobustListHead {
    pub(crate) list: RobustList,
    pub(crate) futex_offset: AtomicIsize,
    pub(crate) list_op_pending: AtomicPtr<RobustList>,
}

const _: () = assert!(size_of::<AtomicIsize>() == size_of::<libc::c_long>());

/// `set_robust_list(head, sizeof *head)` — tells the kernel where the calling thread's robust
/// list is. When the thread exits, the kernel walks it and marks every listed word that holds
/// the thread's id [`FUTEX_OWNER_DIED`], waking a waiter if [`FUTEX_WAITERS`] was set.
///
/// # Safety
/// `head` must stay valid, and every node reachable from it (and every word they name) must
/// stay valid, until the thread exits or registers another head.
///
/// # References
/// - [set_robust_list(2)](https://man7.org/linux/man-pages/man2/set_robust_list.2.html)
pub(crate) unsafe fn set_robust_list(head: *const RobustListHead) -> io::Result<()> {
    // SAFETY: the caller guarantees `head` outlives its registration; the kernel only stores
    // the pointer.
    syscall!(syscall(
        libc::SYS_set_robust_list,
        head,
        size_of::<RobustListHead>()
    ))
    .map(drop)
}

/// `get_robust_list(0, &head, &len)` — the calling thread's current robust list head (glibc's,
/// until a caller of [`set_robust_list`] replaces it), to put back later.
///
/// # References
/// - [get_robust_list(2)](https://man7.org/linux/man-pages/man2/get_robust_list.2.html)
pub(crate) fn get_robust_list() -> io::Result<*const RobustListHead> {
    let mut head: *const RobustListHead = std::ptr::null();
    let mut len: libc::size_t = 0;
    // SAFETY: both out-pointers point at live locals of the right types.
    syscall!(syscall(
        libc::SYS_get_robust_list,
        0 as libc::c_int,
        &mut head as *mut *const RobustListHead,
        &mut len as *mut libc::size_t,
    ))?;
    Ok(head)
}
