//! Inspecting a region read-only: what `shmio stat` and `shmio ls` report of a region.
//!
//! [`inspect`] opens the file `O_RDONLY` and maps its header page `PROT_READ`, validates it as
//! [`Region::open`](super::Region::open) does, and copies out the counters. It takes no lock
//! and writes nothing, so read permission suffices and a dead writer's torn write is reported
//! as the file records it (the range being written, the counter left odd) rather than
//! repaired: the next writer or reader that takes the lock repairs it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use memmap2::{MmapOptions, MmapRaw};

use super::layout::{self, DATA_OFFSET, Header, LAYOUT_VERSION, WRITER_BYTE};
use super::{Error, Result, Writer, resolve};
use crate::shm::file as shmfile;
use crate::sys::{ofd, rlock};

/// The writer lock as [`inspect`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockState {
    /// Nobody holds it.
    Free,
    /// Held by the lock keeper thread `tid` (a thread id in the holder's PID namespace).
    /// `alive` is whether that keeper still holds its liveness lock (see `sys::rlock`).
    Held {
        /// The keeper's thread id, as the word records it.
        tid: u32,
        /// Whether a live handle has that keeper.
        alive: bool,
    },
    /// Its last holder died holding it; the next locker repairs what it left (marks the range
    /// it was writing torn).
    OwnerDied,
}

/// A region's state, read without a lock: what [`inspect`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegionStats {
    /// The region file's path.
    pub path: PathBuf,
    /// Bytes of data.
    pub size: u64,
    /// The file's length (header, data, change-tracking table).
    pub file_len: u64,
    /// The change-tracking chunk, in bytes.
    pub chunk_size: u64,
    /// The file's layout version (this build's: [`LAYOUT_VERSION`]).
    pub layout_version: u32,
    /// The version (see [`Region::version`](super::Region::version)).
    pub version: u64,
    /// Whether a write is in progress, or its writer died mid-write and nobody has taken the
    /// lock since (the sequence counter is odd).
    pub write_in_progress: bool,
    /// The range the current (or last) write covers, `(offset, len)`.
    pub pending: (u64, u64),
    /// The torn range `(offset, len)` as recorded, if any (one reaching past the data is
    /// reported as [`Error::Corrupt`]).
    pub torn: Option<(u64, u64)>,
    /// Writes found torn since creation.
    pub torn_writes: u64,
    /// The writer lock.
    pub lock: LockState,
    /// The claimed writer (see [`Region::claim_writer`](super::Region::claim_writer)), if any
    /// process ever claimed the region.
    pub writer: Option<Writer>,
    /// Whether the region is a replica (written only by a replication bridge).
    pub replica: bool,
    /// When the region was created (Unix nanoseconds, as the file says).
    pub created_unix_ns: u64,
}

/// Maps the header page of the region file `file` (at `path`, for messages) read-only, after
/// checking that the file is long enough for one; returns the mapping and the file's length.
pub(super) fn map_header(file: &File, path: &Path) -> Result<(MmapRaw, u64)> {
    let len = file
        .metadata()
        .map_err(|e| Error::io("fstat", Some(path), e))?
        .len();
    if len < DATA_OFFSET {
        return Err(Error::Corrupt(format!(
            "{} is {len} bytes, shorter than a region header",
            path.display()
        )));
    }
    let map = MmapOptions::new()
        .len(DATA_OFFSET as usize)
        .map_raw_read_only(file)
        .map_err(|e| Error::io("mmap", Some(path), e))?;
    Ok((map, len))
}

/// Opens the region `name` (a name or a path) read-only and reports its state. Nothing is
/// written and no lock is taken: read permission suffices.
pub fn inspect(name: &str) -> Result<RegionStats> {
    let path = resolve(name)?;
    let file = shmfile::open_read_only(&path)?;
    let (map, len) = map_header(&file, &path)?;
    let watch = crate::sys::sigbus::protect(map.as_ptr(), map.len());
    // SAFETY: the mapping is DATA_OFFSET >= size_of::<Header>() bytes and page aligned; every
    // field of `Header` is an atomic, valid for any bit pattern, and only loaded here (the
    // mapping is read-only).
    let h = unsafe { &*(map.as_ptr() as *const Header) };
    let geo = layout::validate(&h.config.0, len)?;
    let s = &h.seq.0;
    let torn = (
        s.torn_off.load(Ordering::Relaxed),
        s.torn_len.load(Ordering::Relaxed),
    );
    if torn.1 != 0 && (torn.0 > geo.size || torn.1 > geo.size - torn.0) {
        return Err(Error::Corrupt(format!(
            "the torn range {torn:?} reaches past the region's {} bytes",
            geo.size
        )));
    }
    let word = h.lock.0.word.load(Ordering::SeqCst);
    let tid = word & libc::FUTEX_TID_MASK;
    let lock = if tid != 0 {
        LockState::Held {
            tid,
            alive: ofd::held_elsewhere(&file, rlock::liveness_byte(tid)),
        }
    } else if word & libc::FUTEX_OWNER_DIED != 0 {
        LockState::OwnerDied
    } else {
        LockState::Free
    };
    let w = &h.writer.0;
    let writer = (w.claims.load(Ordering::Relaxed) != 0).then(|| Writer {
        pid: w.pid.load(Ordering::Relaxed),
        alive: ofd::held_elsewhere(&file, WRITER_BYTE),
    });
    let stats = RegionStats {
        path,
        size: geo.size,
        file_len: len,
        chunk_size: geo.chunk(),
        layout_version: LAYOUT_VERSION,
        version: s.version.load(Ordering::Acquire),
        write_in_progress: s.seq.load(Ordering::Acquire) & 1 == 1,
        pending: (
            s.pending_off.load(Ordering::Relaxed),
            s.pending_len.load(Ordering::Relaxed),
        ),
        torn: Some(torn).filter(|t| t.1 != 0),
        torn_writes: s.torn_writes.load(Ordering::Relaxed),
        lock,
        writer,
        replica: h.replica.0.role.load(Ordering::Relaxed) == 1,
        created_unix_ns: h.config.0.created_unix_ns.load(Ordering::Relaxed),
    };
    if watch.poisoned() {
        return Err(Error::Corrupt(format!(
            "{} shrank while it was inspected",
            stats.path.display()
        )));
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::{Region, RegionOptions};

    #[test]
    fn inspect_reads_a_region_read_only() {
        let name = format!("shmio-unit-rinspect-{}", std::process::id());
        let r = Region::create(&name, 10_000, &RegionOptions::new()).unwrap();
        r.write(0, b"abc").unwrap();
        r.write(100, b"def").unwrap();
        let s = inspect(&name).unwrap();
        assert_eq!(
            (s.size, s.version, s.torn, s.torn_writes),
            (10_000, 2, None, 0)
        );
        assert!(!s.write_in_progress);
        assert_eq!(s.pending, (100, 3));
        assert_eq!(s.writer, None);
        assert_eq!(s.chunk_size, 4096);
        let claim = r.claim_writer().unwrap();
        let w = inspect(&name).unwrap().writer.unwrap();
        assert!(w.alive && w.pid == std::process::id());
        drop(claim);
        assert!(!inspect(&name).unwrap().writer.unwrap().alive);
        // A truncated file is an error, not a crash.
        let path = r.path().to_path_buf();
        drop(r);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(5000)
            .unwrap();
        assert!(matches!(inspect(&name), Err(Error::Corrupt(_))));
        let _ = std::fs::remove_file(&path);
    }
}
