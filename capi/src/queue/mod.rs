//! The shared-memory broadcast queue: the options, geometry and enumerations both ends share
//! (here), the producer (`producer.rs`), the consumer (`consumer.rs`), batches of records
//! (`batch.rs`), and inspection and removal of a queue file (`stats.rs`).

use shmio_core::queue::{Policy, QueueInfo, QueueOptions, Resume, Start};

use crate::ffi::{Failure, Out, Result, boundary};
use crate::sized::{Growable, growable, init};
use crate::status::shmio_status;

// Declared in this order on purpose (rustfmt keeps it, since each stands alone): cbindgen
// writes the header's functions in the order it parses them.
mod producer;

mod consumer;

mod batch;

mod stats;

pub use batch::*;
pub use consumer::*;
pub use producer::*;
pub use stats::*;

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

/// Consumer resume after being lapped (overwrite mode): an eighth of a ring (at least one
/// record) after the oldest record still held (default).
pub const SHMIO_RESUME_NEAR_OLDEST: u32 = 0;
/// Consumer resume after being lapped: half a ring behind the head.
pub const SHMIO_RESUME_HALF_RING: u32 = 1;
/// Consumer resume after being lapped: at the newest committed record.
pub const SHMIO_RESUME_NEWEST: u32 = 2;
/// Consumer resume after being lapped: `behind` records behind the head (1: the newest
/// committed, 0: the next to be committed; past what the ring holds: the oldest held).
pub const SHMIO_RESUME_BEHIND: u32 = 3;
/// Consumer resume after being lapped: at the oldest record still held (the slot the producer
/// overwrites next; a reader slower than the producer is lapped again and again).
pub const SHMIO_RESUME_OLDEST: u32 = 4;

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

fn resume_from_c(resume: u32, behind: u64) -> Result<Resume> {
    match resume {
        SHMIO_RESUME_NEAR_OLDEST => Ok(Resume::NearOldest),
        SHMIO_RESUME_HALF_RING => Ok(Resume::HalfRing),
        SHMIO_RESUME_NEWEST => Ok(Resume::Newest),
        SHMIO_RESUME_BEHIND => Ok(Resume::Behind(behind)),
        SHMIO_RESUME_OLDEST => Ok(Resume::Oldest),
        _ => Err(Failure::invalid(format!(
            "resume {resume} is not a SHMIO_RESUME_* value"
        ))),
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

/// A queue's fixed geometry. Fill with `shmio_queue_info_init` first (it sets `struct_size`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_queue_info {
    /// Size of this struct as the caller knows it; set by `shmio_queue_info_init`. The call that
    /// fills the struct sets it to the number of bytes it filled in.
    pub struct_size: u32,
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
            ..shmio_queue_info::INIT
        }
    }
}

// SAFETY: `#[repr(C)]`, `struct_size: u32` first, then `u32`s only.
growable!(shmio_queue_info, 5 * 4);

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

/// Fills `*out` with zeros and sets its `struct_size`.
///
/// Ownership: `out` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `out` must be NULL (-> `SHMIO_ERR_NULL_POINTER`) or valid for writing a `shmio_queue_info`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_queue_info_init(out: *mut shmio_queue_info) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe { init("shmio_queue_info_init", out, shmio_queue_info::INIT) }
}
