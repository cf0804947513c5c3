//! Unit tests driving the exported functions exactly as C would, one file per capability
//! (`queue`, `tqueue`, `region`, `region_replica` (change tracking, replicas, the writer
//! claim), `vm`, `poll`, `zc` (zero-copy sends on real sockets), files on a small file system in `files`), plus the conventions every
//! function shares (`args`: argument checks; `status`: status codes, the last error, panics).
//! The helpers here make and open queues.

use std::ffi::{CStr, CString, c_char, c_int};
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::ffi::last_error_string;
use crate::status::shmio_status::*;
use crate::*;

mod args;
mod batch;
mod files;
mod poll;
mod queue;
mod region;
mod region_replica;
mod sized;
mod status;
mod tqueue;
mod vm;
mod zc;

/// Waits for the forked child `pid` and returns its exit code (failing the test if it died of a
/// signal).
fn exit_code(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: our own child, a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status),
        "child died of a signal: {status:#x}"
    );
    libc::WEXITSTATUS(status)
}

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

/// A struct filled by its exported `_init` function, as a C caller fills it.
fn inited<T>(init: unsafe extern "C" fn(*mut T) -> shmio_status) -> T {
    let mut v = MaybeUninit::<T>::uninit();
    // SAFETY: a writable struct, as `init` needs.
    assert_eq!(unsafe { init(v.as_mut_ptr()) }, SHMIO_OK);
    // SAFETY: `init` filled it in.
    unsafe { v.assume_init() }
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

/// `shmio_consumer_recv` into all of `buf`, waiting up to `timeout_ms`, the length in `len`
/// and no sequence number: the status.
///
/// # Safety
/// `c` is a live consumer.
unsafe fn recv(
    c: *mut shmio_consumer,
    buf: &mut [u8],
    timeout_ms: c_int,
    len: &mut usize,
) -> shmio_status {
    // SAFETY: the caller's consumer; `buf` is writable for its length, `len` is writable and
    // the sequence number's out pointer may be NULL.
    unsafe {
        shmio_consumer_recv(
            c,
            buf.as_mut_ptr().cast(),
            buf.len(),
            timeout_ms,
            len,
            ptr::null_mut(),
        )
    }
}

/// `shmio_queue_stats_get` of `name` with no consumer array (said to hold `n` entries) and no
/// count: the status, and the queue's figures if it succeeded.
fn queue_stats(name: &Name, n: usize) -> (shmio_status, Option<shmio_queue_stats>) {
    let mut qs = inited(shmio_queue_stats_init);
    // SAFETY: a valid name and a writable stats struct filled by its _init; the NULL array and
    // count are the call's to check against `n`.
    let st =
        unsafe { shmio_queue_stats_get(name.ptr(), &mut qs, ptr::null_mut(), n, ptr::null_mut()) };
    (st, (st == SHMIO_OK).then_some(qs))
}
