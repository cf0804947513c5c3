//! The batch functions: `shmio_producer_send_many` and `shmio_consumer_recv_many`.

use std::ffi::c_void;
use std::ptr;

use super::{Name, create, open, options};
use crate::ffi::last_error_string;
use crate::status::shmio_status::*;
use crate::*;

fn buf(b: &[u8]) -> shmio_buf {
    shmio_buf {
        data: b.as_ptr().cast::<c_void>(),
        len: b.len(),
    }
}

#[test]
fn send_many_and_recv_many_round_trip_and_stop_where_they_must() {
    let name = Name::new("batch");
    let o = options(|o| {
        o.slots = 4;
        o.slot_size = 16;
        o.policy = SHMIO_POLICY_BACKPRESSURE;
    });
    let p = create(&name, Some(&o));
    let c = open(&name, SHMIO_START_OLDEST, 0);
    let big = [9u8; 17];
    // SAFETY: live handles; every pointer is valid for what the call reads or writes.
    unsafe {
        let mut sent = usize::MAX;
        // A NULL record pointer with a length: refused before anything is sent.
        let bad = [
            buf(b"a"),
            shmio_buf {
                data: ptr::null(),
                len: 1,
            },
        ];
        assert_eq!(
            shmio_producer_send_many(p, bad.as_ptr(), 2, 0, &mut sent),
            SHMIO_ERR_NULL_POINTER
        );
        assert!(
            last_error_string().contains("recs[1].data"),
            "{}",
            last_error_string()
        );
        // Two fit, the third is too long: the batch ends before it, the next call says why.
        let recs = [buf(b"ab"), buf(b""), buf(&big)];
        assert_eq!(
            shmio_producer_send_many(p, recs.as_ptr(), 3, 0, &mut sent),
            SHMIO_OK
        );
        assert_eq!(sent, 2);
        assert_eq!(
            shmio_producer_send_many(p, recs[2..].as_ptr(), 1, 0, &mut sent),
            SHMIO_ERR_TOO_LARGE
        );
        // Two more fill the 4-slot ring; no wait allowed: the batch ends at the full ring.
        let more = [buf(b"cd"), buf(b"e"), buf(b"f")];
        assert_eq!(
            shmio_producer_send_many(p, more.as_ptr(), 3, 0, &mut sent),
            SHMIO_OK
        );
        assert_eq!(sent, 2);
        assert_eq!(
            shmio_producer_send_many(p, more[2..].as_ptr(), 1, 0, &mut sent),
            SHMIO_ERR_WOULD_BLOCK
        );
        assert_eq!(
            shmio_producer_send_many(p, ptr::null(), 0, 0, &mut sent),
            SHMIO_OK
        );
        assert_eq!(sent, 0);

        let (mut out, mut lens, mut n) = ([0u8; 64], [0usize; 8], usize::MAX);
        let dst = out.as_mut_ptr().cast::<c_void>();
        // The first record (2 bytes) does not fit in 1: the size needed, nothing consumed.
        assert_eq!(
            shmio_consumer_recv_many(c, dst, 1, lens.as_mut_ptr(), 8, 0, &mut n),
            SHMIO_ERR_BUFFER_TOO_SMALL
        );
        assert_eq!(lens[0], 2);
        assert_eq!(
            shmio_consumer_recv_many(c, dst, 64, lens.as_mut_ptr(), 0, 0, &mut n),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            shmio_consumer_recv_many(c, dst, 64, lens.as_mut_ptr(), 8, 0, &mut n),
            SHMIO_OK
        );
        assert_eq!(n, 4);
        assert_eq!(&lens[..4], &[2, 0, 2, 1]);
        assert_eq!(&out[..5], b"abcde");
        assert_eq!(
            shmio_consumer_recv_many(c, dst, 64, lens.as_mut_ptr(), 8, 0, &mut n),
            SHMIO_ERR_WOULD_BLOCK
        );
        // The released ring takes the rest.
        assert_eq!(
            shmio_producer_send_many(p, more[2..].as_ptr(), 1, 0, &mut sent),
            SHMIO_OK
        );
        assert_eq!(sent, 1);
        shmio_consumer_close(c);
        shmio_producer_close(p);
    }
}
