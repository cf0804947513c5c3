//! Change tracking: the chunk granularity, the incarnation, and publishing raw changes to a
//! range (which marks its chunks changed, so that a replica receives them).

use shmio_core::region::{self, Region};

use super::{change, chunk_arg, report, shmio_region};
use crate::ffi::{Failure, Out, boundary};
use crate::status::shmio_status;

/// Publishes changes made through raw access to `len` bytes at `offset`: moves the version,
/// marks those bytes' chunks changed (so that a replica receives them) and wakes waiters.
/// `*version_out` (if not NULL) receives the new version. A range that wholly covers the torn
/// range clears it, as a consistent write would (the caller says it rewrote those bytes). A
/// range past the end -> `SHMIO_ERR_INVALID_ARGUMENT`; on a replica -> `SHMIO_ERR_READ_ONLY`.
/// `shmio_region_touch` moves the version without marking any chunk.
///
/// Ownership: none. Blocking: briefly, behind other writers. Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle; `version_out` NULL or valid for writing a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_touch_range(
    r: *const shmio_region,
    offset: u64,
    len: u64,
    version_out: *mut u64,
) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe {
        change("shmio_region_touch_range", r, version_out, |r| {
            r.touch_range(offset, len)
        })
    }
}

/// The change-tracking chunk size in bytes (`shmio_region_options.chunk_size` at creation).
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle; `out` NULL or valid for writing a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_chunk_size(
    r: *const shmio_region,
    out: *mut u64,
) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe { report("shmio_region_chunk_size", r, out, Region::chunk_size) }
}

/// A random number drawn when the region was created: another file created under the same
/// name later has another (and its versions start from 0 again). A replica's
/// `shmio_region_replica_stats.source` is its primary's incarnation.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle; `out` NULL or valid for writing a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_incarnation(
    r: *const shmio_region,
    out: *mut u64,
) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe { report("shmio_region_incarnation", r, out, Region::incarnation) }
}

/// The length of the file a region of `size` bytes with change-tracking chunks of
/// `chunk_size` bytes (0: 4096) takes: the header page, the data rounded up to a page, and
/// the change-tracking table. What `shmio_region_create` needs free on the file system. A size
/// or chunk size `shmio_region_create` refuses -> `SHMIO_ERR_INVALID_ARGUMENT`.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL or valid for writing a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_file_len(
    size: u64,
    chunk_size: u32,
    out: *mut u64,
) -> shmio_status {
    boundary("shmio_region_file_len", || {
        let out = Out::new(out, "out")?;
        let chunk = chunk_arg(chunk_size);
        let len = region::file_len(size, chunk).ok_or_else(|| {
            Failure::invalid(format!(
                "size {size} or chunk size {chunk} out of range (1..={} bytes; a power of two \
                 in {}..={})",
                region::MAX_SIZE,
                region::MIN_CHUNK,
                region::MAX_CHUNK
            ))
        })?;
        // SAFETY: writable by the contract.
        unsafe { out.write(len) };
        Ok(())
    })
}
