//! Futex wrappers. All of them use *shared* futexes (never `FUTEX_PRIVATE_FLAG`): the words live
//! in file mappings shared between processes, and a private futex would key on the address in
//! one process only.

use std::io;
use std::sync::atomic::AtomicU32;

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

fn check(res: libc::c_long) -> io::Result<libc::c_long> {
    if res == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(res)
    }
}

/// `futex(word, FUTEX_WAIT_BITSET, expected, deadline, NULL, FUTEX_BITSET_MATCH_ANY)` — sleeps
/// while `*word == expected`, until woken or until the absolute `CLOCK_MONOTONIC` deadline.
///
/// # References
/// - futex(2)
pub(crate) fn wait(
    word: &AtomicU32,
    expected: u32,
    deadline: Option<&libc::timespec>,
) -> io::Result<WaitOutcome> {
    let ts = deadline.map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned 32-bit atomic; `ts` is null or points at a live timespec.
    // The kernel only reads both for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT_BITSET,
            expected,
            ts,
            std::ptr::null::<u32>(),
            libc::FUTEX_BITSET_MATCH_ANY,
        )
    };
    outcome(check(r))
}

/// `futex(word, FUTEX_WAKE, n)` — wakes up to `n` sleepers on `word`; returns how many woke.
///
/// # References
/// - futex(2)
pub(crate) fn wake(word: &AtomicU32, n: u32) -> io::Result<usize> {
    let n = n.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE does not dereference the
    // other arguments.
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n) };
    check(r).map(|n| n as usize)
}

/// Wakes every sleeper on `word`.
pub(crate) fn wake_all(word: &AtomicU32) {
    // A failing wake can only mean a bad address, which `&AtomicU32` rules out.
    let _ = wake(word, u32::MAX);
}

/// `struct futex_waitv` from `<linux/futex.h>`.
#[repr(C)]
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
/// - Linux `Documentation/userspace-api/futex2.rst`
pub(crate) fn waitv(
    words: &[(&AtomicU32, u32)],
    deadline: Option<&libc::timespec>,
) -> io::Result<WaitOutcome> {
    assert!(!words.is_empty() && words.len() <= WAITV_MAX);
    let mut v: [FutexWaitv; 4] = std::array::from_fn(|_| FutexWaitv {
        val: 0,
        uaddr: 0,
        flags: 0,
        reserved: 0,
    });
    let mut big = Vec::new();
    let list: &mut [FutexWaitv] = if words.len() <= v.len() {
        &mut v[..words.len()]
    } else {
        big.resize_with(words.len(), || FutexWaitv {
            val: 0,
            uaddr: 0,
            flags: 0,
            reserved: 0,
        });
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
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            list.as_ptr(),
            list.len() as libc::c_uint,
            0 as libc::c_uint,
            ts,
            libc::CLOCK_MONOTONIC,
        )
    };
    outcome(check(r))
}
