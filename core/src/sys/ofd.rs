//! Open-file-description locks as a liveness signal that no peer can forge.
//!
//! Every queue handle that holds a role (the producer, each consumer) also holds a write lock on
//! one byte of the queue file, through its own open file description (`F_OFD_SETLK`). The kernel
//! drops the lock when the last descriptor of that description closes, which for a dying
//! process happens after its robust futexes were marked. So "the word says alive but nobody
//! holds the lock" means the holder is dead, or the word was scribbled: a check that does not
//! depend on anything written in the shared mapping, works across PID namespaces (the lock is on
//! the inode, not on a pid) and survives pid reuse.
//!
//! The locks are advisory and sit far beyond the end of the file, so they never interfere with
//! anything that reads or writes the file. Descriptions are not shared with forked children:
//! [`register`](super::fork::register)ed descriptors are closed in the child by a
//! `pthread_atfork` handler (see `sys::fork`), so a child that outlives its parent does not keep
//! the parent's roles "alive".
//!
//! Through nix (`FcntlArg::F_OFD_SETLK`, `F_OFD_GETLK`) on descriptors the handles own.
//!
//! # References
//! - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), "Open file description
//!   locks (non-POSIX)"

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use nix::fcntl::{FcntlArg, fcntl};

/// Offset of the first liveness byte: far beyond any real file size.
pub(crate) const LIVENESS_BASE: i64 = 1 << 40;

fn flock(kind: libc::c_short, byte: i64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct of integers; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte;
    fl.l_len = 1;
    fl.l_pid = 0;
    fl
}

/// `fcntl(fd, F_OFD_SETLK, {F_WRLCK, byte, 1})` — takes the write lock on `byte` without
/// waiting. Returns `false` if another description holds it.
///
/// # References
/// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), "Open file description
///   locks"
pub(crate) fn try_lock(fd: BorrowedFd<'_>, byte: i64) -> io::Result<bool> {
    let fl = flock(libc::F_WRLCK as libc::c_short, byte);
    match fcntl(fd, FcntlArg::F_OFD_SETLK(&fl)) {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => Ok(false),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// `fcntl(fd, F_OFD_SETLK, {F_RDLCK, byte, 1})` — takes a shared (read) lock on `byte`
/// without waiting: several descriptions may hold it at once, and [`held_elsewhere`] sees any.
///
/// # References
/// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), "Open file description
///   locks"
pub(crate) fn try_share(fd: BorrowedFd<'_>, byte: i64) -> io::Result<bool> {
    let fl = flock(libc::F_RDLCK as libc::c_short, byte);
    match fcntl(fd, FcntlArg::F_OFD_SETLK(&fl)) {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => Ok(false),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// `fcntl(fd, F_OFD_SETLK, {F_UNLCK, byte, 1})` — releases the lock on `byte`.
///
/// # References
/// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), "Open file description
///   locks"
pub(crate) fn unlock(fd: BorrowedFd<'_>, byte: i64) {
    let fl = flock(libc::F_UNLCK as libc::c_short, byte);
    // Unlocking a range we may not hold cannot fail on a valid descriptor.
    let _ = fcntl(fd, FcntlArg::F_OFD_SETLK(&fl));
}

/// `fcntl(fd, F_OFD_GETLK, {F_WRLCK, byte, 1})` — whether a description other than `fd`'s
/// holds a lock on `byte`. An error (which a valid descriptor never gives) counts as held: the
/// caller then keeps waiting as before rather than declaring a live peer dead.
///
/// # References
/// - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), "Open file description
///   locks"
pub(crate) fn held_elsewhere(fd: impl AsFd, byte: i64) -> bool {
    let mut fl = flock(libc::F_WRLCK as libc::c_short, byte);
    match fcntl(fd.as_fd(), FcntlArg::F_OFD_GETLK(&mut fl)) {
        Ok(_) => fl.l_type != libc::F_UNLCK as libc::c_short,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn lock_is_seen_from_another_description_and_dropped_on_close() {
        let dir = std::env::temp_dir().join(format!("shmio-ofd-{}", std::process::id()));
        std::fs::write(&dir, b"x").unwrap();
        let a = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&dir)
            .unwrap();
        let b = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&dir)
            .unwrap();
        assert!(!held_elsewhere(&b, LIVENESS_BASE));
        assert!(try_lock(a.as_fd(), LIVENESS_BASE).unwrap());
        assert!(held_elsewhere(&b, LIVENESS_BASE));
        assert!(
            !held_elsewhere(&a, LIVENESS_BASE),
            "own lock never conflicts"
        );
        assert!(!try_lock(b.as_fd(), LIVENESS_BASE).unwrap());
        assert!(
            try_lock(b.as_fd(), LIVENESS_BASE + 1).unwrap(),
            "bytes are independent"
        );
        drop(a);
        assert!(!held_elsewhere(&b, LIVENESS_BASE), "closing drops the lock");
        unlock(b.as_fd(), LIVENESS_BASE + 1);
        let _ = std::fs::remove_file(&dir);
    }
}
