//! The argument checks every exported function makes: NULL pointers, enumerations and numbers
//! out of range.

use std::ptr;

use super::{Name, create, inited, open, options, queue_stats, text};
use crate::ffi::last_error_string;
use crate::status::shmio_status::*;
use crate::*;

#[test]
fn null_pointers_are_reported() {
    let name = Name::new("null");
    let mut p = ptr::null_mut();
    let mut len = 0usize;
    let mut info = shmio_queue_info {
        policy: 9,
        ..inited(shmio_queue_info_init)
    };
    // SAFETY: every call gets NULL where tested and valid pointers elsewhere.
    unsafe {
        assert_eq!(
            shmio_queue_options_init(ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        assert!(
            last_error_string().contains("`opts` is NULL"),
            "{}",
            last_error_string()
        );
        assert_eq!(
            shmio_producer_create(ptr::null(), ptr::null(), &mut p),
            SHMIO_ERR_NULL_POINTER
        );
        assert!(last_error_string().contains("`name`"));
        assert_eq!(
            shmio_producer_create(name.ptr(), ptr::null(), ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_consumer_open(name.ptr(), 0, 0, ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_producer_send(ptr::null_mut(), ptr::null(), 0, 0, ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        assert!(last_error_string().starts_with("shmio_producer_send: "));
        assert_eq!(
            shmio_consumer_recv(
                ptr::null_mut(),
                ptr::null_mut(),
                0,
                0,
                &mut len,
                ptr::null_mut()
            ),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_producer_info(ptr::null(), &mut info),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_consumer_release(ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(shmio_queue_unlink(ptr::null()), SHMIO_ERR_NULL_POINTER);
        assert_eq!(shmio_tqueue_new(4, ptr::null_mut()), SHMIO_ERR_NULL_POINTER);
        assert_eq!(
            shmio_tqueue_len(ptr::null(), &mut len),
            SHMIO_ERR_NULL_POINTER
        );
        // Closing or freeing NULL is a no-op.
        shmio_producer_close(ptr::null_mut());
        shmio_consumer_close(ptr::null_mut());
        shmio_tqueue_free(ptr::null_mut());
        assert_eq!(text(shmio_last_error_message()), "");

        // With a live handle: NULL data with a length, NULL outputs.
        let p = create(&name, None);
        let c = open(&name, SHMIO_START_OLDEST, 0);
        assert_eq!(
            shmio_producer_send(p, ptr::null(), 3, 0, ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        assert!(last_error_string().contains("`data`"));
        assert_eq!(
            shmio_producer_send(p, ptr::null(), 0, 0, ptr::null_mut()),
            SHMIO_OK
        );
        let mut buf = [0u8; 8];
        assert_eq!(
            shmio_consumer_recv(
                c,
                buf.as_mut_ptr().cast(),
                8,
                0,
                ptr::null_mut(),
                ptr::null_mut()
            ),
            SHMIO_ERR_NULL_POINTER
        );
        assert!(last_error_string().contains("`len_out`"));
        // Nothing was consumed by the refused call: the empty record is still there.
        assert_eq!(
            shmio_consumer_recv(c, ptr::null_mut(), 0, 0, &mut len, ptr::null_mut()),
            SHMIO_OK
        );
        assert_eq!(len, 0);
        assert_eq!(
            shmio_producer_reserve(p, 0, ptr::null_mut(), &mut len),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_consumer_fd(c, ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_consumer_lost(c, ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_consumer_set_spin_ns(ptr::null_mut(), 0),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_producer_set_spin_ns(ptr::null_mut(), 0),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(shmio_consumer_set_spin_ns(c, 0), SHMIO_OK);
        assert_eq!(shmio_producer_set_spin_ns(p, 5_000), SHMIO_OK);

        assert_eq!(
            shmio_consumer_position(c, ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_consumer_info(c, ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        shmio_consumer_close(c);
        shmio_producer_close(p);
    }
}

#[test]
fn bad_enumerations_and_ranges_are_invalid_arguments() {
    let name = Name::new("inval");
    let mut p = ptr::null_mut::<shmio_producer>();
    // SAFETY: valid pointers throughout.
    unsafe {
        let o = options(|o| o.policy = 2);
        assert_eq!(
            shmio_producer_create(name.ptr(), &o, &mut p),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        assert!(p.is_null());
        assert!(
            last_error_string().contains("policy 2"),
            "{}",
            last_error_string()
        );

        let o = options(|o| o.struct_size = 4);
        assert_eq!(
            shmio_producer_create(name.ptr(), &o, &mut p),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        assert!(last_error_string().contains("struct_size"));

        let o = options(|o| o.slot_size = 0);
        assert_eq!(
            shmio_producer_create(name.ptr(), &o, &mut p),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        let o = options(|o| o.mode = 0o10000);
        assert_eq!(
            shmio_producer_create(name.ptr(), &o, &mut p),
            SHMIO_ERR_INVALID_ARGUMENT
        );

        let bad = [0xffu8, 0xfe, 0];
        assert_eq!(
            shmio_producer_create(bad.as_ptr().cast(), ptr::null(), &mut p),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        assert!(last_error_string().contains("UTF-8"));

        let p = create(&name, None);
        let mut c = ptr::null_mut();
        assert_eq!(
            shmio_consumer_open(name.ptr(), 3, 0, &mut c),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        assert!(last_error_string().contains("start 3"));
        assert_eq!(
            shmio_consumer_open(name.ptr(), SHMIO_START_SEQUENCE, 99, &mut c),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        assert!(c.is_null());
        let data = [0u8; 1];
        assert_eq!(
            shmio_producer_send(p, data.as_ptr().cast(), usize::MAX, 0, ptr::null_mut()),
            SHMIO_ERR_TOO_LARGE,
            "any length above the slot size, as documented"
        );
        assert_eq!(
            shmio_producer_commit(p, 1, ptr::null_mut()),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            shmio_tqueue_new(0, &mut ptr::null_mut()),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        assert_eq!(queue_stats(&name, 1).0, SHMIO_ERR_NULL_POINTER);
        assert_eq!(queue_stats(&name, usize::MAX).0, SHMIO_ERR_INVALID_ARGUMENT);
        shmio_producer_close(p);
    }
}
