//! The region's C functions: argument checks, error mapping, torn ranges.

use std::ffi::{CString, c_void};
use std::ptr;

use crate::region::*;
use crate::status::shmio_status::{self, *};

pub(super) fn name(tag: &str) -> CString {
    CString::new(format!("shmio-capi-region-{tag}-{}", std::process::id())).unwrap()
}

pub(super) struct Unlink(pub(super) CString);
impl Drop for Unlink {
    fn drop(&mut self) {
        // SAFETY: a valid C string.
        unsafe { shmio_region_unlink(self.0.as_ptr()) };
    }
}

pub(super) fn create(n: &CString, size: u64) -> (*mut shmio_region, shmio_status) {
    let mut r = ptr::null_mut();
    // SAFETY: valid string, NULL options (defaults), valid out pointer.
    let s = unsafe { shmio_region_create(n.as_ptr(), size, ptr::null(), &mut r) };
    (r, s)
}

#[test]
fn region_round_trip_and_errors() {
    let n = name("rt");
    let _u = Unlink(n.clone());
    let (r, s) = create(&n, 4096);
    assert_eq!(s, SHMIO_OK);
    assert!(!r.is_null());
    let (r2, s) = create(&n, 4096);
    assert_eq!(s, SHMIO_ERR_ALREADY_EXISTS);
    assert!(r2.is_null());
    let mut v = 0u64;
    // SAFETY: live handle, valid buffers for the given lengths, valid out pointers.
    unsafe {
        assert_eq!(
            shmio_region_write(r, 10, b"abc".as_ptr().cast(), 3, &mut v),
            SHMIO_OK
        );
        assert_eq!(v, 1);
        let mut buf = [0u8; 3];
        assert_eq!(
            shmio_region_read(r, 10, buf.as_mut_ptr().cast(), 3, ptr::null_mut()),
            SHMIO_OK
        );
        assert_eq!(&buf, b"abc");
        assert_eq!(
            shmio_region_read(r, 4095, buf.as_mut_ptr().cast(), 3, ptr::null_mut()),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            shmio_region_write(r, 0, ptr::null(), 3, ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        assert_eq!(shmio_region_flush(r, 0, 5000), SHMIO_ERR_INVALID_ARGUMENT);
        assert_eq!(shmio_region_flush(r, 0, 4096), SHMIO_OK);
        assert_eq!(shmio_region_flush_all(r), SHMIO_OK);
        assert_eq!(shmio_region_flush_all(ptr::null()), SHMIO_ERR_NULL_POINTER);
        let mut p: *mut c_void = ptr::null_mut();
        let mut len = 0usize;
        assert_eq!(shmio_region_data(r, &mut p, &mut len), SHMIO_OK);
        assert_eq!(len, 4096);
        assert_eq!(*p.cast::<u8>().add(11), b'b');
        assert_eq!(
            shmio_region_wait_changed(r, 1, 0, ptr::null_mut()),
            SHMIO_ERR_WOULD_BLOCK
        );
        assert_eq!(shmio_region_wait_changed(r, 0, 0, &mut v), SHMIO_OK);
        assert_eq!(v, 1);
        assert_eq!(shmio_region_touch(r, &mut v), SHMIO_OK);
        assert_eq!(v, 2);
        let (mut o, mut l) = (9u64, 9u64);
        assert_eq!(shmio_region_torn(r, &mut o, &mut l), SHMIO_OK);
        assert_eq!((o, l), (0, 0));
        let mut opts = std::mem::MaybeUninit::<shmio_region_options>::uninit();
        assert_eq!(shmio_region_options_init(opts.as_mut_ptr()), SHMIO_OK);
        let mut opts = opts.assume_init();
        opts.flags = 0x100;
        let mut r3 = ptr::null_mut();
        assert_eq!(
            shmio_region_open(n.as_ptr(), &opts, &mut r3),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        opts.flags = SHMIO_REGION_POPULATE;
        assert_eq!(shmio_region_open(n.as_ptr(), &opts, &mut r3), SHMIO_OK);
        assert_eq!(shmio_region_version(r3, &mut v), SHMIO_OK);
        assert_eq!(v, 2);
        shmio_region_close(r3);
        shmio_region_close(r);
        shmio_region_close(ptr::null_mut());
    }
    let (r, s) = create(&name("zero"), 0);
    assert_eq!(s, SHMIO_ERR_INVALID_ARGUMENT);
    assert!(r.is_null());
    let mut r = ptr::null_mut();
    let missing = CString::new("shmio-capi-no-such-region").unwrap();
    // SAFETY: valid string and out pointer.
    let s = unsafe { shmio_region_open(missing.as_ptr(), ptr::null(), &mut r) };
    assert_eq!(s, SHMIO_ERR_NOT_FOUND);
}

#[test]
fn torn_range_is_shmio_err_torn_with_its_range() {
    let n = name("torn");
    let _u = Unlink(n.clone());
    let (r, s) = create(&n, 4096);
    assert_eq!(s, SHMIO_OK);
    // A writer that fails mid-write (a panic in the closure: the same state a killed writer
    // leaves), through the core API on the same file.
    let core = shmio_core::region::Region::open(
        n.to_str().unwrap(),
        &shmio_core::region::RegionOptions::new(),
    )
    .unwrap();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        core.write_with(100, 50, |mut b| {
            b.set(0, 1);
            panic!("mid-write");
        })
    }));
    assert!(res.is_err());
    let mut buf = [0u8; 10];
    // SAFETY: live handle, valid buffers and out pointers.
    unsafe {
        assert_eq!(
            shmio_region_read(r, 120, buf.as_mut_ptr().cast(), 10, ptr::null_mut()),
            SHMIO_ERR_TORN
        );
        let msg = crate::ffi::last_error_string();
        assert!(msg.contains("torn") && msg.contains("100..150"), "{msg}");
        assert_eq!(
            shmio_region_read(r, 0, buf.as_mut_ptr().cast(), 10, ptr::null_mut()),
            SHMIO_OK
        );
        let (mut o, mut l) = (0u64, 0u64);
        assert_eq!(shmio_region_torn(r, &mut o, &mut l), SHMIO_OK);
        assert_eq!((o, l), (100, 50));
        let fill = [9u8; 50];
        assert_eq!(
            shmio_region_write(r, 100, fill.as_ptr().cast(), 50, ptr::null_mut()),
            SHMIO_OK
        );
        assert_eq!(
            shmio_region_read(r, 120, buf.as_mut_ptr().cast(), 10, ptr::null_mut()),
            SHMIO_OK
        );
        assert_eq!(buf, [9u8; 10]);
        shmio_region_close(r);
    }
}

/// A buffer inside the region's own mapping (from `shmio_region_data`) given to the consistent
/// read or write: refused before any copy (it used to make two overlapping Rust slices, one
/// of them `&mut`, over the same bytes), and the data is unchanged.
#[test]
fn consistent_copies_refuse_a_buffer_inside_the_region_itself() {
    let n = name("overlap");
    let _u = Unlink(n.clone());
    let (r, s) = create(&n, 8192);
    assert_eq!(s, SHMIO_OK);
    let (mut base, mut len) = (ptr::null_mut::<c_void>(), 0usize);
    // SAFETY: a live handle, valid out pointers, and buffers inside the mapping (the calls
    // must refuse them without touching them) or our own.
    unsafe {
        assert_eq!(shmio_region_data(r, &mut base, &mut len), SHMIO_OK);
        assert_eq!(
            shmio_region_write(r, 0, b"12345678".as_ptr().cast(), 8, ptr::null_mut()),
            SHMIO_OK
        );
        let inside = base.cast::<u8>().add(100).cast::<c_void>();
        assert_eq!(
            shmio_region_read(r, 0, inside, 8, ptr::null_mut()),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        assert!(crate::ffi::last_error_string().contains("own mapping"));
        assert_eq!(
            shmio_region_write(r, 4, base, 8, ptr::null_mut()),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        // The header (before the data) is part of the mapping too.
        let header = base.cast::<u8>().sub(64).cast::<c_void>();
        assert_eq!(
            shmio_region_read(r, 0, header, 8, ptr::null_mut()),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        let mut buf = [0u8; 8];
        assert_eq!(
            shmio_region_read(r, 0, buf.as_mut_ptr().cast(), 8, ptr::null_mut()),
            SHMIO_OK
        );
        assert_eq!(&buf, b"12345678");
        shmio_region_close(r);
    }
}
