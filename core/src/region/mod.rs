//! A named region of memory mapped by several processes: the note's "memory kept identical
//! across processes through a mapped file", with the guarantees the note lacked.
//!
//! A region is a file (by default `/dev/shm/<name>`, or any path: a RAM disk, a local file
//! system for durability, a network file system) holding a one-page header and `size` bytes of
//! data. Every process that maps it sees the same bytes.
//!
//! ```
//! use shmio::region::{Region, RegionOptions};
//! use std::time::Duration;
//! # let _ = shmio::region::unlink("doc-prices");
//!
//! let r = Region::create("doc-prices", 4 << 20, &RegionOptions::new())?; // /dev/shm, 0600
//! let other = Region::open("doc-prices", &RegionOptions::new())?; // usually another process
//! let seen = other.version();
//! let v = r.write(0, b"hello")?;            // consistent write; returns the new version
//! let mut buf = [0u8; 5];
//! other.read(0, &mut buf)?;                 // never half-written data
//! assert_eq!(&buf, b"hello");
//! // sleeps until someone writes (here at once: the version moved already)
//! assert_eq!(other.wait_changed(seen, Some(Duration::from_secs(1)))?, v);
//! r.flush(0, 5)?;                           // msync(MS_SYNC): durable on a disk file system
//! shmio::region::unlink("doc-prices")?;
//! # Ok::<(), shmio::region::Error>(())
//! ```
//!
//! # Two ways in
//! - **Raw** ([`Region::as_ptr`], [`Region::len`]): plain memory, as in the note. Nothing
//!   orders or protects concurrent raw accesses; use it for data with one writer and readers
//!   that tolerate races, or add your own protocol.
//! - **Consistent** ([`Region::write`], [`Region::read`], [`Region::write_with`],
//!   [`Region::read_with`]): writers are serialised by a robust lock whose only shared state is
//!   one futex word in the header (no process's pointers, no thread ids compared) and bracket their change with a sequence counter; readers copy optimistically and
//!   retry if a write overlapped their copy, so a reader never returns half-written data and
//!   never blocks a writer.
//!
//! # Writer death
//! The writer lock is robust (`sys::rlock`): if a writer dies while holding it (`kill -9` in the
//! middle of a write), the next process to take the lock (a writer, or a reader that found the
//! counter stuck) is told so by the kernel, marks the range the dead writer was writing as
//! *torn*, and releases the counter. Reads that overlap a torn range fail with
//! [`Error::Torn`] until that range is wholly rewritten; reads elsewhere go on. A write whose
//! closure panics is treated the same way.
//!
//! # Change notification
//! Every consistent write moves the version ([`Region::version`]) by one.
//! [`Region::wait_changed`] sleeps on a futex in the header until the version differs from the
//! one the caller saw; a writer makes a wake system call only if someone sleeps. Raw writes do
//! not move the version: call [`Region::touch`] after them to publish a change.
//!
//! # Durability, and what the page cache really does
//! - [`Region::flush`] is `msync(MS_SYNC)` on the range: on a disk file system it returns once
//!   the pages are written back. `MS_ASYNC` is a no-op on Linux (dirty shared pages are already
//!   tracked by the kernel and written back by the flusher threads, see [`crate::vm`]), so it is
//!   not offered.
//! - Opening with `O_SYNC` ([`RegionOptions::o_sync`]), as the note did, affects `write(2)` on
//!   the descriptor only; stores through the mapping are not synchronous whatever the open
//!   flags. Only `flush` makes them durable.
//! - On tmpfs (`/dev/shm`) and ramfs there is no backing store: pages never count as Dirty and
//!   `flush` has nothing to write. The data lives until the file is unlinked and unmapped, or
//!   the machine reboots.
//! - [`Region::cache_stat`] reports the file's cached, dirty and writeback pages (`cachestat(2)`,
//!   Linux 6.5+; [`Error::Unsupported`] before).
//! - NFS does not keep a shared mapping coherent across hosts: another host sees changes only
//!   after they are flushed and its own cached pages are invalidated (close-to-open
//!   consistency). The note's cross-server set-up worked only by timing luck. Use a region on
//!   NFS for hand-over of durable state, not as shared memory between machines.
//!
//! # Trust
//! The header is validated at open (magic, layout version, sizes against the file's length);
//! a corrupt file gives [`Error::Corrupt`], never undefined behaviour. Offsets and lengths are
//! checked against the size copied out at open.

mod access;
mod claim;
mod error;
mod inspect;
pub(crate) mod layout;
mod lock;
pub mod replica;
pub(crate) mod seqlock;
pub mod track;

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use memmap2::{MmapOptions, MmapRaw};

pub use claim::{Writer, WriterClaim};
pub use error::{Error, Result};
pub use inspect::{LockState, RegionStats, inspect};
pub use layout::{
    DATA_OFFSET, DEFAULT_CHUNK, LAYOUT_VERSION, LOCK_WORD_OFFSET, MAGIC, MAX_CHUNK, MAX_SIZE,
    MIN_CHUNK,
};

use crate::error::IoError;
use crate::shm::file as shmfile;
use crate::sys::rlock::RobustLock;
use crate::vm::PageCache;
use layout::{Geometry, Header};

/// Options for [`Region::create`] and [`Region::open`]. `RegionOptions::new()`: mode 0600, no
/// `O_SYNC`, no pre-faulting, not locked in RAM, changes tracked per 4 KiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionOptions {
    pub(crate) mode: u32,
    pub(crate) o_sync: bool,
    pub(crate) populate: bool,
    pub(crate) lock: bool,
    pub(crate) chunk: u64,
}

impl Default for RegionOptions {
    fn default() -> Self {
        RegionOptions {
            mode: 0o600,
            o_sync: false,
            populate: false,
            lock: false,
            chunk: DEFAULT_CHUNK,
        }
    }
}

impl RegionOptions {
    /// The defaults: mode `0o600`, no `O_SYNC`, no pre-fault, not locked in RAM.
    pub fn new() -> Self {
        Self::default()
    }
    /// File mode at creation, applied exactly (not masked by the umask). Default `0o600`.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
    /// Open the file with `O_SYNC`, as the note did. This makes `write(2)` on the descriptor
    /// synchronous; it does not make stores through the mapping durable (use
    /// [`Region::flush`]).
    pub fn o_sync(mut self, on: bool) -> Self {
        self.o_sync = on;
        self
    }
    /// Pre-fault every page at map time (`MAP_POPULATE`), so first accesses do not fault.
    pub fn populate(mut self, on: bool) -> Self {
        self.populate = on;
        self
    }
    /// Lock the mapping in RAM (`mlock`); may fail with `RLIMIT_MEMLOCK`.
    pub fn lock_in_ram(mut self, on: bool) -> Self {
        self.lock = on;
        self
    }
    /// `create`: the granularity of change tracking ([`track`]), a power of two in
    /// [`MIN_CHUNK`]`..=`[`MAX_CHUNK`]; default [`DEFAULT_CHUNK`] (4 KiB). A write changes at
    /// least one chunk, and a replica receives whole chunks: smaller chunks send fewer bytes
    /// for small scattered writes, at 8 bytes of table per chunk. `open` reads it from the
    /// file and ignores this.
    pub fn chunk_size(mut self, bytes: u64) -> Self {
        self.chunk = bytes;
        self
    }
    fn open_flags(&self) -> libc::c_int {
        if self.o_sync { libc::O_SYNC } else { 0 }
    }
}

/// Resolves a region name (`"prices"` → `/dev/shm/prices`, or `$SHMIO_DIR/prices`) or path
/// (starting with `/`, `./` or `../`; a name with a `/` elsewhere is refused).
pub fn resolve(name: &str) -> Result<PathBuf> {
    Ok(shmfile::resolve(name, "region")?)
}

/// The length of the file a region of `size` bytes with change-tracking chunks of `chunk`
/// bytes takes (header page, data rounded up to a page, generation table): what `create`
/// needs free on the file system. `None` if either is out of range.
pub fn file_len(size: u64, chunk: u64) -> Option<u64> {
    let ok = (1..=MAX_SIZE).contains(&size)
        && chunk.is_power_of_two()
        && (MIN_CHUNK..=MAX_CHUNK).contains(&chunk);
    ok.then(|| Geometry::new(size, chunk.trailing_zeros()).file_len())
}

/// Removes the region file. Processes that have it mapped keep using it.
///
/// Only a region file is removed: the file is opened (`O_NOFOLLOW`, read-only, so read
/// permission is needed) and must start with the region magic. Anything else at the path (a
/// queue, a text file, a symbolic link, a directory) is left alone and refused with
/// [`Error::Corrupt`], as [`Region::open`] refuses it; nothing there is [`Error::NotFound`].
/// A region of another layout version is removed. Another process could replace the file
/// between the check and the `unlink(2)`; the check guards against mistakes, not against
/// someone who can write the directory.
pub fn unlink(name: &str) -> Result<()> {
    let path = resolve(name)?;
    Ok(shmfile::unlink_checked(
        &path,
        "region",
        layout::MAGIC,
        &[(crate::queue::layout::MAGIC, "queue")],
    )?)
}

/// An open, mapped region. `Send + Sync`: consistent calls may be made from many threads at
/// once (writers are serialised by the lock).
pub struct Region {
    /// The writer lock over the header's lock word; declared first, so dropped before `map`.
    lock: RobustLock,
    /// The SIGBUS watch over `map` (see `sys::sigbus`), dropped before it too.
    watch: crate::sys::sigbus::Watch,
    map: MmapRaw,
    file: File,
    path: PathBuf,
    size: u64,
    geo: Geometry,
    /// The file's identity (`st_dev`, `st_ino`): a thread that holds the lock of this file
    /// through any handle may not take it again.
    id: (u64, u64),
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("path", &self.path)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Region {
    /// Creates the region `name` with `size` bytes of zeroed data (1 ..= [`MAX_SIZE`]),
    /// failing with [`Error::AlreadyExists`] if the file exists. `name` is a bare name, placed
    /// in `$SHMIO_DIR` or `/dev/shm`, or a path (starting with `/`, `./` or `../`).
    pub fn create(name: &str, size: u64, opts: &RegionOptions) -> Result<Region> {
        if size == 0 || size > MAX_SIZE {
            return Err(Error::InvalidArgument(format!(
                "region size {size} out of range 1..={MAX_SIZE}"
            )));
        }
        let chunk = opts.chunk;
        if !chunk.is_power_of_two() || !(MIN_CHUNK..=MAX_CHUNK).contains(&chunk) {
            return Err(Error::InvalidArgument(format!(
                "change-tracking chunk {chunk} is not a power of two in {MIN_CHUNK}..={MAX_CHUNK}"
            )));
        }
        let path = resolve(name)?;
        let geo = Geometry::new(size, chunk.trailing_zeros());
        let total = geo.file_len();
        let tmp = shmfile::create_tmp(&path, opts.mode, total, opts.open_flags())?;
        let file = tmp.try_clone()?;
        let map = MmapOptions::new()
            .len(total as usize)
            .map_raw(&file)
            .map_err(|e| Error::io("mmap", Some(&path), e))?;
        // SAFETY: the mapping is at least DATA_OFFSET >= size_of::<Header>() bytes, page
        // aligned, fresh and private to us (the file is not linked yet); `Config` holds only
        // atomics. The lock word is zero (free) in the fresh file.
        let config = unsafe { &(*(map.as_ptr() as *const Header)).config.0 };
        layout::write_config(config, &geo, shmfile::random_u64());
        tmp.link_into_place(&path)?;
        drop(map);
        drop(file);
        // Map again with the caller's options, like any other opener. If that fails (e.g.
        // `mlock` over RLIMIT_MEMLOCK), the file we just published goes again.
        Region::open_path(path.clone(), opts).inspect_err(|_| {
            let _ = std::fs::remove_file(&path);
        })
    }

    /// Opens an existing region and validates its header.
    pub fn open(name: &str, opts: &RegionOptions) -> Result<Region> {
        Region::open_path(resolve(name)?, opts)
    }

    fn open_path(path: PathBuf, opts: &RegionOptions) -> Result<Region> {
        let file = shmfile::open_existing(&path, opts.open_flags())?;
        let (head, len) = inspect::map_header(&file, &path)?;
        // SAFETY: the mapping is DATA_OFFSET >= size_of::<Header>() bytes and page aligned;
        // `Config` holds only atomics, valid for any bit pattern.
        let config = unsafe { &(*(head.as_ptr() as *const Header)).config.0 };
        let geo = layout::validate(config, len)?;
        let size = geo.size;
        drop(head);
        let mut mo = MmapOptions::new();
        mo.len(geo.file_len() as usize);
        if opts.populate {
            mo.populate();
        }
        let map = mo
            .map_raw(&file)
            .map_err(|e| Error::io("mmap", Some(&path), e))?;
        if opts.lock {
            map.lock().map_err(|e| Error::io("mlock", Some(&path), e))?;
        }
        let meta = file
            .metadata()
            .map_err(|e| Error::io("fstat", Some(&path), e))?;
        let id = (
            std::os::unix::fs::MetadataExt::dev(&meta),
            std::os::unix::fs::MetadataExt::ino(&meta),
        );
        // SAFETY: the header is inside the mapping (validated size), page aligned; the word is
        // an aligned atomic that stays mapped as long as `map`, which the lock is dropped before.
        let word = unsafe { &(*(map.as_ptr() as *const Header)).lock.0.word as *const _ };
        // SAFETY: as just said; `file` is a field of the region too, dropped after the lock.
        let lock = unsafe { RobustLock::new(word, std::os::fd::AsRawFd::as_raw_fd(&file)) };
        let watch = crate::sys::sigbus::protect(map.as_ptr(), map.len());
        Ok(Region {
            lock,
            watch,
            map,
            file,
            path,
            size,
            geo,
            id,
        })
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is at least DATA_OFFSET >= size_of::<Header>() bytes and page
        // aligned; every field is an atomic or an `UnsafeCell` used only through raw pointers.
        unsafe { &*(self.map.as_ptr() as *const Header) }
    }

    /// The data's first byte (raw access). Valid for [`Region::len`] bytes while `self` lives.
    /// Nothing synchronises raw accesses with other processes; see the module docs.
    pub fn as_ptr(&self) -> *mut u8 {
        // SAFETY: DATA_OFFSET < the mapping's length (DATA_OFFSET + size, size >= 1).
        unsafe { self.map.as_mut_ptr().add(DATA_OFFSET as usize) }
    }

    /// Bytes of data.
    pub fn len(&self) -> usize {
        self.size as usize
    }

    /// Whether `len` bytes at `ptr` share a byte with this handle's mapping (header or data):
    /// such memory cannot be the caller's side of a consistent copy (the copy would read or
    /// write the very bytes it changes). Only addresses are compared; nothing is accessed.
    pub fn overlaps_mapping(&self, ptr: *const u8, len: usize) -> bool {
        let start = self.map.as_ptr() as usize;
        let end = start + self.map.len();
        let p = ptr as usize;
        len != 0 && p < end && p.saturating_add(len) > start
    }

    /// Always false: a region has at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The region file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The version: the number of consistent writes (and [`Region::touch`]es, and torn writes
    /// repaired) since creation.
    pub fn version(&self) -> u64 {
        self.header().seq.0.version.load(Ordering::Acquire)
    }

    /// The current torn range `(offset, len)`, if any (see [`Error::Torn`]). Takes the writer
    /// lock briefly (and so repairs what a dead writer left).
    pub fn torn(&self) -> Result<Option<(u64, u64)>> {
        let _g = self.lock()?;
        let (off, len) = self.torn_range()?;
        Ok(Some((off, len)).filter(|_| len != 0))
    }

    /// The torn range as the file records it, checked: one reaching past the data was not
    /// written by shmio (repair clamps what it records), so it is reported as corruption
    /// rather than handed on as offsets no caller can use.
    fn torn_range(&self) -> Result<(u64, u64)> {
        let s = &self.header().seq.0;
        let (off, len) = (
            s.torn_off.load(Ordering::Relaxed),
            s.torn_len.load(Ordering::Relaxed),
        );
        if len != 0 && (off > self.size || len > self.size - off) {
            return Err(Error::Corrupt(format!(
                "the torn range ({off}, {len}) reaches past the region's {} bytes",
                self.size
            )));
        }
        Ok((off, len))
    }

    /// How many writes were found torn (writer died or panicked mid-write) since creation.
    pub fn torn_writes(&self) -> u64 {
        self.header().seq.0.torn_writes.load(Ordering::Relaxed)
    }

    /// [`Error::Corrupt`] once the file shrank under the mapping (see `sys::sigbus`), or, with
    /// `stat`, if it is shorter now than the region (an `fstat`, for slow paths).
    fn intact(&self, stat: bool) -> Result<()> {
        let short = stat
            && self
                .file
                .metadata()
                .is_ok_and(|m| m.len() < self.geo.file_len());
        if self.watch.poisoned() || short {
            return Err(Error::Corrupt(format!(
                "{} shrank under its mapping (truncated by another process)",
                self.path.display()
            )));
        }
        Ok(())
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<()> {
        self.intact(false)?;
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(Error::OutOfBounds {
                offset,
                len,
                size: self.size,
            }),
        }
    }

    /// Writes the range's dirty pages back and waits for it (`msync(MS_SYNC)`); `len == 0`
    /// flushes nothing. On tmpfs there is nothing to write. See the module docs. Every
    /// consistent write also changes the header page (its counters); [`Region::flush_all`]
    /// writes that too.
    pub fn flush(&self, offset: u64, len: u64) -> Result<()> {
        self.check_range(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        self.map
            .flush_range((DATA_OFFSET + offset) as usize, len as usize)
            .map_err(|e| Error::io("msync", Some(&self.path), e))
    }

    /// Flushes the whole file, header included.
    pub fn flush_all(&self) -> Result<()> {
        self.map
            .flush()
            .map_err(|e| Error::io("msync", Some(&self.path), e))
    }

    /// The region file's page-cache state (header page included): cached, dirty, writeback
    /// pages. [`Error::Unsupported`] on kernels without `cachestat(2)` (before 6.5).
    pub fn cache_stat(&self) -> Result<PageCache> {
        crate::vm::cache_stat_fd(self.file.as_fd()).map_err(|e| match e {
            crate::vm::Error::Unsupported(m) => Error::Unsupported(m),
            crate::vm::Error::Io(e) => Error::io(e.op, Some(&self.path), e.source),
            other => Error::Io(
                IoError::new("cachestat", io::Error::other(other.to_string())).at(Some(&self.path)),
            ),
        })
    }
}
