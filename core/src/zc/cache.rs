//! The shared cache: a named region holding files loaded once, read by every serving process,
//! whose entries go to sockets from the mapping itself.

use std::os::fd::AsFd;
use std::path::Path;

use super::{Error, Progress, Result, Sent, Splicer, ZeroCopy};
use crate::racy::{RacyBytes, RacyBytesMut};
use crate::region::{self, Region, RegionOptions};

/// The longest key, in bytes.
pub const MAX_KEY: usize = 104;

/// "SHMIOZC1", little-endian.
const MAGIC: u64 = u64::from_le_bytes(*b"SHMIOZC1");
const HEADER: usize = 64;
const ENTRY: usize = 128;
/// Entries' data start on page boundaries, so that a send maps whole pages.
const ALIGN: u64 = 4096;
const READY: u32 = 1;

/// Where an entry's bytes are in the cache region's data: checked against the mapping
/// whenever read from the region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Offset of the first byte in the region's data.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
}

/// A shared cache: a [`Region`] holding a table of up to `max_entries` named entries (key →
/// offset, length) and their bytes, written once by [`add`](Self::add) (under the region's
/// writer lock, so processes may add concurrently) and read in place by every process that
/// [`open`](Self::open)s it. Entries are never changed or removed (so the bytes a send is
/// handing to the kernel stay as they are: see [`Splicer`]'s lifetime rule); make a new cache
/// to change them.
///
/// Nothing read from the region is trusted: the header and every entry are checked against
/// the mapping's size, and a bad one is [`Error::Corrupt`]. An `add` whose process died
/// mid-copy leaves the region torn (the region's robust lock records it): lookups then fail
/// with the region's `Torn` until the cache is made again.
///
/// Layout of the region's data: a 64-byte header (magic `SHMIOZC1`, `max_entries`, entry
/// size 128, data start, bytes used, entry count), `max_entries` entries of 128 bytes (key
/// length, state, offset, length, key of up to [`MAX_KEY`] bytes), then the entries' bytes,
/// each starting on a 4 KiB boundary.
#[derive(Debug)]
pub struct Cache {
    region: Region,
    max_entries: u32,
    data_off: u64,
}

/// The header, as read from the region.
struct Header {
    max_entries: u32,
    data_off: u64,
    used: u64,
    count: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

fn table_end(max_entries: u32) -> u64 {
    (HEADER + ENTRY * max_entries as usize) as u64
}

impl Cache {
    /// Creates the cache region `name` (a bare name in `/dev/shm`, or a path) with room for
    /// `max_entries` entries (1..=65536) and `data_bytes` bytes of data (each entry takes its
    /// length rounded up to 4 KiB). [`Error::Region`] with `AlreadyExists` if the file exists.
    pub fn create(name: &str, data_bytes: u64, max_entries: u32) -> Result<Cache> {
        if !(1..=65536).contains(&max_entries) {
            return Err(Error::InvalidArgument(format!(
                "max_entries {max_entries} out of range 1..=65536"
            )));
        }
        let data_off = table_end(max_entries).next_multiple_of(ALIGN);
        let size = data_off
            .checked_add(data_bytes.next_multiple_of(ALIGN))
            .filter(|&s| s <= region::MAX_SIZE)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("cache data size {data_bytes} too large"))
            })?;
        let region = Region::create(name, size, &RegionOptions::new())?;
        let mut h = [0u8; HEADER];
        h[0..8].copy_from_slice(&MAGIC.to_le_bytes());
        h[8..12].copy_from_slice(&max_entries.to_le_bytes());
        h[12..16].copy_from_slice(&(ENTRY as u32).to_le_bytes());
        h[16..24].copy_from_slice(&data_off.to_le_bytes());
        region.write(0, &h)?;
        Ok(Cache {
            region,
            max_entries,
            data_off,
        })
    }

    /// Opens the cache region `name` and checks its header.
    pub fn open(name: &str) -> Result<Cache> {
        let region = Region::open(name, &RegionOptions::new())?;
        let mut c = Cache {
            region,
            max_entries: 0,
            data_off: 0,
        };
        let h = c.header()?;
        c.max_entries = h.max_entries;
        c.data_off = h.data_off;
        Ok(c)
    }

    /// Removes the cache region file (processes that have it open keep using it).
    pub fn unlink(name: &str) -> Result<()> {
        Ok(region::unlink(name)?)
    }

    /// The region holding the cache.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The most entries it holds.
    pub fn max_entries(&self) -> u32 {
        self.max_entries
    }

    /// The header, read consistently and checked against the mapping.
    fn header(&self) -> Result<Header> {
        let mut b = [0u8; HEADER];
        self.region.read(0, &mut b)?;
        self.parse_header(&b)
    }

    fn parse_header(&self, b: &[u8]) -> Result<Header> {
        let size = self.region.len() as u64;
        let bad = |what: String| {
            Err(Error::Corrupt(format!(
                "{}: {what}",
                self.region.path().display()
            )))
        };
        if u64_at(b, 0) != MAGIC {
            return bad("not a shmio cache (bad magic)".into());
        }
        let h = Header {
            max_entries: u32_at(b, 8),
            data_off: u64_at(b, 16),
            used: u64_at(b, 24),
            count: u32_at(b, 32),
        };
        if u32_at(b, 12) as usize != ENTRY || h.max_entries == 0 || h.max_entries > 65536 {
            return bad(format!(
                "entry size {} or count {} invalid",
                u32_at(b, 12),
                h.max_entries
            ));
        }
        let ok = table_end(h.max_entries) <= h.data_off
            && h.data_off <= size
            && h.used <= size - h.data_off
            && h.count <= h.max_entries
            && (self.max_entries == 0
                || (h.max_entries, h.data_off) == (self.max_entries, self.data_off));
        if !ok {
            return bad(format!(
                "header out of range (max_entries {}, data at {}, {} used, {} entries, region {size} bytes)",
                h.max_entries, h.data_off, h.used, h.count
            ));
        }
        Ok(h)
    }

    /// The entries' table (`count` of them), read consistently.
    fn table(&self, count: u32) -> Result<Vec<u8>> {
        let mut t = vec![0u8; ENTRY * count as usize];
        self.region.read(HEADER as u64, &mut t)?;
        Ok(t)
    }

    /// Entry `i` of a table: its key and place, checked.
    fn parse_entry<'t>(&self, t: &'t [u8], i: usize) -> Result<(&'t [u8], Entry)> {
        let e = &t[i * ENTRY..(i + 1) * ENTRY];
        let (klen, state) = (u32_at(e, 0) as usize, u32_at(e, 4));
        let entry = Entry {
            offset: u64_at(e, 8),
            len: u64_at(e, 16),
        };
        let in_map = entry.offset >= self.data_off
            && entry
                .offset
                .checked_add(entry.len)
                .is_some_and(|end| end <= self.region.len() as u64);
        if klen > MAX_KEY || state != READY || !in_map {
            return Err(Error::Corrupt(format!(
                "{}: cache entry {i} invalid (key length {klen}, state {state}, {}+{} of {} bytes)",
                self.region.path().display(),
                entry.offset,
                entry.len,
                self.region.len()
            )));
        }
        Ok((&e[24..24 + klen], entry))
    }

    /// The entry of `key`, if the cache has one.
    pub fn lookup(&self, key: &str) -> Result<Option<Entry>> {
        let h = self.header()?;
        let t = self.table(h.count)?;
        for i in 0..h.count as usize {
            let (k, e) = self.parse_entry(&t, i)?;
            if k == key.as_bytes() {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// Every entry's key and place, in the order added.
    pub fn entries(&self) -> Result<Vec<(String, Entry)>> {
        let h = self.header()?;
        let t = self.table(h.count)?;
        (0..h.count as usize)
            .map(|i| {
                let (k, e) = self.parse_entry(&t, i)?;
                Ok((String::from_utf8_lossy(k).into_owned(), e))
            })
            .collect()
    }

    /// Adds `data` as the entry `key` (1..=[`MAX_KEY`] bytes): copies it into the region
    /// and publishes the entry, under the region's writer lock. [`Error::Exists`] if the key
    /// is there, [`Error::CacheFull`] if no entry or not enough room is left.
    pub fn add(&self, key: &str, data: &[u8]) -> Result<Entry> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(Error::InvalidArgument(format!(
                "cache key of {} bytes: 1..={MAX_KEY} allowed",
                key.len()
            )));
        }
        let all = self.region.len() as u64;
        self.region
            .write_with(0, all, |mut view| self.add_locked(&mut view, key, data))?
    }

    /// Reads the file at `path` and adds its bytes as the entry `key`.
    pub fn add_file(&self, key: &str, path: &Path) -> Result<Entry> {
        let data = std::fs::read(path)
            .map_err(|e| Error::Io(crate::IoError::new("read", e).at(Some(path))))?;
        self.add(key, &data)
    }

    /// `add`'s work, holding the writer lock, on a view of the whole region's data.
    fn add_locked(&self, view: &mut RacyBytesMut<'_>, key: &str, data: &[u8]) -> Result<Entry> {
        let mut hb = [0u8; HEADER];
        view.copy_to(&mut hb);
        let h = self.parse_header(&hb)?;
        let mut t = vec![0u8; ENTRY * h.count as usize];
        if let Some(v) = view.as_racy().slice(HEADER, HEADER + t.len()) {
            v.copy_to(&mut t);
        }
        for i in 0..h.count as usize {
            if self.parse_entry(&t, i)?.0 == key.as_bytes() {
                return Err(Error::Exists(key.to_string()));
            }
        }
        let room = self.region.len() as u64 - h.data_off - h.used;
        let need = (data.len() as u64).next_multiple_of(ALIGN);
        if h.count == h.max_entries || need > room {
            return Err(Error::CacheFull(format!(
                "cache {}: {} of {} entries used, {room} bytes free, {} needed",
                self.region.path().display(),
                h.count,
                h.max_entries,
                data.len()
            )));
        }
        let entry = Entry {
            offset: h.data_off + h.used,
            len: data.len() as u64,
        };
        put(view, entry.offset as usize, data);
        let mut e = [0u8; ENTRY];
        e[0..4].copy_from_slice(&(key.len() as u32).to_le_bytes());
        e[4..8].copy_from_slice(&READY.to_le_bytes());
        e[8..16].copy_from_slice(&entry.offset.to_le_bytes());
        e[16..24].copy_from_slice(&entry.len.to_le_bytes());
        e[24..24 + key.len()].copy_from_slice(key.as_bytes());
        put(view, HEADER + ENTRY * h.count as usize, &e);
        put(view, 24, &(h.used + need).to_le_bytes());
        put(view, 32, &(h.count + 1).to_le_bytes());
        Ok(entry)
    }

    /// The bytes of `entry` from byte `from` on, in place, after checking the range against
    /// the mapping ([`Error::OutOfBounds`]).
    pub fn bytes(&self, entry: &Entry, from: u64) -> Result<RacyBytes<'_>> {
        let size = self.region.len() as u64;
        let ok = entry.offset >= self.data_off
            && from <= entry.len
            && entry
                .offset
                .checked_add(entry.len)
                .is_some_and(|end| end <= size);
        if !ok {
            return Err(Error::OutOfBounds {
                offset: entry.offset.saturating_add(from),
                len: entry.len.saturating_sub(from),
                size,
            });
        }
        let start = (entry.offset + from) as usize;
        // SAFETY: `[start, offset + len)` lies inside the region's data (checked just above),
        // which stays mapped while `self` is borrowed.
        Ok(unsafe {
            RacyBytes::from_raw_parts(self.region.as_ptr().add(start), (entry.len - from) as usize)
        })
    }

    /// Sends `entry` from byte `from` to `sock` through `splicer` (no copy: see [`Splicer`]).
    /// On a non-blocking socket, call again with `from + sent` when it is writable.
    pub fn send_splice(
        &self,
        entry: &Entry,
        from: u64,
        sock: impl AsFd,
        splicer: &mut Splicer,
    ) -> Result<Progress> {
        splicer.send_racy(sock, self.bytes(entry, from)?)
    }

    /// Sends what `sock` takes of `entry` from byte `from` with `MSG_ZEROCOPY`. The entry
    /// never changes, so there is nothing to wait for before reusing it; reap `zc` to keep
    /// the error queue short.
    pub fn send_zerocopy(
        &self,
        entry: &Entry,
        from: u64,
        sock: impl AsFd,
        zc: &mut ZeroCopy,
    ) -> Result<Sent> {
        zc.send_racy(sock, self.bytes(entry, from)?)
    }
}

/// Writes `src` at `at` in the locked view (atomically, as readers may be copying).
fn put(view: &mut RacyBytesMut<'_>, at: usize, src: &[u8]) {
    assert!(
        at + src.len() <= view.len(),
        "cache write inside the region"
    );
    // SAFETY: `[at, at + len)` is inside the view (asserted), which is valid for writes;
    // `src` is our own memory, not part of the region.
    unsafe { crate::racy::store(view.as_mut_ptr().add(at), src.as_ptr(), src.len()) };
}
