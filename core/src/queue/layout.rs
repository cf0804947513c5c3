//! The queue file: layout, creation, validation and mapping.
//!
//! ```text
//! offset 0                 Header   (config line, then one 128-byte line per writer group)
//! consumers_offset         ConsumerSlot × max_consumers   (128 bytes each)
//! slots_offset (page)      Slot × slot_count   (16-byte slot header + payload, stride 64-aligned)
//! ```
//!
//! Every field lives in an atomic: the file is shared with processes we do not control, so no
//! plain reference to it may assume the bytes do not change. The configuration is copied out
//! once, validated, and only the local copy ([`Layout`]) is used to compute addresses after that.

use std::fs::File;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use super::{Error, Policy, QueueOptions};
use crate::shm::file::{self as shmfile, TmpFile};
use crate::shm::header::{Format, Prefix};
use crate::sys::{fork, ofd, sigbus};

/// `"SHMIOQ\0\x01"` read as a little-endian u64: the first 8 bytes of every queue file.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMIOQ\0\x01");
/// Bumped whenever the file layout changes incompatibly. Version 2: per-consumer producer
/// death words, per-role sleep words, the sleeper count with its epoch, liveness locks.
/// Version 3: the wake-up handshake is asymmetric (a producer may publish with a compiler fence
/// only, consumers issue `membarrier(2)` before sleeping), with the fence request and
/// acknowledgement bits in the sleeper count; a version-2 consumer would not issue the barrier.
pub const LAYOUT_VERSION: u32 = 3;
/// Bytes in front of every payload.
pub(crate) const SLOT_HEADER: u64 = 16;
/// Largest sequence number a valid file holds (in the head, a cursor or a stamp): 2^62
/// records take 146 years at a billion a second. Below it, no arithmetic on sequence numbers
/// (`seq + 1`, the stamps `2 seq + 2`) wraps; a file showing more is corrupt.
pub(crate) const MAX_SEQ: u64 = 1 << 62;
/// Largest slot count (after rounding).
pub const MAX_SLOTS: u32 = 1 << 24;
/// Largest payload per slot.
pub const MAX_SLOT_SIZE: u32 = 1 << 30;
/// Largest number of consumer slots; a blocked producer sleeps on all of them at once with
/// `futex_waitv`, which takes at most 128 words.
pub const MAX_CONSUMERS: u32 = 127;
/// Bytes per consumer slot: two cache lines, so that adjacent-line prefetch does not make
/// neighbouring consumers share a line.
pub(crate) const CONSUMER_STRIDE: u64 = 128;
/// Slots start on a page boundary.
const PAGE: u64 = 4096;

pub(crate) use crate::shm::header::Line;

/// What a queue file's prefix says.
const FORMAT: Format = Format {
    magic: MAGIC,
    version: LAYOUT_VERSION,
    header_size: std::mem::size_of::<Header>() as u32,
    kind: "queue",
};

/// Written once at creation, read once at open.
#[repr(C)]
pub(crate) struct Config {
    pub(crate) prefix: Prefix,
    pub(crate) policy: AtomicU32,
    pub(crate) slot_count: AtomicU32,
    pub(crate) slot_size: AtomicU32,
    pub(crate) slot_stride: AtomicU32,
    pub(crate) max_consumers: AtomicU32,
    pub(crate) consumer_stride: AtomicU32,
    pub(crate) consumers_offset: AtomicU64,
    pub(crate) slots_offset: AtomicU64,
    pub(crate) total_size: AtomicU64,
    pub(crate) created_unix_ns: AtomicU64,
}

/// Written by the producer on every record.
#[repr(C)]
pub(crate) struct ProducerLine {
    /// Records committed so far; record `s` is visible iff `s < head`.
    pub(crate) head: AtomicU64,
    /// Futex word consumers sleep on; bumped by the producer when it wakes them.
    pub(crate) notify: AtomicU32,
}

/// Who holds the producer role.
#[repr(C)]
pub(crate) struct OwnerLine {
    /// Robust futex word held by the producer's keeper thread (see `sys::robust`).
    pub(crate) owner: AtomicU32,
    pub(crate) pid: AtomicU32,
    /// Bumped at every producer take-over.
    pub(crate) generation: AtomicU32,
}

/// Back-pressure coordination.
#[repr(C)]
pub(crate) struct SpaceLine {
    /// Futex word a back-pressure producer sleeps on; bumped by consumers that release.
    pub(crate) space_notify: AtomicU32,
    /// Non-zero while the producer sleeps waiting for space.
    pub(crate) producer_waiting: AtomicU32,
    /// Bumped by every consumer that registers, so the producer rescans cursors.
    pub(crate) consumers_epoch: AtomicU32,
    /// One past the highest consumer slot ever claimed (untrusted: clamp before use).
    pub(crate) consumers_hwm: AtomicU32,
}

#[repr(C)]
pub(crate) struct Header {
    pub(crate) config: Line<Config>,
    pub(crate) prod: Line<ProducerLine>,
    /// Consumers asleep on `notify` (written by consumers, read by the producer per record):
    /// the count in the low 32 bits, an epoch in the high 32 bits that the producer bumps when
    /// it resets a count that dead consumers left too high (see `queue::wait`).
    pub(crate) waiters: Line<AtomicU64>,
    pub(crate) owner: Line<OwnerLine>,
    pub(crate) space: Line<SpaceLine>,
}

/// Per-consumer state.
#[repr(C, align(128))]
pub(crate) struct ConsumerSlot {
    /// Robust futex word held by the consumer's keeper thread; 0 = free.
    pub(crate) owner: AtomicU32,
    pub(crate) pid: AtomicU32,
    /// Robust futex word held by the *producer's* keeper thread, one per consumer slot, so that
    /// the kernel wakes each sleeping consumer on its own word when the producer dies (it wakes
    /// only one sleeper per word). Its offset is 8 modulo 8 like the owner word of the header,
    /// as the keeper's robust list needs.
    pub(crate) death: AtomicU32,
    /// 1 once the consumer holding the slot has chosen its start and published its cursor:
    /// only such consumers count as attached (stats, `wait_consumers`). Cleared by the next
    /// opener, under the slot's liveness lock, before it claims the slot.
    pub(crate) joined: AtomicU32,
    /// Whether the consumer's reading thread (`[0]`) and its poll notifier (`[1]`) are counted
    /// in `Header::waiters`: 0, or [`SLEEP_COUNTED`] with the low 31 bits of the count's epoch.
    pub(crate) sleep: [AtomicU32; 2],
    /// Next record this consumer reads; in back-pressure mode records before it are released.
    pub(crate) cursor: AtomicU64,
    /// Records this consumer lost to overwriting.
    pub(crate) lost: AtomicU64,
    /// Records this consumer received.
    pub(crate) received: AtomicU64,
}

/// Set in a consumer's `sleep` word while that role is counted in `Header::waiters`.
pub(crate) const SLEEP_COUNTED: u32 = 0x8000_0000;

/// File offset of the producer's owner word (layout versions 2 and 3; tests scribble it).
pub const OWNER_WORD_OFFSET: u64 = 384;

/// The header in front of each payload.
#[repr(C)]
pub(crate) struct SlotHeader {
    pub(crate) stamp: AtomicU64,
    pub(crate) len: AtomicU32,
    pub(crate) _reserved: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<SlotHeader>() as u64 == SLOT_HEADER);
const _: () = assert!(std::mem::size_of::<ConsumerSlot>() as u64 == CONSUMER_STRIDE);
const _: () = assert!(std::mem::offset_of!(Header, owner) as u64 == OWNER_WORD_OFFSET);
const _: () =
    assert!(std::mem::offset_of!(ConsumerSlot, death) as u64 % 8 == OWNER_WORD_OFFSET % 8);
const _: () = assert!(std::mem::offset_of!(Header, waiters) == 256);

fn round_up(v: u64, to: u64) -> Option<u64> {
    v.checked_add(to - 1).map(|x| x / to * to)
}

/// The validated, process-local copy of a queue's geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) policy: Policy,
    pub(crate) slot_count: u32,
    pub(crate) slot_size: u32,
    pub(crate) slot_stride: u64,
    pub(crate) max_consumers: u32,
    pub(crate) consumers_offset: u64,
    pub(crate) slots_offset: u64,
    pub(crate) total_size: u64,
}

impl Layout {
    /// Geometry for these parameters, or `None` if they overflow or are out of range.
    pub(crate) fn compute(
        policy: Policy,
        slot_count: u32,
        slot_size: u32,
        max_consumers: u32,
    ) -> Option<Layout> {
        if !slot_count.is_power_of_two()
            || !(2..=MAX_SLOTS).contains(&slot_count)
            || !(1..=MAX_SLOT_SIZE).contains(&slot_size)
            || !(1..=MAX_CONSUMERS).contains(&max_consumers)
        {
            return None;
        }
        let header = std::mem::size_of::<Header>() as u64;
        let consumers_offset = round_up(header, CONSUMER_STRIDE)?;
        let slots_offset = round_up(
            consumers_offset + u64::from(max_consumers) * CONSUMER_STRIDE,
            PAGE,
        )?;
        let slot_stride = round_up(SLOT_HEADER + u64::from(slot_size), 64)?;
        let total_size = slot_stride
            .checked_mul(u64::from(slot_count))?
            .checked_add(slots_offset)?;
        if total_size > isize::MAX as u64 / 2 {
            return None;
        }
        Some(Layout {
            policy,
            slot_count,
            slot_size,
            slot_stride,
            max_consumers,
            consumers_offset,
            slots_offset,
            total_size,
        })
    }

    pub(crate) fn mask(&self) -> u64 {
        u64::from(self.slot_count) - 1
    }

    /// Copies the configuration out of a mapped header and checks every field against the
    /// geometry it implies and against the file's actual size.
    pub(crate) fn read(config: &Config, file_len: u64) -> Result<Layout, Error> {
        FORMAT.check(&config.prefix)?;
        let policy = match config.policy.load(Ordering::Relaxed) {
            0 => Policy::Overwrite,
            1 => Policy::BackPressure,
            p => return Err(Error::Corrupt(format!("unknown policy {p}"))),
        };
        let slot_count = config.slot_count.load(Ordering::Relaxed);
        let slot_size = config.slot_size.load(Ordering::Relaxed);
        let max_consumers = config.max_consumers.load(Ordering::Relaxed);
        let expected =
            Layout::compute(policy, slot_count, slot_size, max_consumers).ok_or_else(|| {
                Error::Corrupt(format!(
                    "out-of-range geometry: {slot_count} slots of {slot_size} bytes, \
                     {max_consumers} consumers"
                ))
            })?;
        let found = (
            u64::from(config.slot_stride.load(Ordering::Relaxed)),
            u64::from(config.consumer_stride.load(Ordering::Relaxed)),
            config.consumers_offset.load(Ordering::Relaxed),
            config.slots_offset.load(Ordering::Relaxed),
            config.total_size.load(Ordering::Relaxed),
        );
        let want = (
            expected.slot_stride,
            CONSUMER_STRIDE,
            expected.consumers_offset,
            expected.slots_offset,
            expected.total_size,
        );
        if found != want {
            return Err(Error::Corrupt(format!(
                "inconsistent geometry (stride, consumer stride, offsets, size) {found:?}, \
                 expected {want:?}"
            )));
        }
        if file_len < expected.total_size {
            return Err(Error::Corrupt(format!(
                "file is {file_len} bytes, its header needs {}",
                expected.total_size
            )));
        }
        Ok(expected)
    }

    /// Writes the configuration into a fresh, zeroed mapping. The magic goes last.
    fn write(&self, config: &Config) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        FORMAT.write(&config.prefix);
        config.policy.store(
            match self.policy {
                Policy::Overwrite => 0,
                Policy::BackPressure => 1,
            },
            Ordering::Relaxed,
        );
        config.slot_count.store(self.slot_count, Ordering::Relaxed);
        config.slot_size.store(self.slot_size, Ordering::Relaxed);
        config
            .slot_stride
            .store(self.slot_stride as u32, Ordering::Relaxed);
        config
            .max_consumers
            .store(self.max_consumers, Ordering::Relaxed);
        config
            .consumer_stride
            .store(CONSUMER_STRIDE as u32, Ordering::Relaxed);
        config
            .consumers_offset
            .store(self.consumers_offset, Ordering::Relaxed);
        config
            .slots_offset
            .store(self.slots_offset, Ordering::Relaxed);
        config.total_size.store(self.total_size, Ordering::Relaxed);
        config.created_unix_ns.store(now, Ordering::Relaxed);
        FORMAT.publish(&config.prefix);
    }
}

/// Directory that bare queue names live in: `$SHMIO_DIR`, or `/dev/shm`.
pub fn queue_dir() -> PathBuf {
    shmfile::shm_dir()
}

/// Resolves a queue name (`"orders"` → `/dev/shm/orders`) or path (starting with `/`, `./` or
/// `../`; a name with a `/` elsewhere is refused).
pub fn resolve(name: &str) -> Result<PathBuf, Error> {
    Ok(shmfile::resolve(name, "queue")?)
}

/// An open, validated, mapped queue file.
pub(crate) struct Shared {
    /// The SIGBUS watch over `map` (see `sys::sigbus`); declared first, so dropped first.
    watch: sigbus::Watch,
    map: MmapRaw,
    pub(crate) layout: Layout,
    pub(crate) path: PathBuf,
    /// This handle's own open file description: it carries the handle's liveness lock (see
    /// `sys::ofd`) and is the only descriptor of that description. Closed in `drop`, under
    /// the fork guard.
    file: ManuallyDrop<File>,
    /// Entry in the fork table (`sys::fork`) once the description carries a lock.
    fork_entry: AtomicUsize,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Unregistered and closed under one guard: a fork between the two would leave the
        // child an unregistered copy of a descriptor that carries a liveness lock.
        let guard = fork::guard();
        let e = *self.fork_entry.get_mut();
        if e != NO_ENTRY {
            fork::unregister(&guard, e);
        }
        // SAFETY: `file` is not used after this, and this is its only drop.
        unsafe { ManuallyDrop::drop(&mut self.file) };
        drop(guard);
    }
}

const NO_ENTRY: usize = usize::MAX;

/// The liveness byte of the producer role.
pub(crate) const PRODUCER_BYTE: i64 = ofd::LIVENESS_BASE;

/// The liveness byte of consumer slot `i`.
pub(crate) fn consumer_byte(i: u32) -> i64 {
    ofd::LIVENESS_BASE + 1 + i64::from(i)
}

impl Shared {
    fn map_file(file: &File, len: u64, writable: bool) -> Result<MmapRaw, Error> {
        let mut mo = MmapOptions::new();
        mo.len(len as usize);
        if writable {
            mo.map_raw(file)
        } else {
            mo.map_raw_read_only(file)
        }
        .map_err(|e| Error::io("mmap", None, e))
    }

    /// Creates and initialises the queue in a file not yet visible at `path`; returns the
    /// mapping and that file. The caller claims the producer role on it, then calls
    /// [`link_into_place`], so nobody ever opens a half-initialised queue or one without its
    /// first producer.
    pub(crate) fn create_tmp(path: &Path, opts: &QueueOptions) -> Result<(Shared, TmpFile), Error> {
        let slot_count = opts.rounded_slots()?;
        let layout = Layout::compute(opts.policy, slot_count, opts.slot_size, opts.max_consumers)
            .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "queue geometry out of range: {} slots of {} bytes, {} consumers \
                     (slot size 1..={MAX_SLOT_SIZE}, consumers 1..={MAX_CONSUMERS})",
                slot_count, opts.slot_size, opts.max_consumers
            ))
        })?;
        let tmp = shmfile::create_tmp(path, opts.mode, layout.total_size, 0)?;
        let file = tmp.try_clone()?;
        let map = Self::map_file(&file, layout.total_size, true)?;
        let watch = sigbus::protect(map.as_ptr(), map.len());
        let shared = Shared {
            map,
            layout,
            path: path.to_path_buf(),
            watch,
            file: ManuallyDrop::new(file),
            fork_entry: AtomicUsize::new(NO_ENTRY),
        };
        layout.write(&shared.header().config.0);
        Ok((shared, tmp))
    }

    /// Opens and validates an existing queue file.
    pub(crate) fn open(path: &Path) -> Result<Shared, Error> {
        Self::open_with(path, true)
    }

    /// Opens and validates an existing queue file read-only: `O_RDONLY` and a `PROT_READ`
    /// mapping, so read permission suffices. The header is validated exactly as by
    /// [`open`](Self::open). Such a handle must only load from the mapping (a store faults):
    /// it serves `inspect` and the [`Observer`](super::Observer), never a role.
    pub(crate) fn open_read_only(path: &Path) -> Result<Shared, Error> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, writable: bool) -> Result<Shared, Error> {
        let file = if writable {
            shmfile::open_existing(path, 0)?
        } else {
            shmfile::open_read_only(path)?
        };
        let meta = file
            .metadata()
            .map_err(|e| Error::io("fstat", Some(path), e))?;
        let len = meta.len();
        if len < std::mem::size_of::<Header>() as u64 {
            return Err(Error::Corrupt(format!(
                "{} is {len} bytes, shorter than a queue header",
                path.display()
            )));
        }
        // Map only the header first; the rest once the geometry is known to fit the file.
        let head_map = Self::map_file(&file, std::mem::size_of::<Header>() as u64, false)?;
        let head_watch = sigbus::protect(head_map.as_ptr(), head_map.len());
        // SAFETY: the mapping is at least `size_of::<Header>()` bytes, page-aligned, and every
        // field of `Header` is an atomic, valid for any bit pattern.
        let config = unsafe { &(*(head_map.as_ptr() as *const Header)).config.0 };
        let layout = Layout::read(config, len);
        let shrank = head_watch.poisoned();
        drop(head_watch);
        drop(head_map);
        if shrank {
            return Err(Error::Corrupt(format!(
                "{} shrank while it was opened",
                path.display()
            )));
        }
        let layout = layout?;
        let map = Self::map_file(&file, layout.total_size, writable)?;
        let watch = sigbus::protect(map.as_ptr(), map.len());
        Ok(Shared {
            map,
            layout,
            path: path.to_path_buf(),
            watch,
            file: ManuallyDrop::new(file),
            fork_entry: AtomicUsize::new(NO_ENTRY),
        })
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the mapping is at least `total_size >= size_of::<Header>()` bytes and
        // page-aligned; every field is an atomic (valid for any bits, shared mutation allowed).
        unsafe { &*(self.map.as_ptr() as *const Header) }
    }

    /// Consumer slot `i`. `i` must be below `max_consumers` (checked).
    pub(crate) fn consumer(&self, i: u32) -> &ConsumerSlot {
        assert!(i < self.layout.max_consumers, "consumer index out of range");
        let off = self.layout.consumers_offset + u64::from(i) * CONSUMER_STRIDE;
        // SAFETY: `off + CONSUMER_STRIDE <= slots_offset <= total_size` by `Layout::compute`;
        // the offset is a multiple of 128 from a page-aligned base; all fields are atomics.
        unsafe { &*(self.map.as_ptr().add(off as usize) as *const ConsumerSlot) }
    }

    /// The slot that record `seq` lives in: its header and its payload's start.
    pub(crate) fn slot(&self, seq: u64) -> (&SlotHeader, *mut u8) {
        let idx = seq & self.layout.mask();
        let off = self.layout.slots_offset + idx * self.layout.slot_stride;
        // SAFETY: `idx < slot_count`, so `off + slot_stride <= total_size`, the mapping's
        // length; `off` is a multiple of 64 from a page-aligned base.
        unsafe {
            let base = self.map.as_mut_ptr().add(off as usize);
            (
                &*(base as *const SlotHeader),
                base.add(SLOT_HEADER as usize),
            )
        }
    }

    /// Takes the liveness lock on `byte` for this handle, without waiting; `false` if another
    /// handle holds it. The first lock registers the description to be closed in forked
    /// children; call with the fork guard held, so no fork copies a description that is about
    /// to carry a lock.
    pub(crate) fn lock_role(&self, guard: &fork::Guard, byte: i64) -> Result<bool, Error> {
        let got = ofd::try_lock(self.file.as_fd(), byte)
            .map_err(|e| Error::io("fcntl(F_OFD_SETLK)", Some(&self.path), e))?;
        if got && self.fork_entry.load(Ordering::Relaxed) == NO_ENTRY {
            if let Some(e) = fork::register(guard, self.file.as_raw_fd()) {
                self.fork_entry.store(e, Ordering::Relaxed);
            }
        }
        Ok(got)
    }

    /// Releases a liveness lock taken by [`lock_role`](Self::lock_role).
    pub(crate) fn unlock_role(&self, byte: i64) {
        ofd::unlock(self.file.as_fd(), byte);
    }

    /// Whether another handle holds the liveness lock on `byte` (see `sys::ofd`).
    pub(crate) fn role_held(&self, byte: i64) -> bool {
        ofd::held_elsewhere(&*self.file, byte)
    }

    /// [`Error::Corrupt`] once the file shrank under the mapping (a page past its new end was
    /// touched, see `sys::sigbus`), or, with `stat`, if it is shorter now than the queue
    /// needs (an `fstat`: for slow paths, before sleeping).
    pub(crate) fn intact(&self, stat: bool) -> Result<(), Error> {
        let short = stat
            && self
                .file
                .metadata()
                .is_ok_and(|m| m.len() < self.layout.total_size);
        if self.watch.poisoned() || short {
            return Err(Error::Corrupt(format!(
                "{} shrank under its mapping (truncated by another process)",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Number of consumer slots worth scanning (the high-water mark, clamped).
    pub(crate) fn consumer_scan_len(&self) -> u32 {
        self.header()
            .space
            .0
            .consumers_hwm
            .load(Ordering::SeqCst)
            .min(self.layout.max_consumers)
    }
}

/// Publishes a file made by [`Shared::create_tmp`] at `path`, failing with
/// [`Error::AlreadyExists`] if `path` exists. Its temporary name, if any, is removed either way.
pub(crate) fn link_into_place(tmp: TmpFile, path: &Path) -> Result<(), Error> {
    Ok(tmp.link_into_place(path)?)
}
