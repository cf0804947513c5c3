//! Unit tests driving the exported functions exactly as C would.

use std::ffi::{CStr, CString, c_char, c_void};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::ffi::{last_error_string, shmio_status, shmio_status::*};
use crate::*;

/// A queue name unique to this process and test, removed on drop.
struct Name(CString);

impl Name {
    fn new(tag: &str) -> Name {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Name(CString::new(format!("shmio-capi-test-{}-{n}-{tag}", std::process::id())).unwrap())
    }
    fn ptr(&self) -> *const c_char {
        self.0.as_ptr()
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        // By path: `shmio_queue_unlink` would leave a file that a test overwrote.
        if let Ok(p) = shmio_core::queue::resolve(self.0.to_str().unwrap()) {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn text(p: *const c_char) -> String {
    // SAFETY: the library returns NUL-terminated strings valid until the next call.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
}

fn options(f: impl FnOnce(&mut shmio_queue_options)) -> shmio_queue_options {
    let mut o = shmio_queue_options {
        struct_size: 0,
        slots: 0,
        slot_size: 0,
        policy: 0,
        max_consumers: 0,
        mode: 0,
    };
    // SAFETY: `o` is a valid, writable options struct.
    assert_eq!(unsafe { shmio_queue_options_init(&mut o) }, SHMIO_OK);
    f(&mut o);
    o
}

fn create(name: &Name, o: Option<&shmio_queue_options>) -> *mut shmio_producer {
    let mut p = ptr::null_mut();
    let opts = o.map_or(ptr::null(), |o| o as *const _);
    // SAFETY: valid name, options and out pointer.
    let st = unsafe { shmio_producer_create(name.ptr(), opts, &mut p) };
    assert_eq!(st, SHMIO_OK, "{}", last_error_string());
    assert!(!p.is_null());
    p
}

fn open(name: &Name, start: u32, seq: u64) -> *mut shmio_consumer {
    let mut c = ptr::null_mut();
    // SAFETY: valid name and out pointer.
    let st = unsafe { shmio_consumer_open(name.ptr(), start, seq, &mut c) };
    assert_eq!(st, SHMIO_OK, "{}", last_error_string());
    c
}

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
fn c_defaults_equal_core_defaults() {
    let o = options(|_| {});
    assert_eq!(o.struct_size as usize, size_of::<shmio_queue_options>());
    assert_eq!(
        o.to_core().unwrap(),
        shmio_core::queue::QueueOptions::default()
    );
}

#[test]
fn null_pointers_are_reported() {
    let name = Name::new("null");
    let mut p = ptr::null_mut();
    let mut len = 0usize;
    let mut info = shmio_queue_info {
        policy: 9,
        slot_count: 0,
        slot_size: 0,
        max_consumers: 0,
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
            SHMIO_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            shmio_producer_commit(p, 1, ptr::null_mut()),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            shmio_tqueue_new(0, &mut ptr::null_mut()),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        let mut qs = std::mem::MaybeUninit::<shmio_queue_stats>::uninit();
        assert_eq!(
            shmio_queue_stats_get(
                name.ptr(),
                qs.as_mut_ptr(),
                ptr::null_mut(),
                1,
                ptr::null_mut()
            ),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_queue_stats_get(
                name.ptr(),
                qs.as_mut_ptr(),
                ptr::null_mut(),
                usize::MAX,
                ptr::null_mut()
            ),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        shmio_producer_close(p);
    }
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
        let mut info = std::mem::MaybeUninit::uninit();
        assert_eq!(shmio_producer_info(p, info.as_mut_ptr()), SHMIO_OK);
        let info = info.assume_init();
        assert_eq!(
            info,
            shmio_queue_info {
                policy: SHMIO_POLICY_BACKPRESSURE,
                slot_count: 8,
                slot_size: 64,
                max_consumers: 4
            }
        );
        let mut cinfo = std::mem::MaybeUninit::uninit();
        assert_eq!(shmio_consumer_info(c, cinfo.as_mut_ptr()), SHMIO_OK);
        assert_eq!(cinfo.assume_init(), info);

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
        assert_eq!(
            shmio_consumer_recv(
                c,
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                &mut len,
                ptr::null_mut()
            ),
            SHMIO_ERR_WOULD_BLOCK
        );
        let t = Instant::now();
        assert_eq!(
            shmio_consumer_recv(
                c,
                buf.as_mut_ptr().cast(),
                buf.len(),
                20,
                &mut len,
                ptr::null_mut()
            ),
            SHMIO_ERR_TIMEOUT
        );
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
        assert_eq!(
            shmio_consumer_recv(
                c,
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                &mut len,
                ptr::null_mut()
            ),
            SHMIO_ERR_INVALID_ARGUMENT
        );
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
        let mut qs = std::mem::MaybeUninit::<shmio_queue_stats>::uninit();
        let mut cs = [std::mem::MaybeUninit::<shmio_consumer_stats>::uninit(); 2];
        let mut n = 99usize;
        assert_eq!(
            shmio_queue_stats_get(
                name.ptr(),
                qs.as_mut_ptr(),
                cs.as_mut_ptr().cast(),
                2,
                &mut n
            ),
            SHMIO_OK
        );
        let qs = qs.assume_init();
        assert_eq!(n, 1);
        let cs0 = cs[0].assume_init();
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
                &mut std::mem::zeroed(),
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
            assert_eq!(
                shmio_consumer_recv(
                    c,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    -1,
                    &mut len,
                    ptr::null_mut()
                ),
                SHMIO_OK
            );
            assert_eq!(&buf[..len], &[i]);
        }
        assert_eq!(
            shmio_consumer_recv(
                c,
                buf.as_mut_ptr().cast(),
                buf.len(),
                -1,
                &mut len,
                ptr::null_mut()
            ),
            SHMIO_ERR_CLOSED
        );
        let mut qs = std::mem::MaybeUninit::<shmio_queue_stats>::uninit();
        assert_eq!(
            shmio_queue_stats_get(
                name.ptr(),
                qs.as_mut_ptr(),
                ptr::null_mut(),
                0,
                ptr::null_mut()
            ),
            SHMIO_OK
        );
        assert_eq!(qs.assume_init().producer_state, SHMIO_PRODUCER_NONE);
        shmio_consumer_close(c);
    }
}

#[test]
fn overwrite_counts_lost() {
    let name = Name::new("ow");
    let o = options(|o| o.slots = 4);
    let p = create(&name, Some(&o));
    let c = open(&name, SHMIO_START_NEWEST, 0);
    // SAFETY: valid handles and buffers throughout.
    unsafe {
        for i in 0..10u8 {
            assert_eq!(
                shmio_producer_send(p, [i].as_ptr().cast(), 1, 0, ptr::null_mut()),
                SHMIO_OK
            );
        }
        let mut buf = [0u8; 256];
        let (mut len, mut seq) = (0, 0);
        assert_eq!(
            shmio_consumer_recv(c, buf.as_mut_ptr().cast(), buf.len(), 0, &mut len, &mut seq),
            SHMIO_OK
        );
        assert!(seq > 0);
        let mut lost = 0;
        assert_eq!(shmio_consumer_lost(c, &mut lost), SHMIO_OK);
        assert_eq!(lost, seq);
        shmio_consumer_close(c);
        shmio_producer_close(p);
    }
}

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
        let t = Instant::now();
        assert_eq!(shmio_tqueue_push(q, p1, 15), SHMIO_ERR_TIMEOUT);
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
        assert_eq!(shmio_tqueue_pop(q, &mut item, 10), SHMIO_ERR_TIMEOUT);

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

#[test]
fn panics_become_status() {
    let st = crate::ffi::boundary("test_fn", || panic!("boom"));
    assert_eq!(st, SHMIO_ERR_PANIC);
    assert_eq!(last_error_string(), "test_fn: panic: boom");
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
        let mut s = shmio_poller_stats {
            waits: 0,
            events: 0,
            syscalls: 0,
            overflows: 0,
            signals: 0,
            stale_signals: 0,
            max_signals_per_fd: 0,
        };
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
    let mut status = 0;
    // SAFETY: our own child, a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status),
        "child died of a signal: {status:#x}"
    );
    assert_eq!(libc::WEXITSTATUS(status), 0, "bit 1 recv, bit 2 send");
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

/// A raw handle moved to another thread in the tests below.
struct Sent<T>(*mut T);
// SAFETY: the handles sent are `Sync` (`shmio_poller`: a mutex; `shmio_waker`: an `Arc`), and
// each test keeps them alive until the thread is joined.
unsafe impl<T> Send for Sent<T> {}

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
        let mut status = 0;
        // SAFETY: our own child, a valid out-pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "child died: {status:#x}");
        assert_eq!(
            libc::WEXITSTATUS(status),
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
fn poller_backend_and_stats_answer_during_a_wait_and_an_overlapping_call_fails_cleanly() {
    use std::os::fd::AsRawFd;
    let mut p = ptr::null_mut();
    let mut w = ptr::null_mut();
    // SAFETY: valid out pointers.
    unsafe {
        assert_eq!(shmio_poller_new(SHMIO_BACKEND_EPOLL, &mut p), SHMIO_OK);
        assert_eq!(shmio_waker_new(p, 5, &mut w), SHMIO_OK);
    }
    let sent = Sent(p);
    let waiter = std::thread::spawn(move || {
        let sent = sent;
        let mut evs = [shmio_event { token: 0, flags: 0 }; 4];
        let mut n = 0usize;
        // SAFETY: a live poller (joined before it is freed), valid buffers.
        let st = unsafe { shmio_poller_wait(sent.0, evs.as_mut_ptr(), 4, 10_000, &mut n) };
        (st, n, evs[0].token)
    });
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
    let mut s = shmio_poller_stats {
        waits: 0,
        events: 0,
        syscalls: 0,
        overflows: 0,
        signals: 0,
        stale_signals: 0,
        max_signals_per_fd: 0,
    };
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
