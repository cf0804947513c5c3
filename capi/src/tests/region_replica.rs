//! The region's change-tracking, replica and writer-claim functions: options, arguments,
//! the replication state, the stale path, promotion and the claim. A region is made a replica
//! through the core API, as its bridge does.

use std::ffi::{CString, c_void};
use std::mem::{MaybeUninit, offset_of};
use std::ptr;
use std::time::Duration;

use shmio_core::region::replica::PrimaryNews;
use shmio_core::region::track::Changes;
use shmio_core::region::{Region, RegionOptions};

use super::region::{Unlink, create, name};
use crate::ffi::last_error_string;
use crate::region::*;
use crate::status::shmio_status::{self, *};

/// The core's handle on the region `n`, standing for its bridge.
fn core(n: &CString) -> Region {
    Region::open(n.to_str().unwrap(), &RegionOptions::new()).unwrap()
}

fn options() -> shmio_region_options {
    let mut o = MaybeUninit::uninit();
    // SAFETY: a writable options struct.
    let st = unsafe { shmio_region_options_init(o.as_mut_ptr()) };
    assert_eq!(st, SHMIO_OK);
    // SAFETY: just filled in.
    unsafe { o.assume_init() }
}

/// Creates the region `n` of 64 KiB with the options at `o` (readable for their
/// `struct_size` bytes).
fn create_with(n: &CString, o: *const shmio_region_options) -> (*mut shmio_region, shmio_status) {
    let mut r = ptr::null_mut();
    // SAFETY: a valid name, options readable for their `struct_size` bytes (the callers'
    // promise), a valid out pointer.
    let s = unsafe { shmio_region_create(n.as_ptr(), 1 << 16, o, &mut r) };
    (r, s)
}

fn chunk_size(r: *const shmio_region) -> u64 {
    let mut c = 0;
    // SAFETY: a live handle and a valid out pointer.
    assert_eq!(unsafe { shmio_region_chunk_size(r, &mut c) }, SHMIO_OK);
    c
}

fn stats(r: *const shmio_region) -> shmio_region_replica_stats {
    let mut s = MaybeUninit::uninit();
    // SAFETY: a writable stats struct, filled by its init function before the call.
    unsafe {
        assert_eq!(shmio_region_replica_stats_init(s.as_mut_ptr()), SHMIO_OK);
        assert_eq!(shmio_region_replica(r, s.as_mut_ptr()), SHMIO_OK);
        s.assume_init()
    }
}

/// `shmio_region_read_fresh` of 4 bytes at 0 into `buf`: the status.
fn read_fresh(r: *const shmio_region, max_ms: u64, buf: &mut [u8; 4]) -> shmio_status {
    // SAFETY: a live handle, a buffer writable for its 4 bytes, no version wanted.
    unsafe { shmio_region_read_fresh(r, 0, buf.as_mut_ptr().cast(), 4, max_ms, ptr::null_mut()) }
}

#[test]
fn chunk_size_option_old_and_new_options_structs() {
    let o = options();
    assert_eq!(o.struct_size as usize, size_of::<shmio_region_options>());
    assert_eq!((o.mode, o.flags, o.chunk_size), (0o600, 0, 0));

    let n = name("chunk-default");
    let _u = Unlink(n.clone());
    let (r, s) = create_with(&n, &o);
    assert_eq!(s, SHMIO_OK, "{}", last_error_string());
    assert_eq!(chunk_size(r), 4096);
    // SAFETY: our handle, closed once.
    unsafe { shmio_region_close(r) };

    let n = name("chunk-256");
    let _u2 = Unlink(n.clone());
    let (r, s) = create_with(
        &n,
        &shmio_region_options {
            chunk_size: 256,
            ..o
        },
    );
    assert_eq!(s, SHMIO_OK, "{}", last_error_string());
    assert_eq!(chunk_size(r), 256);
    // Open reads the chunk size from the file and ignores the field.
    let mut r2 = ptr::null_mut();
    let other = shmio_region_options {
        chunk_size: 1 << 20,
        ..o
    };
    // SAFETY: valid name, options and out pointer; our handles, closed once.
    unsafe {
        assert_eq!(shmio_region_open(n.as_ptr(), &other, &mut r2), SHMIO_OK);
        assert_eq!(chunk_size(r2), 256);
        shmio_region_close(r2);
        shmio_region_close(r);
    }

    // Not a power of two, too small, too large.
    for bad in [100, 32, 2 << 20] {
        let n = name("chunk-bad");
        let (r, s) = create_with(
            &n,
            &shmio_region_options {
                chunk_size: bad,
                ..o
            },
        );
        assert_eq!(s, SHMIO_ERR_INVALID_ARGUMENT, "{bad}");
        assert!(r.is_null());
        assert!(
            last_error_string().contains("chunk"),
            "{}",
            last_error_string()
        );
    }

    // A caller built against the first version of the struct (no `chunk_size`): only its 12
    // bytes are read (what follows them here, where `chunk_size` would be, is an invalid chunk
    // size) and the chunk size is the default.
    #[repr(C)]
    #[allow(dead_code)] // read as a whole, by the library
    struct V1 {
        struct_size: u32,
        mode: u32,
        flags: u32,
        garbage: u32,
    }
    let v1 = V1 {
        struct_size: offset_of!(shmio_region_options, chunk_size) as u32,
        mode: 0o640,
        flags: 0,
        garbage: 77,
    };
    let n = name("chunk-v1");
    let _u3 = Unlink(n.clone());
    let (r, s) = create_with(&n, (&raw const v1).cast());
    assert_eq!(s, SHMIO_OK, "{}", last_error_string());
    assert_eq!(chunk_size(r), 4096);
    let mode = std::fs::metadata(shmio_core::region::resolve(n.to_str().unwrap()).unwrap())
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap();
    assert_eq!(mode, 0o640);
    // SAFETY: our handle, closed once.
    unsafe { shmio_region_close(r) };

    // Smaller than the first version: refused.
    let n = name("chunk-small");
    let (r, s) = create_with(
        &n,
        &shmio_region_options {
            struct_size: 8,
            ..o
        },
    );
    assert_eq!(s, SHMIO_ERR_INVALID_ARGUMENT);
    assert!(r.is_null());
    assert!(
        last_error_string().contains("struct_size 8"),
        "{}",
        last_error_string()
    );
}

#[test]
fn touch_range_chunk_size_and_incarnation_check_their_arguments() {
    let n = name("touch-range");
    let _u = Unlink(n.clone());
    let (r, s) = create(&n, 1 << 16);
    assert_eq!(s, SHMIO_OK);
    let bridge = core(&n);
    let mut v = 0u64;
    // SAFETY: a live handle, valid out pointers (NULL where tested).
    unsafe {
        assert_eq!(shmio_region_touch_range(r, 5000, 10, &mut v), SHMIO_OK);
        assert_eq!(v, 1);
        // Only the touched chunk (4096..8192) counts as changed.
        let mut c = Changes::new();
        bridge
            .read_changes(Some(0), 0..u64::MAX, usize::MAX, &mut c)
            .unwrap();
        assert_eq!(c.ranges(), &[(4096, 4096)]);
        assert_eq!(c.version(), 1);
        assert_eq!(shmio_region_touch_range(r, 0, 0, ptr::null_mut()), SHMIO_OK);
        assert_eq!(
            shmio_region_touch_range(r, 1 << 16, 1, &mut v),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            shmio_region_touch_range(r, u64::MAX, 2, &mut v),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        assert_eq!(v, 1, "not written on failure");
        assert_eq!(
            shmio_region_touch_range(ptr::null(), 0, 1, &mut v),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_region_chunk_size(r, ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_region_chunk_size(ptr::null(), &mut v),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(shmio_region_incarnation(r, &mut v), SHMIO_OK);
        assert_eq!(v, bridge.incarnation());
        assert_eq!(
            shmio_region_incarnation(r, ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_region_incarnation(ptr::null(), &mut v),
            SHMIO_ERR_NULL_POINTER
        );
        // The file's length, as create reserves it.
        assert_eq!(shmio_region_file_len(1 << 16, 0, &mut v), SHMIO_OK);
        let len = std::fs::metadata(bridge.path()).unwrap().len();
        assert_eq!(v, len);
        assert_eq!(
            Some(v),
            shmio_core::region::file_len(1 << 16, shmio_core::region::DEFAULT_CHUNK)
        );
        assert_eq!(shmio_region_file_len(1 << 16, 64, &mut v), SHMIO_OK);
        assert!(v > len, "a finer table is larger");
        for (size, chunk) in [(0, 0), (1 << 41, 0), (4096, 100), (4096, 32)] {
            assert_eq!(
                shmio_region_file_len(size, chunk, &mut v),
                SHMIO_ERR_INVALID_ARGUMENT,
                "{size} {chunk}"
            );
        }
        assert_eq!(
            shmio_region_file_len(4096, 0, ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        shmio_region_close(r);
    }
}

#[test]
fn replica_stats_of_a_primary_are_zero_and_struct_size_is_honoured() {
    let n = name("stats-primary");
    let _u = Unlink(n.clone());
    let (r, s) = create(&n, 4096);
    assert_eq!(s, SHMIO_OK);
    let st = stats(r);
    assert_eq!(
        st.struct_size as usize,
        size_of::<shmio_region_replica_stats>()
    );
    assert_eq!(st.is_replica, 0);
    assert_eq!((st.source, st.applied, st.seen, st.lag), (0, 0, 0, 0));
    assert_eq!((st.heard_ms, st.staleness_ms), (0, 0));
    assert_eq!(
        (
            st.primary_alive,
            st.writer_state,
            st.catching_up,
            st.reserved
        ),
        (0, SHMIO_REGION_WRITER_NONE, 0, 0)
    );
    let size = size_of::<shmio_region_replica_stats>();
    // SAFETY: live handle; buffers writable for the sizes they claim (NULL where tested).
    unsafe {
        assert_eq!(
            shmio_region_replica_stats_init(ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        let mut s = MaybeUninit::<shmio_region_replica_stats>::uninit();
        assert_eq!(
            shmio_region_replica(ptr::null(), s.as_mut_ptr()),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_region_replica(r, ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        // A struct_size below the first version's: refused, nothing written past it.
        let mut small = [u64::MAX; 10];
        let q = small.as_mut_ptr().cast::<shmio_region_replica_stats>();
        (&raw mut (*q).struct_size).write(8);
        assert_eq!(shmio_region_replica(r, q), SHMIO_ERR_INVALID_ARGUMENT);
        assert!(
            last_error_string().contains("struct_size 8"),
            "{}",
            last_error_string()
        );
        assert_eq!((*q).is_replica, u32::MAX, "nothing written");
        assert_eq!(small[1..], [u64::MAX; 9]);
        // A larger struct (a newer header): our fields written, its tail left alone, and
        // struct_size says how much was filled in.
        let mut big = [u64::MAX; 12];
        let b = big.as_mut_ptr().cast::<shmio_region_replica_stats>();
        (&raw mut (*b).struct_size).write(96);
        assert_eq!(shmio_region_replica(r, b), SHMIO_OK);
        assert_eq!((*b).struct_size as usize, size);
        assert_eq!((*b).is_replica, 0);
        assert_eq!(big[size / 8..], [u64::MAX; 3]);
        shmio_region_close(r);
    }
}

#[test]
fn replica_state_stale_reads_read_only_writes_and_promotion() {
    let n = name("replica");
    let _u = Unlink(n.clone());
    let (r, s) = create(&n, 8192);
    assert_eq!(s, SHMIO_OK);
    let mut v = 0u64;
    let mut buf = [0u8; 4];
    // SAFETY: a live handle, valid buffers and out pointers.
    unsafe {
        assert_eq!(
            shmio_region_write(r, 0, b"prim".as_ptr().cast(), 4, &mut v),
            SHMIO_OK
        );
        // No replica: a plain read, whatever the bound.
        assert_eq!(read_fresh(r, 0, &mut buf), SHMIO_OK);
        assert_eq!(&buf, b"prim");
        assert_eq!(shmio_region_check_fresh(r, 0), SHMIO_OK);
        assert_eq!(
            shmio_region_check_fresh(ptr::null(), 0),
            SHMIO_ERR_NULL_POINTER
        );
    }

    let bridge = core(&n);
    bridge.become_replica(0xabc).unwrap();
    let st = stats(r);
    assert_eq!((st.is_replica, st.source), (1, 0xabc));
    assert_eq!((st.applied, st.seen, st.lag), (0, 0, 0));
    assert_eq!(
        (st.heard_ms, st.staleness_ms),
        (SHMIO_REGION_NEVER, SHMIO_REGION_NEVER)
    );
    assert_eq!(st.writer_state, SHMIO_REGION_WRITER_NONE);

    // Never in sync: stale whatever the bound; nothing copied.
    buf = [0; 4];
    assert_eq!(read_fresh(r, u64::MAX, &mut buf), SHMIO_ERR_STALE);
    let msg = last_error_string();
    assert!(
        msg.starts_with("shmio_region_read_fresh: stale replica: never in sync"),
        "{msg}"
    );
    assert_eq!(buf, [0; 4]);
    // SAFETY: a live handle.
    let st = unsafe { shmio_region_check_fresh(r, 1000) };
    assert_eq!(st, SHMIO_ERR_STALE);

    // The primary at version 3, alive, its writer alive; the replica has applied nothing.
    let news = |version, catching_up| PrimaryNews {
        version,
        alive: true,
        writer_alive: Some(true),
        catching_up,
    };
    bridge.note_primary(&news(3, false));
    let st = stats(r);
    assert_eq!((st.applied, st.seen, st.lag), (0, 3, 3));
    assert!(st.heard_ms < 10_000, "{}", st.heard_ms);
    assert_eq!(st.staleness_ms, SHMIO_REGION_NEVER);
    assert_eq!(
        (st.primary_alive, st.writer_state, st.catching_up),
        (1, SHMIO_REGION_WRITER_ALIVE, 0)
    );

    // In sync (the primary is at the version applied): fresh within a generous bound.
    bridge.note_primary(&PrimaryNews {
        writer_alive: Some(false),
        ..news(0, false)
    });
    let st = stats(r);
    assert!(st.staleness_ms < 10_000, "{}", st.staleness_ms);
    assert_eq!(st.writer_state, SHMIO_REGION_WRITER_DEAD);
    let mut v = 0u64;
    // SAFETY: a live handle, valid buffers and out pointers.
    unsafe {
        assert_eq!(
            shmio_region_read_fresh(r, 0, buf.as_mut_ptr().cast(), 4, 60_000, &mut v),
            SHMIO_OK,
            "{}",
            last_error_string()
        );
        assert_eq!(&buf, b"prim");
        // The write, then becoming a replica (a write section of its own).
        assert_eq!(v, 2);
        assert_eq!(shmio_region_check_fresh(r, 60_000), SHMIO_OK);
    }
    // ... and stale once longer ago than a short one.
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(read_fresh(r, 5, &mut buf), SHMIO_ERR_STALE);
    let msg = last_error_string();
    assert!(
        msg.contains("last in sync") && msg.contains("ms ago") && msg.contains("allowed: 5 ms"),
        "{msg}"
    );
    // Catching up: stale whatever the bound, and the message says why.
    bridge.note_primary(&news(0, true));
    assert_eq!(read_fresh(r, u64::MAX, &mut buf), SHMIO_ERR_STALE);
    assert!(
        last_error_string().contains("catching up"),
        "{}",
        last_error_string()
    );
    assert_eq!(stats(r).catching_up, 1);

    // The fresh read checks its arguments as the plain read does.
    // SAFETY: a live handle; NULL and in-mapping buffers are refused before any access.
    unsafe {
        assert_eq!(
            shmio_region_read_fresh(r, 0, ptr::null_mut(), 4, 0, ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_region_read_fresh(ptr::null(), 0, buf.as_mut_ptr().cast(), 4, 0, &mut v),
            SHMIO_ERR_NULL_POINTER
        );
        let (mut base, mut len) = (ptr::null_mut::<c_void>(), 0usize);
        assert_eq!(shmio_region_data(r, &mut base, &mut len), SHMIO_OK);
        assert_eq!(
            shmio_region_read_fresh(r, 0, base.cast::<u8>().add(64).cast(), 4, 0, &mut v),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        assert!(last_error_string().contains("own mapping"));
        assert_eq!(
            shmio_region_read_fresh(r, 0, buf.as_mut_ptr().cast(), usize::MAX, 0, &mut v),
            SHMIO_ERR_INVALID_ARGUMENT
        );
    }

    // Local writes are refused on a replica.
    // SAFETY: a live handle, valid buffers and out pointers.
    unsafe {
        assert_eq!(
            shmio_region_write(r, 0, b"mine".as_ptr().cast(), 4, ptr::null_mut()),
            SHMIO_ERR_READ_ONLY
        );
        assert!(
            last_error_string().contains("replica"),
            "{}",
            last_error_string()
        );
        assert_eq!(shmio_region_touch(r, ptr::null_mut()), SHMIO_ERR_READ_ONLY);
        assert_eq!(
            shmio_region_touch_range(r, 0, 4, ptr::null_mut()),
            SHMIO_ERR_READ_ONLY
        );
    }

    // Promotion: a primary of its own, with a new incarnation, writable again.
    let mut inc = 0u64;
    // SAFETY: a live handle and valid out pointers (NULL where tested).
    unsafe {
        assert_eq!(shmio_region_incarnation(r, &mut inc), SHMIO_OK);
        assert_eq!(
            shmio_region_promote(ptr::null(), &mut v),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(shmio_region_promote(r, &mut v), SHMIO_OK);
        assert!(v >= 2, "{v}");
        let mut inc2 = 0u64;
        assert_eq!(shmio_region_incarnation(r, &mut inc2), SHMIO_OK);
        assert_ne!(inc, inc2);
        assert_eq!(stats(r).is_replica, 0);
        assert_eq!(read_fresh(r, 0, &mut buf), SHMIO_OK);
        let mut v2 = 0u64;
        assert_eq!(
            shmio_region_write(r, 0, b"mine".as_ptr().cast(), 4, &mut v2),
            SHMIO_OK
        );
        assert_eq!(v2, v + 1);
        // Promoting a primary changes nothing and reports its version.
        assert_eq!(shmio_region_promote(r, &mut v), SHMIO_OK);
        assert_eq!(v, v2);
        assert_eq!(shmio_region_promote(r, ptr::null_mut()), SHMIO_OK);
        shmio_region_close(r);
    }
}

#[test]
fn writer_claim_is_exclusive_reported_and_released() {
    let n = name("claim");
    let _u = Unlink(n.clone());
    let (r, s) = create(&n, 4096);
    assert_eq!(s, SHMIO_OK);
    let me = std::process::id();
    let (mut state, mut pid) = (9u32, 9u32);
    // SAFETY: a live handle, valid out pointers (NULL where tested); claims released once.
    unsafe {
        assert_eq!(shmio_region_writer(r, &mut state, &mut pid), SHMIO_OK);
        assert_eq!((state, pid), (SHMIO_REGION_WRITER_NONE, 0));
        assert_eq!(
            shmio_region_writer(r, ptr::null_mut(), &mut pid),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_region_writer(ptr::null(), &mut state, &mut pid),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(
            shmio_region_claim_writer(r, ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        let mut c = ptr::dangling_mut::<shmio_region_claim>();
        assert_eq!(
            shmio_region_claim_writer(ptr::null(), &mut c),
            SHMIO_ERR_NULL_POINTER
        );
        assert!(c.is_null(), "out is cleared on failure");

        assert_eq!(shmio_region_claim_writer(r, &mut c), SHMIO_OK);
        assert!(!c.is_null());
        assert_eq!(
            shmio_region_writer(r, &mut state, ptr::null_mut()),
            SHMIO_OK
        );
        assert_eq!(state, SHMIO_REGION_WRITER_ALIVE);
        assert_eq!(shmio_region_writer(r, &mut state, &mut pid), SHMIO_OK);
        assert_eq!(pid, me);

        // A second claim, even from this process, finds the live one.
        let mut c2 = ptr::dangling_mut::<shmio_region_claim>();
        assert_eq!(
            shmio_region_claim_writer(r, &mut c2),
            SHMIO_ERR_WRITER_EXISTS
        );
        assert!(c2.is_null());
        let msg = last_error_string();
        assert!(msg.contains(&format!("pid {me}")), "{msg}");

        // The claim outlives the handle it came from.
        shmio_region_close(r);
        let mut r2 = ptr::null_mut();
        assert_eq!(
            shmio_region_open(n.as_ptr(), ptr::null(), &mut r2),
            SHMIO_OK
        );
        assert_eq!(shmio_region_writer(r2, &mut state, &mut pid), SHMIO_OK);
        assert_eq!((state, pid), (SHMIO_REGION_WRITER_ALIVE, me));

        shmio_region_claim_release(c);
        shmio_region_claim_release(ptr::null_mut());
        assert_eq!(shmio_region_writer(r2, &mut state, &mut pid), SHMIO_OK);
        assert_eq!((state, pid), (SHMIO_REGION_WRITER_DEAD, me));
        assert_eq!(shmio_region_claim_writer(r2, &mut c2), SHMIO_OK);
        assert_eq!(shmio_region_writer(r2, &mut state, &mut pid), SHMIO_OK);
        assert_eq!(state, SHMIO_REGION_WRITER_ALIVE);
        shmio_region_claim_release(c2);
        shmio_region_close(r2);
    }
}
