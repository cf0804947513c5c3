//! The start every shmio file format shares: the prefix `magic`, `layout_version`,
//! `header_size` (16 bytes at offset 0), and the 128-byte line each writer group of a header
//! sits alone on.
//!
//! A file is recognised by its magic, which is stored last at creation (a release store), so a
//! reader that sees it sees the whole initialised header; a format changed incompatibly bumps
//! its layout version, which open refuses with a clear error; the header size guards against a
//! file of the same version from a build with a different header.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// One group of fields written by the same party, alone on its 128-byte line (two cache lines:
/// adjacent-line prefetch does not make neighbours share).
#[repr(C, align(128))]
pub(crate) struct Line<T>(pub(crate) T);

/// The first 16 bytes of every shmio file.
#[repr(C)]
pub(crate) struct Prefix {
    pub(crate) magic: AtomicU64,
    pub(crate) layout_version: AtomicU32,
    pub(crate) header_size: AtomicU32,
}

/// A file format: what its prefix must say.
pub(crate) struct Format {
    /// The magic (eight ASCII-ish bytes read as a little-endian u64).
    pub(crate) magic: u64,
    /// The layout version this build reads and writes.
    pub(crate) version: u32,
    /// `size_of` the format's header.
    pub(crate) header_size: u32,
    /// What the file is, for messages ("queue", "region").
    pub(crate) kind: &'static str,
}

/// Why a prefix was refused; each format's module turns it into its own error.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PrefixError {
    /// Not a file of this format (or a damaged one): the message says which field.
    Corrupt(String),
    /// A file of this format, but of another layout version.
    Version { found: u32, expected: u32 },
}

impl Format {
    /// Checks a mapped prefix: magic (acquire, pairing with [`publish`](Self::publish)),
    /// version, header size.
    pub(crate) fn check(&self, p: &Prefix) -> Result<(), PrefixError> {
        let magic = p.magic.load(Ordering::Acquire);
        if magic != self.magic {
            return Err(PrefixError::Corrupt(format!(
                "bad magic {magic:#018x}: not a shmio {} file",
                self.kind
            )));
        }
        let found = p.layout_version.load(Ordering::Relaxed);
        if found != self.version {
            return Err(PrefixError::Version {
                found,
                expected: self.version,
            });
        }
        let size = p.header_size.load(Ordering::Relaxed);
        if size != self.header_size {
            return Err(PrefixError::Corrupt(format!(
                "header size {size} is not {}",
                self.header_size
            )));
        }
        Ok(())
    }

    /// Writes version and header size into a fresh, zeroed prefix (the magic comes last).
    pub(crate) fn write(&self, p: &Prefix) {
        p.layout_version.store(self.version, Ordering::Relaxed);
        p.header_size.store(self.header_size, Ordering::Relaxed);
    }

    /// Stores the magic, after every other field of the header: from here on the file is one
    /// of ours to any reader that sees it (release, pairing with `check`'s acquire).
    pub(crate) fn publish(&self, p: &Prefix) {
        p.magic.store(self.magic, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Format = Format {
        magic: 0x1122_3344_5566_7788,
        version: 3,
        header_size: 512,
        kind: "test",
    };

    #[test]
    fn a_prefix_is_checked_field_by_field() {
        let p = Prefix {
            magic: AtomicU64::new(0),
            layout_version: AtomicU32::new(0),
            header_size: AtomicU32::new(0),
        };
        assert!(
            matches!(F.check(&p), Err(PrefixError::Corrupt(m)) if m.contains("not a shmio test file"))
        );
        F.write(&p);
        F.publish(&p);
        assert_eq!(F.check(&p), Ok(()));
        p.layout_version.store(2, Ordering::Relaxed);
        assert_eq!(
            F.check(&p),
            Err(PrefixError::Version {
                found: 2,
                expected: 3
            })
        );
        p.layout_version.store(3, Ordering::Relaxed);
        p.header_size.store(511, Ordering::Relaxed);
        assert!(
            matches!(F.check(&p), Err(PrefixError::Corrupt(m)) if m.contains("header size 511"))
        );
    }
}
