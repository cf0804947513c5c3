//! The in-process hand-off queue: a bounded, blocking, thread-safe queue of `void *` items.

use std::ffi::{c_int, c_void};

use shmio_core::tqueue::TQueue;

use crate::ffi::{Out, boundary, handle_ref, timeout};
use crate::status::shmio_status;

/// A bounded blocking multi-producer multi-consumer queue of `void *` items (opaque). Every
/// function on it is thread-safe, except `shmio_tqueue_free`.
pub struct shmio_tqueue {
    /// Items are kept as addresses: the queue never dereferences them.
    inner: TQueue<usize>,
}

/// Creates a hand-off queue holding at most `capacity` items (`capacity` 0 ->
/// `SHMIO_ERR_INVALID_ARGUMENT`).
///
/// Ownership: on success `*out` receives a new queue that the caller must release with
/// `shmio_tqueue_free`; on failure `*out` is set to NULL. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_tqueue_new(
    capacity: usize,
    out: *mut *mut shmio_tqueue,
) -> shmio_status {
    boundary("shmio_tqueue_new", || {
        let out = Out::new(out, "out")?;
        // SAFETY: valid for writing a pointer by the contract.
        unsafe { out.write(std::ptr::null_mut()) };
        let q = TQueue::new(capacity)?;
        let handle = Box::into_raw(Box::new(shmio_tqueue { inner: q }));
        // SAFETY: valid for writing a pointer by the contract.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Frees the queue. Items still queued are not touched: they remain the caller's (drain the
/// queue first if they need freeing). NULL is a no-op.
///
/// Ownership: takes the queue. Does not block. Not thread-safe: no other thread may use the
/// queue during or after this call (close it and join its users first).
///
/// # Safety
/// `q` must be NULL or a queue from `shmio_tqueue_new` that was not freed yet and that no
/// other thread uses any more.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_tqueue_free(q: *mut shmio_tqueue) {
    boundary("shmio_tqueue_free", || {
        if !q.is_null() {
            // SAFETY: a live queue is a `Box` we leaked in `shmio_tqueue_new`; the caller gives
            // it back exactly once, with no other user left (contract).
            drop(unsafe { Box::from_raw(q) });
        }
        Ok(())
    });
}

/// Appends `item`, waiting while the queue is full per `timeout_ms` (< 0: no limit, 0: not at
/// all -> `SHMIO_ERR_WOULD_BLOCK`, > 0: at most that many ms -> `SHMIO_ERR_TIMEOUT`). A closed
/// queue -> `SHMIO_ERR_CLOSED`.
///
/// Ownership: `item` is an opaque value that is never dereferenced (NULL is allowed); on
/// success it passes to whoever pops it, on failure it stays the caller's. Blocking: see
/// `timeout_ms`. Thread-safe.
///
/// # Safety
/// `q` must be NULL or a live queue from `shmio_tqueue_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_tqueue_push(
    q: *mut shmio_tqueue,
    item: *mut c_void,
    timeout_ms: c_int,
) -> shmio_status {
    boundary("shmio_tqueue_push", || {
        // SAFETY: a live queue; concurrent shared use is fine, `TQueue` is `Sync` (contract).
        let q = unsafe { handle_ref(q.cast_const(), "q") }?;
        q.inner
            .push_for(item.expose_provenance(), timeout(timeout_ms))?;
        Ok(())
    })
}

/// Removes the oldest item into `*item_out`, waiting while the queue is empty per
/// `timeout_ms` (as for `shmio_tqueue_push`). After `shmio_tqueue_close`, pops what is left,
/// then fails with `SHMIO_ERR_CLOSED`.
///
/// Ownership: the popped item passes to the caller. Blocking: see `timeout_ms`. Thread-safe.
///
/// # Safety
/// `q` must be NULL or a live queue from `shmio_tqueue_new`; `item_out` NULL or valid for
/// writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_tqueue_pop(
    q: *mut shmio_tqueue,
    item_out: *mut *mut c_void,
    timeout_ms: c_int,
) -> shmio_status {
    boundary("shmio_tqueue_pop", || {
        // SAFETY: a live queue; concurrent shared use is fine, `TQueue` is `Sync` (contract).
        let q = unsafe { handle_ref(q.cast_const(), "q") }?;
        let item_out = Out::new(item_out, "item_out")?;
        let item = q.inner.pop_for(timeout(timeout_ms))?;
        // SAFETY: writable by the contract.
        unsafe { item_out.write(std::ptr::with_exposed_provenance_mut(item)) };
        Ok(())
    })
}

/// Closes the queue: pushes fail with `SHMIO_ERR_CLOSED` from now on, pops drain what is left
/// and then fail the same way. Wakes every waiting thread. Closing twice is harmless.
///
/// Ownership: the queue stays the caller's (free it with `shmio_tqueue_free`). Does not block
/// (beyond the queue's internal lock). Thread-safe.
///
/// # Safety
/// `q` must be NULL or a live queue from `shmio_tqueue_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_tqueue_close(q: *mut shmio_tqueue) -> shmio_status {
    boundary("shmio_tqueue_close", || {
        // SAFETY: a live queue; concurrent shared use is fine, `TQueue` is `Sync` (contract).
        let q = unsafe { handle_ref(q.cast_const(), "q") }?;
        q.inner.close();
        Ok(())
    })
}

/// `*len_out` receives the number of items queued right now.
///
/// Ownership: nothing changes hands. Does not block (beyond the queue's internal lock).
/// Thread-safe.
///
/// # Safety
/// `q` must be NULL or a live queue from `shmio_tqueue_new`; `len_out` NULL or valid for
/// writing a `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_tqueue_len(
    q: *const shmio_tqueue,
    len_out: *mut usize,
) -> shmio_status {
    boundary("shmio_tqueue_len", || {
        // SAFETY: a live queue; concurrent shared use is fine, `TQueue` is `Sync` (contract).
        let q = unsafe { handle_ref(q, "q") }?;
        let len_out = Out::new(len_out, "len_out")?;
        // SAFETY: writable by the contract.
        unsafe { len_out.write(q.inner.len()) };
        Ok(())
    })
}
