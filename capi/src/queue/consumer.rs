//! A consumer of a queue: open at a start, receive by copy or in place, its descriptor, and
//! its waits for a producer.

use std::ffi::{c_char, c_int, c_void};
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::time::Duration;

use shmio_core::queue::{self, Consumer};

use super::{resume_from_c, shmio_queue_info, start_from_c};
use crate::ffi::{
    Out, boundary, byte_len, handle_mut, handle_ref, non_null, str_arg, timeout, write_opt,
};
use crate::sized::SizedOut;
use crate::status::shmio_status;

/// One reader of a queue, with its own cursor (opaque). Use from one thread at a time; it may
/// move between threads.
pub struct shmio_consumer {
    pub(super) inner: Consumer,
}

/// Opens the queue `name` as a new consumer (every consumer receives every record). `start` is
/// a `SHMIO_START_*` value (other values -> `SHMIO_ERR_INVALID_ARGUMENT`); `seq` is used only
/// with `SHMIO_START_SEQUENCE` and must not be ahead of the producer.
///
/// Ownership: on success `*out` receives a new handle that the caller must release with
/// `shmio_consumer_close`; on failure `*out` is set to NULL. Does not block. Thread-safe.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string; `out` NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_consumer_open(
    name: *const c_char,
    start: u32,
    seq: u64,
    out: *mut *mut shmio_consumer,
) -> shmio_status {
    boundary("shmio_consumer_open", || {
        let out = Out::new(out, "out")?;
        // SAFETY: valid for writing a pointer by the contract.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: NUL-terminated by the contract, only used during the call.
        let name = unsafe { str_arg(name, "name") }?;
        let start = start_from_c(start, seq)?;
        let consumer = Consumer::open(name, start)?;
        let handle = Box::into_raw(Box::new(shmio_consumer { inner: consumer }));
        // SAFETY: valid for writing a pointer by the contract.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Closes the consumer and frees the handle, giving its slot back. An open zero-copy read is
/// ended. NULL is a no-op.
///
/// Ownership: takes the handle; it, its descriptor (`shmio_consumer_fd`) and every pointer
/// obtained from it are invalid afterwards. Blocks only briefly, to join the consumer's keeper
/// thread. Must not race with another call on the same handle.
///
/// # Safety
/// `c` must be NULL or a handle from `shmio_consumer_open` that was not closed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_consumer_close(c: *mut shmio_consumer) {
    boundary("shmio_consumer_close", || {
        if !c.is_null() {
            // SAFETY: a live handle is a `Box` we leaked in open; the caller gives it back
            // exactly once (contract).
            drop(unsafe { Box::from_raw(c) });
        }
        Ok(())
    });
}

/// Receives the next record by copy into `buf` (`cap` bytes): `*len_out` receives its length
/// and `*seq_out` (if not NULL) its sequence number. Waits per `timeout_ms` (< 0: no limit, 0:
/// not at all -> `SHMIO_ERR_WOULD_BLOCK`, > 0: at most that many ms -> `SHMIO_ERR_TIMEOUT`).
/// If the record does not fit: `SHMIO_ERR_BUFFER_TOO_SMALL`, `*len_out` receives the size
/// needed, and nothing is consumed. Once the producer is gone and everything was received:
/// `SHMIO_ERR_CLOSED` or `SHMIO_ERR_PRODUCER_DEAD`. `buf` may be NULL only if `cap` is 0.
/// Fails while a zero-copy read is open (`SHMIO_ERR_INVALID_ARGUMENT`).
///
/// Ownership: `buf` is the caller's, written during the call only. Blocking: see
/// `timeout_ms`. One thread at a time per handle.
///
/// # Safety
/// `c` must be NULL or a live consumer handle; `buf` writable for `cap` bytes (when not NULL);
/// `len_out` NULL or valid for writing a `size_t`; `seq_out` NULL or valid for writing a
/// `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_consumer_recv(
    c: *mut shmio_consumer,
    buf: *mut c_void,
    cap: usize,
    timeout_ms: c_int,
    len_out: *mut usize,
    seq_out: *mut u64,
) -> shmio_status {
    boundary("shmio_consumer_recv", || {
        // SAFETY: a live handle, used by this thread alone (contract).
        let c = unsafe { handle_mut(c, "c") }?;
        let cap = byte_len(cap, "cap")?;
        let len_out = Out::new(len_out, "len_out")?;
        let seq_out = Out::optional(seq_out);
        let buf: &mut [MaybeUninit<u8>] = if cap == 0 {
            &mut []
        } else {
            let buf = non_null(buf, "buf")?;
            // SAFETY: `buf` is not NULL and writable for `cap <= isize::MAX` bytes, not
            // otherwise accessed during the call (contract); it may be uninitialised, which
            // `MaybeUninit` allows.
            unsafe { std::slice::from_raw_parts_mut(buf.as_ptr().cast::<MaybeUninit<u8>>(), cap) }
        };
        match c.inner.recv_uninit_for(buf, timeout(timeout_ms)) {
            Ok((seq, len)) => {
                // SAFETY: writable by the contract.
                unsafe {
                    len_out.write(len);
                    write_opt(seq_out, seq);
                }
                Ok(())
            }
            Err(e) => {
                if let queue::Error::BufferTooSmall { needed } = e {
                    // SAFETY: writable by the contract.
                    unsafe { len_out.write(needed) };
                }
                Err(e.into())
            }
        }
    })
}

/// Reads the next record in place (zero copy): `*data_out` points at it in the shared
/// mapping, `*len_out` receives its length and `*seq_out` (if not NULL) its sequence number.
/// Waits like `shmio_consumer_recv`. End the read with `shmio_consumer_release`, which moves
/// past the record; until then other reads on this handle fail. In overwrite mode the producer
/// may rewrite the bytes meanwhile: trust them only once `shmio_consumer_release` returns
/// `SHMIO_OK` (or copy first).
///
/// Ownership: the data belongs to the queue's shared mapping; read-only, valid until
/// release or close. Blocking: see `timeout_ms`. One thread at a time per handle.
///
/// # Safety
/// `c` must be NULL or a live consumer handle; `data_out`, `len_out` NULL or valid for
/// writing; `seq_out` NULL or valid for writing a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_consumer_read(
    c: *mut shmio_consumer,
    timeout_ms: c_int,
    data_out: *mut *const c_void,
    len_out: *mut usize,
    seq_out: *mut u64,
) -> shmio_status {
    boundary("shmio_consumer_read", || {
        // SAFETY: a live handle, used by this thread alone (contract).
        let c = unsafe { handle_mut(c, "c") }?;
        let data_out = Out::new(data_out, "data_out")?;
        let len_out = Out::new(len_out, "len_out")?;
        let seq_out = Out::optional(seq_out);
        let (seq, data, len) = c.inner.read_raw(timeout(timeout_ms))?;
        // SAFETY: all outputs are writable (or NULL where optional) by the contract.
        unsafe {
            data_out.write(data.cast::<c_void>());
            len_out.write(len);
            write_opt(seq_out, seq);
        }
        Ok(())
    })
}

/// Ends the open zero-copy read and moves past the record (in back-pressure mode this frees
/// the slot for the producer). In overwrite mode returns `SHMIO_ERR_OVERRUN` if the record was
/// overwritten while it was read (it then counts as lost; the read is still ended). No read
/// open -> `SHMIO_ERR_INVALID_ARGUMENT`.
///
/// Ownership: the pointer from `shmio_consumer_read` is invalid afterwards. Does not block.
/// One thread at a time per handle.
///
/// # Safety
/// `c` must be NULL or a live consumer handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_consumer_release(c: *mut shmio_consumer) -> shmio_status {
    boundary("shmio_consumer_release", || {
        // SAFETY: a live handle, used by this thread alone (contract).
        let c = unsafe { handle_mut(c, "c") }?;
        c.inner.release_raw()?;
        Ok(())
    })
}

/// A file descriptor for poll/select/epoll that becomes readable when a record is available
/// or the producer is gone. After it polls readable, receive with `timeout_ms` 0 until
/// `SHMIO_ERR_WOULD_BLOCK`: that re-arms it. Do not read the descriptor itself. When a receive
/// reports `SHMIO_ERR_CLOSED` or `SHMIO_ERR_PRODUCER_DEAD`, the descriptor stops polling
/// readable until a new producer takes over (then it polls readable once); see
/// `shmio_consumer_wait_producer`.
///
/// Ownership: the descriptor stays owned by the consumer: do not close it; it is closed by
/// `shmio_consumer_close`. Repeated calls return the same descriptor. Does not block. One
/// thread at a time per handle (polling the descriptor from any thread is fine).
///
/// # Safety
/// `c` must be NULL or a live consumer handle; `fd_out` NULL or valid for writing an `int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_consumer_fd(
    c: *mut shmio_consumer,
    fd_out: *mut c_int,
) -> shmio_status {
    boundary("shmio_consumer_fd", || {
        // SAFETY: a live handle, used by this thread alone (contract).
        let c = unsafe { handle_mut(c, "c") }?;
        let fd_out = Out::new(fd_out, "fd_out")?;
        let fd: RawFd = c.inner.fd()?;
        // SAFETY: writable by the contract.
        unsafe { fd_out.write(fd) };
        Ok(())
    })
}

/// Waits until a live producer holds the queue, per `timeout_ms` (< 0: no limit, 0: not at
/// all -> `SHMIO_ERR_WOULD_BLOCK`, > 0: at most that many ms -> `SHMIO_ERR_TIMEOUT`). Returns
/// `SHMIO_OK` at once if one does.
///
/// The states of a consumer: while a producer lives, receives return records or wait. Once it
/// closed (`SHMIO_ERR_CLOSED`) or died (`SHMIO_ERR_PRODUCER_DEAD`) and every record it committed
/// was received, every receive fails at once with that status, and the consumer's descriptor
/// (`shmio_consumer_fd`) polls readable once for the change, not again; this call waits for a
/// new producer to take over (`shmio_producer_open`), after which receiving resumes where it
/// stopped and the descriptor polls readable once for the take-over. A sleeping consumer learns
/// of a death from the kernel at once (robust futexes); if that notice is lost (a hostile peer
/// overwrote the producer's words) it learns it within `SHMIO_BACKSTOP_MS`.
///
/// Ownership: nothing changes hands. Blocking: see `timeout_ms`. One thread at a time per
/// handle.
///
/// # Safety
/// `c` must be NULL or a live consumer handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_consumer_wait_producer(
    c: *mut shmio_consumer,
    timeout_ms: c_int,
) -> shmio_status {
    boundary("shmio_consumer_wait_producer", || {
        // SAFETY: a live handle, used by this thread alone (contract).
        let c = unsafe { handle_mut(c, "c") }?;
        c.inner.wait_producer(timeout(timeout_ms))?;
        Ok(())
    })
}

/// `*lost_out` receives how many records this consumer lost to overwriting since it opened
/// (overwrite mode only; always 0 in back-pressure mode).
///
/// Ownership: nothing changes hands. Does not block. One thread at a time per handle.
///
/// # Safety
/// `c` must be NULL or a live consumer handle; `lost_out` NULL or valid for writing a
/// `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_consumer_lost(
    c: *const shmio_consumer,
    lost_out: *mut u64,
) -> shmio_status {
    boundary("shmio_consumer_lost", || {
        // SAFETY: a live handle, not mutated during the call (contract).
        let c = unsafe { handle_ref(c, "c") }?;
        let lost_out = Out::new(lost_out, "lost_out")?;
        // SAFETY: writable by the contract.
        unsafe { lost_out.write(c.inner.lost()) };
        Ok(())
    })
}

/// Sets how many nanoseconds a blocking read (`shmio_consumer_recv`/`_read` with a timeout
/// other than 0) spins before it sleeps in the kernel; 20000 (20 µs) by default. 0 sleeps at
/// once: no CPU is burnt while idle, and each record that finds the consumer asleep costs a
/// kernel wake-up. Values above one second are clamped to one second.
///
/// Ownership: nothing changes hands. Does not block. One thread at a time per handle.
///
/// # Safety
/// `c` must be NULL or a live consumer handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_consumer_set_spin_ns(
    c: *mut shmio_consumer,
    spin_ns: u64,
) -> shmio_status {
    boundary("shmio_consumer_set_spin_ns", || {
        // SAFETY: a live handle, used by this thread alone (contract).
        let c = unsafe { handle_mut(c, "c") }?;
        c.inner.set_spin(Duration::from_nanos(spin_ns));
        Ok(())
    })
}

/// Sets where the consumer resumes after the producer lapped it (overwrite mode; it fell a
/// whole ring behind): `resume` is a `SHMIO_RESUME_*` value (other values ->
/// `SHMIO_ERR_INVALID_ARGUMENT`, nothing changed); `behind` is used only with
/// `SHMIO_RESUME_BEHIND`. `SHMIO_RESUME_NEAR_OLDEST` by default. Every record skipped is counted
/// by `shmio_consumer_lost` whichever is chosen.
///
/// Ownership: nothing changes hands. Does not block. One thread at a time per handle.
///
/// # Safety
/// `c` must be NULL or a live consumer handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_consumer_set_resume(
    c: *mut shmio_consumer,
    resume: u32,
    behind: u64,
) -> shmio_status {
    boundary("shmio_consumer_set_resume", || {
        // SAFETY: a live handle, used by this thread alone (contract).
        let c = unsafe { handle_mut(c, "c") }?;
        c.inner.set_resume(resume_from_c(resume, behind)?);
        Ok(())
    })
}

/// `*pos_out` receives the sequence number of the next record this consumer reads.
///
/// Ownership: nothing changes hands. Does not block. One thread at a time per handle.
///
/// # Safety
/// `c` must be NULL or a live consumer handle; `pos_out` NULL or valid for writing a
/// `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_consumer_position(
    c: *const shmio_consumer,
    pos_out: *mut u64,
) -> shmio_status {
    boundary("shmio_consumer_position", || {
        // SAFETY: a live handle, not mutated during the call (contract).
        let c = unsafe { handle_ref(c, "c") }?;
        let pos_out = Out::new(pos_out, "pos_out")?;
        // SAFETY: writable by the contract.
        unsafe { pos_out.write(c.inner.position()) };
        Ok(())
    })
}

/// Writes the queue's geometry to `*out`, filled by `shmio_queue_info_init`.
///
/// Ownership: `out` is the caller's. Does not block. One thread at a time per handle.
///
/// # Safety
/// `c` must be NULL or a live consumer handle; `out` NULL or a struct filled by
/// `shmio_queue_info_init`, writable for its `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_consumer_info(
    c: *const shmio_consumer,
    out: *mut shmio_queue_info,
) -> shmio_status {
    boundary("shmio_consumer_info", || {
        // SAFETY: a live handle, not mutated during the call (contract).
        let c = unsafe { handle_ref(c, "c") }?;
        // SAFETY: readable for its first `u32` (contract).
        let out = unsafe { SizedOut::new(out, "out") }?;
        // SAFETY: writable for its `struct_size` bytes (contract).
        unsafe { out.write(shmio_queue_info::from(&c.inner.info())) };
        Ok(())
    })
}
