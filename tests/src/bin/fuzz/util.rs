//! The fuzzer's small tools: the seed of a case, interesting values, the case file (changed only
//! through its descriptor: `pwrite`, `ftruncate`), and the tally of outcomes.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

pub use shmio_tests::layout::{FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS};
pub use shmio_tests::{Rng, mix64};

/// The seed of case `case` of a run with seed `seed`: each case replays on its own.
pub fn case_seed(seed: u64, case: u64) -> u64 {
    mix64(seed ^ mix64(case.wrapping_add(0x5EED)))
}

const U32_TABLE: &[u32] = &[
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    15,
    16,
    31,
    32,
    63,
    64,
    127,
    128,
    129,
    255,
    256,
    511,
    512,
    639,
    640,
    1023,
    1024,
    4095,
    4096,
    4097,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    1 << 24,
    (1 << 24) + 1,
    1 << 30,
    (1 << 30) + 1,
    FUTEX_TID_MASK,
    FUTEX_OWNER_DIED,
    FUTEX_WAITERS,
    FUTEX_WAITERS | FUTEX_OWNER_DIED,
    FUTEX_WAITERS | FUTEX_TID_MASK,
    0x7fff_ffff,
    u32::MAX - 1,
    u32::MAX,
];

const U64_TABLE: &[u64] = &[
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    16,
    64,
    127,
    128,
    640,
    4095,
    4096,
    4097,
    8192,
    1 << 20,
    1 << 30,
    (1 << 31) - 1,
    1 << 31,
    (1 << 32) - 1,
    1 << 32,
    (1 << 32) + 1,
    1 << 40,
    (1 << 40) + 1,
    (1 << 40) + 4096,
    1 << 48,
    (1 << 62) - 1,
    1 << 62,
    (1 << 62) + 1,
    (1 << 63) - 2,
    (1 << 63) - 1,
    1 << 63,
    (1 << 63) + 1,
    (1 << 63) + 2,
    (isize::MAX as u64) / 2,
    (isize::MAX as u64) / 2 + 1,
    u64::MAX - 4096,
    u64::MAX - 2,
    u64::MAX - 1,
    u64::MAX,
];

/// A value a 32-bit word of the file might be set to: boundaries, powers of two, thread ids
/// (live ones of this process and dead ones of the templates) with the futex bits, values
/// near `near` (the field's own geometry), or noise.
pub fn interesting_u32(rng: &mut Rng, tids: &[u32], near: &[u64]) -> u32 {
    match rng.below(12) {
        0..=3 => *rng.pick(U32_TABLE),
        4 | 5 if !tids.is_empty() => {
            let t = *rng.pick(tids) & FUTEX_TID_MASK;
            *rng.pick(&[
                t,
                t | FUTEX_WAITERS,
                t | FUTEX_OWNER_DIED,
                t | FUTEX_WAITERS | FUTEX_OWNER_DIED,
                FUTEX_OWNER_DIED,
                FUTEX_OWNER_DIED | FUTEX_WAITERS,
                t.wrapping_add(1),
            ])
        }
        6 if !near.is_empty() => {
            let v = *rng.pick(near) as u32;
            v.wrapping_add(rng.below(3) as u32).wrapping_sub(1)
        }
        7 => 1u32 << rng.below(32),
        8 => (1u32 << rng.below(32))
            .wrapping_add(rng.below(3) as u32)
            .wrapping_sub(1),
        9 => rng.next_u64() as u32,
        _ => rng.below(300) as u32,
    }
}

/// Like [`interesting_u32`], for 64-bit words.
pub fn interesting_u64(rng: &mut Rng, near: &[u64]) -> u64 {
    match rng.below(10) {
        0..=3 => *rng.pick(U64_TABLE),
        4 | 5 if !near.is_empty() => {
            let v = *rng.pick(near);
            match rng.below(6) {
                0 => v,
                1 => v.wrapping_add(1),
                2 => v.wrapping_sub(1),
                3 => v.wrapping_mul(2).wrapping_add(1),
                4 => v.wrapping_mul(2).wrapping_add(2),
                _ => v.wrapping_neg(),
            }
        }
        6 => 1u64 << rng.below(64),
        7 => (1u64 << rng.below(64))
            .wrapping_add(rng.below(3))
            .wrapping_sub(1),
        8 => rng.next_u64(),
        _ => rng.below(1000),
    }
}

/// The file a case works on: rewritten from a template at the start of each case, then
/// mutated, always through the descriptor (`pwrite`, `ftruncate`), never through a mapping.
pub struct CaseFile {
    /// The path as a shmio name (it contains a `/`, so it is used as is).
    pub name: String,
    file: File,
    len: u64,
    /// Ranges written since the last reset (by us, or by the library as the case reports with
    /// [`CaseFile::mark`]), unless `all_dirty`.
    dirty: RefCell<Vec<(u64, u64)>>,
    all_dirty: Cell<bool>,
}

impl CaseFile {
    pub fn create(path: PathBuf) -> io::Result<CaseFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        let name = path.to_string_lossy().into_owned();
        Ok(CaseFile {
            name,
            file,
            len: 0,
            dirty: RefCell::new(Vec::new()),
            all_dirty: Cell::new(true),
        })
    }

    /// Notes that `len` bytes at `off` may have changed (written through a mapping).
    pub fn mark(&self, off: u64, len: u64) {
        let mut d = self.dirty.borrow_mut();
        if d.len() >= 64 {
            self.all_dirty.set(true);
        } else {
            d.push((off, len));
        }
    }

    /// Notes that anything may have changed.
    pub fn mark_all(&self) {
        self.all_dirty.set(true);
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// Makes the file exactly `bytes` again: its first `always` bytes (the header, which
    /// every call may write) and whatever was marked dirty, or all of it. Call only while
    /// nothing maps it: a mapping past a shrunk end would fault.
    pub fn reset(&mut self, bytes: &[u8], always: u64) -> io::Result<()> {
        let mut d = self.dirty.take();
        if self.all_dirty.replace(false) || self.len != bytes.len() as u64 {
            if self.len != bytes.len() as u64 {
                self.file.set_len(bytes.len() as u64)?;
                self.len = bytes.len() as u64;
            }
            self.file.write_all_at(bytes, 0)?;
        } else {
            d.push((0, always));
            let end = bytes.len() as u64;
            for (off, len) in d.drain(..) {
                let (s, e) = (off.min(end), off.saturating_add(len).min(end));
                self.file.write_all_at(&bytes[s as usize..e as usize], s)?;
            }
        }
        *self.dirty.borrow_mut() = d;
        Ok(())
    }

    /// Changes the length. Shrinking is only for files nothing maps.
    pub fn set_len(&mut self, len: u64) {
        self.all_dirty.set(true);
        if self.file.set_len(len).is_ok() {
            self.len = len;
        }
    }

    /// Writes `data` at `off`, clipped to the current length (never extends the file).
    pub fn put(&self, off: u64, data: &[u8]) {
        if off >= self.len {
            return;
        }
        let n = data.len().min((self.len - off) as usize);
        self.mark(off, n as u64);
        let _ = self.file.write_all_at(&data[..n], off);
    }

    pub fn put_u32(&self, off: u64, v: u32) {
        self.put(off, &v.to_le_bytes());
    }

    pub fn put_u64(&self, off: u64, v: u64) {
        self.put(off, &v.to_le_bytes());
    }

    pub fn get_u32(&self, off: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.file.read_exact_at(&mut b, off).ok()?;
        Some(u32::from_le_bytes(b))
    }

    /// Flips bit `bit` of the byte at `off` (if inside the file).
    pub fn flip(&self, off: u64, bit: u32) {
        let mut b = [0u8; 1];
        if self.file.read_exact_at(&mut b, off).is_ok() {
            b[0] ^= 1 << (bit % 8);
            self.put(off, &b);
        }
    }
}

/// Reads a little-endian u32 / u64 out of a template's bytes.
pub fn le_u32(b: &[u8], off: u64) -> u32 {
    let o = off as usize;
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

pub fn le_u64(b: &[u8], off: u64) -> u64 {
    let o = off as usize;
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

pub fn set_le_u64(b: &mut [u8], off: u64, v: u64) {
    let o = off as usize;
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

/// Counts of outcomes (`q.open.Ok`, `r.op.Corrupt`, ...) and failures (`fail.panic`, ...).
#[derive(Debug, Default)]
pub struct Tally(pub BTreeMap<String, u64>);

impl Tally {
    pub fn add(&mut self, key: &str, n: u64) {
        if let Some(v) = self.0.get_mut(key) {
            *v += n;
        } else {
            self.0.insert(key.to_owned(), n);
        }
    }

    pub fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    pub fn merge(&mut self, other: &Tally) {
        for (k, v) in &other.0 {
            self.add(k, *v);
        }
    }
}

/// The name of a queue error's kind (with the system call for `Io`).
pub fn qkind(e: &shmio::queue::Error) -> Cow<'static, str> {
    use shmio::queue::Error as E;
    Cow::Borrowed(match e {
        E::InvalidArgument(_) => "InvalidArgument",
        E::AlreadyExists(_) => "AlreadyExists",
        E::NotFound(_) => "NotFound",
        E::PermissionDenied(_) => "PermissionDenied",
        E::Corrupt(_) => "Corrupt",
        E::VersionMismatch { .. } => "VersionMismatch",
        E::WouldBlock => "WouldBlock",
        E::Timeout => "Timeout",
        E::Interrupted => "Interrupted",
        E::ProducerDead => "ProducerDead",
        E::Closed => "Closed",
        E::ProducerExists { .. } => "ProducerExists",
        E::TooManyConsumers { .. } => "TooManyConsumers",
        E::TooLarge { .. } => "TooLarge",
        E::BufferTooSmall { .. } => "BufferTooSmall",
        E::Overrun => "Overrun",
        E::Unsupported(_) => "Unsupported",
        E::Cancelled => "Cancelled",
        E::Forked => "Forked",
        E::Io(e) => return Cow::Owned(format!("Io({})", e.op)),
        _ => "other",
    })
}

/// The name of a region error's kind (with the system call for `Io`).
pub fn rkind(e: &shmio::region::Error) -> Cow<'static, str> {
    use shmio::region::Error as E;
    Cow::Borrowed(match e {
        E::InvalidArgument(_) => "InvalidArgument",
        E::OutOfBounds { .. } => "OutOfBounds",
        E::AlreadyExists(_) => "AlreadyExists",
        E::NotFound(_) => "NotFound",
        E::PermissionDenied(_) => "PermissionDenied",
        E::Corrupt(_) => "Corrupt",
        E::VersionMismatch { .. } => "VersionMismatch",
        E::Torn { .. } => "Torn",
        E::WouldBlock => "WouldBlock",
        E::Timeout => "Timeout",
        E::Interrupted => "Interrupted",
        E::Unsupported(_) => "Unsupported",
        E::Stale { .. } => "Stale",
        E::ReadOnly(_) => "ReadOnly",
        E::WriterExists { .. } => "WriterExists",
        E::Io(e) => return Cow::Owned(format!("Io({})", e.op)),
        _ => "other",
    })
}
