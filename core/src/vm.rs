//! Dirty-page observability: the six `vm.dirty_*` knobs, the thresholds they imply, the
//! system's Dirty and Writeback memory, and the page-cache state of any file.
//!
//! Background (the dirty-page note): a write to a file changes its page in the page cache and
//! marks it *dirty*; the kernel's flusher threads write dirty pages back later. The knobs:
//!
//! | knob | meaning |
//! |---|---|
//! | `dirty_background_ratio` / `_bytes` | above this much dirty memory the flusher starts writing back in the background (the bytes knob wins when non-zero) |
//! | `dirty_ratio` / `dirty_bytes` | above this, a process that dirties pages is throttled and made to write back itself |
//! | `dirty_writeback_centisecs` | how often the flusher wakes (0: never periodically) |
//! | `dirty_expire_centisecs` | how old a dirty page must be for a periodic wake to write it back |
//!
//! Ratios are percentages of *dirtyable* memory, not of total RAM. The kernel
//! (`mm/page-writeback.c`, `global_dirtyable_memory`) counts free pages plus file-backed pages
//! (active and inactive), minus the reserve it keeps for itself (`totalreserve_pages`). This
//! module adds `MemFree`, `Active(file)` and `Inactive(file)` of `/proc/meminfo` (on this
//! project's VMs `MemFree` is what the kernel uses; `/proc/vmstat`'s `nr_free_pages` omits
//! memory the hypervisor hands in late and is far lower); the reserve is not exported, so [`Thresholds::background_bytes`] and
//! [`Thresholds::dirty_bytes`] are slightly above the kernel's own figures, which
//! `/proc/vmstat` also reports (`nr_dirty_background_threshold`, `nr_dirty_threshold`) and
//! which are given beside them. Real-time tasks get a quarter more (not modelled).
//!
//! ```
//! use shmio::vm::{self, Knob};
//!
//! let knobs = vm::knobs()?;                 // the six knobs, from /proc/sys/vm
//! let t = vm::thresholds()?;                // what they imply, in bytes
//! assert!(t.background_bytes <= t.dirty_bytes);
//! println!("dirty_ratio {} -> throttled above {} bytes", knobs.get(Knob::DirtyRatio), t.dirty_bytes);
//! let now = vm::system()?;                  // the system's Dirty and Writeback
//! println!("{now:?}");
//! # Ok::<(), shmio::vm::Error>(())
//! ```

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use crate::error::IoError;
use crate::sys::cachestat;

/// One of the six knobs in `/proc/sys/vm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Knob {
    /// `dirty_background_ratio`: background writeback starts above this percent.
    DirtyBackgroundRatio,
    /// `dirty_background_bytes`: the same in bytes (wins when non-zero).
    DirtyBackgroundBytes,
    /// `dirty_ratio`: writers are throttled above this percent.
    DirtyRatio,
    /// `dirty_bytes`: the same in bytes (wins when non-zero).
    DirtyBytes,
    /// `dirty_writeback_centisecs`: how often the flusher wakes.
    DirtyWritebackCentisecs,
    /// `dirty_expire_centisecs`: the age at which a dirty page is written back.
    DirtyExpireCentisecs,
}

impl Knob {
    /// All six, in the note's order.
    pub const ALL: [Knob; 6] = [
        Knob::DirtyBackgroundRatio,
        Knob::DirtyBackgroundBytes,
        Knob::DirtyRatio,
        Knob::DirtyBytes,
        Knob::DirtyWritebackCentisecs,
        Knob::DirtyExpireCentisecs,
    ];

    /// The file name under `/proc/sys/vm`.
    pub fn name(self) -> &'static str {
        match self {
            Knob::DirtyBackgroundRatio => "dirty_background_ratio",
            Knob::DirtyBackgroundBytes => "dirty_background_bytes",
            Knob::DirtyRatio => "dirty_ratio",
            Knob::DirtyBytes => "dirty_bytes",
            Knob::DirtyWritebackCentisecs => "dirty_writeback_centisecs",
            Knob::DirtyExpireCentisecs => "dirty_expire_centisecs",
        }
    }

    /// `/proc/sys/vm/<name>`.
    pub fn path(self) -> PathBuf {
        Path::new("/proc/sys/vm").join(self.name())
    }
}

/// The six knobs' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Knobs {
    /// `vm.dirty_background_ratio`: percent of dirtyable memory.
    pub dirty_background_ratio: u64,
    /// `vm.dirty_background_bytes` (wins over the ratio when non-zero).
    pub dirty_background_bytes: u64,
    /// `vm.dirty_ratio`: percent of dirtyable memory.
    pub dirty_ratio: u64,
    /// `vm.dirty_bytes` (wins over the ratio when non-zero).
    pub dirty_bytes: u64,
    /// `vm.dirty_writeback_centisecs`.
    pub dirty_writeback_centisecs: u64,
    /// `vm.dirty_expire_centisecs`.
    pub dirty_expire_centisecs: u64,
}

impl Knobs {
    /// The value of knob `k`.
    pub fn get(&self, k: Knob) -> u64 {
        match k {
            Knob::DirtyBackgroundRatio => self.dirty_background_ratio,
            Knob::DirtyBackgroundBytes => self.dirty_background_bytes,
            Knob::DirtyRatio => self.dirty_ratio,
            Knob::DirtyBytes => self.dirty_bytes,
            Knob::DirtyWritebackCentisecs => self.dirty_writeback_centisecs,
            Knob::DirtyExpireCentisecs => self.dirty_expire_centisecs,
        }
    }
}

/// The thresholds the knobs imply on this machine now, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Memory the ratios apply to: `MemFree` + `Active(file)` + `Inactive(file)` (the kernel
    /// also subtracts its reserve, which is not exported).
    pub dirtyable_bytes: u64,
    /// Dirty memory above which background writeback starts.
    pub background_bytes: u64,
    /// Dirty memory above which writers are throttled.
    pub dirty_bytes: u64,
    /// The kernel's own figures from `/proc/vmstat` (`nr_dirty_background_threshold`,
    /// `nr_dirty_threshold`), if present.
    pub kernel_background_bytes: Option<u64>,
    /// See `kernel_background_bytes`.
    pub kernel_dirty_bytes: Option<u64>,
}

/// System-wide dirty and writeback memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemDirty {
    /// `Dirty:` of `/proc/meminfo`, in bytes.
    pub dirty_bytes: u64,
    /// `Writeback:` of `/proc/meminfo`, in bytes.
    pub writeback_bytes: u64,
    /// `nr_dirty` of `/proc/vmstat`, in pages.
    pub nr_dirty: u64,
    /// `nr_writeback` of `/proc/vmstat`, in pages.
    pub nr_writeback: u64,
}

/// A file's page-cache state (`cachestat(2)`), in pages of `page_size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageCache {
    /// The page size the counts are in.
    pub page_size: u64,
    /// Pages of the file in the page cache.
    pub cached: u64,
    /// Of which dirty (changed, not yet written back). Never counts tmpfs pages.
    pub dirty: u64,
    /// Of which being written back now.
    pub writeback: u64,
    /// Pages evicted from the cache.
    pub evicted: u64,
    /// Pages evicted recently (would still be in a larger cache).
    pub recently_evicted: u64,
}

/// Errors of the vm module.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An argument was out of range.
    InvalidArgument(String),
    /// Not allowed (writing a knob needs `CAP_SYS_ADMIN` in the initial namespace).
    PermissionDenied(PathBuf),
    /// No file at this path (`file_cache` of a missing file, a knob this kernel lacks).
    NotFound(PathBuf),
    /// A `/proc` file did not have the expected form.
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        what: String,
    },
    /// The kernel lacks something needed (`cachestat(2)` before Linux 6.5).
    Unsupported(String),
    /// A system call failed.
    Io(IoError),
}

crate::error::io_variant!(Error);

crate::error::kind_by_name! {
    Error {
        InvalidArgument, PermissionDenied, NotFound, Parse, Unsupported, Io,
    }
}

impl Error {
    /// `op` failed with `source` on `path`: [`Error::PermissionDenied`] if refused,
    /// [`Error::NotFound`] if there is no such file, else [`Error::Io`].
    fn io(op: &'static str, path: &Path, source: io::Error) -> Error {
        match source.kind() {
            io::ErrorKind::PermissionDenied => Error::PermissionDenied(path.to_path_buf()),
            io::ErrorKind::NotFound => Error::NotFound(path.to_path_buf()),
            _ => Error::Io(IoError::new(op, source).at(Some(path))),
        }
    }

    /// The file the error names, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::PermissionDenied(p) | Error::NotFound(p) | Error::Parse { path: p, .. } => {
                Some(p)
            }
            Error::Io(e) => e.path.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::PermissionDenied(p) => write!(f, "permission denied: {}", p.display()),
            Error::NotFound(p) => write!(f, "no such file: {}", p.display()),
            Error::Parse { path, what } => write!(f, "cannot parse {}: {what}", path.display()),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Io(e) => e.fmt(f),
        }
    }
}

/// A vm result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))
}

/// Reads one knob.
pub fn knob(k: Knob) -> Result<u64> {
    let path = k.path();
    let text = read_to_string(&path)?;
    text.trim().parse().map_err(|_| Error::Parse {
        what: format!("{:?} is not a number", text.trim()),
        path,
    })
}

/// Reads the six knobs.
pub fn knobs() -> Result<Knobs> {
    Ok(Knobs {
        dirty_background_ratio: knob(Knob::DirtyBackgroundRatio)?,
        dirty_background_bytes: knob(Knob::DirtyBackgroundBytes)?,
        dirty_ratio: knob(Knob::DirtyRatio)?,
        dirty_bytes: knob(Knob::DirtyBytes)?,
        dirty_writeback_centisecs: knob(Knob::DirtyWritebackCentisecs)?,
        dirty_expire_centisecs: knob(Knob::DirtyExpireCentisecs)?,
    })
}

/// Sets a knob (needs privilege) and returns its previous value. Note the kernel's coupling:
/// setting a ratio resets its bytes counterpart to 0 and vice versa. Ratios must be 0..=100.
pub fn set_knob(k: Knob, value: u64) -> Result<u64> {
    if matches!(k, Knob::DirtyBackgroundRatio | Knob::DirtyRatio) && value > 100 {
        return Err(Error::InvalidArgument(format!(
            "{} is a percentage; {value} > 100",
            k.name()
        )));
    }
    let old = knob(k)?;
    let path = k.path();
    std::fs::write(&path, format!("{value}\n")).map_err(|e| Error::io("write", &path, e))?;
    Ok(old)
}

/// `key value` pairs of `/proc/vmstat`.
fn vmstat() -> Result<Vec<(String, u64)>> {
    let path = Path::new("/proc/vmstat");
    let text = read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.parse().ok()?))
        })
        .collect())
}

fn field(stat: &[(String, u64)], key: &str) -> Option<u64> {
    stat.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

fn need(stat: &[(String, u64)], key: &str, path: &str) -> Result<u64> {
    field(stat, key).ok_or_else(|| Error::Parse {
        path: PathBuf::from(path),
        what: format!("no {key}"),
    })
}

/// The system page size.
pub fn page_size() -> u64 {
    crate::sys::process::page_size()
}

/// The thresholds for given knobs and dirtyable memory, computed as the kernel does
/// (`domain_dirty_limits`): the bytes knob if non-zero, else `ratio %` of dirtyable memory
/// (with the kernel's rounding); a background threshold at or above the throttle threshold is
/// halved. Returns `(background_bytes, dirty_bytes)`.
pub fn thresholds_for(k: &Knobs, dirtyable_bytes: u64, page_size: u64) -> (u64, u64) {
    let pages = dirtyable_bytes / page_size;
    let limit = |bytes: u64, ratio: u64| -> u64 {
        if bytes != 0 {
            bytes.div_ceil(page_size)
        } else {
            let r = ratio * page_size / 100;
            ((r as u128 * pages as u128) / page_size as u128) as u64
        }
    };
    let dirty = limit(k.dirty_bytes, k.dirty_ratio);
    let mut bg = limit(k.dirty_background_bytes, k.dirty_background_ratio);
    if bg >= dirty {
        bg = dirty / 2;
    }
    (bg * page_size, dirty * page_size)
}

/// `/proc/meminfo` values in bytes.
struct MemInfo(String);

impl MemInfo {
    const PATH: &'static str = "/proc/meminfo";

    fn read() -> Result<MemInfo> {
        read_to_string(Path::new(Self::PATH)).map(MemInfo)
    }

    fn bytes(&self, key: &str) -> Result<u64> {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map(|v| v * 1024)
            .ok_or_else(|| Error::Parse {
                path: PathBuf::from(Self::PATH),
                what: format!("no {key}"),
            })
    }
}

/// The thresholds the knobs imply now (see the module docs for what "dirtyable" counts).
pub fn thresholds() -> Result<Thresholds> {
    let k = knobs()?;
    let m = MemInfo::read()?;
    let stat = vmstat()?;
    let ps = page_size();
    let dirtyable = m.bytes("MemFree")? + m.bytes("Active(file)")? + m.bytes("Inactive(file)")?;
    let (bg, dirty) = thresholds_for(&k, dirtyable, ps);
    Ok(Thresholds {
        dirtyable_bytes: dirtyable,
        background_bytes: bg,
        dirty_bytes: dirty,
        kernel_background_bytes: field(&stat, "nr_dirty_background_threshold").map(|v| v * ps),
        kernel_dirty_bytes: field(&stat, "nr_dirty_threshold").map(|v| v * ps),
    })
}

/// System-wide Dirty and Writeback.
pub fn system() -> Result<SystemDirty> {
    let m = MemInfo::read()?;
    let stat = vmstat()?;
    Ok(SystemDirty {
        dirty_bytes: m.bytes("Dirty")?,
        writeback_bytes: m.bytes("Writeback")?,
        nr_dirty: need(&stat, "nr_dirty", "/proc/vmstat")?,
        nr_writeback: need(&stat, "nr_writeback", "/proc/vmstat")?,
    })
}

/// The page-cache state of the file at `path` (`cachestat(2)`; Linux 6.5+).
pub fn file_cache(path: impl AsRef<Path>) -> Result<PageCache> {
    let path = path.as_ref();
    let f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    cache_stat_fd(f.as_fd()).map_err(|e| match e {
        Error::Io(e) => Error::io(e.op, path, e.source),
        other => other,
    })
}

/// The page-cache state of an open file.
pub(crate) fn cache_stat_fd(fd: BorrowedFd<'_>) -> Result<PageCache> {
    match cachestat::cachestat(fd, 0, 0) {
        Ok(c) => Ok(PageCache {
            page_size: page_size(),
            cached: c.nr_cache,
            dirty: c.nr_dirty,
            writeback: c.nr_writeback,
            evicted: c.nr_evicted,
            recently_evicted: c.nr_recently_evicted,
        }),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Err(Error::Unsupported(
            "cachestat(2) needs Linux 6.5 or later (x86_64 or aarch64)".into(),
        )),
        Err(e) => Err(Error::Io(IoError::new("cachestat", e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_follow_the_kernel_rules() {
        let mut k = Knobs {
            dirty_background_ratio: 10,
            dirty_ratio: 20,
            ..Knobs::default()
        };
        let gib = 1u64 << 30;
        let (bg, d) = thresholds_for(&k, 8 * gib, 4096);
        // 20 % with the kernel's rounding (20 * 4096 / 100 = 819 / 4096 of memory).
        assert_eq!(d, 8 * gib / 4096 * 819 / 4096 * 4096);
        assert!(bg < d && bg > d / 3);
        k.dirty_bytes = 100 << 20;
        k.dirty_background_bytes = 200 << 20;
        let (bg, d) = thresholds_for(&k, 8 * gib, 4096);
        assert_eq!(d, 100 << 20);
        assert_eq!(bg, 50 << 20, "background above the limit is halved");
    }
}
