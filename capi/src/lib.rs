//! The C ABI of shmio: `libshmio.so`, `libshmio.a` and the generated `include/shmio.h`.
//!
//! This crate only converts arguments and maps errors; the logic lives in the `shmio` core
//! crate. One module per capability (`queue/`, `region`, `vm`, `poll`, `tqueue`, `zc`); `status`
//! holds the status codes and the one table from core error kinds to them; `ffi` the
//! boundary, the last error and the argument checks. Conventions, which the header repeats:
//!
//! - Every fallible function returns a `shmio_status`; on failure a message is kept for
//!   `shmio_last_error_message`.
//! - Every function catches Rust panics at the boundary (`SHMIO_ERR_PANIC`), checks pointers
//!   for NULL (`SHMIO_ERR_NULL_POINTER`) and numbers and enumerations (passed as `uint32_t`)
//!   for range (`SHMIO_ERR_INVALID_ARGUMENT`), and checks strings to be UTF-8.
//! - Functions that dereference pointers are `unsafe extern "C"`: each states its contract in
//!   a `# Safety` section.

#![allow(non_camel_case_types)]
#![warn(missing_docs)]

mod ffi;
mod poll;
mod queue;
mod region;
mod sized;
mod status;
mod tqueue;
mod vm;
mod zc;

#[cfg(test)]
mod tests;

use std::ffi::{CString, c_char};
use std::sync::OnceLock;

pub use poll::*;
pub use queue::*;
pub use region::*;
pub use status::shmio_status;
pub use tqueue::*;
pub use vm::*;
pub use zc::*;

use ffi::boundary_value;

/// The library version as a number: `MAJOR << 16 | MINOR << 8 | PATCH` (compare with the
/// header's `SHMIO_VERSION_NUMBER`, or use `SHMIO_VERSION_COMPATIBLE()`).
///
/// Does not block. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn shmio_version_number() -> u32 {
    const fn parse(s: &str) -> u32 {
        let (b, mut i, mut n) = (s.as_bytes(), 0, 0u32);
        while i < b.len() {
            n = n * 10 + (b[i] - b'0') as u32;
            i += 1;
        }
        n
    }
    const N: u32 = parse(env!("CARGO_PKG_VERSION_MAJOR")) << 16
        | parse(env!("CARGO_PKG_VERSION_MINOR")) << 8
        | parse(env!("CARGO_PKG_VERSION_PATCH"));
    N
}

/// Most slots a queue may have (its slot count is rounded up to a power of two, at most this).
pub const SHMIO_MAX_SLOTS: u32 = 1 << 24;
/// Largest record (slot size) in bytes.
pub const SHMIO_MAX_SLOT_SIZE: u32 = 1 << 30;
/// Most consumers attached to one queue at once.
pub const SHMIO_MAX_CONSUMERS: u32 = 127;
/// Longest bare queue or region name in bytes (paths are not limited by shmio).
pub const SHMIO_MAX_NAME_LEN: u32 = 200;

/// The library version, "MAJOR.MINOR.PATCH".
///
/// Ownership: a static string, never freed. Does not block. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn shmio_version() -> *const c_char {
    static VERSION: OnceLock<CString> = OnceLock::new();
    boundary_value("shmio_version", c"".as_ptr(), || {
        VERSION
            .get_or_init(|| CString::new(shmio_core::VERSION).unwrap_or_default())
            .as_ptr()
    })
}

/// A short static description of a status (the `shmio_status` value, passed as an integer so
/// that any value is safe): "unknown status" for a value that is not a status.
///
/// Ownership: a static string, never freed. Does not block. Thread-safe. Does not change the
/// last-error message.
#[unsafe(no_mangle)]
pub extern "C" fn shmio_status_str(status: u32) -> *const c_char {
    boundary_value("shmio_status_str", c"unknown status".as_ptr(), || {
        shmio_status::from_u32(status)
            .map_or(c"unknown status", shmio_status::description)
            .as_ptr()
    })
}

/// The message describing this thread's last failure, or "" if the last call succeeded.
/// Every shmio call except `shmio_last_error_message`, `shmio_status_str` and `shmio_version`
/// resets it: it describes the most recent call's failure only.
///
/// Ownership: owned by the library, never freed by the caller; valid until the next shmio call
/// on this thread (copy it to keep it). Does not block. Thread-safe: each thread has its own.
#[unsafe(no_mangle)]
pub extern "C" fn shmio_last_error_message() -> *const c_char {
    boundary_value(
        "shmio_last_error_message",
        c"".as_ptr(),
        ffi::last_error_ptr,
    )
}
