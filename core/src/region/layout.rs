//! The region file: a one-page header, then the data.
//!
//! ```text
//! offset 0      Config       magic, layout version, sizes (written once at creation)
//! offset 128    LockLine     the writer lock: one robust futex word (see `sys::rlock`)
//! offset 256    SeqLine      seqlock counter (also the futex word of change waiters), version,
//!                            the range being written, the torn range
//! offset 384    NotifyLine   count of change waiters
//! offset 512    ReplicaLine  replication state (see `replica`): role, the primary's
//!                            identity, versions applied and seen, when it was last heard
//! offset 640    WriterLine   the claimed writer's pid (see `Region::claim_writer`)
//! offset 4096   data         `data_size` bytes
//! table_offset  generations  the change-tracking table (see `track`), page aligned after the
//!                            data: one u64 per group of 512 chunks (the group's newest
//!                            generation), then one u64 per chunk (the version that last
//!                            changed it)
//! ```
//!
//! Every field is an atomic: the file is shared with processes we do not control, and no
//! pointer of any process is ever stored in it. The configuration is copied out once at open
//! and validated against the file's size; only the local copy is used to compute addresses.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::Error;

/// `"SHMIOR\0\x01"` read as a little-endian u64: the first 8 bytes of every region file.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMIOR\0\x01");
/// Bumped whenever the file layout changes incompatibly. Version 2: the writer lock is one
/// robust futex word instead of a glibc `pthread_mutex_t`. Version 3: the change-tracking
/// table after the data, the chunk size and incarnation in the configuration, the replica
/// and writer lines.
pub const LAYOUT_VERSION: u32 = 3;
/// Where the data starts: one page after the start of the file.
pub const DATA_OFFSET: u64 = 4096;
/// Largest region (1 TiB).
pub const MAX_SIZE: u64 = 1 << 40;
/// The default change-tracking chunk: one page.
pub const DEFAULT_CHUNK: u64 = 4096;
/// Smallest and largest change-tracking chunk.
pub const MIN_CHUNK: u64 = 64;
/// See [`MIN_CHUNK`].
pub const MAX_CHUNK: u64 = 1 << 20;
/// Chunks per group of the table's first level.
pub(crate) const GROUP: u64 = 512;
const PAGE: u64 = 4096;

pub(crate) use crate::shm::header::Line;
use crate::shm::header::{Format, Prefix};

/// What a region file's prefix says.
const FORMAT: Format = Format {
    magic: MAGIC,
    version: LAYOUT_VERSION,
    header_size: std::mem::size_of::<Header>() as u32,
    kind: "region",
};

#[repr(C)]
pub(crate) struct Config {
    pub(crate) prefix: Prefix,
    pub(crate) data_offset: AtomicU64,
    pub(crate) data_size: AtomicU64,
    /// log2 of the change-tracking chunk size.
    pub(crate) chunk_shift: AtomicU32,
    pub(crate) _reserved: AtomicU32,
    pub(crate) created_unix_ns: AtomicU64,
    /// Where the generation table starts (page aligned, after the data).
    pub(crate) table_offset: AtomicU64,
    /// A random number drawn at creation: a region recreated under the same name is another
    /// incarnation, whose versions start again (replicas compare it).
    pub(crate) incarnation: AtomicU64,
}

/// The writer lock.
#[repr(C)]
pub(crate) struct LockLine {
    /// 0 (perhaps with `FUTEX_OWNER_DIED`): free; else the holder's keeper thread id, perhaps
    /// with `FUTEX_WAITERS` (see `sys::rlock`).
    pub(crate) word: AtomicU32,
}

/// The sequence lock and the bookkeeping of torn writes. Written only by the lock holder.
#[repr(C)]
pub(crate) struct SeqLine {
    /// The sequence lock, and the futex word change waiters sleep on. Even: no write in
    /// progress; odd: a write is in progress (or its writer died and nobody has taken the lock
    /// since). Moves by two per write (wrapping).
    pub(crate) seq: AtomicU32,
    pub(crate) _pad: AtomicU32,
    /// The region's version: completed writes, touches and repaired torn writes. Stored before
    /// `seq` turns even again.
    pub(crate) version: AtomicU64,
    /// The range the current (or last) write covers, recorded before `seq` turns odd.
    pub(crate) pending_off: AtomicU64,
    pub(crate) pending_len: AtomicU64,
    /// The smallest range covering every write whose writer died mid-write and that was not
    /// wholly rewritten since; `torn_len == 0`: none.
    pub(crate) torn_off: AtomicU64,
    pub(crate) torn_len: AtomicU64,
    /// Writes found torn (writer died or panicked mid-write) so far.
    pub(crate) torn_writes: AtomicU64,
}

#[repr(C)]
pub(crate) struct NotifyLine {
    /// Processes/threads asleep (or about to sleep) on `seq`.
    pub(crate) waiters: AtomicU32,
}

/// Replication state, written by a replica's bridge (see `replica`). All zero on a region
/// that is no replica.
#[repr(C)]
pub(crate) struct ReplicaLine {
    /// 0: not a replica (a primary, or unreplicated); 1: a replica, written only through
    /// `Region::apply`.
    pub(crate) role: AtomicU32,
    /// `replica::PRIMARY_ALIVE`, `WRITER_ALIVE`, `WRITER_KNOWN`, `CATCHING_UP`.
    pub(crate) flags: AtomicU32,
    /// The primary's incarnation.
    pub(crate) source: AtomicU64,
    /// The primary version this replica holds every change up to (stored inside the write
    /// section of the apply that reached it, so a read sees it with the data).
    pub(crate) applied: AtomicU64,
    /// The newest primary version heard of.
    pub(crate) seen: AtomicU64,
    /// When the primary (or its bridge) was last heard, Unix nanoseconds.
    pub(crate) heard_unix_ns: AtomicU64,
    /// When this replica was last known to hold the primary's newest version, Unix ns.
    pub(crate) synced_unix_ns: AtomicU64,
}

/// The claimed writer (`Region::claim_writer`). Its liveness is an OFD lock on
/// [`WRITER_BYTE`], not this pid (pids are reused and differ across PID namespaces).
#[repr(C)]
pub(crate) struct WriterLine {
    pub(crate) pid: AtomicU32,
    /// Claims made so far.
    pub(crate) claims: AtomicU32,
}

/// The byte whose OFD write lock the claimed writer holds (beyond any data; the lock keepers'
/// bytes start at 2^41).
pub(crate) const WRITER_BYTE: i64 = (1 << 41) - 1;

#[repr(C)]
pub(crate) struct Header {
    pub(crate) config: Line<Config>,
    pub(crate) lock: Line<LockLine>,
    pub(crate) seq: Line<SeqLine>,
    pub(crate) notify: Line<NotifyLine>,
    pub(crate) replica: Line<ReplicaLine>,
    pub(crate) writer: Line<WriterLine>,
}

const _: () = assert!(std::mem::size_of::<Header>() as u64 <= DATA_OFFSET);
/// File offset of the writer lock's word (tests scribble it).
pub const LOCK_WORD_OFFSET: u64 = 128;
const _: () = assert!(std::mem::offset_of!(Header, lock) as u64 == LOCK_WORD_OFFSET);

/// A region's geometry: its data size and its change-tracking table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) size: u64,
    pub(crate) chunk_shift: u32,
    pub(crate) table_offset: u64,
}

impl Geometry {
    /// The geometry of `size` bytes tracked in chunks of `1 << chunk_shift`.
    pub(crate) fn new(size: u64, chunk_shift: u32) -> Geometry {
        Geometry {
            size,
            chunk_shift,
            table_offset: DATA_OFFSET + size.div_ceil(PAGE) * PAGE,
        }
    }
    pub(crate) fn chunk(&self) -> u64 {
        1 << self.chunk_shift
    }
    /// Chunks of data (the last may be short).
    pub(crate) fn chunks(&self) -> u64 {
        self.size.div_ceil(self.chunk())
    }
    /// Groups of the table's first level.
    pub(crate) fn groups(&self) -> u64 {
        self.chunks().div_ceil(GROUP)
    }
    /// The whole file: header, data, table.
    pub(crate) fn file_len(&self) -> u64 {
        self.table_offset + ((self.groups() + self.chunks()) * 8).div_ceil(PAGE) * PAGE
    }
}

/// Validated geometry.
pub(crate) fn validate(config: &Config, file_len: u64) -> Result<Geometry, Error> {
    FORMAT.check(&config.prefix)?;
    let data_offset = config.data_offset.load(Ordering::Relaxed);
    if data_offset != DATA_OFFSET {
        return Err(Error::Corrupt(format!(
            "data offset {data_offset} is not {DATA_OFFSET}"
        )));
    }
    let size = config.data_size.load(Ordering::Relaxed);
    if size == 0 || size > MAX_SIZE {
        return Err(Error::Corrupt(format!(
            "data size {size} out of range 1..={MAX_SIZE}"
        )));
    }
    let chunk_shift = config.chunk_shift.load(Ordering::Relaxed);
    if !(MIN_CHUNK.trailing_zeros()..=MAX_CHUNK.trailing_zeros()).contains(&chunk_shift) {
        return Err(Error::Corrupt(format!(
            "change-tracking chunk 2^{chunk_shift} out of range {MIN_CHUNK}..={MAX_CHUNK}"
        )));
    }
    let g = Geometry::new(size, chunk_shift);
    let table_offset = config.table_offset.load(Ordering::Relaxed);
    if table_offset != g.table_offset {
        return Err(Error::Corrupt(format!(
            "table offset {table_offset} is not {} (after {size} bytes of data)",
            g.table_offset
        )));
    }
    if file_len < g.file_len() {
        return Err(Error::Corrupt(format!(
            "file is {file_len} bytes, its header needs {}",
            g.file_len()
        )));
    }
    Ok(g)
}

/// Writes the configuration into a fresh, zeroed header. The magic goes last.
pub(crate) fn write_config(config: &Config, g: &Geometry, incarnation: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    FORMAT.write(&config.prefix);
    config.data_offset.store(DATA_OFFSET, Ordering::Relaxed);
    config.data_size.store(g.size, Ordering::Relaxed);
    config.chunk_shift.store(g.chunk_shift, Ordering::Relaxed);
    config.table_offset.store(g.table_offset, Ordering::Relaxed);
    config.incarnation.store(incarnation, Ordering::Relaxed);
    config.created_unix_ns.store(now, Ordering::Relaxed);
    FORMAT.publish(&config.prefix);
}

/// The smallest range covering both (`len == 0` means empty).
pub(crate) fn hull(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    if a.1 == 0 {
        return b;
    }
    if b.1 == 0 {
        return a;
    }
    // Values may come from a corrupt file: saturate rather than overflow.
    let start = a.0.min(b.0);
    let end = a.0.saturating_add(a.1).max(b.0.saturating_add(b.1));
    (start, end - start)
}

/// Whether two ranges share a byte.
pub(crate) fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.1 != 0 && b.1 != 0 && a.0 < b.0.saturating_add(b.1) && b.0 < a.0.saturating_add(a.1)
}

/// What is left of the torn range `torn` once `written` was wholly rewritten: the torn range
/// shrinks when a write covers its start or its end, and vanishes when covered entirely.
pub(crate) fn after_rewrite(torn: (u64, u64), written: (u64, u64)) -> (u64, u64) {
    if torn.1 == 0 || written.1 == 0 {
        return torn;
    }
    let (ts, te) = (torn.0, torn.0.saturating_add(torn.1));
    let (ws, we) = (written.0, written.0.saturating_add(written.1));
    if ws <= ts && we >= te {
        (0, 0)
    } else if ws <= ts && we > ts {
        (we, te - we)
    } else if ws < te && we >= te {
        (ts, ws - ts)
    } else {
        torn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_arithmetic() {
        assert_eq!(hull((0, 0), (5, 3)), (5, 3));
        assert_eq!(hull((10, 5), (2, 3)), (2, 13));
        assert!(overlaps((0, 10), (9, 1)));
        assert!(!overlaps((0, 10), (10, 1)));
        assert!(!overlaps((0, 0), (0, 10)));
        assert_eq!(after_rewrite((10, 10), (0, 100)), (0, 0));
        assert_eq!(after_rewrite((10, 10), (5, 10)), (15, 5));
        assert_eq!(after_rewrite((10, 10), (15, 10)), (10, 5));
        assert_eq!(after_rewrite((10, 10), (12, 2)), (10, 10));
        assert_eq!(after_rewrite((10, 10), (30, 2)), (10, 10));
        // Corrupt values saturate instead of overflowing.
        assert_eq!(hull((u64::MAX, u64::MAX), (0, 1)), (0, u64::MAX));
        assert!(overlaps((u64::MAX - 1, u64::MAX), (u64::MAX - 1, 1)));
    }
}
