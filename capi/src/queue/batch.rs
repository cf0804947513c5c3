//! Batches: many records sent or received with one call (one wake of the other side, one
//! release of the cursor).

use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;

use shmio_core::queue;

use super::{shmio_consumer, shmio_producer};
use crate::ffi::{Failure, Out, boundary, byte_len, handle_mut, timeout};
use crate::status::shmio_status;

/// One record of a batch to send: `len` bytes at `data` (NULL only if `len` is 0).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shmio_buf {
    /// The record's bytes.
    pub data: *const c_void,
    /// How many.
    pub len: usize,
}

/// Sends the `n` records of `recs` in order, as `shmio_producer_send` would one by one, but
/// wakes sleeping consumers once, after the batch (and before any wait for space), not per
/// record. `*sent_out` receives how many were sent. Waits for space per `timeout_ms` for the
/// batch as a whole (back-pressure mode only; see `shmio_producer_send`).
///
/// Like write(2), a batch that cannot go on after at least one record (no space within the
/// timeout, a record longer than the slot size) returns `SHMIO_OK` with `*sent_out < n`; the
/// next call, from the first record not sent, reports why. With none sent, the status says
/// why (`SHMIO_ERR_TOO_LARGE`, `SHMIO_ERR_WOULD_BLOCK`, `SHMIO_ERR_TIMEOUT`, ...). `n == 0`
/// sends nothing and succeeds. Every record is checked before any is sent: a record with
/// `data` NULL and `len` > 0 -> `SHMIO_ERR_NULL_POINTER` (nothing sent).
///
/// Ownership: `recs` and the bytes they point to are only read during the call. Blocking: see
/// `timeout_ms`. One thread at a time per handle.
///
/// # Safety
/// `p` must be NULL or a live producer handle; `recs` NULL or readable for `n` `shmio_buf`s,
/// each `data` readable for its `len` bytes (when not NULL); `sent_out` NULL or valid for
/// writing a `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_producer_send_many(
    p: *mut shmio_producer,
    recs: *const shmio_buf,
    n: usize,
    timeout_ms: c_int,
    sent_out: *mut usize,
) -> shmio_status {
    boundary("shmio_producer_send_many", || {
        // SAFETY: a live handle, used by this thread alone (contract).
        let p = unsafe { handle_mut(p, "p") }?;
        let sent_out = Out::new(sent_out, "sent_out")?;
        let recs: &[shmio_buf] = if n == 0 {
            &[]
        } else {
            let recs = crate::ffi::non_null_const(recs, "recs")?;
            let n =
                byte_len(n.saturating_mul(size_of::<shmio_buf>()), "n")? / size_of::<shmio_buf>();
            // SAFETY: not NULL and readable for `n` entries (contract), whose total size fits
            // in an `isize` (checked); `shmio_buf` is plain data.
            unsafe { std::slice::from_raw_parts(recs.as_ptr(), n) }
        };
        if let Some(i) = recs.iter().position(|r| r.data.is_null() && r.len > 0) {
            return Err(Failure::new(
                shmio_status::SHMIO_ERR_NULL_POINTER,
                format!("`recs[{i}].data` is NULL with `len` {}", recs[i].len),
            ));
        }
        // The records up to the first one too long for a slot: that one ends the batch (it
        // is the next call's first, which reports `TOO_LARGE`).
        let max = p.inner.slot_size();
        let fit = recs.iter().position(|r| r.len > max).unwrap_or(recs.len());
        if let Some(len) = recs.first().map(|r| r.len).filter(|_| fit == 0) {
            return Err(queue::Error::TooLarge { len, max }.into());
        }
        let slices = recs[..fit].iter().map(|r| {
            if r.len == 0 {
                &[][..]
            } else {
                // SAFETY: not NULL (checked above) and readable for `len <= slot size` bytes,
                // unchanged during the call (contract); any byte value is a valid `u8`.
                unsafe { std::slice::from_raw_parts(r.data.cast::<u8>(), r.len) }
            }
        });
        let sent = p.inner.send_many(slices, timeout(timeout_ms))?;
        // SAFETY: writable by the contract.
        unsafe { sent_out.write(sent) };
        Ok(())
    })
}

/// Receives up to `max` records by copy into `buf` (`cap` bytes), back to back: record `i` is
/// `lens[i]` bytes long and follows record `i - 1`; `*n_out` receives how many (at least 1 on
/// success). Waits per `timeout_ms` (see `shmio_consumer_recv`) only for the first record;
/// takes the others only if they are already committed and fit in what is left of `buf`. The
/// consumer's position is published once, after the batch: a back-pressure producer is woken
/// (if it waits for space) once.
///
/// Fails as `shmio_consumer_recv` does when no record was received; if the first record does
/// not fit: `SHMIO_ERR_BUFFER_TOO_SMALL`, `lens[0]` receives the size needed, and nothing is
/// consumed. `max == 0` -> `SHMIO_ERR_INVALID_ARGUMENT`. A failure after the first record (the
/// producer gone, say) ends the batch; the next call reports it. `buf` may be NULL only if
/// `cap` is 0.
///
/// Ownership: `buf` and `lens` are the caller's, written during the call only. Blocking: see
/// `timeout_ms`. One thread at a time per handle.
///
/// # Safety
/// `c` must be NULL or a live consumer handle; `buf` writable for `cap` bytes (when not NULL);
/// `lens` NULL or writable for `max` `size_t`s; `n_out` NULL or valid for writing a `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_consumer_recv_many(
    c: *mut shmio_consumer,
    buf: *mut c_void,
    cap: usize,
    lens: *mut usize,
    max: usize,
    timeout_ms: c_int,
    n_out: *mut usize,
) -> shmio_status {
    boundary("shmio_consumer_recv_many", || {
        // SAFETY: a live handle, used by this thread alone (contract).
        let c = unsafe { handle_mut(c, "c") }?;
        let cap = byte_len(cap, "cap")?;
        let n_out = Out::new(n_out, "n_out")?;
        if max == 0 {
            return Err(Failure::invalid("`max` is 0: no room for any record"));
        }
        let lens = crate::ffi::non_null(lens, "lens")?;
        byte_len(max.saturating_mul(size_of::<usize>()), "max")?;
        // SAFETY: not NULL and writable for `max` `size_t`s (contract), whose total size fits
        // in an `isize` (checked), not otherwise accessed during the call.
        let lens = unsafe { std::slice::from_raw_parts_mut(lens.as_ptr(), max) };
        let buf: &mut [MaybeUninit<u8>] = if cap == 0 {
            &mut []
        } else {
            let buf = crate::ffi::non_null(buf, "buf")?;
            // SAFETY: not NULL and writable for `cap <= isize::MAX` bytes, not otherwise
            // accessed during the call (contract); it may be uninitialised, which
            // `MaybeUninit` allows.
            unsafe { std::slice::from_raw_parts_mut(buf.as_ptr().cast::<MaybeUninit<u8>>(), cap) }
        };
        match c.inner.recv_many_uninit(buf, lens, timeout(timeout_ms)) {
            Ok(n) => {
                // SAFETY: writable by the contract.
                unsafe { n_out.write(n) };
                Ok(())
            }
            Err(e) => {
                if let queue::Error::BufferTooSmall { needed } = e {
                    lens[0] = needed;
                }
                Err(e.into())
            }
        }
    })
}
