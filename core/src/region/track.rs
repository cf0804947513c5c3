//! Change tracking: which chunks of a region changed since a version, and their bytes read
//! consistently. The replication bridge reads its deltas and snapshots through it; the
//! durability calls can use it to flush only what changed.
//!
//! The data is divided into chunks (4 KiB by default, [`RegionOptions::chunk_size`]). The
//! table after the data holds, per chunk, the *generation* of its last change: the version
//! the consistent write (or [`Region::touch_range`], or the repair of a dead writer's range)
//! that last changed it moved the region to. A first level holds, per group of 512 chunks,
//! the newest generation in the group, so a scan skips unchanged groups. Both levels are
//! written inside the write section (under the writer lock, the sequence counter odd), so a
//! consistent read sees the table and the data of one state.
//!
//! On a replica the generations are the primary's versions (see [`super::replica`]).
//!
//! Raw writes are not tracked until [`Region::touch_range`] names the bytes they changed;
//! [`Region::touch`] (no range) moves the version but marks no chunk.
//!
//! The table is in the file, so a peer with write access can scribble it: that may make a
//! read of changes return more or fewer chunks than changed (as scribbling the data itself
//! corrupts the data), never crash or read outside the mapping (indices come from our own
//! geometry, generations are only compared).
//!
//! [`RegionOptions::chunk_size`]: super::RegionOptions::chunk_size

use std::sync::atomic::{AtomicU64, Ordering};

use super::layout::GROUP;
use super::{Region, Result, seqlock};

/// How many optimistic attempts [`Region::read_changes`] makes before it reads under the
/// writer lock (a writer faster than the copy would otherwise starve it).
const OPTIMISTIC_TRIES: u32 = 2;

/// Changed chunks of a region and their bytes, as of one version (see
/// [`Region::read_changes`]). Reused across calls to keep its buffers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub(crate) version: u64,
    pub(crate) incarnation: u64,
    pub(crate) torn: Option<(u64, u64)>,
    pub(crate) ranges: Vec<(u64, u64)>,
    pub(crate) data: Vec<u8>,
    pub(crate) next: Option<u64>,
}

impl Changes {
    /// An empty set, to fill with [`Region::read_changes`].
    pub fn new() -> Changes {
        Changes::default()
    }
    /// The region's version the bytes belong to.
    pub fn version(&self) -> u64 {
        self.version
    }
    /// The region's incarnation (see [`Region::incarnation`]).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }
    /// The region's torn range at that version, if any.
    pub fn torn(&self) -> Option<(u64, u64)> {
        self.torn
    }
    /// The changed ranges `(offset, len)`, ascending and not adjacent; whole chunks, except
    /// that the region's last chunk may be short.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }
    /// The ranges' bytes, one after the other.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// Where the scan stopped because `max_bytes` was reached (the start of the range to pass
    /// to go on), or `None` if it reached the end of the range.
    pub fn next(&self) -> Option<u64> {
        self.next
    }
    fn clear(&mut self) {
        self.ranges.clear();
        self.data.clear();
        self.torn = None;
        self.next = None;
    }
}

impl Region {
    /// The change-tracking chunk size in bytes (see [`track`](self)).
    pub fn chunk_size(&self) -> u64 {
        self.geo.chunk()
    }

    /// A random number drawn when the region was created: another file created under the
    /// same name later has another, and its versions start from 0 again.
    pub fn incarnation(&self) -> u64 {
        self.header().config.0.incarnation.load(Ordering::Relaxed)
    }

    /// Publishes a change made through raw access to `len` bytes at `offset`: moves the
    /// version, marks those bytes' chunks changed (so a replica receives them), and wakes
    /// [`Region::wait_changed`] sleepers. Returns the new version. A touched range that
    /// wholly covers a torn range clears it, as a consistent write would: the caller says it
    /// rewrote those bytes.
    pub fn touch_range(&self, offset: u64, len: u64) -> Result<u64> {
        self.write_inner(offset, len, |_| ()).map(|(_, v)| v)
    }

    /// Fills `out` with the chunks changed after version `since` (`None`: every chunk) that
    /// hold a byte of `range` (its start rounded down to a chunk; an end past the data is the
    /// end of the data), and their bytes, all as of one version: no
    /// write is half in it. Stops before the bytes would exceed `max_bytes` (but always takes
    /// at least one chunk) and says where in [`Changes::next`]. Chunks changed by a write
    /// that lands during the call are either in it or after its version. Reads
    /// optimistically; a writer fast enough to invalidate two attempts is held off by the
    /// writer lock for the third.
    pub fn read_changes(
        &self,
        since: Option<u64>,
        range: std::ops::Range<u64>,
        max_bytes: usize,
        out: &mut Changes,
    ) -> Result<()> {
        self.intact(false)?;
        let shift = self.geo.chunk_shift;
        let chunks = (range.start >> shift)..range.end.min(self.size).div_ceil(self.geo.chunk());
        let s = &self.header().seq.0;
        for _ in 0..OPTIMISTIC_TRIES {
            let Some(s1) = seqlock::read_begin(&s.seq) else {
                std::thread::yield_now();
                continue;
            };
            self.collect(since, chunks.clone(), max_bytes, out);
            let consistent = seqlock::read_valid(&s.seq, s1);
            self.intact(false)?;
            if consistent {
                return self.checked_torn(out);
            }
        }
        let _lock = self.lock()?;
        self.collect(since, chunks.clone(), max_bytes, out);
        self.intact(false)?;
        self.checked_torn(out)
    }

    fn checked_torn(&self, out: &mut Changes) -> Result<()> {
        let (off, len) = self.torn_range()?;
        out.torn = Some((off, len)).filter(|_| len != 0);
        Ok(())
    }

    /// One pass of [`Region::read_changes`]: what it copies is trusted only if the sequence
    /// counter (or the lock) says no write overlapped.
    fn collect(
        &self,
        since: Option<u64>,
        chunks: std::ops::Range<u64>,
        max_bytes: usize,
        out: &mut Changes,
    ) {
        out.clear();
        let s = &self.header().seq.0;
        out.version = s.version.load(Ordering::Relaxed);
        out.incarnation = self.incarnation();
        let (groups, gens) = self.table();
        let changed = |g: u64| since.is_none_or(|v| g > v);
        let mut c = chunks.start;
        while c < chunks.end {
            let g = c / GROUP;
            if !changed(groups[g as usize].load(Ordering::Relaxed)) {
                c = (g + 1) * GROUP;
                continue;
            }
            if changed(gens[c as usize].load(Ordering::Relaxed)) {
                let (off, len) = self.chunk_range(c);
                if !out.data.is_empty() && out.data.len() as u64 + len > max_bytes as u64 {
                    out.next = Some(off);
                    return;
                }
                match out.ranges.last_mut() {
                    Some(last) if last.0 + last.1 == off => last.1 += len,
                    _ => out.ranges.push((off, len)),
                }
                let at = out.data.len();
                out.data.resize(at + len as usize, 0);
                // SAFETY: `off + len <= size` (a chunk of our own geometry), so the source lies
                // inside the mapping's data; the destination is the `len` bytes just added to
                // `out.data`. A concurrent write may change the source: a byte-wise atomic
                // copy, kept only if the caller's check says no write overlapped.
                unsafe {
                    crate::racy::load(
                        out.data.as_mut_ptr().add(at),
                        self.as_ptr().add(off as usize),
                        len as usize,
                    )
                };
            }
            c += 1;
        }
    }

    /// The byte range of chunk `c` (the last one may be short).
    pub(super) fn chunk_range(&self, c: u64) -> (u64, u64) {
        let off = c << self.geo.chunk_shift;
        (off, self.geo.chunk().min(self.size - off))
    }

    /// The table's two levels: the newest generation per group, the generation per chunk.
    pub(super) fn table(&self) -> (&[AtomicU64], &[AtomicU64]) {
        let (groups, chunks) = (self.geo.groups() as usize, self.geo.chunks() as usize);
        // SAFETY: the mapping covers the whole file as validated at open (`geo.file_len()`),
        // and the table — `groups + chunks` u64s from `table_offset`, which is page aligned —
        // lies inside it. `AtomicU64` is valid for any bit pattern, and every access to the
        // table (ours or another process's) is atomic.
        unsafe {
            let base = self.map.as_ptr().add(self.geo.table_offset as usize) as *const AtomicU64;
            (
                std::slice::from_raw_parts(base, groups),
                std::slice::from_raw_parts(base.add(groups), chunks),
            )
        }
    }

    /// Inside a write section: marks the chunks of `len` bytes at `offset` changed at
    /// `generation` (the group level keeps its newest).
    pub(super) fn stamp(&self, offset: u64, len: u64, generation: u64) {
        if len == 0 {
            return;
        }
        let (groups, gens) = self.table();
        let shift = self.geo.chunk_shift;
        let (first, last) = (offset >> shift, (offset + len - 1) >> shift);
        for c in first..=last {
            gens[c as usize].store(generation, Ordering::Relaxed);
        }
        for g in first / GROUP..=last / GROUP {
            let g = &groups[g as usize];
            if g.load(Ordering::Relaxed) < generation {
                g.store(generation, Ordering::Relaxed);
            }
        }
    }

    /// Inside a write section, on a replica: the chunks of `len` bytes at `offset` hold
    /// nothing known (generation 0), so any message carrying them is applied.
    pub(super) fn unstamp(&self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let gens = self.table().1;
        let shift = self.geo.chunk_shift;
        for c in offset >> shift..=(offset + len - 1) >> shift {
            gens[c as usize].store(0, Ordering::Relaxed);
        }
    }

    /// The generation of chunk `c`.
    pub(super) fn generation(&self, c: u64) -> u64 {
        self.table().1[c as usize].load(Ordering::Relaxed)
    }
}
