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
mod error;
pub(crate) mod layout;
mod observe;
mod producer;
pub(crate) mod ring;
mod wait;

use std::path::PathBuf;
use std::sync::atomic::Ordering;

pub use cancel::Canceller;
pub use consumer::{Consumer, ReadGuard};
pub use error::{Error, Result};
pub use layout::{
    LAYOUT_VERSION, MAGIC, MAX_CONSUMERS, MAX_SLOT_SIZE, MAX_SLOTS, OWNER_WORD_OFFSET, queue_dir,
    resolve,
};
pub use observe::{MAX_POLL, Observed, Observer, RoleState, Roles, SlotRole, survey};
pub use producer::{Producer, Reservation};
pub use wait::BACKSTOP;

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

/// Where a consumer of an overwrite-mode queue resumes after the producer lapped it (it fell a
/// whole ring behind). Every record it skips is counted in [`Consumer::lost`]. Set with
/// [`Consumer::set_resume`]; a back-pressure queue never laps a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Resume {
    /// An eighth of a ring (at least one record) after the oldest record still held (the
    /// default). Far enough from the slot the producer overwrites next that a reader slower
    /// than a running producer reads an eighth of a ring before the next lap, instead of
    /// chasing it; close enough to the oldest that a reader that was descheduled while the
    /// producer stopped (or also waited for the CPU) still gets nearly the whole ring.
    #[default]
    NearOldest,
    /// Half a ring behind the head: more records before the next lap than
    /// [`NearOldest`](Self::NearOldest), but half the ring skipped.
    HalfRing,
    /// At the newest committed record: the fewest records before it is lapped again are
    /// behind it, so it goes longest without a loss, but it skips nearly the whole ring and
    /// reads right behind the producer.
    Newest,
    /// This many records behind the head: `Behind(1)` is [`Newest`](Self::Newest),
    /// `Behind(0)` the next record to be committed; a count past what the ring holds resumes
    /// at the oldest record still held.
    Behind(u64),
    /// At the oldest record still held (the only behaviour before this option): the slot the
    /// producer overwrites next, so a reader slower than a running producer is lapped again
    /// and again. So that no call walks unboundedly, a read lapped more than
    /// [`MAX_LAPS_PER_READ`] times in one call then resumes at the newest record.
    Oldest,
}

/// How many times one read may resume after being lapped under its [`Resume`] policy before
/// it resumes at the newest committed record instead (bounding the work of one `try_recv`).
pub const MAX_LAPS_PER_READ: u32 = 4;

impl Resume {
    /// How many records behind the head this policy resumes in a ring of `slot_count` slots
    /// (`None`: at the oldest record still held).
    pub(crate) fn behind(self, slot_count: u64) -> Option<u64> {
        match self {
            Resume::NearOldest => Some(slot_count - (slot_count / 8).max(1)),
            Resume::HalfRing => Some(slot_count / 2),
            Resume::Newest => Some(1),
            Resume::Behind(k) => Some(k),
            Resume::Oldest => None,
        }
    }
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

/// What the two handles ([`Producer`], [`Consumer`]) offer alike, for a handle type with the
/// fields `shared`, `cancel` and `origin`; `$who` names it in the docs. `usable()` is the check
/// at the start of every call: not inherited through `fork()` ([`Error::Forked`], see
/// [`crate::fork`]), and the file did not shrink under the mapping.
macro_rules! handle_common {
    ($H:ident, $who:literal) => {
        impl $H {
            /// Refuses a handle inherited through `fork()`, or whose file shrank.
            #[inline]
            fn usable(&self) -> $crate::queue::Result<()> {
                if self.origin.is_inherited() {
                    return Err($crate::queue::Error::Forked);
                }
                self.shared.intact(false)
            }

            /// The process the handle was opened in: in a forked child, every call on the
            /// handle returns [`Error::Forked`](crate::queue::Error::Forked) (see
            /// [`crate::fork`]).
            pub fn origin(&self) -> $crate::fork::Origin {
                self.origin
            }

            #[doc = concat!("A handle that ends this ", $who, "'s waits from another thread (see")]
            /// [`Canceller`](crate::queue::Canceller)).
            pub fn canceller(&self) -> $crate::queue::Canceller {
                self.cancel.clone()
            }

            /// The queue's geometry.
            pub fn info(&self) -> $crate::queue::QueueInfo {
                $crate::queue::info_of(&self.shared)
            }

            /// The slot size: the longest record, in bytes (as `info().slot_size`, without
            /// building the whole description: for per-call checks).
            pub fn slot_size(&self) -> usize {
                self.shared.layout.slot_size as usize
            }

            /// A snapshot of the queue's state.
            pub fn stats(&self) -> $crate::queue::QueueStats {
                $crate::queue::stats_of(&self.shared)
            }
        }
    };
}
pub(crate) use handle_common;

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

/// Opens a queue without joining it and reports its state. The file is opened read-only
/// (`O_RDONLY`, a read-only mapping): read permission suffices, and nothing is written.
pub fn inspect(name: &str) -> Result<QueueStats> {
    let shared = Shared::open_read_only(&resolve(name)?)?;
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

/// Unit tests' helpers.
#[cfg(test)]
pub(crate) mod testing {
    /// Removes the queue file `.0` (by path, whatever it holds) when dropped, also when the
    /// test fails.
    pub(crate) struct Cleanup(pub(crate) String);

    impl Drop for Cleanup {
        fn drop(&mut self) {
            if let Ok(path) = super::resolve(&self.0) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
