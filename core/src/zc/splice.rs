//! Memory to a socket with `vmsplice(2)` + `splice(2)` through a pipe made once and reused.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{Error, Method, Progress, Result, interrupted, refused, would_block};
use crate::racy::RacyBytes;
use crate::sys::zc as sys;

/// The pipe capacity [`Splicer::new`] asks for (the kernel grants up to
/// `/proc/sys/fs/pipe-max-size`, 1 MiB by default, to an unprivileged process).
pub const DEFAULT_PIPE_SIZE: usize = 1 << 20;

/// Sends bytes in memory to sockets without copying them through a user-space buffer:
/// `vmsplice` maps the pages holding them into a pipe the splicer owns, `splice` moves them
/// from the pipe to the socket. The pipe is made once (its capacity raised with
/// `F_SETPIPE_SZ` where allowed) and reused for every send and every socket.
///
/// # The lifetime rule
/// `vmsplice` does not copy: the pipe references the caller's pages until they are spliced
/// out, and the socket then references them until the data is transmitted. **The bytes must
/// not change until the send is done** ([`Progress::is_done`]), or the peer receives the new
/// bytes. That suits data written once and only read afterwards (a [`Cache`](super::Cache)
/// entry, a file's mapping); for a buffer the caller rewrites, use [`ZeroCopy`](super::ZeroCopy),
/// whose completions say when that is safe.
///
/// # Partial sends
/// On a non-blocking socket a send returns when the socket is full; bytes may then be left in
/// the pipe ([`pending`](Self::pending)). Call `send` again with the rest of the same bytes
/// (`&data[sent..]`, whose first `pending()` bytes are the ones in the pipe) when the socket is
/// writable. To abandon a send, call [`reset`](Self::reset). A failed send resets itself.
///
/// # Fallback
/// Where `vmsplice` or `splice` is refused (`EINVAL`, `ENOSYS`: a target that is not a socket
/// or pipe, an `O_APPEND` file, a kernel without them), the bytes go out with `send` (or
/// `write`) and the result says [`Method::Copy`]; the splicer stays on the copy path after that.
#[derive(Debug)]
pub struct Splicer {
    r: OwnedFd,
    w: OwnedFd,
    capacity: usize,
    pending: usize,
    copy: bool,
}

impl Splicer {
    /// A splicer whose pipe holds up to [`DEFAULT_PIPE_SIZE`] bytes where allowed.
    pub fn new() -> Result<Splicer> {
        Splicer::with_pipe_size(DEFAULT_PIPE_SIZE)
    }

    /// A splicer whose pipe capacity is raised to `bytes` where allowed (the default, 64 KiB,
    /// stays otherwise: see [`pipe_size`](Self::pipe_size)).
    pub fn with_pipe_size(bytes: usize) -> Result<Splicer> {
        let (r, w, capacity) = sys::pipe_sized(bytes).map_err(|e| Error::io("pipe2", e))?;
        Ok(Splicer {
            r,
            w,
            capacity,
            pending: 0,
            copy: false,
        })
    }

    /// The pipe's capacity in bytes, as the kernel set it.
    pub fn pipe_size(&self) -> usize {
        self.capacity
    }

    /// Bytes of the current send that are in the pipe, not yet on the socket.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Whether sends go by copy (splicing was refused once).
    pub fn is_copying(&self) -> bool {
        self.copy
    }

    /// Drops what is in the pipe (an abandoned send).
    pub fn reset(&mut self) {
        if self.pending != 0 {
            sys::drain_pipe(self.r.as_fd());
            self.pending = 0;
        }
    }

    /// Sends `data` to `sock` (see the type's docs for the lifetime rule and partial sends).
    pub fn send(&mut self, sock: impl AsFd, data: &[u8]) -> Result<Progress> {
        // SAFETY: `data` is borrowed, so readable for its length during the call.
        unsafe { self.send_raw(sock, data.as_ptr(), data.len()) }
    }

    /// Sends bytes in shared memory that another process may write (a region's data) to
    /// `sock`. What the peer receives is what the pages hold when they are transmitted.
    pub fn send_racy(&mut self, sock: impl AsFd, data: RacyBytes<'_>) -> Result<Progress> {
        // SAFETY: the view is valid for reads of its length while it lives (its contract).
        unsafe { self.send_raw(sock, data.as_ptr(), data.len()) }
    }

    /// Sends `len` bytes at `ptr` to `sock`.
    ///
    /// # Safety
    /// `ptr` must be valid for reads of `len` bytes during the call (other processes may write
    /// them: the kernel reads whatever is there).
    pub unsafe fn send_raw(
        &mut self,
        sock: impl AsFd,
        ptr: *const u8,
        len: usize,
    ) -> Result<Progress> {
        if len < self.pending {
            let pending = self.pending;
            self.reset();
            return Err(Error::InvalidArgument(format!(
                "the splicer holds {pending} bytes of the last send, more than the {len} given: \
                 pass the rest of the same bytes, or reset() first"
            )));
        }
        // SAFETY: forwarded contract.
        let r = unsafe { self.send_loop(sock.as_fd(), ptr, len) };
        r.inspect_err(|_| self.reset())
    }

    /// # Safety
    /// As for [`Splicer::send_raw`].
    unsafe fn send_loop(
        &mut self,
        sock: BorrowedFd<'_>,
        ptr: *const u8,
        len: usize,
    ) -> Result<Progress> {
        let mut sent = 0usize;
        while sent < len && !self.copy {
            let rest = len - sent;
            if self.pending < rest && self.pending < self.capacity {
                let n = (rest - self.pending).min(self.capacity - self.pending);
                // SAFETY: `sent + pending + n <= len`: inside the caller's readable range.
                match unsafe { sys::vmsplice(self.w.as_fd(), ptr.add(sent + self.pending), n) } {
                    Ok(n) => self.pending += n,
                    Err(e) if would_block(&e) || interrupted(&e) => {}
                    Err(e) if refused(&e) => self.fall_back(),
                    Err(e) => return Err(Error::io("vmsplice", e)),
                }
            }
            if self.copy {
                continue;
            }
            if self.pending == 0 {
                // vmsplice found the pipe full, yet nothing of ours is in it.
                let e = std::io::Error::other("the splicer's pipe is full of unknown data");
                return Err(Error::io("vmsplice", e));
            }
            let r = sys::without_sigpipe(|| sys::splice_out(self.r.as_fd(), sock, self.pending));
            match r {
                Ok(0) => return Err(Error::io("splice", std::io::ErrorKind::WriteZero.into())),
                Ok(m) => {
                    self.pending -= m;
                    sent += m;
                }
                Err(e) if interrupted(&e) => {}
                Err(e) if would_block(&e) => return Ok(progress(sent, len, Method::Splice)),
                Err(e) if refused(&e) => self.fall_back(),
                Err(e) => return Err(Error::io("splice", e)),
            }
        }
        while sent < len {
            // SAFETY: `sent < len`: the rest is inside the caller's readable range.
            match unsafe { sys::send(sock, ptr.add(sent), len - sent, 0) } {
                Ok(m) => sent += m,
                Err(e) if interrupted(&e) => {}
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(Error::io("send", e)),
            }
        }
        let method = if self.copy {
            Method::Copy
        } else {
            Method::Splice
        };
        Ok(progress(sent, len, method))
    }

    /// Splicing is refused: the bytes in the pipe are dropped (the copy path sends them again
    /// from the caller's memory) and the splicer copies from now on.
    fn fall_back(&mut self) {
        self.reset();
        self.copy = true;
    }
}

fn progress(sent: usize, len: usize, method: Method) -> Progress {
    Progress {
        sent: sent as u64,
        remaining: (len - sent) as u64,
        method,
    }
}
