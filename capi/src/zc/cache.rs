//! The shared cache: a named region holding files loaded once, sent from the mapping.

use std::ffi::{c_char, c_void};
use std::os::fd::RawFd;
use std::ptr::NonNull;

use shmio_core::zc::{Cache, Entry};

use super::{
    bytes_arg, fd_arg, out_arg, put, shmio_splicer, shmio_zc_progress, shmio_zc_sent,
    shmio_zerocopy,
};
use crate::ffi::{Failure, Out, Result, boundary, handle_mut, handle_ref, non_null_const, str_arg};
use crate::sized::{init, read_sized};
use crate::status::shmio_status;

/// The longest cache key, in bytes.
pub const SHMIO_ZC_MAX_KEY: u32 = 104;
const _: () = assert!(SHMIO_ZC_MAX_KEY as usize == shmio_core::zc::MAX_KEY);

/// A shared cache: a region (`/dev/shm/<name>` or a path) holding up to `max_entries` named
/// entries, each written once by `shmio_zc_cache_add` and read in place by every process that
/// opens it. Entries never change and are never removed. Nothing read from the region is
/// trusted: a bad table is `SHMIO_ERR_CORRUPT`. Thread-safe: any number of threads may use one
/// handle at once.
pub struct shmio_zc_cache {
    inner: Cache,
}

/// Where an entry's bytes are. Fill with `shmio_zc_entry_init` first (it sets `struct_size`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_zc_entry {
    /// Size of this struct as the caller knows it; set by `shmio_zc_entry_init`.
    pub struct_size: u32,
    /// Always 0 (keeps the struct free of padding).
    pub reserved: u32,
    /// Offset of the first byte in the cache region's data.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

const ENTRY_SIZE: usize = size_of::<shmio_zc_entry>();

impl From<Entry> for shmio_zc_entry {
    fn from(e: Entry) -> shmio_zc_entry {
        shmio_zc_entry {
            struct_size: ENTRY_SIZE as u32,
            reserved: 0,
            offset: e.offset,
            len: e.len,
        }
    }
}

/// Fills `*out` with zeros and sets its `struct_size`.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL (-> `SHMIO_ERR_NULL_POINTER`) or valid for writing a `shmio_zc_entry`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_entry_init(out: *mut shmio_zc_entry) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe {
        init(
            "shmio_zc_entry_init",
            out,
            Entry { offset: 0, len: 0 }.into(),
        )
    }
}

/// Creates the cache region `name` with room for `max_entries` entries (1..=65536) and
/// `data_bytes` bytes of data (each entry takes its length rounded up to 4 KiB). A file there
/// already -> `SHMIO_ERR_ALREADY_EXISTS`.
///
/// Ownership: `name` is only read during the call; `*out` receives a handle closed with
/// `shmio_zc_cache_close`. Does not block. Thread-safe.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string; `out` NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_cache_create(
    name: *const c_char,
    data_bytes: u64,
    max_entries: u32,
    out: *mut *mut shmio_zc_cache,
) -> shmio_status {
    boundary("shmio_zc_cache_create", || {
        let out = Out::new(out, "out")?;
        // SAFETY: NUL-terminated by the contract, only used during the call.
        let name = unsafe { str_arg(name, "name") }?;
        let inner = Cache::create(name, data_bytes, max_entries)?;
        // SAFETY: writable by the contract.
        unsafe { out.write(Box::into_raw(Box::new(shmio_zc_cache { inner }))) };
        Ok(())
    })
}

/// Opens the cache region `name` and checks its header.
///
/// # Safety
/// As for `shmio_zc_cache_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_cache_open(
    name: *const c_char,
    out: *mut *mut shmio_zc_cache,
) -> shmio_status {
    boundary("shmio_zc_cache_open", || {
        let out = Out::new(out, "out")?;
        // SAFETY: NUL-terminated by the contract, only used during the call.
        let name = unsafe { str_arg(name, "name") }?;
        let inner = Cache::open(name)?;
        // SAFETY: writable by the contract.
        unsafe { out.write(Box::into_raw(Box::new(shmio_zc_cache { inner }))) };
        Ok(())
    })
}

/// Unmaps the cache and frees the handle; the file stays. NULL is a no-op.
///
/// # Safety
/// `c` must be NULL or a live handle, with no call on it in progress and none after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_cache_close(c: *mut shmio_zc_cache) {
    boundary("shmio_zc_cache_close", || {
        if !c.is_null() {
            // SAFETY: a live handle is a `Box` we leaked; the caller gives it back once.
            drop(unsafe { Box::from_raw(c) });
        }
        Ok(())
    });
}

/// Removes the cache region file `name`; processes that have it open keep using it.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_cache_unlink(name: *const c_char) -> shmio_status {
    boundary("shmio_zc_cache_unlink", || {
        // SAFETY: NUL-terminated by the contract, only used during the call.
        let name = unsafe { str_arg(name, "name") }?;
        Ok(Cache::unlink(name)?)
    })
}

/// An optional entry output, checked up front.
///
/// # Safety
/// `out` NULL or filled by `shmio_zc_entry_init`.
unsafe fn entry_out(out: *mut shmio_zc_entry) -> Result<Option<NonNull<shmio_zc_entry>>> {
    match out.is_null() {
        true => Ok(None),
        // SAFETY: readable by the contract.
        false => unsafe { out_arg(out, "out") }.map(Some),
    }
}

/// Writes an entry through an optional output checked by `entry_out`.
///
/// # Safety
/// `out` writable for its `struct_size` bytes.
unsafe fn put_entry(out: Option<NonNull<shmio_zc_entry>>, e: Entry) -> Result<()> {
    match out {
        // SAFETY: forwarded contract.
        Some(p) => unsafe { put(p, e.into(), "out") },
        None => Ok(()),
    }
}

/// Adds the `len` bytes at `data` as the entry `key` (1..=`SHMIO_ZC_MAX_KEY` bytes of UTF-8),
/// under the region's writer lock. A key there already -> `SHMIO_ERR_ALREADY_EXISTS`; no entry
/// or room left -> `SHMIO_ERR_NO_SPACE`. `out` (may be NULL) receives the entry.
///
/// # Safety
/// `c` must be NULL or a live handle; `key` NULL or NUL-terminated; `data` readable for `len`
/// bytes; `out` NULL or filled by `shmio_zc_entry_init`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_cache_add(
    c: *const shmio_zc_cache,
    key: *const c_char,
    data: *const c_void,
    len: usize,
    out: *mut shmio_zc_entry,
) -> shmio_status {
    boundary("shmio_zc_cache_add", || {
        // SAFETY: a live handle; NUL-terminated key; readable data (contract).
        let (c, key, data) = unsafe {
            (
                handle_ref(c, "c")?,
                str_arg(key, "key")?,
                bytes_arg(data, len)?,
            )
        };
        // SAFETY: NULL or filled by _init (contract).
        let out = unsafe { entry_out(out) }?;
        let e = c.inner.add(key, data)?;
        // SAFETY: forwarded contract.
        unsafe { put_entry(out, e) }
    })
}

/// Reads the file at `path` and adds its bytes as the entry `key` (as `shmio_zc_cache_add`).
///
/// # Safety
/// As for `shmio_zc_cache_add`, with `path` NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_cache_add_file(
    c: *const shmio_zc_cache,
    key: *const c_char,
    path: *const c_char,
    out: *mut shmio_zc_entry,
) -> shmio_status {
    boundary("shmio_zc_cache_add_file", || {
        // SAFETY: a live handle; NUL-terminated strings (contract).
        let (c, key, path) = unsafe {
            (
                handle_ref(c, "c")?,
                str_arg(key, "key")?,
                str_arg(path, "path")?,
            )
        };
        // SAFETY: NULL or filled by _init (contract).
        let out = unsafe { entry_out(out) }?;
        let e = c.inner.add_file(key, std::path::Path::new(path))?;
        // SAFETY: forwarded contract.
        unsafe { put_entry(out, e) }
    })
}

/// The entry of `key`; none -> `SHMIO_ERR_NOT_FOUND`.
///
/// # Safety
/// As for `shmio_zc_cache_add`; `out` must not be NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_cache_lookup(
    c: *const shmio_zc_cache,
    key: *const c_char,
    out: *mut shmio_zc_entry,
) -> shmio_status {
    boundary("shmio_zc_cache_lookup", || {
        // SAFETY: readable by the contract.
        let p = unsafe { out_arg(out, "out") }?;
        // SAFETY: a live handle; NUL-terminated key (contract).
        let (c, key) = unsafe { (handle_ref(c, "c")?, str_arg(key, "key")?) };
        match c.inner.lookup(key)? {
            // SAFETY: forwarded contract.
            Some(e) => unsafe { put(p, e.into(), "out") },
            None => Err(Failure::new(
                shmio_status::SHMIO_ERR_NOT_FOUND,
                format!("the cache has no entry {key:?}"),
            )),
        }
    })
}

/// The caller's entry struct, read as far as its `struct_size` goes.
///
/// # Safety
/// `e` NULL or readable for its `struct_size` bytes.
unsafe fn entry_arg(e: *const shmio_zc_entry) -> Result<Entry> {
    let p = non_null_const(e, "entry")?;
    let zero = shmio_zc_entry::from(Entry { offset: 0, len: 0 });
    // SAFETY: readable (contract); integers only, no padding.
    let e = unsafe { read_sized(p, ENTRY_SIZE, zero, "entry") }?;
    Ok(Entry {
        offset: e.offset,
        len: e.len,
    })
}

/// Sends `entry` from byte `from` to `sock` through the splicer, from the mapping itself. On a
/// non-blocking socket, call again with `from + out->sent` when it is writable. An entry
/// outside the mapping -> `SHMIO_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `c` a live handle; `entry` filled by a lookup or add; `sp` a live splicer used by no other
/// thread; `out` filled by `shmio_zc_progress_init`; `sock` open during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_cache_send(
    c: *const shmio_zc_cache,
    entry: *const shmio_zc_entry,
    from: u64,
    sock: RawFd,
    sp: *mut shmio_splicer,
    out: *mut shmio_zc_progress,
) -> shmio_status {
    boundary("shmio_zc_cache_send", || {
        // SAFETY: readable by the contract.
        let out = unsafe { out_arg(out, "out") }?;
        // SAFETY: live handles, the splicer this thread's alone; an open socket (contract).
        let (c, sp, sock, e) = unsafe {
            (
                handle_ref(c, "c")?,
                handle_mut(sp, "sp")?,
                fd_arg(sock, "sock")?,
                entry_arg(entry)?,
            )
        };
        let p = c.inner.send_splice(&e, from, sock, &mut sp.inner)?;
        // SAFETY: writable for its struct_size bytes (contract).
        unsafe { put(out, p.into(), "out") }
    })
}

/// Sends what `sock` takes of `entry` from byte `from` with `MSG_ZEROCOPY` (entries never
/// change: nothing to wait for before sending it again; reap to keep the error queue short).
///
/// # Safety
/// As for `shmio_zc_cache_send`, with `zc` a live zero-copy handle and `out` filled by
/// `shmio_zc_sent_init`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_zc_cache_send_zerocopy(
    c: *const shmio_zc_cache,
    entry: *const shmio_zc_entry,
    from: u64,
    sock: RawFd,
    zc: *mut shmio_zerocopy,
    out: *mut shmio_zc_sent,
) -> shmio_status {
    boundary("shmio_zc_cache_send_zerocopy", || {
        // SAFETY: readable by the contract.
        let out = unsafe { out_arg(out, "out") }?;
        // SAFETY: live handles, `zc` this thread's alone; an open socket (contract).
        let (c, zc, sock, e) = unsafe {
            (
                handle_ref(c, "c")?,
                handle_mut(zc, "zc")?,
                fd_arg(sock, "sock")?,
                entry_arg(entry)?,
            )
        };
        let s = c.inner.send_zerocopy(&e, from, sock, &mut zc.inner)?;
        // SAFETY: writable for its struct_size bytes (contract).
        unsafe { put(out, s.into(), "out") }
    })
}
