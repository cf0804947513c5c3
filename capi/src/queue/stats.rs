//! Inspection and removal of a queue file by name, without joining the queue.

use std::ffi::c_char;

use shmio_core::queue::{self, ProducerStatus};

use super::{SHMIO_PRODUCER_ALIVE, SHMIO_PRODUCER_DEAD, SHMIO_PRODUCER_NONE, policy_to_c};
use crate::ffi::{Out, boundary, str_arg, write_opt};
use crate::sized::{Growable, SizedArray, SizedOut, growable, init};
use crate::status::shmio_status;

/// A snapshot of a queue's state (see `shmio_queue_stats_get`). Fill with
/// `shmio_queue_stats_init` first (it sets `struct_size`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_queue_stats {
    /// Size of this struct as the caller knows it; set by `shmio_queue_stats_init`.
    /// `shmio_queue_stats_get` sets it to the number of bytes it filled in.
    pub struct_size: u32,
    /// Always 0 (keeps the struct free of padding).
    pub reserved: u32,
    /// Records committed so far (the next sequence number the producer writes).
    pub head: u64,
    /// Oldest sequence number still held in the ring.
    pub oldest: u64,
    /// `SHMIO_PRODUCER_*`.
    pub producer_state: u32,
    /// The producer's process id (0 with `SHMIO_PRODUCER_NONE`).
    pub producer_pid: u32,
    /// Producer take-overs so far.
    pub producer_generation: u32,
    /// Live consumers attached.
    pub live_consumers: u32,
    /// `SHMIO_POLICY_*`.
    pub policy: u32,
    /// Slots in the ring.
    pub slot_count: u32,
    /// Largest record in bytes.
    pub slot_size: u32,
    /// Most consumers attached at once.
    pub max_consumers: u32,
}

/// One live consumer as seen in the queue file. An array of them is filled by
/// `shmio_queue_stats_get`: fill its first element (or every element) with
/// `shmio_consumer_stats_init` first; the first element's `struct_size` is the array's stride.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_consumer_stats {
    /// Size of this struct as the caller knows it; set by `shmio_consumer_stats_init`.
    /// `shmio_queue_stats_get` sets it, in each element it fills, to the number of bytes it
    /// filled in.
    pub struct_size: u32,
    /// Consumer slot index.
    pub index: u32,
    /// Its process id.
    pub pid: u32,
    /// Always 0 (keeps the struct free of padding).
    pub reserved: u32,
    /// Next sequence number it will read.
    pub position: u64,
    /// Committed records it has not read yet.
    pub lag: u64,
    /// Records it lost to overwriting.
    pub lost: u64,
    /// Records it received.
    pub received: u64,
}

// SAFETY: `#[repr(C)]`, `struct_size: u32` first, then `u32`s and `u64`s only.
growable!(shmio_queue_stats, 8 + 2 * 8 + 8 * 4);
// SAFETY: `#[repr(C)]`, `struct_size: u32` first, then `u32`s and `u64`s only.
growable!(shmio_consumer_stats, 16 + 4 * 8);

/// Fills `*out` with zeros and sets its `struct_size`.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL (-> `SHMIO_ERR_NULL_POINTER`) or valid for writing a `shmio_queue_stats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_queue_stats_init(out: *mut shmio_queue_stats) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe { init("shmio_queue_stats_init", out, shmio_queue_stats::INIT) }
}

/// Fills `*out` with zeros and sets its `struct_size`. For an array, one call on its first
/// element is enough (it sets the stride), but calling it on every element is fine too.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL (-> `SHMIO_ERR_NULL_POINTER`) or valid for writing a
/// `shmio_consumer_stats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_consumer_stats_init(out: *mut shmio_consumer_stats) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe { init("shmio_consumer_stats_init", out, shmio_consumer_stats::INIT) }
}

/// Opens the queue `name` without joining it and reports its state in `*out`. The first
/// `cap` live consumers (in slot order) are written to `consumers[0..]` and `*n_out` (if not
/// NULL) receives how many were written; `out->live_consumers` tells how many there are.
/// `consumers` may be NULL only if `cap` is 0.
///
/// `out` must be filled by `shmio_queue_stats_init`, and `consumers[0]` (when `cap` > 0) by
/// `shmio_consumer_stats_init`: its `struct_size` is the array's stride (the caller's
/// `sizeof(shmio_consumer_stats)`), and each element written receives the fields that fit
/// in it. A `struct_size` below the struct's first version, or a stride that is not a
/// multiple of the struct's alignment -> `SHMIO_ERR_INVALID_ARGUMENT`, nothing written.
///
/// Ownership: all buffers are the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string; `out` NULL or a struct filled by
/// `shmio_queue_stats_init`, writable for its `struct_size` bytes; `consumers` (when not NULL
/// and `cap` > 0) readable for its first element's `struct_size` and writable for `cap`
/// elements of that many bytes; `n_out` NULL or valid for writing a `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_queue_stats_get(
    name: *const c_char,
    out: *mut shmio_queue_stats,
    consumers: *mut shmio_consumer_stats,
    cap: usize,
    n_out: *mut usize,
) -> shmio_status {
    boundary("shmio_queue_stats_get", || {
        // SAFETY: NUL-terminated by the contract, only used during the call.
        let name = unsafe { str_arg(name, "name") }?;
        // SAFETY: readable for its first `u32` (contract).
        let out = unsafe { SizedOut::new(out, "out") }?;
        let n_out = Out::optional(n_out);
        // SAFETY: with `cap` > 0, readable for its first element's first `u32` (contract).
        let consumers = unsafe { SizedArray::new(consumers, cap, "consumers") }?;
        let s = queue::inspect(name)?;
        let (producer_state, producer_pid) = match s.producer {
            ProducerStatus::None => (SHMIO_PRODUCER_NONE, 0),
            ProducerStatus::Alive { pid } => (SHMIO_PRODUCER_ALIVE, pid),
            ProducerStatus::Dead { pid } => (SHMIO_PRODUCER_DEAD, pid),
        };
        let stats = shmio_queue_stats {
            head: s.head,
            oldest: s.oldest,
            producer_state,
            producer_pid,
            producer_generation: s.producer_generation,
            live_consumers: u32::try_from(s.live_consumers()).unwrap_or(u32::MAX),
            policy: policy_to_c(s.info.policy),
            slot_count: s.info.slot_count,
            slot_size: s.info.slot_size,
            max_consumers: s.info.max_consumers,
            ..shmio_queue_stats::INIT
        };
        let mut written = 0;
        if let Some(dst) = consumers {
            for (i, c) in s.consumers.iter().take(dst.cap()).enumerate() {
                let v = shmio_consumer_stats {
                    index: c.index,
                    pid: c.pid,
                    position: c.position,
                    lag: c.lag,
                    lost: c.lost,
                    received: c.received,
                    ..shmio_consumer_stats::INIT
                };
                // SAFETY: `dst` is writable for `cap` elements of its stride (contract), and
                // `i < cap`.
                unsafe { dst.write(i, v) };
                written = i + 1;
            }
        }
        // SAFETY: writable for its `struct_size` bytes, and `n_out` NULL or writable, by the
        // contract.
        unsafe {
            out.write(stats);
            write_opt(n_out, written);
        }
        Ok(())
    })
}

/// Removes the queue file `name` (a bare name or a path, as for `shmio_producer_create`).
/// Processes that have it open keep using it. No such file -> `SHMIO_ERR_NOT_FOUND`.
///
/// Only a queue file is removed: the file is opened (`O_NOFOLLOW`, read-only, so read
/// permission is needed) and must start with the queue magic. Anything else at the path (a
/// region, a text file, a symbolic link, a directory) is left alone -> `SHMIO_ERR_CORRUPT`,
/// with a message saying what it is. A queue of another layout version is removed. Another
/// process could replace the file between the check and the unlink; the check guards against
/// mistakes, not against someone who can write the directory.
///
/// Ownership: `name` is only read during the call. Does not block. Thread-safe.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_queue_unlink(name: *const c_char) -> shmio_status {
    boundary("shmio_queue_unlink", || {
        // SAFETY: NUL-terminated by the contract, only used during the call.
        let name = unsafe { str_arg(name, "name") }?;
        queue::unlink(name)?;
        Ok(())
    })
}
