//! Dirty-page observability: the `vm.dirty_*` knobs, thresholds, system and per-file dirty
//! pages.

use std::ffi::c_char;

use shmio_core::vm::{self, Knob, PageCache};

use crate::ffi::{Failure, Out, Result, boundary, str_arg, write_opt};
use crate::sized::{Growable, SizedOut, growable, init};
use crate::status::shmio_status;

/// Knob: `/proc/sys/vm/dirty_background_ratio`.
pub const SHMIO_VM_DIRTY_BACKGROUND_RATIO: u32 = 0;
/// Knob: `/proc/sys/vm/dirty_background_bytes`.
pub const SHMIO_VM_DIRTY_BACKGROUND_BYTES: u32 = 1;
/// Knob: `/proc/sys/vm/dirty_ratio`.
pub const SHMIO_VM_DIRTY_RATIO: u32 = 2;
/// Knob: `/proc/sys/vm/dirty_bytes`.
pub const SHMIO_VM_DIRTY_BYTES: u32 = 3;
/// Knob: `/proc/sys/vm/dirty_writeback_centisecs`.
pub const SHMIO_VM_DIRTY_WRITEBACK_CENTISECS: u32 = 4;
/// Knob: `/proc/sys/vm/dirty_expire_centisecs`.
pub const SHMIO_VM_DIRTY_EXPIRE_CENTISECS: u32 = 5;

/// The six `vm.dirty_*` knobs. Fill with `shmio_vm_knobs_init` first (it sets `struct_size`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_vm_knobs {
    /// Size of this struct as the caller knows it; set by `shmio_vm_knobs_init`. The call that
    /// fills the struct sets it to the number of bytes it filled in.
    pub struct_size: u32,
    /// Always 0 (keeps the struct free of padding).
    pub reserved: u32,
    /// `vm.dirty_background_ratio`: percent of dirtyable memory.
    pub dirty_background_ratio: u64,
    /// `vm.dirty_background_bytes` (wins over the ratio when non-zero).
    pub dirty_background_bytes: u64,
    /// `vm.dirty_ratio`: percent of dirtyable memory.
    pub dirty_ratio: u64,
    /// `vm.dirty_bytes` (wins over the ratio when non-zero).
    pub dirty_bytes: u64,
    /// `vm.dirty_writeback_centisecs`: how often the flusher wakes.
    pub dirty_writeback_centisecs: u64,
    /// `vm.dirty_expire_centisecs`: the age at which a dirty page is written back.
    pub dirty_expire_centisecs: u64,
}

/// The thresholds the knobs imply now, in bytes. Fill with `shmio_vm_thresholds_init` first
/// (it sets `struct_size`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_vm_thresholds {
    /// Size of this struct as the caller knows it; set by `shmio_vm_thresholds_init`. The call that
    /// fills the struct sets it to the number of bytes it filled in.
    pub struct_size: u32,
    /// Always 0 (keeps the struct free of padding).
    pub reserved: u32,
    /// Memory the ratios apply to: MemFree + Active(file) + Inactive(file) of /proc/meminfo
    /// (the kernel also subtracts a small reserve that is not exported).
    pub dirtyable_bytes: u64,
    /// Dirty memory above which background writeback starts (computed as the kernel does).
    pub background_bytes: u64,
    /// Dirty memory above which writers are throttled (computed as the kernel does).
    pub dirty_bytes: u64,
    /// The kernel's own figures from /proc/vmstat (0 if absent).
    pub kernel_background_bytes: u64,
    /// See `kernel_background_bytes`.
    pub kernel_dirty_bytes: u64,
}

/// System-wide dirty and writeback memory. Fill with `shmio_vm_system_init` first (it sets
/// `struct_size`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_vm_system {
    /// Size of this struct as the caller knows it; set by `shmio_vm_system_init`. The call that
    /// fills the struct sets it to the number of bytes it filled in.
    pub struct_size: u32,
    /// Always 0 (keeps the struct free of padding).
    pub reserved: u32,
    /// `Dirty:` of /proc/meminfo, in bytes.
    pub dirty_bytes: u64,
    /// `Writeback:` of /proc/meminfo, in bytes.
    pub writeback_bytes: u64,
    /// `nr_dirty` of /proc/vmstat, in pages.
    pub nr_dirty: u64,
    /// `nr_writeback` of /proc/vmstat, in pages.
    pub nr_writeback: u64,
}

/// A file's page-cache state (cachestat(2), Linux 6.5+), in pages of `page_size` bytes. Fill
/// with `shmio_page_cache_init` first (it sets `struct_size`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_page_cache {
    /// Size of this struct as the caller knows it; set by `shmio_page_cache_init`. The call that
    /// fills the struct sets it to the number of bytes it filled in.
    pub struct_size: u32,
    /// Always 0 (keeps the struct free of padding).
    pub reserved: u32,
    /// The page size the counts are in.
    pub page_size: u64,
    /// Pages of the file in the page cache.
    pub cached: u64,
    /// Of which dirty (never counts tmpfs pages).
    pub dirty: u64,
    /// Of which under writeback now.
    pub writeback: u64,
    /// Pages evicted from the cache.
    pub evicted: u64,
    /// Pages evicted recently (would still be in a larger cache).
    pub recently_evicted: u64,
}

impl From<PageCache> for shmio_page_cache {
    fn from(c: PageCache) -> shmio_page_cache {
        shmio_page_cache {
            page_size: c.page_size,
            cached: c.cached,
            dirty: c.dirty,
            writeback: c.writeback,
            evicted: c.evicted,
            recently_evicted: c.recently_evicted,
            ..shmio_page_cache::INIT
        }
    }
}

// SAFETY: `#[repr(C)]`, `struct_size: u32` first, then a `u32` and `u64`s only.
growable!(shmio_vm_knobs, 8 + 6 * 8);
// SAFETY: `#[repr(C)]`, `struct_size: u32` first, then a `u32` and `u64`s only.
growable!(shmio_vm_thresholds, 8 + 5 * 8);
// SAFETY: `#[repr(C)]`, `struct_size: u32` first, then a `u32` and `u64`s only.
growable!(shmio_vm_system, 8 + 4 * 8);
// SAFETY: `#[repr(C)]`, `struct_size: u32` first, then a `u32` and `u64`s only.
growable!(shmio_page_cache, 8 + 6 * 8);

fn knob_from_c(k: u32) -> Result<Knob> {
    Knob::ALL
        .get(k as usize)
        .copied()
        .ok_or_else(|| Failure::invalid(format!("knob {k} is not a SHMIO_VM_* value")))
}

/// Fills `*out` with zeros and sets its `struct_size`.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL (-> `SHMIO_ERR_NULL_POINTER`) or valid for writing a `shmio_vm_knobs`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_vm_knobs_init(out: *mut shmio_vm_knobs) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe { init("shmio_vm_knobs_init", out, shmio_vm_knobs::INIT) }
}

/// Reads the six knobs from /proc/sys/vm into `*out`, filled by `shmio_vm_knobs_init`.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL or a struct filled by `shmio_vm_knobs_init`, writable for its
/// `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_vm_knobs_get(out: *mut shmio_vm_knobs) -> shmio_status {
    boundary("shmio_vm_knobs_get", || {
        // SAFETY: readable for its first `u32` (contract).
        let out = unsafe { SizedOut::new(out, "out") }?;
        let k = vm::knobs()?;
        // SAFETY: writable for its `struct_size` bytes (contract).
        unsafe {
            out.write(shmio_vm_knobs {
                dirty_background_ratio: k.dirty_background_ratio,
                dirty_background_bytes: k.dirty_background_bytes,
                dirty_ratio: k.dirty_ratio,
                dirty_bytes: k.dirty_bytes,
                dirty_writeback_centisecs: k.dirty_writeback_centisecs,
                dirty_expire_centisecs: k.dirty_expire_centisecs,
                ..shmio_vm_knobs::INIT
            })
        };
        Ok(())
    })
}

/// Sets one knob (a `SHMIO_VM_*` value; others -> `SHMIO_ERR_INVALID_ARGUMENT`, as is a ratio
/// above 100). Needs privilege (`SHMIO_ERR_PERMISSION_DENIED` otherwise). The kernel resets a
/// ratio's bytes counterpart to 0 and vice versa. `*old_out` (if not NULL) receives the value
/// before the change.
///
/// Ownership: `old_out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `old_out` must be NULL or valid for writing a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_vm_knob_set(
    knob: u32,
    value: u64,
    old_out: *mut u64,
) -> shmio_status {
    boundary("shmio_vm_knob_set", || {
        let old_out = Out::optional(old_out);
        let old = vm::set_knob(knob_from_c(knob)?, value)?;
        // SAFETY: NULL or writable by the contract.
        unsafe { write_opt(old_out, old) };
        Ok(())
    })
}

/// Fills `*out` with zeros and sets its `struct_size`.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL (-> `SHMIO_ERR_NULL_POINTER`) or valid for writing a `shmio_vm_thresholds`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_vm_thresholds_init(out: *mut shmio_vm_thresholds) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe { init("shmio_vm_thresholds_init", out, shmio_vm_thresholds::INIT) }
}

/// The thresholds the knobs imply on this machine now, into `*out`, filled by
/// `shmio_vm_thresholds_init`.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL or a struct filled by `shmio_vm_thresholds_init`, writable for its
/// `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_vm_thresholds_get(out: *mut shmio_vm_thresholds) -> shmio_status {
    boundary("shmio_vm_thresholds_get", || {
        // SAFETY: readable for its first `u32` (contract).
        let out = unsafe { SizedOut::new(out, "out") }?;
        let t = vm::thresholds()?;
        // SAFETY: writable for its `struct_size` bytes (contract).
        unsafe {
            out.write(shmio_vm_thresholds {
                dirtyable_bytes: t.dirtyable_bytes,
                background_bytes: t.background_bytes,
                dirty_bytes: t.dirty_bytes,
                kernel_background_bytes: t.kernel_background_bytes.unwrap_or(0),
                kernel_dirty_bytes: t.kernel_dirty_bytes.unwrap_or(0),
                ..shmio_vm_thresholds::INIT
            })
        };
        Ok(())
    })
}

/// Fills `*out` with zeros and sets its `struct_size`.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL (-> `SHMIO_ERR_NULL_POINTER`) or valid for writing a `shmio_vm_system`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_vm_system_init(out: *mut shmio_vm_system) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe { init("shmio_vm_system_init", out, shmio_vm_system::INIT) }
}

/// System-wide Dirty and Writeback (/proc/meminfo, /proc/vmstat), into `*out`, filled by
/// `shmio_vm_system_init`.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL or a struct filled by `shmio_vm_system_init`, writable for its
/// `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_vm_system_get(out: *mut shmio_vm_system) -> shmio_status {
    boundary("shmio_vm_system_get", || {
        // SAFETY: readable for its first `u32` (contract).
        let out = unsafe { SizedOut::new(out, "out") }?;
        let s = vm::system()?;
        // SAFETY: writable for its `struct_size` bytes (contract).
        unsafe {
            out.write(shmio_vm_system {
                dirty_bytes: s.dirty_bytes,
                writeback_bytes: s.writeback_bytes,
                nr_dirty: s.nr_dirty,
                nr_writeback: s.nr_writeback,
                ..shmio_vm_system::INIT
            })
        };
        Ok(())
    })
}

/// Fills `*out` with zeros and sets its `struct_size`.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL (-> `SHMIO_ERR_NULL_POINTER`) or valid for writing a `shmio_page_cache`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_page_cache_init(out: *mut shmio_page_cache) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe { init("shmio_page_cache_init", out, shmio_page_cache::INIT) }
}

/// The page-cache state of the file at `path` (cachestat(2); `SHMIO_ERR_UNSUPPORTED` before
/// Linux 6.5) into `*out`, filled by `shmio_page_cache_init`.
///
/// Ownership: `path` is only read during the call; `out` is the caller's. Does not block.
/// Thread-safe.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string; `out` NULL or a struct filled by
/// `shmio_page_cache_init`, writable for its `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_vm_file_cache(
    path: *const c_char,
    out: *mut shmio_page_cache,
) -> shmio_status {
    boundary("shmio_vm_file_cache", || {
        // SAFETY: readable for its first `u32` (contract).
        let out = unsafe { SizedOut::new(out, "out") }?;
        // SAFETY: NUL-terminated by the contract, only used during the call.
        let path = unsafe { str_arg(path, "path") }?;
        let c = vm::file_cache(path)?;
        // SAFETY: writable for its `struct_size` bytes (contract).
        unsafe { out.write(c.into()) };
        Ok(())
    })
}
