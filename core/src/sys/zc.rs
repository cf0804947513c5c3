//! Zero-copy sending (`crate::zc`): `sendfile`, `splice`, `vmsplice`, `MSG_ZEROCOPY` and its
//! error queue, and the `SIGPIPE` guard around calls that cannot take `MSG_NOSIGNAL`.
//!
//! nix serves `sendfile`, `splice`, `pipe2` and `F_SETPIPE_SZ`. Raw `libc` stays for
//! `vmsplice` and `send` of memory given as a pointer (shared memory another process may write
//! is never borrowed as a `&[u8]`: see `crate::racy`), for `SO_ZEROCOPY` and `MSG_ZEROCOPY`
//! (nix has neither), and for `recvmsg(MSG_ERRQUEUE)` with its `sock_extended_err`
//! (nix's parser needs its `socket` and `net` features, which this build leaves out).
//!
//! # References
//! - [sendfile(2)](https://man7.org/linux/man-pages/man2/sendfile.2.html)
//! - [splice(2)](https://man7.org/linux/man-pages/man2/splice.2.html),
//!   [vmsplice(2)](https://man7.org/linux/man-pages/man2/vmsplice.2.html)
//! - [MSG_ZEROCOPY](https://www.kernel.org/doc/html/latest/networking/msg_zerocopy.html)

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

use super::syscall;

/// `SO_ZEROCOPY` (asm-generic/socket.h; the libc crate lacks it).
const SO_ZEROCOPY: libc::c_int = 60;
/// `SO_EE_ORIGIN_ZEROCOPY` (linux/errqueue.h).
const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
/// `SO_EE_CODE_ZEROCOPY_COPIED` (linux/errqueue.h): the kernel copied the data after all.
const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;

/// Runs `f` with `SIGPIPE` blocked in the calling thread, and takes back a `SIGPIPE` that `f`
/// raised (whatever `f` returned) (a write to a socket whose peer is gone, by a call that cannot take
/// `MSG_NOSIGNAL`: `sendfile`, `splice`, `write`), so that the call fails with `EPIPE` instead
/// of killing the process. A `SIGPIPE` pending before the call is left pending; the mask is
/// restored. Two `pthread_sigmask` calls and two `sigpending` calls per use.
///
/// # References
/// - [pthread_sigmask(3)](https://man7.org/linux/man-pages/man3/pthread_sigmask.3.html),
///   [sigpending(2)](https://man7.org/linux/man-pages/man2/sigpending.2.html)
pub(crate) fn without_sigpipe<R>(f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
    let mut pipe = SigSet::empty();
    pipe.add(Signal::SIGPIPE);
    let mut old = SigSet::empty();
    // SIG_BLOCK with a valid set cannot fail.
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&pipe), Some(&mut old));
    let pending_before = sigpipe_pending();
    let r = f();
    // Taken whatever `f` returned: a call that sent some bytes before the peer went away
    // returns their count, with the signal raised all the same.
    if !pending_before && sigpipe_pending() {
        let _ = super::signal::sigtimedwait(&pipe, Some(std::time::Duration::ZERO));
    }
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    r
}

/// `sigpending()` holds `SIGPIPE` — raw: nix has no `sigpending`.
fn sigpipe_pending() -> bool {
    let mut set = *SigSet::empty().as_ref();
    // SAFETY: `set` is a valid, writable sigset_t.
    if syscall!(sigpending(&mut set)).is_err() {
        return false;
    }
    // SAFETY: `set` was filled by sigpending.
    unsafe { libc::sigismember(&set, libc::SIGPIPE) == 1 }
}

/// `sendfile(out, in, &offset, count)` — up to `count` bytes of `file` from `offset` to `out`;
/// returns how many (0: `offset` is at or past the end of the file).
///
/// # References
/// - [sendfile(2)](https://man7.org/linux/man-pages/man2/sendfile.2.html)
pub(crate) fn sendfile(
    out: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    count: usize,
) -> io::Result<usize> {
    let mut off = i64::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    nix::sys::sendfile::sendfile(out, file, Some(&mut off), count).map_err(io::Error::from)
}

/// `pread(file, buf, offset)` — for the copy fallback.
///
/// # References
/// - [pread(2)](https://man7.org/linux/man-pages/man2/pread.2.html)
pub(crate) fn pread(file: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let off = i64::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    nix::sys::uio::pread(file, buf, off).map_err(io::Error::from)
}

/// `send(fd, ptr, len, flags | MSG_NOSIGNAL)`, or `write(fd, ptr, len)` when `fd` is not a
/// socket (`ENOTSOCK`) — the copy path, and with `MSG_ZEROCOPY` the zero-copy one.
///
/// # Safety
/// `ptr` must be valid for reads of `len` bytes during the call (other processes may write
/// them meanwhile: the kernel copies or pins whatever is there).
///
/// # References
/// - [send(2)](https://man7.org/linux/man-pages/man2/send.2.html)
pub(crate) unsafe fn send(
    fd: BorrowedFd<'_>,
    ptr: *const u8,
    len: usize,
    flags: libc::c_int,
) -> io::Result<usize> {
    let fd = fd.as_raw_fd();
    // SAFETY: `ptr` is readable for `len` bytes (contract); the kernel only reads it.
    match syscall!(send(fd, ptr.cast(), len, flags | libc::MSG_NOSIGNAL)) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => {
            // SAFETY: as above.
            let n = without_sigpipe(|| syscall!(write(fd, ptr.cast(), len)))?;
            Ok(n as usize)
        }
        r => r.map(|n| n as usize),
    }
}

/// `pipe2(O_CLOEXEC | O_NONBLOCK)` with its capacity raised to `size` bytes
/// (`F_SETPIPE_SZ`) where allowed: (read end, write end, capacity).
///
/// # References
/// - [pipe(7)](https://man7.org/linux/man-pages/man7/pipe.7.html), "Pipe capacity"
pub(crate) fn pipe_sized(size: usize) -> io::Result<(OwnedFd, OwnedFd, usize)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let want = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    // Refused above /proc/sys/fs/pipe-max-size (EPERM) or for lack of memory: keep the default.
    let _ = fcntl(&w, FcntlArg::F_SETPIPE_SZ(want));
    let cap = fcntl(&w, FcntlArg::F_GETPIPE_SZ)?;
    Ok((r, w, cap as usize))
}

/// `vmsplice(pipe, &{ptr, len}, 1, SPLICE_F_NONBLOCK)` — maps the user pages holding the bytes
/// into the pipe (no copy); returns how many bytes went in (`EAGAIN`: the pipe is full).
///
/// # Safety
/// `ptr` must be valid for reads of `len` bytes. The pipe references the pages until they are
/// spliced out; the bytes read then are whatever the pages hold at that time.
///
/// # References
/// - [vmsplice(2)](https://man7.org/linux/man-pages/man2/vmsplice.2.html)
pub(crate) unsafe fn vmsplice(
    pipe: BorrowedFd<'_>,
    ptr: *const u8,
    len: usize,
) -> io::Result<usize> {
    let iov = libc::iovec {
        iov_base: ptr.cast_mut().cast(),
        iov_len: len,
    };
    // SAFETY: one live iovec describing readable memory (contract); without SPLICE_F_GIFT the
    // kernel only reads the pages.
    let n = syscall!(vmsplice(pipe.as_raw_fd(), &iov, 1, libc::SPLICE_F_NONBLOCK))?;
    Ok(n as usize)
}

/// `splice(pipe, NULL, out, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)` — moves up to
/// `len` bytes from the pipe to `out` (the pipe side does not block; `out` blocks unless it is
/// non-blocking).
///
/// # References
/// - [splice(2)](https://man7.org/linux/man-pages/man2/splice.2.html)
pub(crate) fn splice_out(
    pipe: BorrowedFd<'_>,
    out: BorrowedFd<'_>,
    len: usize,
) -> io::Result<usize> {
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    nix::fcntl::splice(pipe, None, out, None, len, flags).map_err(io::Error::from)
}

/// `read(pipe)` until empty — drops what a failed send left in the pipe.
pub(crate) fn drain_pipe(pipe: BorrowedFd<'_>) {
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(pipe, &mut buf) {
            Ok(0) => return,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// `setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, 1)` — allows `MSG_ZEROCOPY` sends (Linux 4.14+,
/// TCP and UDP; `EOPNOTSUPP`/`ENOPROTOOPT` for other sockets).
///
/// # References
/// - [MSG_ZEROCOPY](https://www.kernel.org/doc/html/latest/networking/msg_zerocopy.html)
pub(crate) fn enable_zerocopy(fd: BorrowedFd<'_>) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: `one` is a live c_int and its size is given.
    syscall!(setsockopt(
        fd.as_raw_fd(),
        libc::SOL_SOCKET,
        SO_ZEROCOPY,
        (&one as *const libc::c_int).cast(),
        size_of::<libc::c_int>() as libc::socklen_t
    ))
    .map(drop)
}

/// One zero-copy completion notification: sends `lo..=hi` (the kernel's 32-bit counters) are
/// done; `copied`: the kernel copied their data after all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Completion {
    pub(crate) lo: u32,
    pub(crate) hi: u32,
    pub(crate) copied: bool,
}

/// `recvmsg(fd, MSG_ERRQUEUE | MSG_DONTWAIT)` — the next message of the socket's error queue:
/// `Ok(Some(c))` for a zero-copy completion, `Ok(None)` when the queue is empty (`EAGAIN`).
/// Another error-queue message (an ICMP error) is skipped; a `sock_extended_err` with a
/// non-zero `ee_errno` is that error.
///
/// # References
/// - [recvmsg(2)](https://man7.org/linux/man-pages/man2/recvmsg.2.html), [ip(7)](https://man7.org/linux/man-pages/man7/ip.7.html) `IP_RECVERR`
pub(crate) fn recv_completion(fd: BorrowedFd<'_>) -> io::Result<Option<Completion>> {
    loop {
        // u64 words: aligned for `cmsghdr`.
        let mut control = [0u64; 16];
        // SAFETY: msghdr is plain data; all-zero is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control) as _;
        // SAFETY: `msg` describes no data buffer and a live control buffer of the given size.
        let r = syscall!(recvmsg(
            fd.as_raw_fd(),
            &mut msg,
            libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT
        ));
        match r {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        if let Some(c) = parse_completion(&msg)? {
            return Ok(Some(c));
        }
        if msg.msg_flags & libc::MSG_ERRQUEUE == 0 {
            // Not a message of the error queue (a socket without one returns its data or end
            // of file): nothing to reap.
            return Ok(None);
        }
    }
}

/// The zero-copy completion in the control messages of `msg`, if any.
fn parse_completion(msg: &libc::msghdr) -> io::Result<Option<Completion>> {
    // SAFETY: `msg` was filled by recvmsg: its control pointer and length describe the control
    // messages the kernel wrote into our live buffer; CMSG_FIRSTHDR/NXTHDR stay inside it.
    let mut cm = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cm.is_null() {
        // SAFETY: a header inside the buffer (CMSG_FIRSTHDR/NXTHDR checked its bounds).
        let h = unsafe { &*cm };
        let ours = (h.cmsg_level == libc::SOL_IP && h.cmsg_type == libc::IP_RECVERR)
            || (h.cmsg_level == libc::SOL_IPV6 && h.cmsg_type == libc::IPV6_RECVERR);
        let need = size_of::<libc::sock_extended_err>();
        // SAFETY: computes the data length a `need`-byte payload gives; no memory access.
        if ours && h.cmsg_len as usize >= unsafe { libc::CMSG_LEN(need as u32) } as usize {
            // SAFETY: the payload holds at least a sock_extended_err (length checked just
            // above); it may be unaligned, so it is read unaligned.
            let ee = unsafe {
                std::ptr::read_unaligned(libc::CMSG_DATA(cm).cast::<libc::sock_extended_err>())
            };
            if ee.ee_errno != 0 && ee.ee_origin == SO_EE_ORIGIN_ZEROCOPY {
                return Err(io::Error::from_raw_os_error(ee.ee_errno as i32));
            }
            if ee.ee_origin == SO_EE_ORIGIN_ZEROCOPY {
                return Ok(Some(Completion {
                    lo: ee.ee_info,
                    hi: ee.ee_data,
                    copied: ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED != 0,
                }));
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR: stays inside the control buffer or returns NULL.
        cm = unsafe { libc::CMSG_NXTHDR(msg, cm) };
    }
    Ok(None)
}

/// `poll(fd, POLLERR, timeout)` — waits until the socket's error queue has a message, the
/// socket has an error or has hung up, or the timeout passes; returns `revents`.
pub(crate) fn wait_errqueue(
    fd: BorrowedFd<'_>,
    timeout: Option<std::time::Duration>,
) -> io::Result<libc::c_short> {
    let mut p = [libc::pollfd {
        fd: fd.as_raw_fd(),
        events: 0,
        revents: 0,
    }];
    loop {
        match super::poll::poll(&mut p, super::poll::timeout_ms(timeout)) {
            Ok(_) => return Ok(p[0].revents),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `getsockopt(fd, SOL_SOCKET, SO_ERROR)` — takes the socket's pending error, if any.
///
/// # References
/// - [socket(7)](https://man7.org/linux/man-pages/man7/socket.7.html) `SO_ERROR`
pub(crate) fn take_socket_error(fd: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    let mut err: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are live and `len` gives `err`'s size.
    syscall!(getsockopt(
        fd.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_ERROR,
        (&mut err as *mut libc::c_int).cast(),
        &mut len
    ))?;
    Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
}
