//! The C functions on files (issue 11, items 2 and 4): `SHMIO_ERR_NO_SPACE` from a create on a
//! file system too small for the object, and unlink calls that remove only their own kind.
//!
//! The small file system is an 8 MiB tmpfs that each test mounts (needs root; skipped
//! otherwise). The calls run in a child process (this test binary again, running one `child_*`
//! test), so that a SIGBUS kills the child and not the test harness, and so that
//! `SHMIO_TEST_HOOK` (read once per process) can differ per run.

use std::ffi::{CString, c_void};
use std::io::Write as _;
use std::path::Path;
use std::ptr;

use shmio_testfs::{FS_SIZE, MIB, ShmDir, child, names_in, run_in_small_fs};

use super::options;
use crate::ffi::last_error_string;
use crate::status::shmio_status::*;
use crate::*;

fn cstr(p: &Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

fn queue_options(slots: u32, slot_size: u32) -> shmio_queue_options {
    options(|o| {
        o.slots = slots;
        o.slot_size = slot_size;
    })
}

#[test]
fn c_create_larger_than_the_fs_is_no_space_and_leaves_nothing() {
    run_in_small_fs("shmio-capi-small-fs-big", "tests::files::child_c_too_big");
}

#[test]
fn child_c_too_big() {
    let Some(dir) = child() else { return };
    // Just over 16 MiB: 4096 slots with a stride of 4096 bytes, and the header.
    let o = queue_options(4096, 4096 - 16);
    let mut p = ptr::dangling_mut();
    // SAFETY: a valid name, options struct and out pointer.
    let st = unsafe { shmio_producer_create(c"q".as_ptr(), &o, &mut p) };
    assert_eq!(st, SHMIO_ERR_NO_SPACE, "{}", last_error_string());
    assert!(p.is_null());
    let msg = last_error_string();
    let q = dir.join("q");
    assert!(
        msg.contains(q.to_str().unwrap()) && msg.contains(&format!("{FS_SIZE} bytes")),
        "{msg}"
    );
    assert!(names_in(&dir).is_empty(), "{:?}", names_in(&dir));
    let r = cstr(&dir.join("r"));
    let mut h = ptr::dangling_mut();
    // SAFETY: a valid path, NULL options (defaults) and a valid out pointer.
    let st = unsafe { shmio_region_create(r.as_ptr(), 16 * MIB, ptr::null(), &mut h) };
    assert_eq!(st, SHMIO_ERR_NO_SPACE, "{}", last_error_string());
    assert!(h.is_null());
    let msg = last_error_string();
    assert!(
        msg.contains(&format!(
            "needs {} bytes",
            shmio_core::region::file_len(16 * MIB, shmio_core::region::DEFAULT_CHUNK).unwrap()
        )) && msg.contains(&format!("{FS_SIZE} bytes")),
        "{msg}"
    );
    assert!(names_in(&dir).is_empty(), "{:?}", names_in(&dir));
}

#[test]
fn c_objects_that_fit_keep_working_when_the_fs_fills_up() {
    run_in_small_fs(
        "shmio-capi-small-fs-fit",
        "tests::files::child_c_fit_then_fill",
    );
}

#[test]
fn child_c_fit_then_fill() {
    let Some(dir) = child() else { return };
    let slot = 2048 - 16;
    let o = queue_options(1024, slot as u32);
    let (mut p, mut c, mut r) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    // SAFETY: valid names, options and out pointers; the handles are live until closed below,
    // and every buffer is valid for the length passed with it.
    unsafe {
        assert_eq!(
            shmio_region_create(c"r".as_ptr(), 3 * MIB, ptr::null(), &mut r),
            SHMIO_OK,
            "{}",
            last_error_string()
        );
        assert_eq!(
            shmio_producer_create(c"q".as_ptr(), &o, &mut p),
            SHMIO_OK,
            "{}",
            last_error_string()
        );
        assert_eq!(
            shmio_consumer_open(c"q".as_ptr(), SHMIO_START_OLDEST, 0, &mut c),
            SHMIO_OK
        );
        // Somebody else takes every block left.
        let filler = dir.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0xEEu8; 64 << 10];
        while let Ok(n) = f.write(&chunk) {
            if n == 0 {
                break;
            }
        }
        drop(f);
        // Every byte of both is still ours to store (a sparse file would SIGBUS here).
        let mb = vec![0x5Au8; MIB as usize];
        for i in 0..3 {
            let st = shmio_region_write(r, i * MIB, mb.as_ptr().cast(), mb.len(), ptr::null_mut());
            assert_eq!(st, SHMIO_OK);
        }
        let mut back = vec![0u8; MIB as usize];
        let st = shmio_region_read(
            r,
            2 * MIB,
            back.as_mut_ptr().cast(),
            back.len(),
            ptr::null_mut(),
        );
        assert_eq!((st, &back), (SHMIO_OK, &mb));
        let rec = vec![0xA5u8; slot];
        for _ in 0..1024 {
            let st = shmio_producer_send(p, rec.as_ptr().cast(), rec.len(), 0, ptr::null_mut());
            assert_eq!(st, SHMIO_OK, "{}", last_error_string());
        }
        let mut buf = vec![0u8; slot];
        for _ in 0..1024 {
            let mut n = 0;
            let st = shmio_consumer_recv(
                c,
                buf.as_mut_ptr().cast::<c_void>(),
                buf.len(),
                0,
                &mut n,
                ptr::null_mut(),
            );
            assert_eq!((st, n), (SHMIO_OK, slot));
            assert_eq!(buf, rec);
        }
        shmio_consumer_close(c);
        shmio_producer_close(p);
        shmio_region_close(r);
        assert_eq!(shmio_queue_unlink(c"q".as_ptr()), SHMIO_OK);
        assert_eq!(shmio_region_unlink(c"r".as_ptr()), SHMIO_OK);
        std::fs::remove_file(&filler).unwrap();
    }
}

#[test]
fn c_unlink_removes_only_its_own_kind() {
    let d = ShmDir::new("shmio-capi-unlink-kinds");
    let (q, r, t) = (d.0.join("q"), d.0.join("r"), d.0.join("notes.txt"));
    let (cq, cr, ct) = (cstr(&q), cstr(&r), cstr(&t));
    std::fs::write(&t, b"hello world\n").unwrap();
    let (mut p, mut h) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: valid strings, NULL options (defaults) and valid out pointers; each handle is
    // closed once.
    unsafe {
        assert_eq!(
            shmio_producer_create(cq.as_ptr(), ptr::null(), &mut p),
            SHMIO_OK
        );
        shmio_producer_close(p);
        assert_eq!(
            shmio_region_create(cr.as_ptr(), 4096, ptr::null(), &mut h),
            SHMIO_OK
        );
        shmio_region_close(h);
        // The other kind, and a text file: refused with a message saying what it is.
        assert_eq!(shmio_queue_unlink(cr.as_ptr()), SHMIO_ERR_CORRUPT);
        let m = last_error_string();
        assert!(
            m.contains("is not a shmio queue file (it is a shmio region)"),
            "{m}"
        );
        assert_eq!(shmio_region_unlink(cq.as_ptr()), SHMIO_ERR_CORRUPT);
        let m = last_error_string();
        assert!(
            m.contains("is not a shmio region file (it is a shmio queue)"),
            "{m}"
        );
        assert_eq!(shmio_queue_unlink(ct.as_ptr()), SHMIO_ERR_CORRUPT);
        assert_eq!(shmio_region_unlink(ct.as_ptr()), SHMIO_ERR_CORRUPT);
        let m = last_error_string();
        assert!(m.contains("it starts with \"hello wo\""), "{m}");
        assert_eq!(names_in(&d.0), ["notes.txt", "q", "r"]);
        // Each removes its own kind.
        assert_eq!(shmio_queue_unlink(cq.as_ptr()), SHMIO_OK);
        assert_eq!(shmio_region_unlink(cr.as_ptr()), SHMIO_OK);
        assert_eq!(shmio_queue_unlink(cq.as_ptr()), SHMIO_ERR_NOT_FOUND);
        assert_eq!(shmio_region_unlink(cr.as_ptr()), SHMIO_ERR_NOT_FOUND);
    }
    assert_eq!(names_in(&d.0), ["notes.txt"]);
}
