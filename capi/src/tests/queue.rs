//! The queue's C functions: defaults, round trips by copy and in place, inspection, the error
//! codes of missing, existing, corrupt and foreign files, and handles inherited through fork.

use std::ffi::c_void;
use std::ptr;
use std::time::{Duration, Instant};

use super::{Name, create, exit_code, inited, open, options, queue_stats, recv};
use crate::ffi::last_error_string;
use crate::status::shmio_status::*;
use crate::*;

#[test]
fn c_defaults_equal_core_defaults() {
    let o = options(|_| {});
    assert_eq!(o.struct_size as usize, size_of::<shmio_queue_options>());
    assert_eq!(
        o.to_core().unwrap(),
        shmio_core::queue::QueueOptions::default()
    );
}

#[test]
fn not_found_and_exists() {
    let name = Name::new("nf");
    let mut c = ptr::null_mut();
    let mut p = ptr::null_mut();
    // SAFETY: valid pointers throughout.
    unsafe {
        assert_eq!(
            shmio_consumer_open(name.ptr(), 0, 0, &mut c),
            SHMIO_ERR_NOT_FOUND
        );
        assert_eq!(shmio_producer_open(name.ptr(), &mut p), SHMIO_ERR_NOT_FOUND);
        assert_eq!(shmio_queue_unlink(name.ptr()), SHMIO_ERR_NOT_FOUND);
        let p1 = create(&name, None);
        assert_eq!(
            shmio_producer_create(name.ptr(), ptr::null(), &mut p),
            SHMIO_ERR_ALREADY_EXISTS
        );
        assert_eq!(
            shmio_producer_open(name.ptr(), &mut p),
            SHMIO_ERR_PRODUCER_EXISTS
        );
        assert!(p.is_null());
        shmio_producer_close(p1);
        // Take-over after a clean close.
        assert_eq!(shmio_producer_open(name.ptr(), &mut p), SHMIO_OK);
        shmio_producer_close(p);
    }
}

#[test]
fn round_trip_copy_zero_copy_and_stats() {
    let name = Name::new("rt");
    let o = options(|o| {
        o.slots = 5;
        o.slot_size = 64;
        o.policy = SHMIO_POLICY_BACKPRESSURE;
        o.max_consumers = 4;
    });
    let p = create(&name, Some(&o));
    let c = open(&name, SHMIO_START_OLDEST, 0);
    // SAFETY: valid handles and buffers throughout.
    unsafe {
        let mut info = inited(shmio_queue_info_init);
        assert_eq!(shmio_producer_info(p, &mut info), SHMIO_OK);
        assert_eq!(
            info,
            shmio_queue_info {
                struct_size: size_of::<shmio_queue_info>() as u32,
                policy: SHMIO_POLICY_BACKPRESSURE,
                slot_count: 8,
                slot_size: 64,
                max_consumers: 4
            }
        );
        let mut cinfo = inited(shmio_queue_info_init);
        assert_eq!(shmio_consumer_info(c, &mut cinfo), SHMIO_OK);
        assert_eq!(cinfo, info);

        // Copy send / recv.
        let mut seq = u64::MAX;
        let msg = b"hello";
        assert_eq!(
            shmio_producer_send(p, msg.as_ptr().cast(), msg.len(), -1, &mut seq),
            SHMIO_OK
        );
        assert_eq!(seq, 0);
        let big = [7u8; 65];
        assert_eq!(
            shmio_producer_send(p, big.as_ptr().cast(), big.len(), 0, ptr::null_mut()),
            SHMIO_ERR_TOO_LARGE
        );
        // Any length above the slot size, whatever the pointer: `TOO_LARGE`, not a pointer
        // or size complaint.
        for len in [65, usize::MAX, isize::MAX as usize + 1] {
            assert_eq!(
                shmio_producer_send(p, ptr::null(), len, 0, ptr::null_mut()),
                SHMIO_ERR_TOO_LARGE,
                "len {len}"
            );
        }
        let mut small = [0u8; 2];
        let mut len = 0usize;
        assert_eq!(
            shmio_consumer_recv(
                c,
                small.as_mut_ptr().cast(),
                small.len(),
                0,
                &mut len,
                &mut seq
            ),
            SHMIO_ERR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 5);
        let mut buf = [0u8; 64];
        seq = u64::MAX;
        assert_eq!(
            shmio_consumer_recv(c, buf.as_mut_ptr().cast(), buf.len(), 0, &mut len, &mut seq),
            SHMIO_OK
        );
        assert_eq!((&buf[..len], seq), (&msg[..], 0));
        assert_eq!(recv(c, &mut buf, 0, &mut len), SHMIO_ERR_WOULD_BLOCK);
        let t = Instant::now();
        assert_eq!(recv(c, &mut buf, 20, &mut len), SHMIO_ERR_TIMEOUT);
        assert!(t.elapsed() >= Duration::from_millis(20));

        // Zero-copy reserve / commit, read / release.
        let mut wbuf: *mut c_void = ptr::null_mut();
        let mut cap = 0usize;
        assert_eq!(shmio_producer_reserve(p, 0, &mut wbuf, &mut cap), SHMIO_OK);
        assert_eq!(cap, 64);
        assert_eq!(
            shmio_producer_reserve(p, 0, &mut wbuf, &mut cap),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        ptr::copy_nonoverlapping(b"zero".as_ptr(), wbuf.cast::<u8>(), 4);
        assert_eq!(shmio_producer_commit(p, 65, &mut seq), SHMIO_ERR_TOO_LARGE);
        assert_eq!(shmio_producer_commit(p, 4, &mut seq), SHMIO_OK);
        assert_eq!(seq, 1);
        assert_eq!(shmio_producer_reserve(p, 0, &mut wbuf, &mut cap), SHMIO_OK);
        assert_eq!(shmio_producer_abort(p), SHMIO_OK);
        assert_eq!(shmio_producer_abort(p), SHMIO_OK);

        let mut data: *const c_void = ptr::null();
        assert_eq!(
            shmio_consumer_read(c, 0, &mut data, &mut len, &mut seq),
            SHMIO_OK
        );
        assert_eq!(std::slice::from_raw_parts(data.cast::<u8>(), len), b"zero");
        assert_eq!(seq, 1);
        assert_eq!(recv(c, &mut buf, 0, &mut len), SHMIO_ERR_INVALID_ARGUMENT);
        assert_eq!(shmio_consumer_release(c), SHMIO_OK);
        assert_eq!(shmio_consumer_release(c), SHMIO_ERR_INVALID_ARGUMENT);

        let mut pos = 0;
        assert_eq!(shmio_consumer_position(c, &mut pos), SHMIO_OK);
        assert_eq!(pos, 2);
        let mut lost = 9;
        assert_eq!(shmio_consumer_lost(c, &mut lost), SHMIO_OK);
        assert_eq!(lost, 0);
        let mut fd = -1;
        assert_eq!(shmio_consumer_fd(c, &mut fd), SHMIO_OK);
        assert!(fd >= 0);

        // Back-pressure: the ring of 8 fills up.
        for i in 0..8u8 {
            assert_eq!(
                shmio_producer_send(p, [i].as_ptr().cast(), 1, 0, ptr::null_mut()),
                SHMIO_OK
            );
        }
        assert_eq!(
            shmio_producer_send(p, [9u8].as_ptr().cast(), 1, 0, ptr::null_mut()),
            SHMIO_ERR_WOULD_BLOCK
        );
        assert_eq!(
            shmio_producer_send(p, [9u8].as_ptr().cast(), 1, 10, ptr::null_mut()),
            SHMIO_ERR_TIMEOUT
        );

        // Stats.
        let mut qs = inited(shmio_queue_stats_init);
        let mut cs = [inited(shmio_consumer_stats_init); 2];
        let mut n = 99usize;
        assert_eq!(
            shmio_queue_stats_get(name.ptr(), &mut qs, cs.as_mut_ptr(), 2, &mut n),
            SHMIO_OK
        );
        assert_eq!(n, 1);
        let cs0 = cs[0];
        assert_eq!(qs.head, 10);
        assert_eq!(qs.producer_state, SHMIO_PRODUCER_ALIVE);
        assert_eq!(qs.producer_pid, std::process::id());
        assert_eq!(qs.live_consumers, 1);
        assert_eq!(qs.policy, SHMIO_POLICY_BACKPRESSURE);
        assert_eq!((qs.slot_count, qs.slot_size, qs.max_consumers), (8, 64, 4));
        assert_eq!(
            (cs0.position, cs0.lag, cs0.received, cs0.pid),
            (2, 8, 2, std::process::id())
        );
        assert_eq!(
            shmio_queue_stats_get(
                name.ptr(),
                &mut inited(shmio_queue_stats_init),
                ptr::null_mut(),
                0,
                &mut n
            ),
            SHMIO_OK
        );
        assert_eq!(n, 0);

        // Close: the consumer drains, then gets CLOSED.
        shmio_producer_close(p);
        for i in 0..8u8 {
            assert_eq!(recv(c, &mut buf, -1, &mut len), SHMIO_OK);
            assert_eq!(&buf[..len], &[i]);
        }
        assert_eq!(recv(c, &mut buf, -1, &mut len), SHMIO_ERR_CLOSED);
        let (st, qs) = queue_stats(&name, 0);
        assert_eq!(st, SHMIO_OK);
        assert_eq!(qs.unwrap().producer_state, SHMIO_PRODUCER_NONE);
        shmio_consumer_close(c);
    }
}

/// Sends 10 one-byte records (0, 1, ...) into a 4-slot overwrite queue with one consumer opened
/// at `start` (its resume policy set first, if given), then receives one: (its sequence
/// number, its byte, the consumer's loss count).
fn lap_once(start: u32, resume: Option<(u32, u64)>) -> (u64, u8, u64) {
    let name = Name::new("ow");
    let p = create(&name, Some(&options(|o| o.slots = 4)));
    let c = open(&name, start, 0);
    // SAFETY: valid handles and buffers throughout.
    unsafe {
        if let Some((resume, behind)) = resume {
            assert_eq!(shmio_consumer_set_resume(c, resume, behind), SHMIO_OK);
        }
        for i in 0..10u8 {
            assert_eq!(
                shmio_producer_send(p, [i].as_ptr().cast(), 1, 0, ptr::null_mut()),
                SHMIO_OK
            );
        }
        let mut buf = [0u8; 256];
        let (mut len, mut seq, mut lost) = (0, 0, 0);
        assert_eq!(
            shmio_consumer_recv(c, buf.as_mut_ptr().cast(), buf.len(), 0, &mut len, &mut seq),
            SHMIO_OK
        );
        assert_eq!(shmio_consumer_lost(c, &mut lost), SHMIO_OK);
        shmio_consumer_close(c);
        shmio_producer_close(p);
        (seq, buf[0], lost)
    }
}

#[test]
fn overwrite_counts_lost() {
    let (seq, _, lost) = lap_once(SHMIO_START_NEWEST, None);
    assert!(seq > 0);
    assert_eq!(lost, seq);
}

#[test]
fn set_resume_picks_where_a_lapped_consumer_resumes() {
    // 10 records into 4 slots, the consumer at 0: the first record it receives after the lap.
    for (resume, behind, first) in [
        (SHMIO_RESUME_NEAR_OLDEST, 0, 7),
        (SHMIO_RESUME_HALF_RING, 0, 8),
        (SHMIO_RESUME_NEWEST, 0, 9),
        (SHMIO_RESUME_BEHIND, 3, 7),
        (SHMIO_RESUME_OLDEST, 0, 6),
    ] {
        let got = lap_once(SHMIO_START_OLDEST, Some((resume, behind)));
        assert_eq!(got, (first, first as u8, first), "resume {resume}");
    }
    let name = Name::new("resume");
    let p = create(&name, None);
    let c = open(&name, SHMIO_START_OLDEST, 0);
    // SAFETY: valid handles.
    unsafe {
        assert_eq!(
            shmio_consumer_set_resume(ptr::null_mut(), SHMIO_RESUME_NEWEST, 0),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_consumer_set_resume(c, 5, 0),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        shmio_consumer_close(c);
        shmio_producer_close(p);
    }
}

#[test]
fn corrupt_and_foreign_files_give_documented_codes() {
    use std::io::{Seek, SeekFrom, Write};
    let name = Name::new("corrupt");
    let p = create(&name, None);
    // SAFETY: a live handle, closed once.
    unsafe { shmio_producer_close(p) };
    let path = shmio_core::queue::resolve(name.0.to_str().unwrap()).unwrap();
    let patch = |at: u64, bytes: &[u8]| {
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(bytes).unwrap();
    };
    let try_open = || {
        let mut c = ptr::null_mut();
        let mut q = ptr::null_mut();
        // SAFETY: valid name and out pointers.
        let (a, b) = unsafe {
            (
                shmio_consumer_open(name.ptr(), 0, 0, &mut c),
                shmio_producer_open(name.ptr(), &mut q),
            )
        };
        assert!(c.is_null() && q.is_null());
        (a, b, last_error_string())
    };
    // Layout version (offset 8).
    patch(8, &7u32.to_le_bytes());
    let (a, b, msg) = try_open();
    assert_eq!(
        (a, b),
        (SHMIO_ERR_VERSION_MISMATCH, SHMIO_ERR_VERSION_MISMATCH)
    );
    assert!(msg.contains("version 7"), "{msg}");
    // Magic (offset 0): a file that is not a queue.
    patch(0, b"NOTAQUEU");
    let (a, b, msg) = try_open();
    assert_eq!((a, b), (SHMIO_ERR_CORRUPT, SHMIO_ERR_CORRUPT));
    assert!(msg.contains("magic"), "{msg}");
    // Too short for a header.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(10)
        .unwrap();
    assert_eq!(try_open().0, SHMIO_ERR_CORRUPT);
}

#[test]
fn inherited_handles_return_forked_in_a_child_and_close_harmlessly() {
    let n = Name::new("fork");
    let p = create(&n, None);
    let c = open(&n, SHMIO_START_NEWEST, 0);
    // SAFETY: the child only calls the library on the inherited handles and leaves with
    // _exit; the parent waits for it.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut buf = [0u8; 16];
        let mut len = 0usize;
        let mut code = 0;
        // SAFETY: live handles (inherited), valid buffers.
        unsafe {
            if shmio_consumer_recv(c, buf.as_mut_ptr().cast(), 16, 0, &mut len, ptr::null_mut())
                != SHMIO_ERR_FORKED
            {
                code |= 1;
            }
            if shmio_producer_send(p, buf.as_ptr().cast(), 1, 0, ptr::null_mut())
                != SHMIO_ERR_FORKED
            {
                code |= 2;
            }
            shmio_consumer_close(c);
            shmio_producer_close(p);
            libc::_exit(code);
        }
    }
    assert_eq!(exit_code(pid), 0, "bit 1 recv, bit 2 send");
    // The parent's handles still work.
    let mut buf = [0u8; 16];
    let mut len = 0usize;
    // SAFETY: live handles, valid buffers.
    unsafe {
        assert_eq!(
            shmio_producer_send(p, b"x".as_ptr().cast(), 1, 0, ptr::null_mut()),
            SHMIO_OK
        );
        assert_eq!(
            shmio_consumer_recv(
                c,
                buf.as_mut_ptr().cast(),
                16,
                1000,
                &mut len,
                ptr::null_mut()
            ),
            SHMIO_OK
        );
        shmio_consumer_close(c);
        shmio_producer_close(p);
    }
    assert_eq!(&buf[..len], b"x");
}
