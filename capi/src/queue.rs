//! The shared-memory broadcast queue: options, producer, consumer, inspection.

use std::ffi::{c_char, c_int, c_void};
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::time::Duration;

use shmio_core::queue::{
    self, Consumer, Policy, Producer, ProducerStatus, QueueInfo, QueueOptions, Start,
};

use crate::ffi::{
    Failure, Out, Result, boundary, byte_len, handle_mut, handle_ref, non_null, non_null_const,
    shmio_status, str_arg, timeout, write_opt,
};

/// Policy: the producer never waits; a consumer that falls a whole ring behind loses the oldest
/// records and is told how many.
pub const SHMIO_POLICY_OVERWRITE: u32 = 0;
/// Policy: the producer waits for the slowest live consumer; nothing is lost.
pub const SHMIO_POLICY_BACKPRESSURE: u32 = 1;

/// Consumer start: the most recent committed record (or the first one, if none yet).
pub const SHMIO_START_NEWEST: u32 = 0;
/// Consumer start: the oldest record the ring still holds.
pub const SHMIO_START_OLDEST: u32 = 1;
/// Consumer start: the sequence number passed as `seq` (not ahead of the producer).
pub const SHMIO_START_SEQUENCE: u32 = 2;

/// Producer state: no producer (it closed cleanly).
pub const SHMIO_PRODUCER_NONE: u32 = 0;
/// Producer state: a live producer holds the queue.
pub const SHMIO_PRODUCER_ALIVE: u32 = 1;
/// Producer state: the producer died without closing.
pub const SHMIO_PRODUCER_DEAD: u32 = 2;

/// Creation options. Always fill it with `shmio_queue_options_init` first, then change the
/// fields you need: that sets `struct_size`, which lets later versions add fields.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_queue_options {
    /// Size of this struct as the caller knows it; set by `shmio_queue_options_init`.
    pub struct_size: u32,
    /// Requested slot count (default 1024); rounded up to a power of two, at least 2.
    pub slots: u32,
    /// Largest record in bytes (default 256).
    pub slot_size: u32,
    /// `SHMIO_POLICY_*` (default `SHMIO_POLICY_OVERWRITE`).
    pub policy: u32,
    /// Most consumers attached at once (default 64).
    pub max_consumers: u32,
    /// File mode, applied exactly, not masked by the umask (default 0600).
    pub mode: u32,
}

/// The size of `shmio_queue_options` this library knows.
const OPTIONS_SIZE: u32 = size_of::<shmio_queue_options>() as u32;

impl shmio_queue_options {
    /// The defaults (those of the Rust `QueueOptions::new()`; a test checks they agree).
    pub(crate) const DEFAULT: shmio_queue_options = shmio_queue_options {
        struct_size: OPTIONS_SIZE,
        slots: 1024,
        slot_size: 256,
        policy: SHMIO_POLICY_OVERWRITE,
        max_consumers: 64,
        mode: 0o600,
    };

    /// The core options (`struct_size` is checked by the caller, before reading the struct).
    pub(crate) fn to_core(self) -> Result<QueueOptions> {
        Ok(QueueOptions::new()
            .slots(self.slots)
            .slot_size(self.slot_size)
            .policy(policy_from_c(self.policy)?)
            .max_consumers(self.max_consumers)
            .mode(self.mode))
    }
}

fn policy_from_c(p: u32) -> Result<Policy> {
    match p {
        SHMIO_POLICY_OVERWRITE => Ok(Policy::Overwrite),
        SHMIO_POLICY_BACKPRESSURE => Ok(Policy::BackPressure),
        _ => Err(Failure::invalid(format!(
            "policy {p} is not a SHMIO_POLICY_* value"
        ))),
    }
}

fn policy_to_c(p: Policy) -> u32 {
    match p {
        Policy::Overwrite => SHMIO_POLICY_OVERWRITE,
        Policy::BackPressure => SHMIO_POLICY_BACKPRESSURE,
    }
}

fn start_from_c(start: u32, seq: u64) -> Result<Start> {
    match start {
        SHMIO_START_NEWEST => Ok(Start::Newest),
        SHMIO_START_OLDEST => Ok(Start::Oldest),
        SHMIO_START_SEQUENCE => Ok(Start::Sequence(seq)),
        _ => Err(Failure::invalid(format!(
            "start {start} is not a SHMIO_START_* value"
        ))),
    }
}

/// A queue's fixed geometry.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_queue_info {
    /// `SHMIO_POLICY_*`.
    pub policy: u32,
    /// Slots in the ring (a power of two; may exceed the count asked for).
    pub slot_count: u32,
    /// Largest record in bytes.
    pub slot_size: u32,
    /// Most consumers attached at once.
    pub max_consumers: u32,
}

impl From<&QueueInfo> for shmio_queue_info {
    fn from(i: &QueueInfo) -> shmio_queue_info {
        shmio_queue_info {
            policy: policy_to_c(i.policy),
            slot_count: i.slot_count,
            slot_size: i.slot_size,
            max_consumers: i.max_consumers,
        }
    }
}

/// The single writer of a queue (opaque). Use from one thread at a time; it may move between
/// threads.
pub struct shmio_producer {
    inner: Producer,
}

/// One reader of a queue, with its own cursor (opaque). Use from one thread at a time; it may
/// move between threads.
pub struct shmio_consumer {
    inner: Consumer,
}

/// The longest a blocked call sleeps before it re-checks its peer's liveness by itself (ms): a
/// death whose kernel notice was lost (a peer overwrote the shared liveness words) is noticed
/// within this long.
pub const SHMIO_BACKSTOP_MS: u32 = 200;

const _: () = assert!(shmio_core::queue::BACKSTOP.as_millis() == SHMIO_BACKSTOP_MS as u128);

/// Fills `*opts` with the defaults: 1024 slots of 256 bytes, `SHMIO_POLICY_OVERWRITE`,
/// 64 consumers, mode 0600, and `struct_size` set to this library's size of the struct.
///
/// Ownership: `opts` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `opts` must be NULL (-> `SHMIO_ERR_NULL_POINTER`) or valid for writing a
/// `shmio_queue_options`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_queue_options_init(opts: *mut shmio_queue_options) -> shmio_status {
    boundary("shmio_queue_options_init", || {
        let out = Out::new(opts, "opts")?;
        // SAFETY: valid for writing by the contract.
        unsafe { out.write(shmio_queue_options::DEFAULT) };
        Ok(())
    })
}

/// Creates the queue `name` (failing with `SHMIO_ERR_ALREADY_EXISTS` if the file exists) and
/// becomes its producer. `name` is a bare name, placed in `$SHMIO_DIR` or `/dev/shm`, or a path
/// (anything containing '/'). `opts` NULL means the defaults; otherwise it must have been
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
        let len = byte_len(len, "len")?;
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

/// Writes the queue's geometry to `*out`.
///
/// Ownership: `out` is the caller's. Does not block. One thread at a time per handle.
///
/// # Safety
/// `p` must be NULL or a live producer handle; `out` NULL or valid for writing a
/// `shmio_queue_info`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_producer_info(
    p: *const shmio_producer,
    out: *mut shmio_queue_info,
) -> shmio_status {
    boundary("shmio_producer_info", || {
        // SAFETY: a live handle, not mutated during the call (contract).
        let p = unsafe { handle_ref(p, "p") }?;
        let out = Out::new(out, "out")?;
        // SAFETY: writable by the contract.
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

/// Writes the queue's geometry to `*out`.
///
/// Ownership: `out` is the caller's. Does not block. One thread at a time per handle.
///
/// # Safety
/// `c` must be NULL or a live consumer handle; `out` NULL or valid for writing a
/// `shmio_queue_info`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_consumer_info(
    c: *const shmio_consumer,
    out: *mut shmio_queue_info,
) -> shmio_status {
    boundary("shmio_consumer_info", || {
        // SAFETY: a live handle, not mutated during the call (contract).
        let c = unsafe { handle_ref(c, "c") }?;
        let out = Out::new(out, "out")?;
        // SAFETY: writable by the contract.
        unsafe { out.write(shmio_queue_info::from(&c.inner.info())) };
        Ok(())
    })
}

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
