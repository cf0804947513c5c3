//! Output structs that may grow (`struct_size` first), for every one of them: a `struct_size`
//! below the first version's is refused and nothing is written; the full size gets every
//! field; a caller's larger struct (a newer header) keeps its tail; a caller's shorter struct
//! (an older header, once a struct has grown) gets exactly its prefix. And the consumer array
//! of `shmio_queue_stats_get`, whose stride is its first element's `struct_size`.

use std::mem::offset_of;
use std::ptr;

use super::region::{Unlink, create as create_region, name as region_name};
use super::{Name, create, inited, open, options};
use crate::ffi::last_error_string;
use crate::sized::{Growable, SizedArray, SizedOut};
use crate::status::shmio_status::{self, *};
use crate::*;

/// What the tests fill callers' memory with before a call: bytes still `FILL` afterwards were
/// not written.
const FILL: u8 = 0xAA;
const FILL_WORD: u32 = u32::from_ne_bytes([FILL; 4]);

/// A caller's memory: `len` bytes filled with `FILL`, aligned for every struct here.
struct Buf(Vec<u64>);

impl Buf {
    fn new(len: usize) -> Buf {
        Buf(vec![u64::from_ne_bytes([FILL; 8]); len.div_ceil(8)])
    }
    /// A buffer whose struct at `offset` claims `struct_size` = `size`.
    fn with_size(len: usize, offset: usize, size: u32) -> Buf {
        let mut b = Buf::new(len);
        b.bytes_mut()[offset..offset + 4].copy_from_slice(&size.to_ne_bytes());
        b
    }
    fn ptr<T>(&mut self) -> *mut T {
        self.0.as_mut_ptr().cast()
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: the vector's initialised `u64`s, viewed as bytes for its length.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast(), self.0.len() * 8) }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `bytes`, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), self.0.len() * 8) }
    }
    fn u32_at(&self, offset: usize) -> u32 {
        u32::from_ne_bytes(self.bytes()[offset..offset + 4].try_into().unwrap())
    }
    /// The `T` at `offset`, as the caller would read it.
    fn read<T: Growable>(&self, offset: usize) -> T {
        assert!(offset + size_of::<T>() <= self.bytes().len());
        // SAFETY: inside the buffer; every byte pattern is a valid `T` (`Growable`).
        unsafe {
            self.bytes()
                .as_ptr()
                .add(offset)
                .cast::<T>()
                .read_unaligned()
        }
    }
}

/// `T` grown by a field, as a later version of the library might make it: `added` lies at
/// `size_of::<T>()`, so a caller of today's version passes `struct_size` = the offset of the
/// grown struct's last field.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct Grown<T> {
    old: T,
    added: [u32; 2],
}

// SAFETY: `#[repr(C)]`, beginning with `T`, which begins with `struct_size: u32`; integers
// only; no padding, since `added` (alignment 4, size 8) follows a `T` whose size is a
// multiple of its alignment (4 or 8) and leaves no tail (`grown_struct_has_no_padding`).
unsafe impl<T: Growable> Growable for Grown<T> {
    const FIRST_SIZE: usize = T::FIRST_SIZE;
    // Not used by these tests (its `struct_size` is `T`'s).
    const INIT: Grown<T> = Grown {
        old: T::INIT,
        added: [0; 2],
    };
}

/// The checks every output struct `T` passes; `fill` calls the function that fills one.
/// Returns the struct the full size got.
fn check_struct<T: Growable + std::fmt::Debug>(
    what: &str,
    fill: &dyn Fn(*mut T) -> shmio_status,
) -> Option<T> {
    let size = size_of::<T>();
    assert_eq!(T::FIRST_SIZE, size, "{what}: the first version is today's");
    assert_eq!(
        size_of::<Grown<T>>(),
        size + 8,
        "{what}: no padding in Grown"
    );
    // (a) Too small: refused, nothing written (its struct_size stays as it was).
    for small in [0, 4, T::FIRST_SIZE as u32 - 4, T::FIRST_SIZE as u32 - 1] {
        let mut b = Buf::with_size(2 * size, 0, small);
        assert_eq!(fill(b.ptr()), SHMIO_ERR_INVALID_ARGUMENT, "{what} {small}");
        let msg = last_error_string();
        assert!(
            msg.contains(&format!("struct_size {small} ")),
            "{what}: {msg}"
        );
        assert_eq!(b.u32_at(0), small, "{what}");
        assert!(b.bytes()[4..].iter().all(|&x| x == FILL), "{what} {small}");
    }
    // (c) The full size: every field written (no word still FILL), nothing past it.
    let mut b = Buf::with_size(2 * size, 0, size as u32);
    let st = fill(b.ptr());
    if st == SHMIO_ERR_UNSUPPORTED {
        eprintln!(
            "{what}: unsupported here ({}); checked refusals only",
            last_error_string()
        );
        return None;
    }
    assert_eq!(st, SHMIO_OK, "{what}: {}", last_error_string());
    assert_eq!(b.u32_at(0) as usize, size, "{what}");
    for off in (4..size).step_by(4) {
        assert_ne!(
            b.u32_at(off),
            FILL_WORD,
            "{what}: the word at {off} was not written"
        );
    }
    assert!(b.bytes()[size..].iter().all(|&x| x == FILL), "{what}");
    let v: T = b.read(0);
    // A newer caller's larger struct: our fields, its tail left alone, struct_size = ours.
    let mut big = Buf::with_size(2 * size + 16, 0, size as u32 + 16);
    assert_eq!(fill(big.ptr()), SHMIO_OK, "{what}");
    assert_eq!(big.u32_at(0) as usize, size, "{what}");
    assert!(big.bytes()[size..].iter().all(|&x| x == FILL), "{what}");
    // (b) Once `T` has grown by a field, today's caller (struct_size = the offset of the last
    // field) gets exactly today's struct, and nothing past it.
    let mut old = Buf::with_size(2 * size + 16, 0, offset_of!(Grown<T>, added) as u32);
    // SAFETY: the buffer is writable for far more than its struct_size, and aligned.
    unsafe {
        let out = SizedOut::<Grown<T>>::new(old.ptr(), "out").unwrap();
        out.write(Grown {
            old: v,
            added: [7, 7],
        });
    }
    assert_eq!(old.bytes()[..size], b.bytes()[..size], "{what}");
    assert!(old.bytes()[size..].iter().all(|&x| x == FILL), "{what}");
    // NULL: refused.
    assert_eq!(fill(ptr::null_mut()), SHMIO_ERR_NULL_POINTER, "{what}");
    Some(v)
}

#[test]
fn vm_structs_honour_struct_size() {
    // SAFETY: `p` is NULL or a buffer writable for its struct_size bytes (as in every closure
    // passed to `check_struct`).
    let k = check_struct("vm_knobs", &|p| unsafe { shmio_vm_knobs_get(p) }).unwrap();
    assert_eq!(k, {
        let mut k2 = inited(shmio_vm_knobs_init);
        // SAFETY: a struct filled by its _init.
        assert_eq!(unsafe { shmio_vm_knobs_get(&mut k2) }, SHMIO_OK);
        k2
    });
    assert_eq!(k.reserved, 0);
    // SAFETY: as above.
    check_struct("vm_thresholds", &|p| unsafe { shmio_vm_thresholds_get(p) });
    // SAFETY: as above.
    check_struct("vm_system", &|p| unsafe { shmio_vm_system_get(p) });
    let n = region_name("sized");
    let _u = Unlink(n.clone());
    let (r, st) = create_region(&n, 4096);
    assert_eq!(st, SHMIO_OK);
    // SAFETY: as above, and a live region.
    check_struct("region page_cache", &|p| unsafe {
        shmio_region_cache_stat(r, p)
    });
    let path = shmio_core::region::resolve(n.to_str().unwrap()).unwrap();
    let path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: as above, and a NUL-terminated path.
    check_struct("file page_cache", &|p| unsafe {
        shmio_vm_file_cache(path.as_ptr(), p)
    });
    // SAFETY: a live handle, closed once.
    unsafe { shmio_region_close(r) };
}

#[test]
fn queue_and_poller_structs_honour_struct_size() {
    let name = Name::new("sized");
    let p = create(&name, Some(&options(|o| o.max_consumers = 4)));
    let c = open(&name, SHMIO_START_OLDEST, 0);
    // SAFETY: a live handle; `q` is NULL or writable for its struct_size bytes (as in every
    // closure passed to `check_struct`).
    let info = check_struct("producer info", &|q| unsafe { shmio_producer_info(p, q) });
    assert_eq!(info.unwrap().max_consumers, 4);
    // SAFETY: as above.
    check_struct("consumer info", &|q| unsafe { shmio_consumer_info(c, q) });
    // SAFETY: as above, and a valid name; no array.
    let qs = check_struct("queue stats", &|q| unsafe {
        shmio_queue_stats_get(name.ptr(), q, ptr::null_mut(), 0, ptr::null_mut())
    })
    .unwrap();
    assert_eq!((qs.live_consumers, qs.reserved), (1, 0));
    let mut poller = ptr::null_mut();
    // SAFETY: a valid out pointer.
    let st = unsafe { shmio_poller_new(SHMIO_BACKEND_EPOLL, &mut poller) };
    assert_eq!(st, SHMIO_OK);
    // SAFETY: as above.
    check_struct("poller stats", &|q| unsafe {
        shmio_poller_stats_get(poller, q)
    });
    // SAFETY: live handles, each closed once.
    unsafe {
        shmio_poller_free(poller);
        shmio_consumer_close(c);
        shmio_producer_close(p);
    }
}

/// `shmio_queue_stats_get` of `name` into a fresh stats struct and the array `b` said to hold
/// `cap` elements: the status and the count.
fn stats_into(name: &Name, b: &mut Buf, cap: usize) -> (shmio_status, usize) {
    let mut qs = inited(shmio_queue_stats_init);
    let mut n = usize::MAX;
    // SAFETY: a valid name, a filled stats struct, an array writable for `cap` elements of
    // its first element's struct_size (the callers size `b` so), a writable count.
    let st = unsafe { shmio_queue_stats_get(name.ptr(), &mut qs, b.ptr(), cap, &mut n) };
    (st, n)
}

#[test]
fn consumer_arrays_take_their_stride_from_the_first_element() {
    let size = size_of::<shmio_consumer_stats>();
    let name = Name::new("sized-array");
    let p = create(&name, Some(&options(|o| o.max_consumers = 4)));
    let c1 = open(&name, SHMIO_START_OLDEST, 0);
    let c2 = open(&name, SHMIO_START_OLDEST, 0);
    // Only element 0 set; the caller's struct is larger (a newer header): stride = its size.
    for stride in [size, size + 16] {
        let mut b = Buf::with_size(3 * stride, 0, stride as u32);
        assert_eq!(stats_into(&name, &mut b, 3), (SHMIO_OK, 2), "{stride}");
        for i in 0..2 {
            let at = i * stride;
            assert_eq!(b.u32_at(at) as usize, size, "element {i}");
            for off in (4..size).step_by(4) {
                assert_ne!(b.u32_at(at + off), FILL_WORD, "element {i}, word {off}");
            }
            assert!(b.bytes()[at + size..at + stride].iter().all(|&x| x == FILL));
            let e: shmio_consumer_stats = b.read(at);
            assert_eq!((e.pid, e.reserved), (std::process::id(), 0));
        }
        assert!(
            b.bytes()[2 * stride..].iter().all(|&x| x == FILL),
            "element 2"
        );
        let (e0, e1) = (
            b.read::<shmio_consumer_stats>(0),
            b.read::<shmio_consumer_stats>(stride),
        );
        assert_ne!(e0.index, e1.index);
    }
    // A stride below the first version, or not a multiple of the alignment: refused, nothing
    // written.
    for stride in [0, 8, size - 8, size + 4] {
        let mut b = Buf::with_size(3 * size + 8, 0, stride as u32);
        assert_eq!(stats_into(&name, &mut b, 3).0, SHMIO_ERR_INVALID_ARGUMENT);
        let msg = last_error_string();
        assert!(
            msg.contains(&format!("consumers->struct_size {stride} ")),
            "{msg}"
        );
        assert!(b.bytes()[4..].iter().all(|&x| x == FILL), "{stride}");
    }
    // A bad stats struct: refused before the array is touched.
    let mut b = Buf::with_size(3 * size, 0, size as u32);
    let mut qs = inited(shmio_queue_stats_init);
    qs.struct_size = 8;
    // SAFETY: as in `stats_into`.
    let st = unsafe { shmio_queue_stats_get(name.ptr(), &mut qs, b.ptr(), 3, ptr::null_mut()) };
    assert_eq!(st, SHMIO_ERR_INVALID_ARGUMENT);
    assert!(b.bytes()[4..].iter().all(|&x| x == FILL));
    // Once the struct has grown, today's caller (stride = today's size) gets today's struct in
    // each element and nothing past it.
    let mut today = Buf::with_size(3 * size, 0, size as u32);
    assert_eq!(stats_into(&name, &mut today, 3), (SHMIO_OK, 2));
    let mut old = Buf::with_size(3 * size, 0, size as u32);
    // SAFETY: the array is writable for 3 elements of its stride, and aligned.
    unsafe {
        let a = SizedArray::<Grown<shmio_consumer_stats>>::new(old.ptr(), 3, "consumers")
            .unwrap()
            .unwrap();
        for i in 0..2 {
            let v = Grown {
                old: today.read(i * size),
                added: [7, 7],
            };
            a.write(i, v);
        }
    }
    assert_eq!(old.bytes()[..2 * size], today.bytes()[..2 * size]);
    assert!(old.bytes()[2 * size..].iter().all(|&x| x == FILL));
    // `cap` 0 reads nothing (NULL is fine); NULL with `cap` > 0 is not.
    let mut qs = inited(shmio_queue_stats_init);
    // SAFETY: a filled stats struct; NULL arrays where tested.
    unsafe {
        assert_eq!(
            shmio_queue_stats_get(name.ptr(), &mut qs, ptr::null_mut(), 0, ptr::null_mut()),
            SHMIO_OK
        );
        assert_eq!(
            shmio_queue_stats_get(name.ptr(), &mut qs, ptr::null_mut(), 1, ptr::null_mut()),
            SHMIO_ERR_NULL_POINTER
        );
        shmio_consumer_close(c1);
        shmio_consumer_close(c2);
        shmio_producer_close(p);
    }
}
