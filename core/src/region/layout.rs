//! The region file: a one-page header, then the data.
//!
//! ```text
//! offset 0      Config       magic, layout version, sizes (written once at creation)
//! offset 128    LockLine     the writer lock: one robust futex word (see `sys::rlock`)
//! offset 256    SeqLine      seqlock counter (also the futex word of change waiters), version,
//!                            the range being written, the torn range
//! offset 384    NotifyLine   count of change waiters
//! offset 4096   data         `data_size` bytes
//! ```
//!
//! Every field is an atomic: the file is shared with processes we do not control, and no
//! pointer of any process is ever stored in it. The configuration is copied out once at open
//! and validated against the file's size; only the local copy is used to compute addresses.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::Error;

/// `"SHMIOR\0\x01"` read as a little-endian u64.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMIOR\0\x01");
/// Bumped whenever the file layout changes incompatibly. Version 2: the writer lock is one
/// robust futex word instead of a glibc `pthread_mutex_t`.
pub const LAYOUT_VERSION: u32 = 2;
/// Where the data starts: one page after the start of the file.
pub const DATA_OFFSET: u64 = 4096;
/// Largest region (1 TiB).
pub const MAX_SIZE: u64 = 1 << 40;

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
    pub(crate) _reserved: [AtomicU32; 2],
    pub(crate) created_unix_ns: AtomicU64,
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

#[repr(C)]
pub(crate) struct Header {
    pub(crate) config: Line<Config>,
    pub(crate) lock: Line<LockLine>,
    pub(crate) seq: Line<SeqLine>,
    pub(crate) notify: Line<NotifyLine>,
}

const _: () = assert!(std::mem::size_of::<Header>() as u64 <= DATA_OFFSET);
/// File offset of the writer lock's word (tests scribble it).
pub const LOCK_WORD_OFFSET: u64 = 128;
const _: () = assert!(std::mem::offset_of!(Header, lock) as u64 == LOCK_WORD_OFFSET);

/// Validated geometry: only the data size varies.
pub(crate) fn validate(config: &Config, file_len: u64) -> Result<u64, Error> {
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
    if file_len < DATA_OFFSET + size {
        return Err(Error::Corrupt(format!(
            "file is {file_len} bytes, its header needs {}",
            DATA_OFFSET + size
        )));
    }
    Ok(size)
}

/// Writes the configuration into a fresh, zeroed header. The magic goes last.
pub(crate) fn write_config(config: &Config, size: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    FORMAT.write(&config.prefix);
    config.data_offset.store(DATA_OFFSET, Ordering::Relaxed);
    config.data_size.store(size, Ordering::Relaxed);
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
