//! The shared region: create/open, raw and consistent access, change notification, flush
//! (here); change tracking (`track.rs`), replicas (`replica.rs`) and the writer claim
//! (`claim.rs`).

use std::ffi::{c_char, c_int, c_void};
use std::mem::MaybeUninit;

use shmio_core::region::{self, Region, RegionOptions};

use crate::ffi::{
    Failure, Out, Result, boundary, byte_len, handle_ref, non_null, non_null_const, str_arg,
    timeout, write_opt,
};
use crate::sized::{SizedOut, read_sized};
use crate::status::shmio_status;
use crate::vm::shmio_page_cache;

/// Region flag: open the file with O_SYNC, as the original note did. This makes write(2) on the
/// descriptor synchronous; stores through the mapping are NOT made durable by it (use
/// `shmio_region_flush`).
pub const SHMIO_REGION_O_SYNC: u32 = 1;
/// Region flag: pre-fault every page at map time (MAP_POPULATE).
pub const SHMIO_REGION_POPULATE: u32 = 2;
/// Region flag: lock the mapping in RAM (mlock); may fail under RLIMIT_MEMLOCK.
pub const SHMIO_REGION_MLOCK: u32 = 4;

const ALL_FLAGS: u32 = SHMIO_REGION_O_SYNC | SHMIO_REGION_POPULATE | SHMIO_REGION_MLOCK;

/// Options for `shmio_region_create` / `shmio_region_open`. Fill with
/// `shmio_region_options_init` first (it sets `struct_size`), then change what you need.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_region_options {
    /// Size of this struct as the caller knows it; set by `shmio_region_options_init`.
    pub struct_size: u32,
    /// File mode at creation, applied exactly, not masked by the umask (default 0600).
    pub mode: u32,
    /// `SHMIO_REGION_*` flags, or-ed (default 0).
    pub flags: u32,
    /// Create: the granularity of change tracking in bytes, a power of two from 64 to 1 MiB;
    /// 0 (the default) means 4096. A write marks at least one chunk changed, and a replica
    /// receives whole chunks. Open reads it from the file and ignores this field. Added after
    /// the first version of this struct: a caller whose `struct_size` ends before it gets the
    /// default.
    pub chunk_size: u32,
}

const OPTIONS_SIZE: u32 = size_of::<shmio_region_options>() as u32;

/// The size of the first version of `shmio_region_options` (`struct_size`, `mode`, `flags`):
/// the smallest `struct_size` accepted.
const OPTIONS_SIZE_V1: usize = std::mem::offset_of!(shmio_region_options, chunk_size);

impl shmio_region_options {
    pub(crate) const DEFAULT: shmio_region_options = shmio_region_options {
        struct_size: OPTIONS_SIZE,
        mode: 0o600,
        flags: 0,
        chunk_size: 0,
    };

    pub(crate) fn to_core(self) -> Result<RegionOptions> {
        if self.flags & !ALL_FLAGS != 0 {
            return Err(Failure::invalid(format!(
                "flags {:#x} has bits that are not SHMIO_REGION_* flags",
                self.flags
            )));
        }
        Ok(RegionOptions::new()
            .mode(self.mode)
            .o_sync(self.flags & SHMIO_REGION_O_SYNC != 0)
            .populate(self.flags & SHMIO_REGION_POPULATE != 0)
            .lock_in_ram(self.flags & SHMIO_REGION_MLOCK != 0)
            .chunk_size(chunk_arg(self.chunk_size)))
    }
}

/// A chunk size as C passes it: 0 is the default (4096).
fn chunk_arg(c: u32) -> u64 {
    match c {
        0 => region::DEFAULT_CHUNK,
        c => u64::from(c),
    }
}

/// Reads a caller's options struct, or the defaults for NULL. A struct of the first version
/// (without `chunk_size`) is read as far as it goes; the rest are the defaults.
///
/// # Safety
/// `opts` must be NULL or point to a readable options struct of at least `struct_size` bytes.
unsafe fn options_arg(opts: *const shmio_region_options) -> Result<RegionOptions> {
    let o = match std::ptr::NonNull::new(opts.cast_mut()) {
        None => shmio_region_options::DEFAULT,
        Some(p) => {
            // SAFETY: readable for `struct_size` bytes (contract); the struct begins with
            // `struct_size` and holds only `u32`s, without padding.
            unsafe { read_sized(p, OPTIONS_SIZE_V1, shmio_region_options::DEFAULT, "opts") }?
        }
    };
    o.to_core()
}

/// A mapped region (opaque). Thread-safe: every function except `shmio_region_close` may be
/// called on the same handle from several threads at once.
pub struct shmio_region {
    inner: Region,
}

/// Fills `*opts` with the defaults: mode 0600, no flags, chunk size 0 (4096), and
/// `struct_size`.
///
/// Ownership: `opts` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `opts` must be NULL (-> `SHMIO_ERR_NULL_POINTER`) or valid for writing a
/// `shmio_region_options`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_options_init(
    opts: *mut shmio_region_options,
) -> shmio_status {
    boundary("shmio_region_options_init", || {
        let out = Out::new(opts, "opts")?;
        // SAFETY: valid for writing by the contract.
        unsafe { out.write(shmio_region_options::DEFAULT) };
        Ok(())
    })
}

/// Creates the region `name` with `size` zeroed bytes of data and maps it. `name` is a bare
/// name, placed in `$SHMIO_DIR` or `/dev/shm`, or a path (starting with '/', './' or '../'): a RAM
/// disk, a disk file system for durability, a network file system. The file is created
/// exclusively (`SHMIO_ERR_ALREADY_EXISTS` if it exists) with the options' mode exactly. A size
/// of 0 or above 2^40, or a `chunk_size` that is not 0 or a power of two from 64 to 1 MiB ->
/// `SHMIO_ERR_INVALID_ARGUMENT`. `opts` NULL means the defaults. The
/// file's blocks are reserved at creation: a file system too small for it ->
/// `SHMIO_ERR_NO_SPACE` (nothing left behind), never a SIGBUS on a later store.
///
/// Ownership: on success `*out` receives a handle to release with `shmio_region_close`; on
/// failure `*out` is set to NULL. Does not block. Thread-safe.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string; `opts` NULL or a readable
/// `shmio_region_options`; `out` NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_create(
    name: *const c_char,
    size: u64,
    opts: *const shmio_region_options,
    out: *mut *mut shmio_region,
) -> shmio_status {
    boundary("shmio_region_create", || {
        let out = Out::new(out, "out")?;
        // SAFETY: valid for writing a pointer by the contract.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: NUL-terminated by the contract, only used during the call.
        let name = unsafe { str_arg(name, "name") }?;
        // SAFETY: NULL or readable by the contract.
        let opts = unsafe { options_arg(opts) }?;
        let inner = Region::create(name, size, &opts)?;
        // SAFETY: valid for writing a pointer by the contract.
        unsafe { out.write(Box::into_raw(Box::new(shmio_region { inner }))) };
        Ok(())
    })
}

/// Opens and maps the existing region `name`, validating its header (a file that is not a
/// region, or is truncated -> `SHMIO_ERR_CORRUPT`; another layout version ->
/// `SHMIO_ERR_VERSION_MISMATCH`; missing -> `SHMIO_ERR_NOT_FOUND`). The options' flags apply;
/// the mode is ignored.
///
/// Ownership: on success `*out` receives a handle to release with `shmio_region_close`; on
/// failure `*out` is set to NULL. Does not block. Thread-safe.
///
/// # Safety
/// As for `shmio_region_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_open(
    name: *const c_char,
    opts: *const shmio_region_options,
    out: *mut *mut shmio_region,
) -> shmio_status {
    boundary("shmio_region_open", || {
        let out = Out::new(out, "out")?;
        // SAFETY: valid for writing a pointer by the contract.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: NUL-terminated by the contract, only used during the call.
        let name = unsafe { str_arg(name, "name") }?;
        // SAFETY: NULL or readable by the contract.
        let opts = unsafe { options_arg(opts) }?;
        let inner = Region::open(name, &opts)?;
        // SAFETY: valid for writing a pointer by the contract.
        unsafe { out.write(Box::into_raw(Box::new(shmio_region { inner }))) };
        Ok(())
    })
}

/// Unmaps the region and frees the handle; the file stays (see `shmio_region_unlink`). NULL is
/// a no-op.
///
/// Ownership: takes the handle; it and the data pointer from `shmio_region_data` are invalid
/// afterwards. Must not race with any other call on the same handle.
///
/// # Safety
/// `r` must be NULL or a live handle from `shmio_region_create`/`shmio_region_open`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_close(r: *mut shmio_region) {
    boundary("shmio_region_close", || {
        if !r.is_null() {
            // SAFETY: a live handle is a `Box` we leaked; the caller gives it back once.
            drop(unsafe { Box::from_raw(r) });
        }
        Ok(())
    });
}

/// Removes the region file `name` (name or path as for `shmio_region_create`). Processes that
/// have it mapped keep using it. No such file -> `SHMIO_ERR_NOT_FOUND`.
///
/// Only a region file is removed: the file is opened (`O_NOFOLLOW`, read-only, so read
/// permission is needed) and must start with the region magic. Anything else at the path (a
/// queue, a text file, a symbolic link, a directory) is left alone -> `SHMIO_ERR_CORRUPT`,
/// with a message saying what it is. A region of another layout version is removed. Another
/// process could replace the file between the check and the unlink; the check guards against
/// mistakes, not against someone who can write the directory.
///
/// Ownership: `name` is only read during the call. Does not block. Thread-safe.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_unlink(name: *const c_char) -> shmio_status {
    boundary("shmio_region_unlink", || {
        // SAFETY: NUL-terminated by the contract, only used during the call.
        let name = unsafe { str_arg(name, "name") }?;
        region::unlink(name)?;
        Ok(())
    })
}

/// Raw access: `*ptr_out` receives the data's first byte and `*len_out` its length. Plain
/// shared memory: nothing orders concurrent raw accesses; after raw writes, call
/// `shmio_region_touch` to move the version and wake waiters.
///
/// Ownership: the memory belongs to the mapping, valid until `shmio_region_close`. Does not
/// block. Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle; `ptr_out` and `len_out` NULL or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_data(
    r: *const shmio_region,
    ptr_out: *mut *mut c_void,
    len_out: *mut usize,
) -> shmio_status {
    boundary("shmio_region_data", || {
        // SAFETY: a live handle (contract).
        let r = unsafe { handle_ref(r, "r") }?;
        let ptr_out = Out::new(ptr_out, "ptr_out")?;
        let len_out = Out::new(len_out, "len_out")?;
        // SAFETY: writable by the contract.
        unsafe {
            ptr_out.write(r.inner.as_ptr().cast::<c_void>());
            len_out.write(r.inner.len());
        }
        Ok(())
    })
}

/// Writes `len` bytes from `data` at `offset` so that no reader ever sees them half-done, and
/// moves the version (`*version_out`, if not NULL, receives the new one). Writers in every
/// process are serialised by a robust lock; this blocks while another writer holds it. A
/// range past the end -> `SHMIO_ERR_INVALID_ARGUMENT`; a replica (written by its bridge only)
/// -> `SHMIO_ERR_READ_ONLY`. `data` may be NULL only if `len` is 0;
/// `data` inside this region's own mapping (from `shmio_region_data`) ->
/// `SHMIO_ERR_INVALID_ARGUMENT` (copy through a separate buffer).
///
/// Ownership: `data` is only read during the call. Blocking: briefly, behind other writers.
/// Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle; `data` readable for `len` bytes (when not NULL);
/// `version_out` NULL or valid for writing a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_write(
    r: *const shmio_region,
    offset: u64,
    data: *const c_void,
    len: usize,
    version_out: *mut u64,
) -> shmio_status {
    boundary("shmio_region_write", || {
        // SAFETY: a live handle (contract).
        let r = unsafe { handle_ref(r, "r") }?;
        let len = byte_len(len, "len")?;
        let version_out = Out::optional(version_out);
        let data: &[u8] = if len == 0 {
            &[]
        } else {
            let data = non_null_const(data, "data")?;
            refuse_overlap(r, data.as_ptr().cast::<u8>(), len, "data")?;
            // SAFETY: not NULL, readable for `len <= isize::MAX` bytes, unchanged during the
            // call (contract).
            unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), len) }
        };
        let v = r.inner.write(offset, data)?;
        // SAFETY: NULL or writable by the contract.
        unsafe { write_opt(version_out, v) };
        Ok(())
    })
}

/// A caller's buffer inside the region's own mapping (from `shmio_region_data`) would make the
/// consistent copy read or write the very bytes it changes (and, in Rust, two overlapping
/// slices): refused with a clear error, before any slice is made.
fn refuse_overlap(r: &shmio_region, ptr: *const u8, len: usize, what: &str) -> Result<()> {
    if r.inner.overlaps_mapping(ptr, len) {
        return Err(Failure::invalid(format!(
            "`{what}` lies inside this region's own mapping: copy through a separate buffer"
        )));
    }
    Ok(())
}

/// A consistent read's destination, `len` bytes at `buf`, checked: a length no slice can
/// have, NULL with a length, or a buffer inside the region's own mapping are refused.
///
/// # Safety
/// `buf` must be NULL or writable for `len` bytes, and not otherwise accessed during the call
/// (it may be uninitialised).
unsafe fn read_buf<'a>(
    r: &shmio_region,
    buf: *mut c_void,
    len: usize,
) -> Result<&'a mut [MaybeUninit<u8>]> {
    let len = byte_len(len, "len")?;
    if len == 0 {
        return Ok(&mut []);
    }
    let buf = non_null(buf, "buf")?;
    refuse_overlap(r, buf.as_ptr().cast::<u8>(), len, "buf")?;
    // SAFETY: not NULL, writable for `len <= isize::MAX` bytes, not otherwise accessed during
    // the call (contract); it may be uninitialised, which `MaybeUninit` allows.
    Ok(unsafe { std::slice::from_raw_parts_mut(buf.as_ptr().cast::<MaybeUninit<u8>>(), len) })
}

/// Copies `len` bytes at `offset` into `buf`, consistently: never a mix of two writes.
/// `*version_out` (if not NULL) receives the version the copy belongs to. A range that
/// overlaps data whose writer died mid-write -> `SHMIO_ERR_TORN` (until rewritten); past the
/// end -> `SHMIO_ERR_INVALID_ARGUMENT`. `buf` may be uninitialised, and NULL only if `len` is 0;
/// `buf` inside this region's own mapping -> `SHMIO_ERR_INVALID_ARGUMENT`.
///
/// Ownership: `buf` is the caller's. Blocking: spins briefly while a write is in progress,
/// then sleeps until it ends. Never blocks writers. Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle; `buf` writable for `len` bytes (when not NULL);
/// `version_out` NULL or valid for writing a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_read(
    r: *const shmio_region,
    offset: u64,
    buf: *mut c_void,
    len: usize,
    version_out: *mut u64,
) -> shmio_status {
    boundary("shmio_region_read", || {
        // SAFETY: a live handle (contract).
        let r = unsafe { handle_ref(r, "r") }?;
        let version_out = Out::optional(version_out);
        // SAFETY: writable for `len` bytes when not NULL (contract).
        let buf = unsafe { read_buf(r, buf, len) }?;
        let v = r.inner.read_uninit(offset, buf)?;
        // SAFETY: NULL or writable by the contract.
        unsafe { write_opt(version_out, v) };
        Ok(())
    })
}

/// Publishes changes made through raw access: moves the version and wakes waiters.
/// `*version_out` (if not NULL) receives the new version. Marks no chunk changed: a replica
/// receives the changed bytes only if `shmio_region_touch_range` names them. On a replica ->
/// `SHMIO_ERR_READ_ONLY`.
///
/// Ownership: none. Blocking: briefly, behind other writers. Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle; `version_out` NULL or valid for writing a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_touch(
    r: *const shmio_region,
    version_out: *mut u64,
) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe { change("shmio_region_touch", r, version_out, Region::touch) }
}

/// The body of the calls that change a region and report its new version: `f` runs on the
/// live handle `r`, and its version goes to `*version_out` (if not NULL).
///
/// # Safety
/// `r` must be NULL or a live handle; `version_out` NULL or valid for writing a `uint64_t`.
unsafe fn change(
    func: &'static str,
    r: *const shmio_region,
    version_out: *mut u64,
    f: impl FnOnce(&Region) -> region::Result<u64>,
) -> shmio_status {
    boundary(func, || {
        // SAFETY: a live handle (contract).
        let r = unsafe { handle_ref(r, "r") }?;
        let version_out = Out::optional(version_out);
        let v = f(&r.inner)?;
        // SAFETY: NULL or writable by the contract.
        unsafe { write_opt(version_out, v) };
        Ok(())
    })
}

/// The body of the calls that report one number of a region: `f`'s, to `*out`.
///
/// # Safety
/// `r` must be NULL or a live handle; `out` NULL or valid for writing a `uint64_t`.
unsafe fn report(
    func: &'static str,
    r: *const shmio_region,
    out: *mut u64,
    f: impl FnOnce(&Region) -> u64,
) -> shmio_status {
    boundary(func, || {
        // SAFETY: a live handle (contract).
        let r = unsafe { handle_ref(r, "r") }?;
        let out = Out::new(out, "out")?;
        // SAFETY: writable by the contract.
        unsafe { out.write(f(&r.inner)) };
        Ok(())
    })
}

/// The current version: the number of consistent writes and touches since creation.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle; `out` NULL or valid for writing a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_version(
    r: *const shmio_region,
    out: *mut u64,
) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe { report("shmio_region_version", r, out, Region::version) }
}

/// Sleeps until the version differs from `seen`, then stores the new version in
/// `*version_out` (if not NULL). Sleeps on a futex in the shared header: a writer in any
/// process wakes it. `timeout_ms`: negative waits without limit, 0 does not wait
/// (`SHMIO_ERR_WOULD_BLOCK`), positive waits at most that many ms (`SHMIO_ERR_TIMEOUT`). It
/// registers under the writer lock, held only briefly by writers; the timeout also bounds the
/// wait for that lock.
///
/// Ownership: `version_out` is the caller's. Blocking: see `timeout_ms`. Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle; `version_out` NULL or valid for writing a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_wait_changed(
    r: *const shmio_region,
    seen: u64,
    timeout_ms: c_int,
    version_out: *mut u64,
) -> shmio_status {
    boundary("shmio_region_wait_changed", || {
        // SAFETY: a live handle (contract).
        let r = unsafe { handle_ref(r, "r") }?;
        let version_out = Out::optional(version_out);
        let v = r.inner.wait_changed(seen, timeout(timeout_ms))?;
        // SAFETY: NULL or writable by the contract.
        unsafe { write_opt(version_out, v) };
        Ok(())
    })
}

/// The range currently refused as torn (`*len_out == 0`: none). Takes the writer lock briefly.
///
/// Ownership: outputs are the caller's. Blocking: briefly, behind writers. Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle; `offset_out` and `len_out` NULL or valid for writing a
/// `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_torn(
    r: *const shmio_region,
    offset_out: *mut u64,
    len_out: *mut u64,
) -> shmio_status {
    boundary("shmio_region_torn", || {
        // SAFETY: a live handle (contract).
        let r = unsafe { handle_ref(r, "r") }?;
        let offset_out = Out::new(offset_out, "offset_out")?;
        let len_out = Out::new(len_out, "len_out")?;
        let (o, l) = r.inner.torn()?.unwrap_or((0, 0));
        // SAFETY: writable by the contract.
        unsafe {
            offset_out.write(o);
            len_out.write(l);
        }
        Ok(())
    })
}

/// Writes the range's dirty pages back to the file and waits (msync MS_SYNC). On tmpfs there
/// is nothing to write; MS_ASYNC is not offered because it is a no-op on Linux. A range past
/// the end -> `SHMIO_ERR_INVALID_ARGUMENT`.
///
/// Ownership: none. Blocking: until the pages are written. Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_flush(
    r: *const shmio_region,
    offset: u64,
    len: u64,
) -> shmio_status {
    boundary("shmio_region_flush", || {
        // SAFETY: a live handle (contract).
        let r = unsafe { handle_ref(r, "r") }?;
        r.inner.flush(offset, len)?;
        Ok(())
    })
}

/// Flushes the whole file, header page included (msync MS_SYNC): after it, `cache_stat`
/// shows no dirty page unless someone wrote meanwhile. (`shmio_region_flush` of the data
/// leaves the header page, which every consistent write changes, as it is.)
///
/// Ownership: none. Blocking: until the pages are written. Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_flush_all(r: *const shmio_region) -> shmio_status {
    boundary("shmio_region_flush_all", || {
        // SAFETY: a live handle (contract).
        let r = unsafe { handle_ref(r, "r") }?;
        r.inner.flush_all()?;
        Ok(())
    })
}

/// The region file's page-cache state (header page included): cached, dirty, writeback pages
/// (cachestat(2); `SHMIO_ERR_UNSUPPORTED` before Linux 6.5), into `*out`, filled by
/// `shmio_page_cache_init`.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle; `out` NULL or a struct filled by
/// `shmio_page_cache_init`, writable for its `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_cache_stat(
    r: *const shmio_region,
    out: *mut shmio_page_cache,
) -> shmio_status {
    boundary("shmio_region_cache_stat", || {
        // SAFETY: a live handle (contract).
        let r = unsafe { handle_ref(r, "r") }?;
        // SAFETY: readable for its first `u32` (contract).
        let out = unsafe { SizedOut::new(out, "out") }?;
        let c = r.inner.cache_stat()?;
        // SAFETY: writable for its `struct_size` bytes (contract).
        unsafe { out.write(c.into()) };
        Ok(())
    })
}

// After this file's functions, so that the header lists them after these (cbindgen writes
// functions in the order it parses them).
mod track;

mod replica;

mod claim;

pub use claim::*;
pub use replica::*;
pub use track::*;
