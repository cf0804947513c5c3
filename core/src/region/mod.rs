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

pub(crate) mod layout;
pub(crate) mod seqlock;

use std::fmt;
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

pub use layout::{DATA_OFFSET, LAYOUT_VERSION, LOCK_WORD_OFFSET, MAX_SIZE};

use crate::error::{ErrorKind, IoError};
use crate::racy::{RacyBytes, RacyBytesMut};
use crate::shm::file as shmfile;
use crate::sys::futex::{self, WaitOutcome};
use crate::sys::rlock::{self, Locked, RobustLock};
use crate::vm::PageCache;
use layout::{Header, after_rewrite, hull, overlaps};

/// Options for [`Region::create`] and [`Region::open`]. `RegionOptions::new()`: mode 0600, no
/// `O_SYNC`, no pre-faulting, not locked in RAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionOptions {
    pub(crate) mode: u32,
    pub(crate) o_sync: bool,
    pub(crate) populate: bool,
    pub(crate) lock: bool,
}

impl Default for RegionOptions {
    fn default() -> Self {
        RegionOptions {
            mode: 0o600,
            o_sync: false,
            populate: false,
            lock: false,
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
    fn open_flags(&self) -> libc::c_int {
        if self.o_sync { libc::O_SYNC } else { 0 }
    }
}

/// Errors of the region module.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An argument was out of range or malformed (a zero or too large size, a bad name or mode,
    /// or a read issued from inside this thread's own `write_with`).
    InvalidArgument(String),
    /// `offset + len` reaches past the end of the region.
    OutOfBounds {
        /// The range's start.
        offset: u64,
        /// The range's length.
        len: u64,
        /// The region's size.
        size: u64,
    },
    /// `create` found a file at that path already.
    AlreadyExists(PathBuf),
    /// No region at that path.
    NotFound(PathBuf),
    /// The file's permissions refuse us.
    PermissionDenied(PathBuf),
    /// The file is not a valid region (bad magic, sizes, or length); from [`unlink`], the file
    /// at the path is not a region file (it was left alone).
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
    /// creation, so a region that was created never runs out of space later (no SIGBUS).
    NoSpace {
        /// The file that was to be created.
        path: PathBuf,
        /// Bytes the file needs.
        needed: u64,
        /// Bytes the file system has free for unprivileged users.
        available: u64,
    },
    /// The range read overlaps data whose last writer died (or panicked) mid-write: it is not
    /// returned until that range (`offset`, `len`) is rewritten.
    Torn {
        /// The torn range's start.
        offset: u64,
        /// The torn range's length.
        len: u64,
    },
    /// `wait_changed` with a zero timeout: no change yet.
    WouldBlock,
    /// The wait's timeout expired.
    Timeout,
    /// A signal interrupted a blocking wait (as `EINTR` does for read(2)).
    Interrupted,
    /// The kernel lacks something needed (e.g. `cachestat(2)` before Linux 6.5).
    Unsupported(String),
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
            Error::OutOfBounds { .. } => K::OutOfBounds,
            Error::AlreadyExists(_) => K::AlreadyExists,
            Error::NotFound(_) => K::NotFound,
            Error::PermissionDenied(_) => K::PermissionDenied,
            Error::Corrupt(_) => K::Corrupt,
            Error::VersionMismatch { .. } => K::VersionMismatch,
            Error::NoSpace { .. } => K::NoSpace,
            Error::Torn { .. } => K::Torn,
            Error::WouldBlock => K::WouldBlock,
            Error::Timeout => K::Timeout,
            Error::Interrupted => K::Interrupted,
            Error::Unsupported(_) => K::Unsupported,
            Error::Io(_) => K::Io,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::OutOfBounds { offset, len, size } => write!(
                f,
                "range of {len} bytes at offset {offset} reaches past the region's {size} bytes"
            ),
            Error::AlreadyExists(p) => write!(f, "{} already exists", p.display()),
            Error::NotFound(p) => write!(f, "no region at {}", p.display()),
            Error::PermissionDenied(p) => write!(f, "permission denied: {}", p.display()),
            Error::Corrupt(m) => write!(f, "corrupt region file: {m}"),
            Error::VersionMismatch { found, expected } => write!(
                f,
                "region file has layout version {found}, this shmio reads version {expected}"
            ),
            Error::NoSpace {
                path,
                needed,
                available,
            } => f.write_str(&shmfile::no_space_message(path, *needed, *available)),
            Error::Torn { offset, len } => write!(
                f,
                "torn data: a writer died mid-write in bytes {offset}..{} (rewrite them)",
                offset.saturating_add(*len)
            ),
            Error::WouldBlock => f.write_str("no change yet"),
            Error::Timeout => f.write_str("timed out"),
            Error::Interrupted => f.write_str("interrupted by a signal"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Io(e) => e.fmt(f),
        }
    }
}

/// A region result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Resolves a region name (`"prices"` → `/dev/shm/prices`, or `$SHMIO_DIR/prices`) or path
/// (anything with a `/`).
pub fn resolve(name: &str) -> Result<PathBuf> {
    Ok(shmfile::resolve(name, "region")?)
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

/// How long a reader that finds a write in progress spins before it blocks on the writer
/// lock (about the cost of waking a sleeping vCPU on these machines).
const SPIN_FOR: Duration = Duration::from_micros(20);

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
    /// The file's identity (`st_dev`, `st_ino`): a thread that holds the lock of this file
    /// through any handle may not take it again.
    id: (u64, u64),
}

std::thread_local! {
    /// Regions (by file identity) whose writer lock this thread holds.
    static HELD: std::cell::RefCell<Vec<(u64, u64)>> = const { std::cell::RefCell::new(Vec::new()) };
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
    /// in `$SHMIO_DIR` or `/dev/shm`, or a path (anything containing `/`).
    pub fn create(name: &str, size: u64, opts: &RegionOptions) -> Result<Region> {
        if size == 0 || size > MAX_SIZE {
            return Err(Error::InvalidArgument(format!(
                "region size {size} out of range 1..={MAX_SIZE}"
            )));
        }
        let path = resolve(name)?;
        let total = DATA_OFFSET + size;
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
        layout::write_config(config, size);
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
        let len = file
            .metadata()
            .map_err(|e| Error::io("fstat", Some(&path), e))?
            .len();
        if len < DATA_OFFSET {
            return Err(Error::Corrupt(format!(
                "{} is {len} bytes, shorter than a region header",
                path.display()
            )));
        }
        let head = MmapOptions::new()
            .len(DATA_OFFSET as usize)
            .map_raw(&file)
            .map_err(|e| Error::io("mmap", Some(&path), e))?;
        // SAFETY: the mapping is DATA_OFFSET >= size_of::<Header>() bytes and page aligned;
        // `Config` holds only atomics, valid for any bit pattern.
        let config = unsafe { &(*(head.as_ptr() as *const Header)).config.0 };
        let size = layout::validate(config, len)?;
        drop(head);
        let mut mo = MmapOptions::new();
        mo.len((DATA_OFFSET + size) as usize);
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
                .is_ok_and(|m| m.len() < DATA_OFFSET + self.size);
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

    /// Takes the writer lock, repairing what a dead holder left.
    fn lock(&self) -> Result<LockGuard<'_>> {
        self.lock_within(None)
    }

    /// Takes the writer lock, giving up with [`Error::Timeout`] after `timeout` (if any).
    fn lock_within(&self, timeout: Option<Duration>) -> Result<LockGuard<'_>> {
        if HELD.with(|h| h.borrow().contains(&self.id)) {
            return Err(Error::InvalidArgument(
                "this thread already holds the region's writer lock (a call from inside \
                 write_with)"
                    .into(),
            ));
        }
        let deadline = timeout.map(crate::sys::time::deadline_after);
        let (held, how) = self.lock.lock(deadline.as_ref()).map_err(|e| match e {
            rlock::LockError::Timeout => Error::Timeout,
            rlock::LockError::Io(e) => Error::io("spawn lock keeper thread", None, e),
        })?;
        HELD.with(|h| h.borrow_mut().push(self.id));
        let g = LockGuard {
            r: self,
            held: Some(held),
        };
        // With the lock held no write is in progress, so an odd counter was left by a holder
        // that died (the kernel marked the word) or by a peer that scribbled it (no mark): the
        // same repair either way, or every reader would spin on it for ever.
        if how == Locked::OwnerDied || self.header().seq.0.seq.load(Ordering::Relaxed) & 1 == 1 {
            self.repair();
        }
        Ok(g)
    }

    /// With the lock held: if a write was in progress (the counter is odd), its range becomes
    /// torn and the counter is released.
    fn repair(&self) {
        let s = &self.header().seq.0;
        let seq = s.seq.load(Ordering::Relaxed);
        if seq & 1 == 0 {
            return;
        }
        let pending = (
            s.pending_off.load(Ordering::Relaxed),
            s.pending_len.load(Ordering::Relaxed),
        );
        let torn = hull(
            (
                s.torn_off.load(Ordering::Relaxed),
                s.torn_len.load(Ordering::Relaxed),
            ),
            pending,
        );
        // Clamp what we read from the file: a torn range never reaches past the data.
        let torn = if torn.1 != 0 {
            let start = torn.0.min(self.size);
            (start, torn.1.min(self.size - start))
        } else {
            torn
        };
        s.torn_off.store(torn.0, Ordering::Relaxed);
        s.torn_len.store(torn.1, Ordering::Relaxed);
        s.torn_writes.fetch_add(1, Ordering::Relaxed);
        s.version.fetch_add(1, Ordering::Relaxed);
        seqlock::end_repair(&s.seq, seq);
        if self.has_waiters() {
            self.wake_waiters();
        }
    }

    /// Whether change waiters are registered. Call with the writer lock held: waiters
    /// register under the same lock, so either a waiter registered before this critical
    /// section (and is counted here) or it takes the lock after it (and sees the new `seq`
    /// and version, so it does not sleep). No memory fence needed on the write path.
    fn has_waiters(&self) -> bool {
        self.header().notify.0.waiters.load(Ordering::Relaxed) != 0
    }

    fn wake_waiters(&self) {
        futex::wake_all(&self.header().seq.0.seq);
    }

    /// Writes `data` at `offset` so that no reader sees it half-done; returns the new version.
    /// Blocks while another writer holds the lock (writes are short). A write that wholly
    /// covers a torn range (or its start or end) makes it readable again.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<u64> {
        self.write_inner(offset, data.len() as u64, |mut buf| {
            buf.copy_from(data);
        })
        .map(|(_, v)| v)
    }

    /// Like [`Region::write`], but lets `f` change the `len` bytes at `offset` in place (it
    /// sees their current contents). Returns what `f` returns. If `f` panics, the range is
    /// marked torn and the panic goes on. `f` must not call consistent methods of this region
    /// (they fail with [`Error::InvalidArgument`]).
    ///
    /// `f` gets a [`RacyBytesMut`]: readers copy these bytes while `f` changes them (and
    /// discard what they copied), and raw-access users may write them without the lock, so
    /// the view reads and writes atomically; `unsafe` [`RacyBytesMut::as_mut_slice`] borrows
    /// them as `&mut [u8]` where the caller knows no other process touches them.
    pub fn write_with<R>(
        &self,
        offset: u64,
        len: u64,
        f: impl FnOnce(RacyBytesMut<'_>) -> R,
    ) -> Result<R> {
        self.write_inner(offset, len, f).map(|(r, _)| r)
    }

    /// Publishes a change made through raw access: moves the version and wakes
    /// [`Region::wait_changed`] sleepers. Returns the new version.
    pub fn touch(&self) -> Result<u64> {
        self.write_inner(0, 0, |_| ()).map(|(_, v)| v)
    }

    fn write_inner<R>(
        &self,
        offset: u64,
        len: u64,
        f: impl FnOnce(RacyBytesMut<'_>) -> R,
    ) -> Result<(R, u64)> {
        self.check_range(offset, len)?;
        let lock = self.lock()?;
        let s = &self.header().seq.0;
        // Recorded before the counter turns odd: a repairer after our death reads them.
        s.pending_off.store(offset, Ordering::Relaxed);
        s.pending_len.store(len, Ordering::Relaxed);
        let seq = seqlock::begin_write(&s.seq);
        // If `f` panics, the guard (dropped before `_lock`) marks the range torn.
        let torn_guard = TornOnUnwind { r: self };
        // SAFETY: `offset + len <= size` (checked), so the view lies inside the mapping's data,
        // which lives as long as `self`. Readers copy these bytes concurrently (atomically) and
        // discard what they read while the counter is odd or moved (the seqlock protocol); the
        // view's own accesses are atomic too.
        let buf = unsafe {
            RacyBytesMut::from_raw_parts(self.as_ptr().add(offset as usize), len as usize)
        };
        let r = f(buf);
        std::mem::forget(torn_guard);
        let torn = (
            s.torn_off.load(Ordering::Relaxed),
            s.torn_len.load(Ordering::Relaxed),
        );
        let left = after_rewrite(torn, (offset, len));
        if left != torn {
            s.torn_off.store(left.0, Ordering::Relaxed);
            s.torn_len.store(left.1, Ordering::Relaxed);
        }
        let version = s.version.load(Ordering::Relaxed).wrapping_add(1);
        s.version.store(version, Ordering::Relaxed);
        seqlock::end_write(&s.seq, seq);
        let wake = self.has_waiters();
        let unlocked = lock.unlock();
        // Woken after unlocking, so that a woken waiter does not find the lock still held.
        if wake {
            self.wake_waiters();
        }
        unlocked?;
        // The data went to a page patched after the file shrank: not written to the file.
        self.intact(false)?;
        Ok((r, version))
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`, consistently: never a mix of two
    /// writes. Returns the version the copy belongs to. Fails with [`Error::Torn`] if the range
    /// overlaps data whose writer died mid-write. Spins briefly while a write is in progress,
    /// then sleeps on the writer lock.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<u64> {
        // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and `read_uninit` only
        // ever writes initialised bytes into the buffer.
        let buf = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
        self.read_uninit(offset, buf)
    }

    /// Like [`Region::read`], into a buffer that may be uninitialised (for callers such as the
    /// C API that hand over raw memory). On success every byte of `buf` is initialised.
    pub fn read_uninit(&self, offset: u64, buf: &mut [MaybeUninit<u8>]) -> Result<u64> {
        let len = buf.len() as u64;
        self.check_range(offset, len)?;
        let dst = buf.as_mut_ptr().cast::<u8>();
        self.read_inner(offset, len, |src| {
            // SAFETY: `src` is valid for `len` bytes of the mapping (checked range) and `dst`
            // for `len` bytes of the caller's buffer; they do not overlap (the caller's `&mut`
            // cannot alias the mapping unless made by an `unsafe` call that forbids it). A
            // concurrent write may change `src` meanwhile: a byte-wise atomic copy, which the
            // seqlock check discards.
            unsafe { crate::racy::load(dst, src, len as usize) }
        })
        .map(|((), v)| v)
    }

    /// Calls `f` on the `len` bytes at `offset` in place and returns its result once a call
    /// saw a consistent state (no write overlapped it). `f` may be called more than once and,
    /// in calls whose result is discarded, may see a write half-done: that is why it gets a
    /// [`RacyBytes`] view (copies and single bytes, read atomically), not a `&[u8]`; it must
    /// not trust the bytes (no panics on them); only the returned result is guaranteed to come
    /// from a consistent view.
    pub fn read_with<R>(
        &self,
        offset: u64,
        len: u64,
        mut f: impl FnMut(RacyBytes<'_>) -> R,
    ) -> Result<R> {
        self.check_range(offset, len)?;
        self.read_inner(offset, len, |src| {
            // SAFETY: `src` is valid for `len` bytes inside the mapping (checked range), which
            // lives as long as `self`.
            f(unsafe { RacyBytes::from_raw_parts(src, len as usize) })
        })
        .map(|(r, _)| r)
    }

    fn read_inner<R>(
        &self,
        offset: u64,
        len: u64,
        mut f: impl FnMut(*const u8) -> R,
    ) -> Result<(R, u64)> {
        let s = &self.header().seq.0;
        // SAFETY: `offset <= size` (checked by the caller).
        let src = unsafe { self.as_ptr().add(offset as usize) } as *const u8;
        let mut spin_start: Option<Instant> = None;
        loop {
            let Some(s1) = seqlock::read_begin(&s.seq) else {
                let start = *spin_start.get_or_insert_with(Instant::now);
                if start.elapsed() < SPIN_FOR {
                    std::hint::spin_loop();
                } else {
                    // A writer is slow, stopped or dead: wait for (or repair after) it.
                    drop(self.lock()?);
                    spin_start = None;
                }
                continue;
            };
            // Checked before use, but trusted only once the counter confirms it (a write in
            // progress may be changing it): an out-of-range value seen in a consistent state
            // is corruption.
            let torn = self.torn_range();
            let version = s.version.load(Ordering::Relaxed);
            let r = f(src);
            let consistent = seqlock::read_valid(&s.seq, s1);
            // A page patched by the SIGBUS handler during the read: not the data.
            self.intact(false)?;
            if consistent {
                let torn = torn?;
                if overlaps(torn, (offset, len)) {
                    return Err(Error::Torn {
                        offset: torn.0,
                        len: torn.1,
                    });
                }
                return Ok((r, version));
            }
        }
    }

    /// Sleeps until the version differs from `seen` (returns the new version), or `timeout`
    /// passes ([`Error::Timeout`]; `Some(ZERO)`: do not wait, [`Error::WouldBlock`]; `None`:
    /// no limit). Sleeps on a futex in the header (shared, so any process's writer wakes it).
    /// It registers as a waiter under the writer lock, which writers hold only briefly; the
    /// timeout also bounds the wait for that lock. A writer that dies mid-write is noticed
    /// within [`crate::queue::BACKSTOP`]: its range is marked torn (see [`Region::torn`]), which
    /// moves the version, so the call returns the new version.
    pub fn wait_changed(&self, seen: u64, timeout: Option<Duration>) -> Result<u64> {
        let h = self.header();
        let (seq, waiters) = (&h.seq.0.seq, &h.notify.0.waiters);
        let deadline = timeout.map(crate::sys::time::deadline_after);
        let started = Instant::now();
        loop {
            self.intact(true)?;
            let v = self.version();
            if v != seen {
                return Ok(v);
            }
            match (&deadline, timeout) {
                (_, Some(d)) if d.is_zero() => return Err(Error::WouldBlock),
                (Some(t), _) if crate::sys::time::deadline_passed(t) => return Err(Error::Timeout),
                _ => {}
            }
            // Register under the writer lock (see `has_waiters`); `seq` moves on every write,
            // so sleep only while it holds the value seen here: the kernel checks that
            // atomically with queueing us, and a writer that saw us registered wakes us.
            let expected = {
                let left = deadline.map(|_| {
                    timeout
                        .unwrap_or_default()
                        .saturating_sub(started.elapsed())
                        .max(Duration::from_millis(1))
                });
                let _lock = self.lock_within(left)?;
                let v = self.version();
                if v != seen {
                    return Ok(v);
                }
                waiters.fetch_add(1, Ordering::Relaxed);
                seq.load(Ordering::Relaxed)
            };
            // Sleep at most one backstop period: a writer that dies mid-write never wakes us,
            // and the next round's lock finds it dead, repairs, and moves the version.
            let until = crate::sys::time::slice_end(deadline.as_ref(), crate::queue::BACKSTOP);
            let res = futex::wait(seq, expected, Some(&until));
            waiters.fetch_sub(1, Ordering::Relaxed);
            match res {
                Ok(WaitOutcome::Interrupted) => return Err(Error::Interrupted),
                Ok(_) => {}
                Err(e) => return Err(Error::io("futex", None, e)),
            }
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

/// Holds the writer lock; unlocks on drop.
struct LockGuard<'a> {
    r: &'a Region,
    held: Option<rlock::Held<'a>>,
}

impl LockGuard<'_> {
    /// Releases the lock; [`Error::Corrupt`] if another process overwrote the lock word while
    /// we held it (what we wrote stands: it stayed inside the mapping).
    fn unlock(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        let id = self.r.id;
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|x| *x == id) {
                h.swap_remove(i);
            }
        });
        held.unlock().map_err(|s| {
            Error::Corrupt(format!(
                "the region's writer lock word was overwritten while held (found {:#x})",
                s.found
            ))
        })
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// Marks the pending write torn if dropped during a panic in a `write_with` closure.
struct TornOnUnwind<'a> {
    r: &'a Region,
}

impl Drop for TornOnUnwind<'_> {
    fn drop(&mut self) {
        self.r.repair();
    }
}
