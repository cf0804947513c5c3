//! The producer of a queue: create or take over, send by copy or in place, wait for
//! consumers.

use std::ffi::{c_char, c_int, c_void};
use std::time::Duration;

use shmio_core::queue::Producer;

use super::{OPTIONS_SIZE, shmio_queue_info, shmio_queue_options};
use crate::ffi::{
    Failure, Out, boundary, handle_mut, handle_ref, non_null_const, str_arg, timeout, write_opt,
};
use crate::sized::SizedOut;
use crate::status::shmio_status;

/// The single writer of a queue (opaque). Use from one thread at a time; it may move between
/// threads.
pub struct shmio_producer {
    pub(super) inner: Producer,
}

/// Creates the queue `name` (failing with `SHMIO_ERR_ALREADY_EXISTS` if the file exists) and
/// becomes its producer. `name` is a bare name, placed in `$SHMIO_DIR` or `/dev/shm`, or a path
/// (starting with '/', './' or '../'; any other name with a '/' ->
/// `SHMIO_ERR_INVALID_ARGUMENT`). `opts` NULL means the defaults; otherwise it must have been
/// filled by `shmio_queue_options_init` (`struct_size` is checked). Invalid geometry, policy or
/// mode -> `SHMIO_ERR_INVALID_ARGUMENT`. The file's blocks are reserved at creation: a file
/// system too small for it -> `SHMIO_ERR_NO_SPACE` (nothing left behind), never a SIGBUS later.
///
/// Ownership: on success `*out` receives a new handle that the caller must release with
/// `shmio_producer_close`; on failure `*out` is set to NULL. `name` and `opts` are only read
/// during the call. Does not block (beyond file creation). Thread-safe.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string; `opts` NULL or a readable
/// `shmio_queue_options`; `out` NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_producer_create(
    name: *const c_char,
    opts: *const shmio_queue_options,
    out: *mut *mut shmio_producer,
) -> shmio_status {
    boundary("shmio_producer_create", || {
        let out = Out::new(out, "out")?;
        // SAFETY: valid for writing a pointer by the contract.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: NUL-terminated by the contract, only used during the call.
        let name = unsafe { str_arg(name, "name") }?;
        let opts = match std::ptr::NonNull::new(opts.cast_mut()) {
            None => shmio_queue_options::DEFAULT,
            Some(p) => {
                let p = p.as_ptr();
                // SAFETY: `p` points to a readable options struct (contract); `struct_size`
                // is its first field, read alone before trusting the rest.
                let size = unsafe { (&raw const (*p).struct_size).read() };
                if size < OPTIONS_SIZE {
                    return Err(Failure::invalid(format!(
                        "opts->struct_size {size} is smaller than {OPTIONS_SIZE}: \
                         fill the options with shmio_queue_options_init"
                    )));
                }
                // SAFETY: as above; the caller's struct is at least as large as ours, and
                // every bit pattern is a valid `shmio_queue_options` (all `u32`).
                unsafe { p.read() }
            }
        };
        let producer = Producer::create(name, &opts.to_core()?)?;
        let handle = Box::into_raw(Box::new(shmio_producer { inner: producer }));
        // SAFETY: valid for writing a pointer by the contract.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Takes over the existing queue `name` whose producer closed or died, and becomes its
/// producer. Fails with `SHMIO_ERR_PRODUCER_EXISTS` while a live producer holds it. Writing
/// resumes at the head: a record the previous producer had not committed is never delivered.
///
/// Ownership: on success `*out` receives a new handle that the caller must release with
/// `shmio_producer_close`; on failure `*out` is set to NULL. Does not block. Thread-safe.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string; `out` NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_producer_open(
    name: *const c_char,
    out: *mut *mut shmio_producer,
) -> shmio_status {
    boundary("shmio_producer_open", || {
        let out = Out::new(out, "out")?;
        // SAFETY: valid for writing a pointer by the contract.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: NUL-terminated by the contract, only used during the call.
        let name = unsafe { str_arg(name, "name") }?;
        let producer = Producer::open(name)?;
        let handle = Box::into_raw(Box::new(shmio_producer { inner: producer }));
        // SAFETY: valid for writing a pointer by the contract.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Closes the producer and frees the handle. Consumers drain what was committed, then get
/// `SHMIO_ERR_CLOSED`; the file stays until `shmio_queue_unlink`. An open reservation is
/// abandoned. NULL is a no-op.
///
/// Ownership: takes the handle; it and every pointer obtained from it are invalid afterwards.
/// Blocks only briefly, to join the producer's keeper thread. Must not race with another call on
/// the same handle.
///
/// # Safety
/// `p` must be NULL or a handle from `shmio_producer_create`/`shmio_producer_open` that was
/// not closed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_producer_close(p: *mut shmio_producer) {
    boundary("shmio_producer_close", || {
        if !p.is_null() {
            // SAFETY: a live handle is a `Box` we leaked in create/open; the caller gives it
            // back exactly once (contract).
            drop(unsafe { Box::from_raw(p) });
        }
        Ok(())
    });
}

/// Copies `len` bytes from `data` into the next slot and commits them as one record. In
/// back-pressure mode waits for space per `timeout_ms` (< 0: no limit, 0: not at all ->
/// `SHMIO_ERR_WOULD_BLOCK`, > 0: at most that many ms -> `SHMIO_ERR_TIMEOUT`); overwrite
/// mode never waits. `len` above the slot size -> `SHMIO_ERR_TOO_LARGE`. `data` may be NULL
/// only if `len` is 0. Fails while a reservation is open (`SHMIO_ERR_INVALID_ARGUMENT`).
///
/// Ownership: `data` is only read during the call. On success `*seq_out` (if not NULL)
/// receives the record's sequence number. Blocking: see `timeout_ms`. One thread at a time
/// per handle.
///
/// # Safety
/// `p` must be NULL or a live producer handle; `data` readable for `len` bytes (when not
/// NULL); `seq_out` NULL or valid for writing a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_producer_send(
    p: *mut shmio_producer,
    data: *const c_void,
    len: usize,
    timeout_ms: c_int,
    seq_out: *mut u64,
) -> shmio_status {
    boundary("shmio_producer_send", || {
        // SAFETY: a live handle, used by this thread alone (contract).
        let p = unsafe { handle_mut(p, "p") }?;
        // Before the pointer checks: any length above the slot size is `TOO_LARGE`, as
        // documented, whatever `data` is (a C caller's `(size_t)-1` too).
        let max = p.inner.slot_size();
        if len > max {
            return Err(shmio_core::queue::Error::TooLarge { len, max }.into());
        }
        let seq_out = Out::optional(seq_out);
        let data: &[u8] = if len == 0 {
            &[]
        } else {
            let data = non_null_const(data, "data")?;
            // SAFETY: `data` is not NULL and readable for `len <= isize::MAX` bytes, unchanged
            // during the call (contract); any byte value is a valid `u8`.
            unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), len) }
        };
        let seq = p.inner.send_for(data, timeout(timeout_ms))?;
        // SAFETY: NULL or writable by the contract.
        unsafe { write_opt(seq_out, seq) };
        Ok(())
    })
}

/// Reserves the next slot for writing in place (zero copy): `*buf_out` receives the slot's
/// payload area and `*cap_out` its capacity (the slot size). Write the record there, then call
/// `shmio_producer_commit` (or `shmio_producer_abort`). Waits for space like
/// `shmio_producer_send` (back-pressure mode only). A second reserve before commit/abort fails
/// with `SHMIO_ERR_INVALID_ARGUMENT`.
///
/// Ownership: the buffer belongs to the queue's shared mapping; it may be written until
/// commit, abort or close, and must not be used after. Blocking: see `timeout_ms`. One thread
/// at a time per handle.
///
/// # Safety
/// `p` must be NULL or a live producer handle; `buf_out` and `cap_out` NULL or valid for
/// writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_producer_reserve(
    p: *mut shmio_producer,
    timeout_ms: c_int,
    buf_out: *mut *mut c_void,
    cap_out: *mut usize,
) -> shmio_status {
    boundary("shmio_producer_reserve", || {
        // SAFETY: a live handle, used by this thread alone (contract).
        let p = unsafe { handle_mut(p, "p") }?;
        let buf_out = Out::new(buf_out, "buf_out")?;
        let cap_out = Out::new(cap_out, "cap_out")?;
        let (_, buf, cap) = p.inner.reserve_raw(timeout(timeout_ms))?;
        // SAFETY: both outputs are writable by the contract.
        unsafe {
            buf_out.write(buf.as_ptr().cast::<c_void>());
            cap_out.write(cap);
        }
        Ok(())
    })
}

/// Publishes the first `len` bytes of the open reservation as a record. `len` above the slot
/// size -> `SHMIO_ERR_TOO_LARGE`, and the reservation stays open. No reservation open ->
/// `SHMIO_ERR_INVALID_ARGUMENT`.
///
/// Ownership: the reserved buffer must not be used after success. On success `*seq_out` (if
/// not NULL) receives the record's sequence number. Does not block. One thread at a time per
/// handle.
///
/// # Safety
/// `p` must be NULL or a live producer handle; `seq_out` NULL or valid for writing a
/// `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_producer_commit(
    p: *mut shmio_producer,
    len: usize,
    seq_out: *mut u64,
) -> shmio_status {
    boundary("shmio_producer_commit", || {
        // SAFETY: a live handle, used by this thread alone (contract).
        let p = unsafe { handle_mut(p, "p") }?;
        let seq_out = Out::optional(seq_out);
        let seq = p.inner.commit_raw(len)?;
        // SAFETY: NULL or writable by the contract.
        unsafe { write_opt(seq_out, seq) };
        Ok(())
    })
}

/// Abandons the open reservation: nothing is published (in overwrite mode the record that
/// slot held before is gone). Without an open reservation this does nothing and returns
/// `SHMIO_OK`.
///
/// Ownership: the reserved buffer must not be used afterwards. Does not block. One thread at a
/// time per handle.
///
/// # Safety
/// `p` must be NULL or a live producer handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_producer_abort(p: *mut shmio_producer) -> shmio_status {
    boundary("shmio_producer_abort", || {
        // SAFETY: a live handle, used by this thread alone (contract).
        let p = unsafe { handle_mut(p, "p") }?;
        p.inner.abort_raw();
        Ok(())
    })
}

/// Sets how many nanoseconds a wait for space (back-pressure mode) spins before it sleeps in
/// the kernel; 20000 (20 µs) by default. 0 sleeps at once: no CPU is burnt while waiting, and
/// every wait costs a kernel wake-up. Values above one second are clamped to one second.
///
/// Ownership: nothing changes hands. Does not block. One thread at a time per handle.
///
/// # Safety
/// `p` must be NULL or a live producer handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_producer_set_spin_ns(
    p: *mut shmio_producer,
    spin_ns: u64,
) -> shmio_status {
    boundary("shmio_producer_set_spin_ns", || {
        // SAFETY: a live handle, used by this thread alone (contract).
        let p = unsafe { handle_mut(p, "p") }?;
        p.inner.set_spin(Duration::from_nanos(spin_ns));
        Ok(())
    })
}

/// Writes the queue's geometry to `*out`, filled by `shmio_queue_info_init`.
///
/// Ownership: `out` is the caller's. Does not block. One thread at a time per handle.
///
/// # Safety
/// `p` must be NULL or a live producer handle; `out` NULL or a struct filled by
/// `shmio_queue_info_init`, writable for its `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_producer_info(
    p: *const shmio_producer,
    out: *mut shmio_queue_info,
) -> shmio_status {
    boundary("shmio_producer_info", || {
        // SAFETY: a live handle, not mutated during the call (contract).
        let p = unsafe { handle_ref(p, "p") }?;
        // SAFETY: readable for its first `u32` (contract).
        let out = unsafe { SizedOut::new(out, "out") }?;
        // SAFETY: writable for its `struct_size` bytes (contract).
        unsafe { out.write(shmio_queue_info::from(&p.inner.info())) };
        Ok(())
    })
}

/// Waits until at least `count` live consumers are attached, per `timeout_ms` (< 0: no limit,
/// 0: not at all -> `SHMIO_ERR_WOULD_BLOCK`, > 0: at most that many ms ->
/// `SHMIO_ERR_TIMEOUT`); `*live_out` (if not NULL) receives how many are attached.
///
/// Why: a record sent while no consumer is attached is kept only as long as the ring holds it
/// (a consumer that joins later with `SHMIO_START_OLDEST` may still get it), and in
/// back-pressure mode such a record waits for nobody. A producer that must not lose its first
/// records waits for its consumers first.
///
/// Ownership: nothing changes hands. Blocking: see `timeout_ms`. One thread at a time per
/// handle.
///
/// # Safety
/// `p` must be NULL or a live producer handle; `live_out` NULL or valid for writing a `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_producer_wait_consumers(
    p: *mut shmio_producer,
    count: usize,
    timeout_ms: c_int,
    live_out: *mut usize,
) -> shmio_status {
    boundary("shmio_producer_wait_consumers", || {
        // SAFETY: a live handle, used by this thread alone (contract).
        let p = unsafe { handle_mut(p, "p") }?;
        let live_out = Out::optional(live_out);
        let live = p.inner.wait_consumers(count, timeout(timeout_ms))?;
        // SAFETY: NULL or writable by the contract.
        unsafe { write_opt(live_out, live) };
        Ok(())
    })
}
