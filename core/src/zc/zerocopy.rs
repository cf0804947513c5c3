//! `send(MSG_ZEROCOPY)` with its completions reaped from the socket's error queue.

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use super::{Error, Method, Result, interrupted, refused, would_block};
use crate::racy::RacyBytes;
use crate::sys::zc as sys;

/// What one [`ZeroCopy::send`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Bytes the socket took (0: none, the socket is full or the kernel's limit on pages
    /// pinned for outstanding sends was reached (`ENOBUFS`): reap, wait, send again).
    pub len: usize,
    /// The send's number, if it took bytes. Those bytes may be rewritten once
    /// [`ZeroCopy::is_complete`] says this number is complete.
    pub seq: Option<u64>,
    /// [`Method::ZeroCopy`], or [`Method::Copy`] when the socket refused `SO_ZEROCOPY` (the
    /// send is then complete at once).
    pub method: Method,
}

/// What one [`ZeroCopy::reap`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reaped {
    /// Sends found complete by this call.
    pub completed: u64,
    /// Of which the kernel reported as copied after all (`SO_EE_CODE_ZEROCOPY_COPIED`: on
    /// loopback, and for data the device cannot send from user pages).
    pub copied: u64,
}

/// `MSG_ZEROCOPY` sends on one socket, and their completions.
///
/// The socket takes references to the caller's pages instead of copying them, so **a buffer
/// may be rewritten only once the sends that took its bytes are complete**. The safe order:
///
/// 1. `let s = zc.send(&sock, &buf[off..])?;` — `s.len` bytes taken, numbered `s.seq`;
/// 2. [`reap`](Self::reap) (non-blocking; an event loop calls it when the socket reports
///    `EPOLLERR`) or [`wait`](Self::wait) until [`is_complete`](Self::is_complete)`(seq)`
///    (or [`outstanding`](Self::outstanding)` == 0`);
/// 3. only then write into those bytes again.
///
/// Every send that took bytes gets the next number (from 0), as the kernel counts them.
/// [`Reaped::copied`] says when the kernel copied after all (it does on loopback): the data is
/// then sent correctly, only without the saving. The kernel documents zero copy as paying off
/// above about 10 KB per send.
///
/// Fallback: a socket that refuses `SO_ZEROCOPY` (a Unix socket, a kernel before 4.14) gets
/// plain sends ([`Method::Copy`], [`is_zerocopy`](Self::is_zerocopy) false), each complete as
/// soon as it returns.
#[derive(Debug)]
pub struct ZeroCopy {
    enabled: bool,
    next: u64,
    outstanding: VecDeque<u64>,
    copied: u64,
    zero: u64,
}

impl ZeroCopy {
    /// Enables `SO_ZEROCOPY` on `sock`; if the socket refuses it, sends fall back to copies.
    pub fn enable(sock: impl AsFd) -> Result<ZeroCopy> {
        let enabled = match sys::enable_zerocopy(sock.as_fd()) {
            Ok(()) => true,
            Err(e) if refused(&e) => false,
            Err(e) => return Err(Error::io("setsockopt(SO_ZEROCOPY)", e)),
        };
        Ok(ZeroCopy {
            enabled,
            next: 0,
            outstanding: VecDeque::new(),
            copied: 0,
            zero: 0,
        })
    }

    /// Whether sends are zero-copy (`SO_ZEROCOPY` was accepted).
    pub fn is_zerocopy(&self) -> bool {
        self.enabled
    }

    /// Sends what `sock` takes of `data` at once (one `send` call: on a blocking socket, all of
    /// it unless a signal interrupts). See the type's docs for when `data` may change again.
    pub fn send(&mut self, sock: impl AsFd, data: &[u8]) -> Result<Sent> {
        // SAFETY: `data` is borrowed, so readable for its length during the call.
        unsafe { self.send_raw(sock, data.as_ptr(), data.len()) }
    }

    /// As [`send`](Self::send), from shared memory another process may write.
    pub fn send_racy(&mut self, sock: impl AsFd, data: RacyBytes<'_>) -> Result<Sent> {
        // SAFETY: the view is valid for reads of its length while it lives (its contract).
        unsafe { self.send_raw(sock, data.as_ptr(), data.len()) }
    }

    /// As [`send`](Self::send), of `len` bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be valid for reads of `len` bytes during the call. (The kernel pins the
    /// pages until the send is complete, so unmapping them earlier is safe; what is sent is
    /// what they hold when transmitted.)
    pub unsafe fn send_raw(&mut self, sock: impl AsFd, ptr: *const u8, len: usize) -> Result<Sent> {
        let method = if self.enabled {
            Method::ZeroCopy
        } else {
            Method::Copy
        };
        if len == 0 {
            return Ok(Sent {
                len: 0,
                seq: None,
                method,
            });
        }
        let flags = if self.enabled { libc::MSG_ZEROCOPY } else { 0 };
        let n = loop {
            // SAFETY: readable for `len` bytes and kept mapped (contract).
            match unsafe { sys::send(sock.as_fd(), ptr, len, flags) } {
                Ok(n) => break n,
                Err(e) if interrupted(&e) => {}
                Err(e) if would_block(&e) || e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Ok(Sent {
                        len: 0,
                        seq: None,
                        method,
                    });
                }
                Err(e) => return Err(Error::io("send", e)),
            }
        };
        let seq = self.next;
        self.next += 1;
        if self.enabled {
            self.outstanding.push_back(seq);
        }
        Ok(Sent {
            len: n,
            seq: Some(seq),
            method,
        })
    }

    /// Takes every completion the socket's error queue holds now (never blocks).
    pub fn reap(&mut self, sock: impl AsFd) -> Result<Reaped> {
        let mut r = Reaped::default();
        if !self.enabled {
            return Ok(r);
        }
        while let Some(c) =
            sys::recv_completion(sock.as_fd()).map_err(|e| Error::io("recvmsg(MSG_ERRQUEUE)", e))?
        {
            let before = self.outstanding.len();
            // The kernel numbers sends with 32 bits: `lo..=hi` may wrap.
            let width = c.hi.wrapping_sub(c.lo);
            self.outstanding
                .retain(|&s| (s as u32).wrapping_sub(c.lo) > width);
            let n = (before - self.outstanding.len()) as u64;
            r.completed += n;
            if c.copied {
                r.copied += n;
            }
        }
        self.copied += r.copied;
        self.zero += r.completed - r.copied;
        Ok(r)
    }

    /// Reaps, waiting up to `timeout` (`None`: no limit) until every send up to `seq` is
    /// complete; returns what it reaped. [`Error::InvalidArgument`] for a number not sent yet;
    /// an expired timeout returns with `seq` still outstanding (check
    /// [`is_complete`](Self::is_complete)).
    pub fn wait(&mut self, sock: impl AsFd, seq: u64, timeout: Option<Duration>) -> Result<Reaped> {
        if seq >= self.next {
            return Err(Error::InvalidArgument(format!(
                "send {seq} was not made (the next is {})",
                self.next
            )));
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let sock = sock.as_fd();
        let mut total = self.reap(sock)?;
        while !self.is_complete(seq) {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                break;
            }
            let revents = sys::wait_errqueue(sock, left).map_err(|e| Error::io("poll", e))?;
            let r = self.reap(sock)?;
            total.completed += r.completed;
            total.copied += r.copied;
            if r.completed == 0 && revents & libc::POLLERR != 0 {
                // An error on the socket itself, not a completion: report it.
                if let Some(e) = sys::take_socket_error(sock)
                    .map_err(|e| Error::io("getsockopt(SO_ERROR)", e))?
                {
                    return Err(Error::io("send", e));
                }
            } else if r.completed == 0 && revents & (libc::POLLHUP | libc::POLLNVAL) != 0 {
                // Hung up: completions still come as the socket frees its buffers.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(total)
    }

    /// Whether send `seq` is complete (its bytes may be rewritten). False for a number not
    /// sent yet.
    pub fn is_complete(&self, seq: u64) -> bool {
        seq < self.next && !self.outstanding.contains(&seq)
    }

    /// Sends not complete yet.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// The number the next send that takes bytes will get.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Completed sends, since `enable`, that the kernel reported as copied after all.
    pub fn copied(&self) -> u64 {
        self.copied
    }

    /// Completed sends, since `enable`, that went without a copy.
    pub fn zero_copied(&self) -> u64 {
        self.zero
    }
}
