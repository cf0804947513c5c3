//! Zero-copy sending (`shmio::zc`): `sendfile`, the splicer (`vmsplice` + `splice`),
//! `MSG_ZEROCOPY` with its completions (here), and the shared cache (`cache.rs`).
//!
//! Every send works on blocking and non-blocking sockets: on a non-blocking one it returns
//! `SHMIO_OK` when the socket is full, with `remaining` bytes left; call again with the rest
//! when the socket is writable (`EPOLLOUT`). A peer that went away is `SHMIO_ERR_IO` (the
//! message names `EPIPE` or `ECONNRESET`); `SIGPIPE` is never raised by these calls, even with
//! its default action.

mod cache;

use std::ffi::c_void;
use std::os::fd::{BorrowedFd, RawFd};
use std::ptr::NonNull;
use std::time::Duration;

use shmio_core::zc::{self, Method, Progress, Reaped, Sent, Splicer, ZeroCopy};

pub use cache::*;

use crate::ffi::{
    Failure, Out, Result, boundary, boundary_value, byte_len, handle_mut, handle_ref, non_null,
    non_null_const, timeout,
};
use crate::sized::{init, write_sized};
use crate::status::{self, shmio_status};

/// Method: `sendfile(2)`.
pub const SHMIO_ZC_METHOD_SENDFILE: u32 = 0;
/// Method: `vmsplice(2)` + `splice(2)` through the splicer's pipe.
pub const SHMIO_ZC_METHOD_SPLICE: u32 = 1;
/// Method: `send(MSG_ZEROCOPY)`.
pub const SHMIO_ZC_METHOD_ZEROCOPY: u32 = 2;
/// Method: the fallback, a copy (`pread` + `send`, or a plain `send`/`write`).
pub const SHMIO_ZC_METHOD_COPY: u32 = 3;

impl From<zc::Error> for Failure {
    fn from(e: zc::Error) -> Failure {
        Failure::new(status::of(e.kind()), e.to_string())
    }
}

/// What a send did. Fill with `shmio_zc_progress_init` first (it sets `struct_size`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_zc_progress {
    /// Size of this struct as the caller knows it; set by `shmio_zc_progress_init`; the send
    /// sets it to the number of bytes it filled in.
    pub struct_size: u32,
    /// The path taken: `SHMIO_ZC_METHOD_*`.
    pub method: u32,
    /// Bytes this call handed to the socket.
    pub sent: u64,
    /// Bytes still to send (non-zero only on a non-blocking socket that filled up).
    pub remaining: u64,
}

const PROGRESS_SIZE: usize = size_of::<shmio_zc_progress>();

impl From<Progress> for shmio_zc_progress {
    fn from(p: Progress) -> shmio_zc_progress {
        shmio_zc_progress {
            struct_size: PROGRESS_SIZE as u32,
            method: p.method.code(),
            sent: p.sent,
            remaining: p.remaining,
        }
    }
}

/// What one `shmio_zc_zerocopy_send` did. Fill with `shmio_zc_sent_init` first.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_zc_sent {
    /// Size of this struct as the caller knows it; set by `shmio_zc_sent_init`.
    pub struct_size: u32,
    /// `SHMIO_ZC_METHOD_ZEROCOPY`, or `SHMIO_ZC_METHOD_COPY` when the socket refused
    /// `SO_ZEROCOPY` (the send is then complete at once).
    pub method: u32,
    /// Bytes the socket took (0: none; the socket is full, or too many pages are pinned for
    /// outstanding sends: reap, wait, send again).
    pub len: u64,
    /// The send's number (valid when `has_seq` is 1): its bytes may be rewritten once
    /// `shmio_zc_zerocopy_is_complete(zc, seq)` returns true.
    pub seq: u64,
    /// 1 if the send took bytes and got a number, else 0.
    pub has_seq: u32,
    /// Always 0 (keeps the struct free of padding).
    pub reserved: u32,
}

const SENT_SIZE: usize = size_of::<shmio_zc_sent>();

impl From<Sent> for shmio_zc_sent {
    fn from(s: Sent) -> shmio_zc_sent {
        shmio_zc_sent {
            struct_size: SENT_SIZE as u32,
            method: s.method.code(),
            len: s.len as u64,
            seq: s.seq.unwrap_or(0),
            has_seq: u32::from(s.seq.is_some()),
            reserved: 0,
        }
    }
}

/// What a reap found. Fill with `shmio_zc_reaped_init` first.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_zc_reaped {
    /// Size of this struct as the caller knows it; set by `shmio_zc_reaped_init`.
    pub struct_size: u32,
    /// Always 0 (keeps the struct free of padding).
    pub reserved: u32,
    /// Sends found complete by this call.
    pub completed: u64,
    /// Of which the kernel copied after all (`SO_EE_CODE_ZEROCOPY_COPIED`; loopback does).
    pub copied: u64,
}

const REAPED_SIZE: usize = size_of::<shmio_zc_reaped>();

impl From<Reaped> for shmio_zc_reaped {
    fn from(r: Reaped) -> shmio_zc_reaped {
        shmio_zc_reaped {
            struct_size: REAPED_SIZE as u32,
            reserved: 0,
            completed: r.completed,
            copied: r.copied,
        }
    }
}

/// A descriptor argument, checked to be open; borrowed for the call.
///
/// # Safety
/// The caller keeps `fd` open during the call (every function's contract).
pub(crate) unsafe fn fd_arg<'a>(fd: RawFd, what: &'static str) -> Result<BorrowedFd<'a>> {
    // SAFETY: F_GETFD takes no pointer; any number is a valid argument.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(Failure::invalid(format!(
            "`{what}` = {fd} is not an open descriptor"
        )));
    }
    // SAFETY: open (just checked) and kept open during the call (contract).
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// The caller's bytes: `len` bytes at `data` (NULL allowed when `len` is 0).
///
/// # Safety
/// A non-NULL `data` must be readable for `len` bytes during the call.
pub(crate) unsafe fn bytes_arg<'a>(data: *const c_void, len: usize) -> Result<&'a [u8]> {
    let len = byte_len(len, "len")?;
    if len == 0 {
        return Ok(&[]);
    }
    let p = non_null_const(data, "data")?;
    // SAFETY: readable for `len` bytes during the call (contract), `len` fits an isize.
    Ok(unsafe { std::slice::from_raw_parts(p.as_ptr().cast::<u8>(), len) })
}

/// A result struct argument: not NULL, and its `struct_size` (set by its `_init` function)
/// checked before the call does anything, so that a bad one fails before any byte is sent.
///
/// # Safety
/// A non-NULL `p` must be readable for the `u32` its struct begins with.
pub(crate) unsafe fn out_arg<T>(p: *mut T, what: &'static str) -> Result<NonNull<T>> {
    let p = non_null(p, what)?;
    // SAFETY: readable for its first `u32` (contract).
    let size = unsafe { p.cast::<u32>().as_ptr().read() };
    let min = std::mem::size_of::<T>();
    if (size as usize) < min {
        return Err(Failure::invalid(format!(
            "{what}->struct_size {size} is smaller than {min}: fill the struct with its _init \
             function"
        )));
    }
    Ok(p)
}

/// Writes a result struct through a caller's pointer checked up front.
///
/// # Safety
/// As for `write_sized`: writable for its `struct_size` bytes.
pub(crate) unsafe fn put<T: Copy>(p: NonNull<T>, v: T, what: &'static str) -> Result<()> {
    // SAFETY: forwarded contract; every result struct here begins with `struct_size` and holds
    // integers only, without padding. The least size accepted is the whole struct, this
    // first version of it: a smaller one would cut a field in two.
    unsafe { write_sized(p, std::mem::size_of::<T>(), v, what) }
}

/// Fills `*out` with zeros and sets its `struct_size`.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL (-> `SHMIO_ERR_NULL_POINTER`) or valid for writing a `shmio_zc_progress`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_progress_init(out: *mut shmio_zc_progress) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe {
        init(
            "shmio_zc_progress_init",
            out,
            Progress {
                sent: 0,
                remaining: 0,
                method: Method::Copy,
            }
            .into(),
        )
    }
}

/// Fills `*out` with zeros and sets its `struct_size`.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL (-> `SHMIO_ERR_NULL_POINTER`) or valid for writing a `shmio_zc_sent`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_sent_init(out: *mut shmio_zc_sent) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe {
        init(
            "shmio_zc_sent_init",
            out,
            Sent {
                len: 0,
                seq: None,
                method: Method::Copy,
            }
            .into(),
        )
    }
}

/// Fills `*out` with zeros and sets its `struct_size`.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL (-> `SHMIO_ERR_NULL_POINTER`) or valid for writing a `shmio_zc_reaped`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_reaped_init(out: *mut shmio_zc_reaped) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe { init("shmio_zc_reaped_init", out, Reaped::default().into()) }
}

/// Sends `len` bytes of the file `file` from `offset` to `sock` with `sendfile(2)` (any
/// descriptor it writes to: a TCP or Unix stream socket, a pipe, a file). Blocking `sock`:
/// returns once all is sent. Non-blocking: returns when the socket is full; call again from
/// `offset + out->sent` with `len - out->sent`. A range past the file's end ->
/// `SHMIO_ERR_INVALID_ARGUMENT`, as is a file that shrank during the send (the message says
/// so; what was sent stays sent). Where `sendfile` is refused (a file system without it, an
/// O_APPEND target), the bytes go through a 64 KiB buffer (`pread` + `send`):
/// `out->method` is `SHMIO_ZC_METHOD_COPY`.
///
/// Ownership: borrows both descriptors for the call; `out` is the caller's. Blocks as `sock`
/// does. Thread-safe.
///
/// # Safety
/// `out` must be NULL or a struct filled by `shmio_zc_progress_init`, writable for its
/// `struct_size` bytes; the descriptors stay open during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_sendfile(
    sock: RawFd,
    file: RawFd,
    offset: u64,
    len: u64,
    out: *mut shmio_zc_progress,
) -> shmio_status {
    boundary("shmio_zc_sendfile", || {
        // SAFETY: readable by the contract.
        let out = unsafe { out_arg(out, "out") }?;
        // SAFETY: open during the call (contract).
        let (sock, file) = unsafe { (fd_arg(sock, "sock")?, fd_arg(file, "file")?) };
        let p = zc::sendfile(sock, file, offset, len)?;
        // SAFETY: writable for its struct_size bytes (contract).
        unsafe { put(out, p.into(), "out") }
    })
}

/// Sends bytes in memory to sockets without a copy: `vmsplice` maps the caller's pages into a
/// pipe the splicer owns (made once, reused by every send), `splice` moves them to the socket.
/// **The bytes must not change until the send is done** (`remaining` 0): the pipe, then the
/// socket, reference the pages, not a copy. Where splicing is refused the bytes go out with
/// `send`/`write` (`SHMIO_ZC_METHOD_COPY`). One thread at a time per splicer.
pub struct shmio_splicer {
    inner: Splicer,
}

/// A splicer whose pipe capacity is raised to `pipe_size` bytes where allowed (0: 1 MiB).
///
/// Ownership: `*out` receives a handle freed with `shmio_zc_splicer_free`. Does not block.
/// Thread-safe.
///
/// # Safety
/// `out` must be NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_splicer_new(
    pipe_size: usize,
    out: *mut *mut shmio_splicer,
) -> shmio_status {
    boundary("shmio_zc_splicer_new", || {
        let out = Out::new(out, "out")?;
        let size = if pipe_size == 0 {
            zc::DEFAULT_PIPE_SIZE
        } else {
            pipe_size
        };
        let inner = Splicer::with_pipe_size(size)?;
        // SAFETY: writable by the contract.
        unsafe { out.write(Box::into_raw(Box::new(shmio_splicer { inner }))) };
        Ok(())
    })
}

/// Sends `len` bytes at `data` to `sock`. Non-blocking `sock`: after a return with
/// `remaining` > 0, bytes may be left in the pipe (`shmio_zc_splicer_pending`): call again
/// with the rest of the same bytes (`data + out->sent`, `len - out->sent`), or
/// `shmio_zc_splicer_reset` to abandon the send. A failed send resets the splicer.
///
/// Ownership: borrows `data` and `sock` for the call. Blocks as `sock` does.
///
/// # Safety
/// `sp` must be NULL or a live splicer used by no other thread during the call; `data`
/// readable for `len` bytes and unchanged until the send is done; `out` as for
/// `shmio_zc_sendfile`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_splicer_send(
    sp: *mut shmio_splicer,
    sock: RawFd,
    data: *const c_void,
    len: usize,
    out: *mut shmio_zc_progress,
) -> shmio_status {
    boundary("shmio_zc_splicer_send", || {
        // SAFETY: a live splicer, this thread's alone (contract).
        let sp = unsafe { handle_mut(sp, "sp") }?;
        // SAFETY: readable by the contract.
        let out = unsafe { out_arg(out, "out") }?;
        // SAFETY: open during the call; readable for `len` bytes (contract).
        let (sock, data) = unsafe { (fd_arg(sock, "sock")?, bytes_arg(data, len)?) };
        let p = sp.inner.send(sock, data)?;
        // SAFETY: writable for its struct_size bytes (contract).
        unsafe { put(out, p.into(), "out") }
    })
}

/// Bytes of the current send in the splicer's pipe (0 for NULL).
///
/// # Safety
/// `sp` must be NULL or a live splicer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_splicer_pending(sp: *const shmio_splicer) -> usize {
    boundary_value("shmio_zc_splicer_pending", 0, || {
        // SAFETY: NULL or a live splicer (contract).
        unsafe { handle_ref(sp, "sp") }.map_or(0, |s| s.inner.pending())
    })
}

/// Drops what the splicer's pipe holds (an abandoned send). NULL is a no-op.
///
/// # Safety
/// `sp` must be NULL or a live splicer used by no other thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_splicer_reset(sp: *mut shmio_splicer) {
    boundary_value("shmio_zc_splicer_reset", (), || {
        // SAFETY: NULL or a live splicer, this thread's alone (contract).
        if let Ok(s) = unsafe { handle_mut(sp, "sp") } {
            s.inner.reset();
        }
    })
}

/// Frees a splicer (closes its pipe). NULL is a no-op.
///
/// # Safety
/// `sp` must be NULL or a live splicer, with no call on it in progress and none after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_splicer_free(sp: *mut shmio_splicer) {
    boundary_value("shmio_zc_splicer_free", (), || {
        if !sp.is_null() {
            // SAFETY: a live handle is a `Box` we leaked in new; given back once (contract).
            drop(unsafe { Box::from_raw(sp) });
        }
    })
}

/// `MSG_ZEROCOPY` sends on one socket and their completions. The socket references the
/// caller's pages instead of copying them: **a buffer may be rewritten only after the sends
/// that took its bytes are complete** — send (a number in `shmio_zc_sent.seq`), then reap or
/// wait until `shmio_zc_zerocopy_is_complete(zc, seq)`, then rewrite. On a socket that refuses
/// `SO_ZEROCOPY` (a Unix socket) sends are plain copies, complete at once. One thread at a time.
pub struct shmio_zerocopy {
    inner: ZeroCopy,
}

/// Enables `SO_ZEROCOPY` on `sock` (falling back to plain sends if refused).
///
/// Ownership: `*out` receives a handle freed with `shmio_zc_zerocopy_free`; the socket stays
/// the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL or valid for writing a pointer; `sock` open during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_zerocopy_enable(
    sock: RawFd,
    out: *mut *mut shmio_zerocopy,
) -> shmio_status {
    boundary("shmio_zc_zerocopy_enable", || {
        let out = Out::new(out, "out")?;
        // SAFETY: open during the call (contract).
        let inner = ZeroCopy::enable(unsafe { fd_arg(sock, "sock") }?)?;
        // SAFETY: writable by the contract.
        unsafe { out.write(Box::into_raw(Box::new(shmio_zerocopy { inner }))) };
        Ok(())
    })
}

/// 1 if sends are zero-copy (`SO_ZEROCOPY` was accepted), 0 if plain copies or NULL.
///
/// # Safety
/// `zc` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_zerocopy_is_zerocopy(zc: *const shmio_zerocopy) -> u32 {
    boundary_value("shmio_zc_zerocopy_is_zerocopy", 0, || {
        // SAFETY: NULL or a live handle (contract).
        unsafe { handle_ref(zc, "zc") }.map_or(0, |z| u32::from(z.inner.is_zerocopy()))
    })
}

/// One `send` of what `sock` takes of the `len` bytes at `data` (all of them on a blocking
/// socket).
///
/// # Safety
/// `zc` must be NULL or a live handle used by no other thread; `data` readable for `len`
/// bytes and unchanged until the send is complete; `out` NULL or filled by
/// `shmio_zc_sent_init`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_zerocopy_send(
    zc: *mut shmio_zerocopy,
    sock: RawFd,
    data: *const c_void,
    len: usize,
    out: *mut shmio_zc_sent,
) -> shmio_status {
    boundary("shmio_zc_zerocopy_send", || {
        // SAFETY: a live handle, this thread's alone (contract).
        let zc = unsafe { handle_mut(zc, "zc") }?;
        // SAFETY: readable by the contract.
        let out = unsafe { out_arg(out, "out") }?;
        // SAFETY: open during the call; readable for `len` bytes (contract).
        let (sock, data) = unsafe { (fd_arg(sock, "sock")?, bytes_arg(data, len)?) };
        let s = zc.inner.send(sock, data)?;
        // SAFETY: writable for its struct_size bytes (contract).
        unsafe { put(out, s.into(), "out") }
    })
}

/// Reaps completions from `sock`'s error queue: without waiting (`timeout_ms` 0), or waiting
/// up to `timeout_ms` (< 0: no limit) until send `seq` and all before it are complete (an
/// expired wait returns `SHMIO_OK`: check `shmio_zc_zerocopy_is_complete`). A `seq` not sent
/// yet -> `SHMIO_ERR_INVALID_ARGUMENT` (when waiting). `out` may be NULL.
///
/// # Safety
/// `zc` must be NULL or a live handle used by no other thread; `sock` open; `out` NULL or
/// filled by `shmio_zc_reaped_init`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_zerocopy_reap(
    zc: *mut shmio_zerocopy,
    sock: RawFd,
    seq: u64,
    timeout_ms: i32,
    out: *mut shmio_zc_reaped,
) -> shmio_status {
    boundary("shmio_zc_zerocopy_reap", || {
        // SAFETY: a live handle, this thread's alone (contract).
        let zc = unsafe { handle_mut(zc, "zc") }?;
        // SAFETY: open during the call (contract).
        let sock = unsafe { fd_arg(sock, "sock") }?;
        let out = match out.is_null() {
            true => None,
            // SAFETY: readable by the contract.
            false => Some(unsafe { out_arg(out, "out") }?),
        };
        let r = match timeout(timeout_ms) {
            Some(Duration::ZERO) => zc.inner.reap(sock)?,
            t => zc.inner.wait(sock, seq, t)?,
        };
        if let Some(out) = out {
            // SAFETY: writable for its struct_size bytes (contract).
            unsafe { put(out, r.into(), "out") }?;
        }
        Ok(())
    })
}

/// 1 if send `seq` is complete (its bytes may be rewritten), else 0 (also for NULL and for a
/// number not sent yet).
///
/// # Safety
/// `zc` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_zerocopy_is_complete(zc: *const shmio_zerocopy, seq: u64) -> u32 {
    boundary_value("shmio_zc_zerocopy_is_complete", 0, || {
        // SAFETY: NULL or a live handle (contract).
        unsafe { handle_ref(zc, "zc") }.map_or(0, |z| u32::from(z.inner.is_complete(seq)))
    })
}

/// Sends not complete yet (0 for NULL).
///
/// # Safety
/// `zc` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_zerocopy_outstanding(zc: *const shmio_zerocopy) -> u64 {
    boundary_value("shmio_zc_zerocopy_outstanding", 0, || {
        // SAFETY: NULL or a live handle (contract).
        unsafe { handle_ref(zc, "zc") }.map_or(0, |z| z.inner.outstanding() as u64)
    })
}

/// Frees the handle (the socket stays open; unreaped completions stay in its error queue).
/// NULL is a no-op.
///
/// # Safety
/// `zc` must be NULL or a live handle, with no call on it in progress and none after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_zerocopy_free(zc: *mut shmio_zerocopy) {
    boundary_value("shmio_zc_zerocopy_free", (), || {
        if !zc.is_null() {
            // SAFETY: a live handle is a `Box` we leaked in enable; given back once (contract).
            drop(unsafe { Box::from_raw(zc) });
        }
    })
}
