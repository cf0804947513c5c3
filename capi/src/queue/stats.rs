//! Inspection and removal of a queue file by name, without joining the queue.

use std::ffi::c_char;

use shmio_core::queue::{self, ProducerStatus};

use super::{SHMIO_PRODUCER_ALIVE, SHMIO_PRODUCER_DEAD, SHMIO_PRODUCER_NONE, policy_to_c};
use crate::ffi::{Failure, Out, boundary, non_null, str_arg, write_opt};
use crate::status::shmio_status;

/// A snapshot of a queue's state (see `shmio_queue_stats_get`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_queue_stats {
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

/// One live consumer as seen in the queue file.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_consumer_stats {
    /// Consumer slot index.
    pub index: u32,
    /// Its process id.
    pub pid: u32,
    /// Next sequence number it will read.
    pub position: u64,
    /// Committed records it has not read yet.
    pub lag: u64,
    /// Records it lost to overwriting.
    pub lost: u64,
    /// Records it received.
    pub received: u64,
}

/// Opens the queue `name` without joining it and reports its state in `*out`. The first
/// `cap` live consumers (in slot order) are written to `consumers[0..]` and `*n_out` (if not
/// NULL) receives how many were written; `out->live_consumers` tells how many there are.
/// `consumers` may be NULL only if `cap` is 0.
///
/// Ownership: all buffers are the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string; `out` NULL or valid for writing a
/// `shmio_queue_stats`; `consumers` valid for writing `cap` elements (when not NULL); `n_out`
/// NULL or valid for writing a `size_t`.
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
        let out = Out::new(out, "out")?;
        let n_out = Out::optional(n_out);
        if cap > isize::MAX as usize / size_of::<shmio_consumer_stats>() {
            return Err(Failure::invalid(format!(
                "`cap` = {cap} exceeds the largest array size"
            )));
        }
        let consumers = if cap == 0 {
            None
        } else {
            Some(non_null(consumers, "consumers")?)
        };
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
        };
        let mut written = 0;
        if let Some(dst) = consumers {
            for (i, c) in s.consumers.iter().take(cap).enumerate() {
                let v = shmio_consumer_stats {
                    index: c.index,
                    pid: c.pid,
                    position: c.position,
                    lag: c.lag,
                    lost: c.lost,
                    received: c.received,
                };
                // SAFETY: `dst` is writable for `cap` elements (contract) and `i < cap`; the
                // element is written without reading or dropping the old contents.
                unsafe { dst.as_ptr().add(i).write(v) };
                written = i + 1;
            }
        }
        // SAFETY: writable (or NULL where optional) by the contract.
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
