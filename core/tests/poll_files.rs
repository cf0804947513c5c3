//! The poller and what belongs to the open file description, fork, hostile arguments and the
//! waker (issue 17, items 2, 3 and 5):
//!
//! - the RT-signal backends never write flags onto a file that is not the one registered (an
//!   fd number closed and reused), restore the status flags, signal and owner as they were,
//!   and refuse an open file that another RT-signal poller (or another fd of this one) has;
//! - a poller inherited through `fork()` is inert in the child, and dropping it there leaves
//!   the parent's files alone;
//! - no abort or panic from arguments: a huge or closed fd, `Duration::MAX`; `select` reports
//!   a closed registered fd with `error` instead of failing every wait;
//! - a poller has one waker.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use shmio::poll::{Backend, Events, Interest, Poller, Waker};

const RT: [Backend; 2] = [Backend::RtSig, Backend::RtSigOneFd];
const LONG: Option<Duration> = Some(Duration::from_secs(5));
const SHORT: Option<Duration> = Some(Duration::from_millis(30));
const NOW: Option<Duration> = Some(Duration::ZERO);

fn pipe(flags: libc::c_int) -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a live array of two ints.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), flags | libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 returned two fresh descriptors we now own.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

fn getfl(fd: RawFd) -> libc::c_int {
    // SAFETY: F_GETFL takes no argument.
    let f = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(f >= 0, "F_GETFL {fd}: {}", std::io::Error::last_os_error());
    f
}

fn getsig(fd: RawFd) -> libc::c_int {
    // SAFETY: F_GETSIG (11) takes no argument.
    unsafe { libc::fcntl(fd, 11) }
}

fn getown(fd: RawFd) -> libc::c_int {
    // SAFETY: F_GETOWN takes no argument.
    unsafe { libc::fcntl(fd, libc::F_GETOWN) }
}

fn write_byte(fd: RawFd) {
    // SAFETY: a live one-byte buffer.
    let n = unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
    assert_eq!(n, 1, "write: {}", std::io::Error::last_os_error());
}

fn dup2(from: RawFd, to: RawFd) {
    // SAFETY: plain dup2; `to` is a number this test owns (or takes over on purpose).
    let rc = unsafe { libc::dup2(from, to) };
    assert_eq!(rc, to, "dup2: {}", std::io::Error::last_os_error());
}

fn close(fd: RawFd) {
    // SAFETY: `fd` is a number this test made with dup2 and owns.
    unsafe { libc::close(fd) };
}

static N: AtomicU32 = AtomicU32::new(0);

fn temp_path(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "shmio-poll-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

#[test]
fn rtsig_deregister_or_drop_after_fd_reuse_leaves_the_new_file_alone() {
    for b in RT {
        for by_drop in [false, true] {
            let (r, _w) = pipe(0);
            let fd = r.as_raw_fd();
            let mut p = Poller::new(b).unwrap();
            p.register(fd, 1, Interest::READABLE).unwrap();
            // An O_APPEND log takes the registered fd's number (dup2 closes the pipe's fd and
            // reuses the number atomically, so no other test thread can take it meanwhile).
            let path = temp_path("log");
            let log = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .unwrap();
            dup2(log.as_raw_fd(), fd);
            drop(log);
            let before = getfl(fd);
            assert_ne!(before & libc::O_APPEND, 0);
            if by_drop {
                drop(p);
            } else {
                p.deregister(fd).unwrap();
                drop(p);
            }
            let after = getfl(fd);
            assert_eq!(
                after, before,
                "{b:?} (drop: {by_drop}): the new file's flags changed: {before:#o} -> {after:#o}"
            );
            assert_eq!(getsig(fd), 0, "{b:?}: F_SETSIG written onto the new file");
            // The log is still appended to.
            // SAFETY: `fd` is the log now; a live buffer.
            unsafe {
                libc::pwrite(fd, b"A".as_ptr().cast(), 1, 0);
                libc::write(fd, b"B".as_ptr().cast(), 1);
            }
            assert_eq!(std::fs::read(&path).unwrap(), b"AB");
            std::fs::remove_file(&path).unwrap();
            drop(r); // closes `fd`, the log's copy
        }
    }
}

#[test]
fn rtsig_deregister_and_drop_restore_blocking_mode_signal_and_owner() {
    for b in RT {
        for by_drop in [false, true] {
            let (r, _w) = pipe(0);
            let fd = r.as_raw_fd();
            let flags = getfl(fd);
            assert_eq!(flags & (libc::O_NONBLOCK | libc::O_ASYNC), 0);
            let mut p = Poller::new(b).unwrap();
            p.register(fd, 1, Interest::READABLE).unwrap();
            assert_ne!(
                getfl(fd) & libc::O_NONBLOCK,
                0,
                "{b:?}: registered fds are non-blocking"
            );
            if by_drop {
                drop(p);
            } else {
                p.deregister(fd).unwrap();
            }
            assert_eq!(
                getfl(fd),
                flags,
                "{b:?} (drop: {by_drop}): status flags not restored (O_NONBLOCK {:#o})",
                libc::O_NONBLOCK
            );
            assert_eq!(getsig(fd), 0, "{b:?}: F_SETSIG not restored");
            assert_eq!(getown(fd), 0, "{b:?}: owner not restored");
        }
    }
}

#[test]
fn rtsig_refuses_an_fd_and_its_dup_in_one_poller() {
    for b in RT {
        let mut p = Poller::new(b).unwrap();
        let mut ev = Events::with_capacity(4);
        let (a, peer) = pair();
        let dup = a.try_clone().unwrap();
        p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
        let e = p.register(dup.as_raw_fd(), 2, Interest::READABLE);
        assert!(
            e.is_err(),
            "{b:?}: a dup of a registered fd was accepted (it takes every signal)"
        );
        let msg = e.unwrap_err().to_string();
        assert!(msg.contains("RT-signal poller"), "{b:?}: {msg}");
        // The first registration still hears.
        write_byte(peer.as_raw_fd());
        let got: Vec<u64> = {
            p.wait(&mut ev, LONG).unwrap();
            ev.iter().map(|e| e.token).collect()
        };
        assert_eq!(got, [1], "{b:?}");
        if b == Backend::RtSigOneFd {
            // Delivered, so disarmed (O_ASYNC off): still refused.
            assert!(p.register(dup.as_raw_fd(), 2, Interest::READABLE).is_err());
        }
        // Once the first is deregistered, the dup may be registered.
        p.deregister(a.as_raw_fd()).unwrap();
        p.register(dup.as_raw_fd(), 2, Interest::READABLE).unwrap();
        p.wait(&mut ev, LONG).unwrap();
        assert_eq!(ev.iter().map(|e| e.token).collect::<Vec<_>>(), [2], "{b:?}");
        drop(p);
    }
}

#[test]
fn rtsig_refuses_a_socket_registered_in_another_threads_poller() {
    for b in RT {
        let (a, peer) = pair();
        let fd = a.as_raw_fd();
        let mut p = Poller::new(b).unwrap();
        let mut ev = Events::with_capacity(4);
        p.register(fd, 1, Interest::READABLE).unwrap();
        let (refused, msg) = std::thread::spawn(move || {
            let mut q = Poller::new(b).unwrap();
            match q.register(fd, 2, Interest::READABLE) {
                Ok(()) => (false, String::new()),
                Err(e) => (true, e.to_string()),
            }
            // `q` dropped here, still in this thread.
        })
        .join()
        .unwrap();
        assert!(
            refused,
            "{b:?}: a second thread's poller took the socket's signals"
        );
        assert!(msg.contains("another"), "{b:?}: {msg}");
        // The first thread still hears.
        write_byte(peer.as_raw_fd());
        p.wait(&mut ev, LONG).unwrap();
        assert_eq!(ev.iter().map(|e| e.token).collect::<Vec<_>>(), [1], "{b:?}");
        drop(p);
    }
}

/// Forks; the child runs `f` and exits with its result; returns the child's exit status.
fn in_child(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `f` (library calls on inherited handles, no locks held by
    // other threads are needed: glibc's fork resets malloc) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(99);
        // SAFETY: leaving the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: our own child, a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status), "child died: {status:#x}");
    libc::WEXITSTATUS(status)
}

#[test]
fn a_poller_inherited_through_fork_is_inert_and_its_drop_leaves_shared_files_alone() {
    for b in Backend::ALL {
        let (a, peer) = pair();
        let (x, _xpeer) = pair();
        let mut p = Poller::new(b).unwrap();
        let mut ev = Events::with_capacity(4);
        p.register(a.as_raw_fd(), 1, Interest::READABLE).unwrap();
        let w = Waker::new(&mut p, 9).unwrap();
        let flags = getfl(a.as_raw_fd());
        let mut slot = Some(p);
        let code = in_child(|| {
            // The child's copy of the poller, dropped at the end like any other value.
            let mut p = slot.take().unwrap();
            let mut code = 0;
            let mut ev = Events::with_capacity(4);
            let forked = |e: shmio::poll::Error| e.to_string().contains("fork");
            if !p.wait(&mut ev, NOW).is_err_and(forked) {
                code |= 1;
            }
            if !p
                .register(x.as_raw_fd(), 2, Interest::READABLE)
                .is_err_and(forked)
            {
                code |= 2;
            }
            if !p.deregister(a.as_raw_fd()).is_err_and(forked) {
                code |= 4;
            }
            if !w.wake().is_err_and(forked) {
                code |= 8;
            }
            drop(p);
            code
        });
        let mut p = slot.unwrap();
        assert_eq!(
            code, 0,
            "{b:?}: bits: 1 wait, 2 register, 4 deregister, 8 wake"
        );
        // The child's drop did not touch the shared file, and the parent still hears.
        assert_eq!(
            getfl(a.as_raw_fd()),
            flags,
            "{b:?}: the child changed the flags"
        );
        assert!(
            p.wait(&mut ev, NOW).unwrap() == 0,
            "{b:?}: the child's wake arrived"
        );
        write_byte(peer.as_raw_fd());
        p.wait(&mut ev, LONG).unwrap();
        assert_eq!(ev.iter().map(|e| e.token).collect::<Vec<_>>(), [1], "{b:?}");
        drop(p);
    }
}

#[test]
fn register_of_a_huge_or_closed_fd_is_an_error_not_an_abort() {
    for b in Backend::ALL {
        let mut p = Poller::new(b).unwrap();
        for fd in [i32::MAX, i32::MAX - 1, 1 << 24] {
            let e = p.register(fd, 1, Interest::READABLE);
            assert!(e.is_err(), "{b:?}: fd {fd} is not open");
        }
    }
    // A large fd that is open works on the fd-indexed backends.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a live rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let high = (lim.rlim_cur.min(200_000) as RawFd) - 1;
    if high < 2000 {
        return;
    }
    let (r, w) = pipe(libc::O_NONBLOCK);
    dup2(r.as_raw_fd(), high);
    for b in [Backend::Poll, Backend::Epoll, Backend::RtSig] {
        let mut p = Poller::new(b).unwrap();
        let mut ev = Events::with_capacity(4);
        p.register(high, 5, Interest::READABLE).unwrap();
        write_byte(w.as_raw_fd());
        p.wait(&mut ev, LONG).unwrap();
        assert_eq!(ev.iter().map(|e| e.token).collect::<Vec<_>>(), [5], "{b:?}");
        let mut buf = [0u8; 8];
        let _ = (&std::fs::File::from(r.try_clone().unwrap())).read(&mut buf);
        p.deregister(high).unwrap();
    }
    close(high);
}

#[test]
fn wait_with_duration_max_does_not_panic() {
    for b in Backend::ALL {
        let mut p = Poller::new(b).unwrap();
        let mut ev = Events::with_capacity(4);
        let (a, peer) = pair();
        p.register(a.as_raw_fd(), 3, Interest::READABLE).unwrap();
        write_byte(peer.as_raw_fd());
        let n = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.wait(&mut ev, Some(Duration::MAX)).unwrap()
        }));
        assert!(
            matches!(n, Ok(1)),
            "{b:?}: wait(Duration::MAX) panicked or failed"
        );
        drop(p);
    }
}

#[test]
fn select_and_poll_report_a_closed_registered_fd_with_error_and_keep_serving_the_others() {
    // A high number nobody else in this test binary uses (they stay far below 900).
    for (b, num) in [(Backend::Select, 900), (Backend::Poll, 901)] {
        let (dead_r, _dead_w) = pipe(libc::O_NONBLOCK);
        let (live_r, live_w) = pipe(libc::O_NONBLOCK);
        dup2(dead_r.as_raw_fd(), num);
        let mut p = Poller::new(b).unwrap();
        let mut ev = Events::with_capacity(4);
        p.register(num, 1, Interest::READABLE).unwrap();
        p.register(live_r.as_raw_fd(), 2, Interest::READABLE)
            .unwrap();
        close(num);
        write_byte(live_w.as_raw_fd());
        for _ in 0..2 {
            let n = p.wait(&mut ev, LONG);
            assert!(n.is_ok(), "{b:?}: a closed fd fails every wait: {n:?}");
            let mut got: Vec<(u64, bool, bool)> =
                ev.iter().map(|e| (e.token, e.readable, e.error)).collect();
            got.sort();
            assert_eq!(got, [(1, false, true), (2, true, false)], "{b:?}");
        }
        p.deregister(num).unwrap();
        p.wait(&mut ev, LONG).unwrap();
        assert_eq!(ev.iter().map(|e| e.token).collect::<Vec<_>>(), [2], "{b:?}");
    }
}

#[test]
fn a_poller_has_one_waker() {
    for b in Backend::ALL {
        let mut p = Poller::new(b).unwrap();
        let mut ev = Events::with_capacity(4);
        let w1 = Waker::new(&mut p, 1).unwrap();
        let e = Waker::new(&mut p, 2);
        assert!(
            e.is_err(),
            "{b:?}: a second waker silently replaced the first"
        );
        let msg = e.unwrap_err().to_string();
        assert!(msg.contains("waker"), "{msg}");
        // The same token: another handle on the same waker.
        let w1b = Waker::new(&mut p, 1).unwrap();
        w1.wake().unwrap();
        p.wait(&mut ev, LONG).unwrap();
        assert_eq!(ev.iter().map(|e| e.token).collect::<Vec<_>>(), [1], "{b:?}");
        w1b.wake().unwrap();
        p.wait(&mut ev, LONG).unwrap();
        assert_eq!(ev.iter().map(|e| e.token).collect::<Vec<_>>(), [1], "{b:?}");
        assert_eq!(p.wait(&mut ev, SHORT).unwrap(), 0);
        // A waker outlives its poller: waking then does nothing, and fails nothing.
        drop(p);
        w1.wake().unwrap();
    }
}
