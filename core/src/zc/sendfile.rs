//! A file's range to a socket with `sendfile(2)`, or `pread` + `send` where it is refused.

use std::os::fd::{AsFd, BorrowedFd};

use super::{Error, Method, Progress, Result, interrupted, refused, would_block};
use crate::sys::zc as sys;

/// The most one `sendfile` call moves (the kernel's own cap, `MAX_RW_COUNT`).
const MAX_CALL: u64 = 0x7fff_f000;

/// The copy fallback's buffer.
const COPY_BUF: usize = 64 << 10;

/// Sends `len` bytes of `file` from `offset` to `sock` (any descriptor `sendfile` writes to:
/// a TCP or Unix stream socket, a pipe, a file) and returns what it did.
///
/// On a blocking `sock` it returns once all is sent; on a non-blocking one it returns when the
/// socket is full, with [`Progress::remaining`] bytes left: call again from
/// `offset + sent` (or use [`SendFile`], which keeps that state). The range is checked against
/// the file's length first ([`Error::OutOfBounds`]); a file that shrinks during the send ends
/// it with [`Error::Truncated`] (never a wait for bytes that will not come). Where `sendfile`
/// is refused (`EINVAL`, `ENOSYS`: a file system without it, an `O_APPEND` target), the bytes
/// go through a 64 KiB buffer with `pread` and `send`, and the result says
/// [`Method::Copy`]. A peer that went away is an [`Error::Io`] with `EPIPE` or `ECONNRESET`
/// (no `SIGPIPE`: see the module docs).
pub fn sendfile(sock: impl AsFd, file: impl AsFd, offset: u64, len: u64) -> Result<Progress> {
    check_range(file.as_fd(), offset, len)?;
    send_range(sock.as_fd(), file.as_fd(), offset, len, Method::SendFile)
}

/// A file send in progress, for an event loop: made once with its range, then
/// [`progress`](Self::progress) each time the socket is writable, until
/// [`is_done`](Self::is_done). It remembers the path: once `sendfile` was refused, the rest goes
/// by copy.
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// use shmio::zc::SendFile;
///
/// let mut f = tempfile_with(b"0123456789");
/// let (a, mut b) = UnixStream::pair()?;
/// let mut send = SendFile::new(&f, 2, 5)?;
/// while !send.is_done() {
///     send.progress(&a, &f)?;       // an event loop calls this on EPOLLOUT
/// }
/// let mut got = [0u8; 5];
/// b.read_exact(&mut got)?;
/// assert_eq!(&got, b"23456");
/// # fn tempfile_with(b: &[u8]) -> std::fs::File {
/// #     let p = std::env::temp_dir().join(format!("shmio-doc-sendfile-{}", std::process::id()));
/// #     std::fs::write(&p, b).unwrap();
/// #     let f = std::fs::File::open(&p).unwrap();
/// #     std::fs::remove_file(&p).unwrap();
/// #     f
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFile {
    offset: u64,
    end: u64,
    sent: u64,
    method: Method,
}

impl SendFile {
    /// A send of `len` bytes of `file` from `offset` ([`Error::OutOfBounds`] if the file is
    /// shorter). Nothing is sent yet.
    pub fn new(file: impl AsFd, offset: u64, len: u64) -> Result<SendFile> {
        check_range(file.as_fd(), offset, len)?;
        Ok(SendFile {
            offset,
            end: offset + len,
            sent: 0,
            method: Method::SendFile,
        })
    }

    /// Sends more, as [`sendfile`] does, from where the last call stopped; `file` must be the
    /// file given to [`new`](Self::new). Once done, returns a zero progress.
    pub fn progress(&mut self, sock: impl AsFd, file: impl AsFd) -> Result<Progress> {
        let r = send_range(
            sock.as_fd(),
            file.as_fd(),
            self.offset,
            self.remaining(),
            self.method,
        );
        let p = match r {
            Ok(p) => p,
            Err(Error::Truncated { offset, remaining }) => {
                self.sent += offset - self.offset;
                self.offset = offset;
                return Err(Error::Truncated { offset, remaining });
            }
            Err(e) => return Err(e),
        };
        self.offset += p.sent;
        self.sent += p.sent;
        self.method = p.method;
        Ok(p)
    }

    /// Bytes sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Bytes still to send.
    pub fn remaining(&self) -> u64 {
        self.end - self.offset
    }

    /// The file offset the next byte comes from.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether everything is sent.
    pub fn is_done(&self) -> bool {
        self.offset == self.end
    }

    /// The path taken so far ([`Method::SendFile`] until `sendfile` is refused, then
    /// [`Method::Copy`]).
    pub fn method(&self) -> Method {
        self.method
    }
}

fn file_len(file: BorrowedFd<'_>) -> Result<u64> {
    nix::sys::stat::fstat(file)
        .map(|st| st.st_size as u64)
        .map_err(|e| Error::io("fstat", e.into()))
}

fn check_range(file: BorrowedFd<'_>, offset: u64, len: u64) -> Result<()> {
    let size = file_len(file)?;
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::OutOfBounds { offset, len, size }),
    }
}

/// The loop both entry points share: `sendfile` (or the copy, once `method` is `Copy` or
/// `sendfile` refuses) until `len` bytes are sent or the socket is full.
fn send_range(
    sock: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    mut offset: u64,
    len: u64,
    mut method: Method,
) -> Result<Progress> {
    let mut sent = 0u64;
    let mut buf = Vec::new();
    while sent < len {
        let want = (len - sent).min(MAX_CALL) as usize;
        let r = if method == Method::SendFile {
            sys::without_sigpipe(|| sys::sendfile(sock, file, offset, want))
        } else {
            copy_once(sock, file, offset, want, &mut buf)
        };
        match r {
            Ok(0) => {
                return Err(Error::Truncated {
                    offset,
                    remaining: len - sent,
                });
            }
            Ok(n) => {
                sent += n as u64;
                offset += n as u64;
            }
            Err(e) if interrupted(&e) => {}
            Err(e) if would_block(&e) => break,
            Err(e) if method == Method::SendFile && refused(&e) => method = Method::Copy,
            Err(e) => {
                let op = if method == Method::SendFile {
                    "sendfile"
                } else {
                    "send"
                };
                return Err(Error::io(op, e));
            }
        }
    }
    Ok(Progress {
        sent,
        remaining: len - sent,
        method,
    })
}

/// One `pread` of up to 64 KiB and one `send` of it: the bytes the socket took (0: the file
/// ended). Bytes read but not taken are read again by the next call.
fn copy_once(
    sock: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    want: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    buf.resize(COPY_BUF, 0);
    let n = loop {
        match sys::pread(file, &mut buf[..want.min(COPY_BUF)], offset) {
            Err(e) if interrupted(&e) => continue,
            r => break r?,
        }
    };
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: `buf` is our own, readable for `n` bytes.
    unsafe { sys::send(sock, buf.as_ptr(), n, 0) }
}
