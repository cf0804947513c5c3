//! Status codes, the last-error message and the panic boundary, as C sees them.

use std::ptr;

use super::text;
use crate::ffi::{last_error_string, shmio_status, shmio_status::*};
use crate::*;

#[test]
fn version_matches_core() {
    assert_eq!(text(shmio_version()), shmio_core::VERSION);
    assert_eq!(text(shmio_version()), "0.1.0");
}

#[test]
fn status_str_covers_every_status() {
    let mut seen = std::collections::HashSet::new();
    for (i, s) in shmio_status::ALL.iter().enumerate() {
        // 0..=24 dense, then the poller's statuses from 30.
        let want = if i <= 24 {
            i as u32
        } else {
            30 + (i as u32 - 25)
        };
        assert_eq!(*s as u32, want, "ALL is in numeric order");
        assert_eq!(shmio_status::from_u32(want), Some(*s));
        let d = text(shmio_status_str(*s as u32));
        assert_ne!(d, "unknown status", "{s:?}");
        assert!(seen.insert(d), "descriptions are distinct");
    }
    assert_eq!(SHMIO_ERR_PANIC as u32, 20);
    assert_eq!(SHMIO_ERR_TORN as u32, 21);
    assert_eq!(SHMIO_ERR_FORKED as u32, 22);
    assert_eq!(SHMIO_ERR_CANCELLED as u32, 23);
    assert_eq!(SHMIO_ERR_NO_SPACE as u32, 24);
    assert_eq!(text(shmio_status_str(24)), "no space on the file system");
    assert_eq!(text(shmio_status_str(25)), "unknown status");
    assert_eq!(text(shmio_status_str(29)), "unknown status");
    assert_eq!(SHMIO_ERR_NOT_REGISTERED as u32, 30);
    assert_eq!(SHMIO_ERR_WRONG_THREAD as u32, 31);
    assert_eq!(text(shmio_status_str(32)), "unknown status");
    assert_eq!(text(shmio_status_str(u32::MAX)), "unknown status");
}

#[test]
fn last_error_is_reset_by_each_call() {
    // SAFETY: valid pointers (NULL where tested).
    unsafe {
        assert_eq!(shmio_queue_unlink(ptr::null()), SHMIO_ERR_NULL_POINTER);
        assert_ne!(text(shmio_last_error_message()), "");
        // Neither of these resets it.
        let _ = shmio_status_str(0);
        let _ = shmio_version();
        assert_ne!(text(shmio_last_error_message()), "");
        let mut o = std::mem::MaybeUninit::uninit();
        assert_eq!(shmio_queue_options_init(o.as_mut_ptr()), SHMIO_OK);
        assert_eq!(text(shmio_last_error_message()), "");
    }
    // Each thread has its own.
    std::thread::spawn(|| {
        // SAFETY: NULL is tested.
        unsafe { shmio_queue_unlink(ptr::null()) };
    })
    .join()
    .unwrap();
    assert_eq!(text(shmio_last_error_message()), "");
}

#[test]
fn panics_become_status() {
    let st = crate::ffi::boundary("test_fn", || panic!("boom"));
    assert_eq!(st, SHMIO_ERR_PANIC);
    assert_eq!(last_error_string(), "test_fn: panic: boom");
}
