//! Broadcast queue in shared memory: one producer, many consumer processes.
//!
//! A queue is a file (by default `/dev/shm/<name>`, or any path) holding a ring of fixed-size
//! slots. The producer writes records in place and commits them; every consumer has its own
//! cursor and reads every record (broadcast), in place or by copy.
//!
//! ```
//! use shmio::queue::{Consumer, Producer, QueueOptions, Start};
//! # let _ = shmio::queue::unlink("doc-orders");
//!
//! let mut tx = Producer::create("doc-orders", &QueueOptions::new().slots(1024).slot_size(256))?;
//! let mut rx = Consumer::open("doc-orders", Start::Oldest)?; // usually in another process
//! tx.send(b"hello")?;
//! let mut buf = [0u8; 256];
//! let n = rx.recv(&mut buf)?;
//! assert_eq!(&buf[..n], b"hello");
//! shmio::queue::unlink("doc-orders")?;
//! # Ok::<(), shmio::queue::Error>(())
//! ```
//!
//! # Slow consumers
//! Chosen at creation ([`Policy`]): in **overwrite** mode the producer never waits and a consumer
//! that fell more than a ring behind is told exactly how many records it lost; in
//! **back-pressure** mode the producer waits for the slowest *live* consumer, and a consumer
//! whose process died is evicted at once.
//!
//! # Waiting
//! A consumer with nothing to read spins briefly, then sleeps on a futex in the shared header.
//! The producer issues a wake only when a consumer announced it sleeps. For pollers, each
//! consumer offers a file descriptor ([`Consumer::fd`]).
//!
//! # Liveness
//! The producer and every consumer hold a *robust futex* word in the file through a small keeper
//! thread (see the `sys::robust` module). When a process dies the kernel marks its words and
//! wakes their sleepers, so a consumer blocked in [`Consumer::recv`] learns of the producer's
//! death at once, drains every committed record, and then gets [`Error::ProducerDead`]. A new
//! producer may then take over with [`Producer::open`]; a record the dead producer had not
//! committed is never delivered. A producer that closes cleanly makes consumers return
//! [`Error::Closed`] after draining.
//!
//! # Trust
//! The file is shared with processes we do not control. The geometry is validated once at open
//! and kept in process memory; every index read from the file is masked or bounds-checked
//! before use, so a corrupt or hostile peer causes an error, never undefined behaviour.

mod cancel;
mod consumer;
pub(crate) mod layout;
mod producer;
pub(crate) mod ring;
mod wait;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

pub use cancel::Canceller;
pub use consumer::{Consumer, ReadGuard};
pub use layout::{
    LAYOUT_VERSION, MAX_CONSUMERS, MAX_SLOT_SIZE, MAX_SLOTS, OWNER_WORD_OFFSET, queue_dir, resolve,
};
pub use producer::{Producer, Reservation};
pub use wait::BACKSTOP;

use crate::error::{ErrorKind, IoError};
use crate::fork::Origin;
use crate::shm::file as shmfile;
use crate::sys::robust::{Owner, owner_of};
use layout::Shared;

/// What happens when a consumer falls a whole ring behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// The producer never waits; lagging consumers lose the oldest records and are told how
    /// many.
    Overwrite,
    /// The producer waits for the slowest live consumer; nothing is lost.
    BackPressure,
}

/// Where a new consumer starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Start {
    /// The most recent committed record (or the first one, if none yet), as the original demo
    /// did.
    #[default]
    Newest,
    /// The oldest record the ring still holds.
    Oldest,
    /// This sequence number; it must not be ahead of the producer. Records before the oldest
    /// held count as lost in overwrite mode and are an error in back-pressure mode.
    Sequence(u64),
}

/// Creation options. `QueueOptions::new()` gives 1024 slots of 256 bytes, overwrite mode,
/// 64 consumer slots and mode 0600.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOptions {
    pub(crate) slots: u32,
    pub(crate) slot_size: u32,
    pub(crate) policy: Policy,
    pub(crate) max_consumers: u32,
    pub(crate) mode: u32,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            slots: 1024,
            slot_size: 256,
            policy: Policy::Overwrite,
            max_consumers: 64,
            mode: 0o600,
        }
    }
}

impl QueueOptions {
    /// The defaults: 1024 slots of 256 bytes, overwrite mode, 64 consumers, mode `0o600`.
    pub fn new() -> Self {
        Self::default()
    }
    /// Requested slot count; rounded up to a power of two (at least 2). See
    /// [`QueueInfo::slot_count`] for the count used.
    pub fn slots(mut self, n: u32) -> Self {
        self.slots = n;
        self
    }
    /// Largest record, in bytes (1 ..= [`MAX_SLOT_SIZE`]).
    pub fn slot_size(mut self, n: u32) -> Self {
        self.slot_size = n;
        self
    }
    /// What the producer does when the slowest consumer is a ring behind ([`Policy`]).
    pub fn policy(mut self, p: Policy) -> Self {
        self.policy = p;
        self
    }
    /// Most consumers attached at once (1 ..= [`MAX_CONSUMERS`]).
    pub fn max_consumers(mut self, n: u32) -> Self {
        self.max_consumers = n;
        self
    }
    /// File mode, applied exactly (not masked by the umask). Default `0o600`.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
    pub(crate) fn rounded_slots(&self) -> Result<u32, Error> {
        if self.slots == 0 || self.slots > MAX_SLOTS {
            return Err(Error::InvalidArgument(format!(
                "slot count {} out of range 1..={MAX_SLOTS}",
                self.slots
            )));
        }
        Ok(self.slots.max(2).next_power_of_two())
    }
}

/// A queue's fixed geometry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// The queue file's path.
    pub path: PathBuf,
    /// Overwrite or back-pressure, fixed at creation.
    pub policy: Policy,
    /// Slots in the ring (a power of two; may exceed the count asked for).
    pub slot_count: u32,
    /// Largest record in bytes.
    pub slot_size: u32,
    /// Most consumers attached at once.
    pub max_consumers: u32,
}

/// The producer role as seen in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerStatus {
    /// No producer: it closed cleanly.
    None,
    /// A live producer in process `pid`.
    Alive {
        /// Its process id, in the PID namespace of the process that read it.
        pid: u32,
    },
    /// The producer in process `pid` died without closing.
    Dead {
        /// Its process id, in the PID namespace of the process that read it.
        pid: u32,
    },
}

/// One consumer as seen in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Consumer slot index.
    pub index: u32,
    /// Its process id (this PID namespace's).
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

/// A snapshot of a queue's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    /// The geometry.
    pub info: QueueInfo,
    /// Records committed so far (the next sequence number the producer writes).
    pub head: u64,
    /// Oldest sequence number still held in the ring.
    pub oldest: u64,
    /// The producer role: none, alive, or dead without closing.
    pub producer: ProducerStatus,
    /// Producer generation: 1 for the producer that created the queue, plus one per take-over.
    pub producer_generation: u32,
    /// Live consumers that have joined (chosen their start), in slot order.
    pub consumers: Vec<ConsumerStats>,
}

impl QueueStats {
    /// How many live consumers have joined.
    pub fn live_consumers(&self) -> usize {
        self.consumers.len()
    }
}

/// Errors of the queue module.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An argument was out of range or malformed.
    InvalidArgument(String),
    /// `create` found a file at that path already.
    AlreadyExists(PathBuf),
    /// No queue at that path.
    NotFound(PathBuf),
    /// The file's permissions refuse us.
    PermissionDenied(PathBuf),
    /// The file is not a valid queue (bad magic, sizes, indices or length); from [`unlink`],
    /// the file at the path is not a queue file (it was left alone).
    Corrupt(String),
    /// The file was made by an incompatible layout version.
    VersionMismatch {
        /// The file's layout version.
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// `create`: the file system cannot hold the file (`needed` bytes; `available` is what it
    /// has free for unprivileged users). Nothing is left behind. The blocks are reserved at
    /// creation, so a queue that was created never runs out of space later (no SIGBUS).
    NoSpace {
        /// The file that was to be created.
        path: PathBuf,
        /// Bytes the file needs.
        needed: u64,
        /// Bytes the file system has free for unprivileged users.
        available: u64,
    },
    /// Nothing to read (consumer) or no space (back-pressure producer) right now.
    WouldBlock,
    /// The wait's timeout expired.
    Timeout,
    /// A signal interrupted a blocking wait (as `EINTR` does for read(2)).
    Interrupted,
    /// The producer died; every record it committed has been delivered.
    ProducerDead,
    /// The producer closed the queue; every record it committed has been delivered.
    Closed,
    /// A live producer (in process `pid`) already holds the queue.
    ProducerExists {
        /// The live producer's process.
        pid: u32,
    },
    /// All consumer slots are taken by live consumers.
    TooManyConsumers {
        /// The queue's consumer slots.
        max: u32,
    },
    /// A record larger than the slot size.
    TooLarge {
        /// The record's length.
        len: usize,
        /// The slot size.
        max: usize,
    },
    /// The caller's buffer cannot hold the next record (it is not consumed).
    BufferTooSmall {
        /// The next record's length.
        needed: usize,
    },
    /// In overwrite mode, the record read in place was overwritten while it was read; it counts
    /// as lost.
    Overrun,
    /// The kernel lacks something needed.
    Unsupported(String),
    /// The handle's [`Canceller`] was used (another thread is closing it): the wait ended and
    /// every later wait on the handle ends the same way.
    Cancelled,
    /// The handle was opened by a parent of this process: handles do not survive `fork()`.
    /// Open a new one in the child (dropping the inherited one is harmless).
    Forked,
    /// A system call failed.
    Io(IoError),
}

crate::error::file_object_error!(Error);

impl Error {
    /// The class of the error ([`ErrorKind`]), named alike in every module.
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            Error::InvalidArgument(_) => K::InvalidArgument,
            Error::AlreadyExists(_) => K::AlreadyExists,
            Error::NotFound(_) => K::NotFound,
            Error::PermissionDenied(_) => K::PermissionDenied,
            Error::Corrupt(_) => K::Corrupt,
            Error::VersionMismatch { .. } => K::VersionMismatch,
            Error::NoSpace { .. } => K::NoSpace,
            Error::WouldBlock => K::WouldBlock,
            Error::Timeout => K::Timeout,
            Error::Interrupted => K::Interrupted,
            Error::ProducerDead => K::ProducerDead,
            Error::Closed => K::Closed,
            Error::ProducerExists { .. } => K::ProducerExists,
            Error::TooManyConsumers { .. } => K::TooManyConsumers,
            Error::TooLarge { .. } => K::TooLarge,
            Error::BufferTooSmall { .. } => K::BufferTooSmall,
            Error::Overrun => K::Overrun,
            Error::Unsupported(_) => K::Unsupported,
            Error::Cancelled => K::Cancelled,
            Error::Forked => K::Forked,
            Error::Io(_) => K::Io,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::AlreadyExists(p) => write!(f, "{} already exists", p.display()),
            Error::NotFound(p) => write!(f, "no queue at {}", p.display()),
            Error::PermissionDenied(p) => write!(f, "permission denied: {}", p.display()),
            Error::Corrupt(m) => write!(f, "corrupt queue file: {m}"),
            Error::VersionMismatch { found, expected } => write!(
                f,
                "queue file has layout version {found}, this shmio reads version {expected}"
            ),
            Error::NoSpace {
                path,
                needed,
                available,
            } => f.write_str(&shmfile::no_space_message(path, *needed, *available)),
            Error::WouldBlock => f.write_str("operation would block"),
            Error::Timeout => f.write_str("timed out"),
            Error::Interrupted => f.write_str("interrupted by a signal"),
            Error::ProducerDead => {
                f.write_str("the producer died (every committed record was delivered)")
            }
            Error::Closed => {
                f.write_str("the producer closed the queue (every record was delivered)")
            }
            Error::ProducerExists { pid } => {
                write!(f, "a live producer (pid {pid}) already holds the queue")
            }
            Error::TooManyConsumers { max } => {
                write!(f, "all {max} consumer slots are held by live consumers")
            }
            Error::TooLarge { len, max } => {
                write!(f, "record of {len} bytes exceeds the slot size of {max}")
            }
            Error::BufferTooSmall { needed } => {
                write!(f, "buffer too small: the next record has {needed} bytes")
            }
            Error::Overrun => f.write_str("record was overwritten while it was read"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Cancelled => f.write_str("the wait was cancelled: the handle is being closed"),
            Error::Forked => f.write_str(
                "this handle was opened by the parent process: handles do not survive fork(); \
                 open a new one in the child",
            ),
            Error::Io(e) => e.fmt(f),
        }
    }
}

/// A queue result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The checks at the start of every call on a handle made in `origin`: not inherited through
/// `fork()` ([`Error::Forked`], see [`crate::fork`]), and the file did not shrink under the
/// mapping.
#[inline]
pub(crate) fn usable(origin: Origin, shared: &Shared) -> Result<()> {
    if origin.is_inherited() {
        return Err(Error::Forked);
    }
    shared.intact(false)
}

/// Removes the queue file (the name or path as for [`Producer::create`]). Processes that have
/// it open keep using it.
///
/// Only a queue file is removed: the file is opened (`O_NOFOLLOW`, read-only, so read
/// permission is needed) and must start with the queue magic. Anything else at the path (a
/// region, a text file, a symbolic link, a directory) is left alone and refused with
/// [`Error::Corrupt`], as [`Consumer::open`] refuses it; nothing there is [`Error::NotFound`].
/// A queue of another layout version is removed. Another process could replace the file
/// between the check and the `unlink(2)`; the check guards against mistakes, not against
/// someone who can write the directory.
pub fn unlink(name: &str) -> Result<()> {
    let path = resolve(name)?;
    Ok(shmfile::unlink_checked(
        &path,
        "queue",
        layout::MAGIC,
        &[(crate::region::layout::MAGIC, "region")],
    )?)
}

/// Opens a queue without joining it and reports its state.
pub fn inspect(name: &str) -> Result<QueueStats> {
    let shared = Shared::open(&resolve(name)?)?;
    Ok(stats_of(&shared))
}

pub(crate) fn info_of(shared: &Shared) -> QueueInfo {
    QueueInfo {
        path: shared.path.clone(),
        policy: shared.layout.policy,
        slot_count: shared.layout.slot_count,
        slot_size: shared.layout.slot_size,
        max_consumers: shared.layout.max_consumers,
    }
}

pub(crate) fn stats_of(shared: &Shared) -> QueueStats {
    let h = shared.header();
    let head = h.prod.0.head.load(Ordering::SeqCst);
    let n = u64::from(shared.layout.slot_count);
    let pid = h.owner.0.pid.load(Ordering::Relaxed);
    let producer = match owner_of(h.owner.0.owner.load(Ordering::SeqCst)) {
        Owner::Free => ProducerStatus::None,
        Owner::Alive(_) => ProducerStatus::Alive { pid },
        Owner::Died | Owner::Evicting => ProducerStatus::Dead { pid },
    };
    let mut consumers = Vec::new();
    for i in 0..shared.consumer_scan_len() {
        let c = shared.consumer(i);
        if let (Owner::Alive(_), 1) = (
            owner_of(c.owner.load(Ordering::SeqCst)),
            c.joined.load(Ordering::SeqCst),
        ) {
            let position = c.cursor.load(Ordering::SeqCst);
            consumers.push(ConsumerStats {
                index: i,
                pid: c.pid.load(Ordering::Relaxed),
                position,
                lag: head.saturating_sub(position),
                lost: c.lost.load(Ordering::Relaxed),
                received: c.received.load(Ordering::Relaxed),
            });
        }
    }
    QueueStats {
        info: info_of(shared),
        head,
        oldest: head.saturating_add(1).saturating_sub(n),
        producer,
        producer_generation: h.owner.0.generation.load(Ordering::Relaxed),
        consumers,
    }
}
