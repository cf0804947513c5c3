//! The poller's and waker's C functions on every backend, across fork and across threads.

use std::ptr;
use std::time::{Duration, Instant};

use super::{exit_code, inited, text};
use crate::ffi::last_error_string;
use crate::status::shmio_status::*;
use crate::*;

/// Stats to be filled in by `shmio_poller_stats_get`.
fn no_stats() -> shmio_poller_stats {
    inited(shmio_poller_stats_init)
}

#[test]
fn poller_c_api_round_trip_on_every_backend() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    for b in 0..=6u32 {
        let mut p = ptr::null_mut();
        // SAFETY: a valid out pointer.
        assert_eq!(unsafe { shmio_poller_new(b, &mut p) }, SHMIO_OK);
        let (x, mut y) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = x.as_raw_fd();
        // SAFETY: a live poller used by this thread.
        unsafe {
            assert_eq!(
                shmio_poller_register(p, fd, 77, SHMIO_INTEREST_READABLE),
                SHMIO_OK
            );
            assert_eq!(
                shmio_poller_register(p, fd, 77, SHMIO_INTEREST_READABLE),
                SHMIO_ERR_ALREADY_EXISTS
            );
            assert_eq!(
                shmio_poller_register(p, fd, 77, 64),
                SHMIO_ERR_INVALID_ARGUMENT
            );
            assert_eq!(
                shmio_poller_deregister(p, y.as_raw_fd()),
                SHMIO_ERR_NOT_REGISTERED
            );
        }
        y.write_all(b"x").unwrap();
        let mut evs = [shmio_event { token: 0, flags: 0 }; 4];
        let mut n = 0usize;
        // SAFETY: `evs` holds 4 events; `n` is writable.
        let st = unsafe { shmio_poller_wait(p, evs.as_mut_ptr(), 4, 5000, &mut n) };
        assert_eq!(st, SHMIO_OK, "{}", last_error_string());
        assert_eq!(n, 1, "backend {b}");
        assert_eq!(evs[0].token, 77);
        assert_ne!(evs[0].flags & SHMIO_EVENT_READABLE, 0);
        let mut s = no_stats();
        // SAFETY: live poller, writable stats.
        assert_eq!(unsafe { shmio_poller_stats_get(p, &mut s) }, SHMIO_OK);
        assert_eq!((s.waits, s.events), (1, 1));
        let mut w = ptr::null_mut();
        // SAFETY: live poller, valid out pointer.
        assert_eq!(unsafe { shmio_waker_new(p, 5, &mut w) }, SHMIO_OK);
        // SAFETY: live waker.
        assert_eq!(unsafe { shmio_waker_wake(w) }, SHMIO_OK);
        let mut got_waker = false;
        for _ in 0..2 {
            // SAFETY: as above.
            unsafe { shmio_poller_wait(p, evs.as_mut_ptr(), 4, 5000, &mut n) };
            got_waker |= evs[..n].iter().any(|e| e.token == 5);
            if got_waker {
                break;
            }
        }
        assert!(got_waker, "backend {b}");
        // SAFETY: handles freed once.
        unsafe {
            shmio_waker_free(w);
            shmio_poller_free(p);
        }
    }
    let mut b = 0u32;
    // SAFETY: NUL-terminated names, writable out.
    unsafe {
        assert_eq!(
            shmio_backend_from_name(c"epoll-et".as_ptr(), &mut b),
            SHMIO_OK
        );
        assert_eq!(b, SHMIO_BACKEND_EPOLL_ET);
        assert_eq!(
            shmio_backend_from_name(c"kqueue".as_ptr(), &mut b),
            SHMIO_ERR_INVALID_ARGUMENT
        );
    }
    assert_eq!(
        text(shmio_backend_name(SHMIO_BACKEND_RTSIG_ONEFD)),
        "rtsig-onefd"
    );
    let mut p = ptr::null_mut();
    // SAFETY: valid out pointer.
    let st = unsafe { shmio_poller_new(9, &mut p) };
    assert_eq!(st, SHMIO_ERR_INVALID_ARGUMENT);
    assert!(p.is_null());
}

/// A raw handle moved to another thread in the tests below.
struct Sent<T>(*mut T);
// SAFETY: the handles sent are `Sync` (`shmio_poller`: a mutex; `shmio_waker`: an `Arc`), and
// each test keeps them alive until the thread is joined.
unsafe impl<T> Send for Sent<T> {}

/// The wait's status, event count and first token, as the waiting thread saw them.
type WaitResult = (shmio_status, usize, u64);

/// An epoll poller, its waker (`token`), and a thread waiting on it for at most `ms`. Join the
/// thread before freeing the poller.
fn epoll_with_a_waiting_thread(
    token: u64,
    ms: i32,
) -> (
    *mut shmio_poller,
    *mut shmio_waker,
    std::thread::JoinHandle<WaitResult>,
) {
    let mut p = ptr::null_mut();
    let mut w = ptr::null_mut();
    // SAFETY: valid out pointers; a live poller.
    unsafe {
        assert_eq!(shmio_poller_new(SHMIO_BACKEND_EPOLL, &mut p), SHMIO_OK);
        assert_eq!(shmio_waker_new(p, token, &mut w), SHMIO_OK);
    }
    let sent = Sent(p);
    let waiter = std::thread::spawn(move || {
        let sent = sent;
        let mut evs = [shmio_event { token: 0, flags: 0 }; 4];
        let mut n = 0usize;
        // SAFETY: a live poller (joined before it is freed), valid buffers.
        let st = unsafe { shmio_poller_wait(sent.0, evs.as_mut_ptr(), 4, ms, &mut n) };
        (st, n, evs[0].token)
    });
    (p, w, waiter)
}

#[test]
fn poller_inherited_through_fork_is_inert_and_its_free_leaves_shared_files_alone() {
    use std::os::fd::AsRawFd;
    for b in [
        SHMIO_BACKEND_RTSIG,
        SHMIO_BACKEND_RTSIG_ONEFD,
        SHMIO_BACKEND_EPOLL,
    ] {
        let (x, y) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = x.as_raw_fd();
        let mut p = ptr::null_mut();
        let mut w = ptr::null_mut();
        // SAFETY: valid out pointers; a live poller used by this thread.
        unsafe {
            assert_eq!(shmio_poller_new(b, &mut p), SHMIO_OK);
            assert_eq!(
                shmio_poller_register(p, fd, 1, SHMIO_INTEREST_READABLE),
                SHMIO_OK
            );
            assert_eq!(shmio_waker_new(p, 9, &mut w), SHMIO_OK);
        }
        // SAFETY: F_GETFL takes no argument.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: the child only calls the library on the inherited handles and leaves with
        // _exit; the parent waits for it.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let mut code = 0;
            let mut evs = [shmio_event { token: 0, flags: 0 }; 4];
            let mut n = 0usize;
            // SAFETY: inherited live handles, valid buffers.
            unsafe {
                if shmio_poller_wait(p, evs.as_mut_ptr(), 4, 0, &mut n) != SHMIO_ERR_FORKED {
                    code |= 1;
                }
                if shmio_poller_deregister(p, fd) != SHMIO_ERR_FORKED {
                    code |= 2;
                }
                if shmio_waker_wake(w) != SHMIO_ERR_FORKED {
                    code |= 4;
                }
                if shmio_poller_backend(p) != b {
                    code |= 8;
                }
                shmio_waker_free(w);
                shmio_poller_free(p);
                libc::_exit(code);
            }
        }
        assert_eq!(
            exit_code(pid),
            0,
            "backend {b}: bits: 1 wait, 2 deregister, 4 wake, 8 backend"
        );
        // SAFETY: F_GETFL takes no argument.
        let now = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        assert_eq!(
            now, flags,
            "backend {b}: the child's free changed the shared file"
        );
        std::io::Write::write_all(&mut &y, b"x").unwrap();
        let mut evs = [shmio_event { token: 0, flags: 0 }; 4];
        let mut n = 0usize;
        // SAFETY: live handles, valid buffers; freed once.
        unsafe {
            assert_eq!(
                shmio_poller_wait(p, evs.as_mut_ptr(), 4, 5000, &mut n),
                SHMIO_OK
            );
            assert_eq!(
                (n, evs[0].token),
                (1, 1),
                "backend {b}: the parent went deaf"
            );
            shmio_waker_free(w);
            shmio_poller_free(p);
        }
        drop(x);
    }
}

#[test]
fn poller_a_thread_waited_in_at_the_fork_is_forked_not_busy_in_the_child() {
    let (p, w, waiter) = epoll_with_a_waiting_thread(9, 30_000);
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: the child only calls the library on the inherited handles and leaves with
    // _exit; the parent waits for it.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut evs = [shmio_event { token: 0, flags: 0 }; 4];
        let mut n = 0usize;
        // SAFETY: an inherited live handle, valid buffers. The parent's waiting thread holds
        // the poller's call lock in the child's copy, and nobody will ever give it back.
        let st = unsafe { shmio_poller_wait(p, evs.as_mut_ptr(), 4, 0, &mut n) };
        // SAFETY: async-signal-safe exit.
        unsafe { libc::_exit(if st == SHMIO_ERR_FORKED { 0 } else { st as i32 }) };
    }
    assert_eq!(exit_code(pid), 0, "the child's status instead of FORKED");
    // SAFETY: a live waker; freed once, after the waiting thread is done with the poller.
    unsafe { assert_eq!(shmio_waker_wake(w), SHMIO_OK) };
    assert_eq!(waiter.join().unwrap(), (SHMIO_OK, 1, 9));
    // SAFETY: live handles, freed once, no call in progress.
    unsafe {
        shmio_waker_free(w);
        shmio_poller_free(p);
    }
}

#[test]
fn poller_backend_and_stats_answer_during_a_wait_and_an_overlapping_call_fails_cleanly() {
    use std::os::fd::AsRawFd;
    let (p, w, waiter) = epoll_with_a_waiting_thread(5, 10_000);
    let (x, _y) = std::os::unix::net::UnixStream::pair().unwrap();
    // Wait until the other thread is inside its wait (its call counted once it returns, so
    // probe: an overlapping register fails while the wait is in progress).
    let t0 = Instant::now();
    let overlapped = loop {
        // SAFETY: a live poller.
        let st = unsafe { shmio_poller_register(p, x.as_raw_fd(), 1, SHMIO_INTEREST_READABLE) };
        if st == SHMIO_ERR_WRONG_THREAD {
            break true;
        }
        assert_eq!(st, SHMIO_OK, "{}", last_error_string());
        // It got in before the wait: undo and try again.
        // SAFETY: a live poller.
        let _ = unsafe { shmio_poller_deregister(p, x.as_raw_fd()) };
        if t0.elapsed() > Duration::from_secs(5) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if !overlapped {
        let r = waiter.join().unwrap();
        panic!("a register overlapping a wait was accepted (the wait: {r:?})");
    }
    assert!(
        last_error_string().contains("another thread"),
        "{}",
        last_error_string()
    );
    // These answer during the wait.
    let mut s = no_stats();
    // SAFETY: a live poller, writable stats, a live waker.
    unsafe {
        assert_eq!(shmio_poller_backend(p), SHMIO_BACKEND_EPOLL);
        assert_eq!(shmio_poller_stats_get(p, &mut s), SHMIO_OK);
        assert_eq!(shmio_waker_wake(w), SHMIO_OK);
    }
    let (st, n, token) = waiter.join().unwrap();
    assert_eq!((st, n, token), (SHMIO_OK, 1, 5));
    // SAFETY: as above.
    unsafe {
        assert_eq!(shmio_poller_stats_get(p, &mut s), SHMIO_OK);
        assert_eq!((s.waits, s.events), (1, 1));
        shmio_poller_free(p);
        // The waker outlives its poller: a wake does nothing, and succeeds.
        assert_eq!(shmio_waker_wake(w), SHMIO_OK);
        shmio_waker_free(w);
    }
}

#[test]
fn a_poller_has_one_waker_in_c() {
    let mut p = ptr::null_mut();
    let (mut w1, mut w2, mut w3) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    // SAFETY: valid out pointers, live handles, each freed once.
    unsafe {
        assert_eq!(shmio_poller_new(SHMIO_BACKEND_POLL, &mut p), SHMIO_OK);
        assert_eq!(shmio_waker_new(p, 1, &mut w1), SHMIO_OK);
        assert_eq!(shmio_waker_new(p, 2, &mut w2), SHMIO_ERR_ALREADY_EXISTS);
        assert!(w2.is_null());
        assert!(
            last_error_string().contains("waker"),
            "{}",
            last_error_string()
        );
        assert_eq!(shmio_waker_new(p, 1, &mut w3), SHMIO_OK);
        // The first waker still works.
        assert_eq!(shmio_waker_wake(w1), SHMIO_OK);
        let mut evs = [shmio_event { token: 0, flags: 0 }; 4];
        let mut n = 0usize;
        assert_eq!(
            shmio_poller_wait(p, evs.as_mut_ptr(), 4, 5000, &mut n),
            SHMIO_OK
        );
        assert_eq!((n, evs[0].token), (1, 1));
        shmio_waker_free(w1);
        shmio_waker_free(w3);
        shmio_poller_free(p);
    }
}
