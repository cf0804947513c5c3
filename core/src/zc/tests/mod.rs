//! Tests of the zero-copy calls against real sockets: TCP on loopback and Unix socket pairs.

mod cache;
mod sendfile;
mod splice;
mod zerocopy;

use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

/// A connected TCP pair on loopback: (sender, receiver).
pub(super) fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, b)
}

/// A Unix stream socket pair: (sender, receiver).
pub(super) fn unix_pair() -> (UnixStream, UnixStream) {
    UnixStream::pair().unwrap()
}

/// Bytes `0..len` of a recognisable pattern.
pub(super) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

/// A unique temporary path, removed on drop.
pub(super) struct Tmp(pub(super) PathBuf);

impl Tmp {
    pub(super) fn new(tag: &str) -> Tmp {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Tmp(std::env::temp_dir().join(format!("shmio-zc-{}-{n}-{tag}", std::process::id())))
    }

    /// A file holding `data`, opened read-write.
    pub(super) fn file(tag: &str, data: &[u8]) -> (Tmp, File) {
        let t = Tmp::new(tag);
        std::fs::write(&t.0, data).unwrap();
        let f = File::options().read(true).write(true).open(&t.0).unwrap();
        (t, f)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A thread reading `rx` to its end (the sender's close).
pub(super) fn read_all(mut rx: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        rx.read_to_end(&mut v).unwrap();
        v
    })
}

/// Reads up to what is there now from a non-blocking socket.
pub(super) fn drain(rx: &mut UnixStream, into: &mut Vec<u8>) {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match rx.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// A non-blocking sender with a small send buffer and a non-blocking receiver, so that sends
/// fill up quickly.
pub(super) fn small_unix_pair() -> (UnixStream, UnixStream) {
    let (a, b) = unix_pair();
    set_sndbuf(&a, 16 << 10);
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

pub(super) fn set_sndbuf(s: &impl AsFd, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: a live int and its size.
    let r = unsafe {
        libc::setsockopt(
            s.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&bytes as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
}

/// Runs `f` in a forked child with `SIGPIPE` at its default action (death), and returns the
/// child's exit code: 0 if `f` returned true, 1 if false; the test fails if it died of a
/// signal.
pub(super) fn in_child_with_sigpipe(f: impl FnOnce() -> bool) -> i32 {
    // SAFETY: the child only makes system calls and exits with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: resetting a signal's disposition in our own child.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let ok = f();
        // SAFETY: ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: our own child, a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status),
        "child died of signal {}",
        libc::WTERMSIG(status)
    );
    libc::WEXITSTATUS(status)
}
