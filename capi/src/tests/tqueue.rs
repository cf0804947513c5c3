//! The in-process hand-off queue's C functions.

use std::ffi::c_void;
use std::ptr;
use std::time::{Duration, Instant};

use crate::status::shmio_status::{self, *};
use crate::*;

#[test]
fn tqueue_push_pop_timeout_close() {
    let mut q = ptr::null_mut();
    // SAFETY: valid pointers throughout; the queue is freed after the worker is joined.
    unsafe {
        assert_eq!(shmio_tqueue_new(2, &mut q), SHMIO_OK);
        let mut vals = [10u32, 20, 30];
        let p0: *mut c_void = (&raw mut vals[0]).cast();
        let p1: *mut c_void = (&raw mut vals[1]).cast();
        assert_eq!(shmio_tqueue_push(q, p0, 0), SHMIO_OK);
        assert_eq!(shmio_tqueue_push(q, ptr::null_mut(), 0), SHMIO_OK);
        assert_eq!(shmio_tqueue_push(q, p1, 0), SHMIO_ERR_WOULD_BLOCK);
        // The same status for full and empty (EAGAIN), told apart by the message.
        assert_eq!(last_message(), "shmio_tqueue_push: hand-off queue is full");
        let t = Instant::now();
        assert_eq!(shmio_tqueue_push(q, p1, 15), SHMIO_ERR_TIMEOUT);
        assert!(
            last_message().ends_with("stayed full"),
            "{}",
            last_message()
        );
        assert!(t.elapsed() >= Duration::from_millis(15));
        let mut len = 0;
        assert_eq!(shmio_tqueue_len(q, &mut len), SHMIO_OK);
        assert_eq!(len, 2);
        let mut item: *mut c_void = ptr::null_mut();
        assert_eq!(shmio_tqueue_pop(q, &mut item, 0), SHMIO_OK);
        assert_eq!(item, p0);
        assert_eq!(*item.cast::<u32>(), 10);
        assert_eq!(shmio_tqueue_pop(q, &mut item, -1), SHMIO_OK);
        assert!(item.is_null());
        assert_eq!(shmio_tqueue_pop(q, &mut item, 0), SHMIO_ERR_WOULD_BLOCK);
        assert_eq!(last_message(), "shmio_tqueue_pop: hand-off queue is empty");
        assert_eq!(shmio_tqueue_pop(q, &mut item, 10), SHMIO_ERR_TIMEOUT);
        assert!(
            last_message().ends_with("stayed empty"),
            "{}",
            last_message()
        );

        // A blocked popper on another thread is woken by close.
        let addr = q.expose_provenance();
        let worker = std::thread::spawn(move || pop_until_closed(addr));
        assert_eq!(shmio_tqueue_push(q, p1, -1), SHMIO_OK);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(shmio_tqueue_close(q), SHMIO_OK);
        assert_eq!(shmio_tqueue_push(q, p1, -1), SHMIO_ERR_CLOSED);
        let (st, got) = worker.join().unwrap();
        assert_eq!(st, SHMIO_ERR_CLOSED);
        assert_eq!(got, vec![p1.expose_provenance()]);
        assert_eq!(shmio_tqueue_close(q), SHMIO_OK);
        shmio_tqueue_free(q);
    }
}

/// This thread's last error message.
fn last_message() -> String {
    // SAFETY: the library's string, valid until this thread's next call.
    unsafe { std::ffi::CStr::from_ptr(shmio_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

/// Pops from the queue at `addr` until a failure; returns it and the items popped.
fn pop_until_closed(addr: usize) -> (shmio_status, Vec<usize>) {
    let q: *mut shmio_tqueue = ptr::with_exposed_provenance_mut(addr);
    let mut item = ptr::null_mut();
    let mut got = Vec::new();
    loop {
        // SAFETY: the queue outlives this thread (joined before it is freed).
        match unsafe { shmio_tqueue_pop(q, &mut item, -1) } {
            SHMIO_OK => got.push(item.expose_provenance()),
            st => return (st, got),
        }
    }
}
