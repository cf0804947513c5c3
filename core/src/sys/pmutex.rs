//! A robust, process-shared POSIX mutex living in shared memory.
//!
//! glibc keeps every robust mutex a thread holds on that thread's kernel robust list; when the
//! process dies (`kill -9` included) the kernel marks the mutex `OWNER_DIED` and wakes one
//! waiter, whose `pthread_mutex_lock` then returns `EOWNERDEAD`: it holds the lock and must
//! repair the protected state and call `pthread_mutex_consistent`. The lock is taken and
//! released by the very thread that writes, so no helper thread is involved (contrast with
//! `sys::robust`, which holds a word for a handle's lifetime).
//!
//! The mutex is of type `PTHREAD_MUTEX_ERRORCHECK`: relocking from the holding thread is an
//! error (`EDEADLK`), not a deadlock.
//!
//! # References
//! - pthread_mutexattr_setrobust(3), pthread_mutex_consistent(3), futex(2)

use std::io;

/// Bytes reserved for the mutex in shared layouts (glibc: 40 on x86_64, 48 on aarch64).
pub(crate) const MUTEX_SPACE: usize = 64;
const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= MUTEX_SPACE);
const _: () = assert!(std::mem::align_of::<libc::pthread_mutex_t>() <= 16);

/// Size of `pthread_mutex_t` here, recorded in files so that a file made by an incompatible
/// C library is refused.
pub(crate) const MUTEX_SIZE: u32 = std::mem::size_of::<libc::pthread_mutex_t>() as u32;

/// What locking gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locked {
    /// Held; the previous holder unlocked cleanly.
    Clean,
    /// Held; the previous holder died while holding it: repair, then [`make_consistent`].
    OwnerDied,
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// Initialises a robust, process-shared, error-checking mutex at `m`.
///
/// # Safety
/// `m` must be valid for writes of `MUTEX_SPACE` bytes, 16-byte aligned, in memory nobody else
/// uses yet (a freshly created, not yet published file).
pub(crate) unsafe fn init(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    // SAFETY: `attr` is writable storage for an attribute object; it is initialised by the
    // first call and destroyed at the end; `m` is valid and unused (contract).
    unsafe {
        check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
        let res = (|| {
            check(libc::pthread_mutexattr_setpshared(
                attr.as_mut_ptr(),
                libc::PTHREAD_PROCESS_SHARED,
            ))?;
            check(libc::pthread_mutexattr_setrobust(
                attr.as_mut_ptr(),
                libc::PTHREAD_MUTEX_ROBUST,
            ))?;
            check(libc::pthread_mutexattr_settype(
                attr.as_mut_ptr(),
                libc::PTHREAD_MUTEX_ERRORCHECK,
            ))?;
            check(libc::pthread_mutex_init(m, attr.as_ptr()))
        })();
        libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
        res
    }
}

/// `pthread_mutex_lock(m)`, blocking. Errors: `EDEADLK` (this thread holds it),
/// `ENOTRECOVERABLE` (a previous holder died and nobody made it consistent).
///
/// # Safety
/// `m` must point at a mutex made by [`init`] in a live mapping.
pub(crate) unsafe fn lock(m: *mut libc::pthread_mutex_t) -> io::Result<Locked> {
    // SAFETY: `m` is an initialised mutex in a live mapping (contract).
    match unsafe { libc::pthread_mutex_lock(m) } {
        0 => Ok(Locked::Clean),
        libc::EOWNERDEAD => Ok(Locked::OwnerDied),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// `pthread_mutex_timedlock(m, deadline)`: like [`lock`], but gives up with `ETIMEDOUT` once
/// `timeout` has passed (measured on `CLOCK_REALTIME`, as POSIX wants for this call).
///
/// # Safety
/// As for [`lock`].
pub(crate) unsafe fn lock_for(
    m: *mut libc::pthread_mutex_t,
    timeout: std::time::Duration,
) -> io::Result<Locked> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    let mut sec = now
        .tv_sec
        .saturating_add(timeout.as_secs().min(i32::MAX as u64) as libc::time_t);
    let mut nsec = now.tv_nsec + libc::c_long::from(timeout.subsec_nanos() as i32);
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    let deadline = libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    // SAFETY: `m` is an initialised mutex in a live mapping (contract); `deadline` is a live
    // timespec read during the call.
    match unsafe { libc::pthread_mutex_timedlock(m, &deadline) } {
        0 => Ok(Locked::Clean),
        libc::EOWNERDEAD => Ok(Locked::OwnerDied),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// `pthread_mutex_consistent(m)`: after repairing what an `OwnerDied` holder left.
///
/// # Safety
/// `m` must point at a mutex made by [`init`], held by this thread after `OwnerDied`.
pub(crate) unsafe fn make_consistent(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    // SAFETY: per contract.
    check(unsafe { libc::pthread_mutex_consistent(m) })
}

/// `pthread_mutex_unlock(m)`.
///
/// # Safety
/// `m` must point at a mutex made by [`init`], held by this thread.
pub(crate) unsafe fn unlock(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    // SAFETY: per contract.
    check(unsafe { libc::pthread_mutex_unlock(m) })
}
