//! The claimed writer: a process that declares itself the region's single writer, so that
//! others (the replication bridge, `replica()` on other hosts) can tell whether it lives.
//!
//! Claiming is optional and does not stop anyone else from writing: it is a statement others
//! can check, not a lock. Liveness is an OFD write lock on one byte past any data
//! (`layout::WRITER_BYTE`), held through a file description of the claim's own: the kernel
//! drops it when the writer dies, however it dies, and no pid is compared (the pid in the
//! header is only reported). A child forked while the claim is held inherits the
//! description, and with it the claim, until it closes it or exits.

use std::fs::File;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;

use super::layout::WRITER_BYTE;
use super::{Error, Region, Result};
use crate::sys::ofd;

/// A claim on a region's writer role ([`Region::claim_writer`]); released when dropped.
#[derive(Debug)]
pub struct WriterClaim {
    /// The description that holds the lock; closing it releases the claim.
    file: File,
}

/// The claimed writer, as [`Region::writer`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Writer {
    /// Its pid when it claimed (in its own PID namespace).
    pub pid: u32,
    /// Whether it still holds the claim.
    pub alive: bool,
}

impl Region {
    /// Claims the writer role (see the module `claim`): [`Error::WriterExists`] if a live
    /// process holds it. Dropping the claim, or the process's death, releases it.
    pub fn claim_writer(&self) -> Result<WriterClaim> {
        // A description of our own, so that the region's handle (and its other users in this
        // process) never holds or releases the claim by accident.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&self.file)
            ))
            .or_else(|_| {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&self.path)
            })
            .map_err(|e| Error::io("open", Some(&self.path), e))?;
        let w = &self.header().writer.0;
        match ofd::try_lock(file.as_fd(), WRITER_BYTE) {
            Ok(true) => {
                w.pid.store(std::process::id(), Ordering::Relaxed);
                w.claims.fetch_add(1, Ordering::Relaxed);
                Ok(WriterClaim { file })
            }
            Ok(false) => Err(Error::WriterExists {
                pid: w.pid.load(Ordering::Relaxed),
            }),
            Err(e) => Err(Error::io("fcntl(F_OFD_SETLK)", Some(&self.path), e)),
        }
    }

    /// The claimed writer, or `None` if no process ever claimed the region.
    pub fn writer(&self) -> Option<Writer> {
        let w = &self.header().writer.0;
        if w.claims.load(Ordering::Relaxed) == 0 {
            return None;
        }
        Some(Writer {
            pid: w.pid.load(Ordering::Relaxed),
            alive: ofd::held_elsewhere(&self.file, WRITER_BYTE),
        })
    }
}

impl WriterClaim {
    /// Releases the claim (as dropping it does).
    pub fn release(self) {
        drop(self.file);
    }
}
