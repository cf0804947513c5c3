//! Replicas: a region kept identical to a *primary* region on another host by a bridge
//! (`shmio-bridge region-in`), which applies the primary's changes with [`Region::apply`].
//!
//! What a replica offers its readers:
//! - **per-delta atomicity**: a delta (every change of the primary from one version to a
//!   later one) is applied in one write section, so a consistent read on the replica sees the
//!   primary's state at some version, never half a delta;
//! - **bounded staleness, visible**: the replication state is in the region's header, so any
//!   process that opens the region (Rust, C, Python) reads it with [`Region::replica`]: the
//!   primary version applied and seen, how long ago the primary was heard, whether it (and
//!   its claimed writer) is alive, and how long ago the replica was last known to hold the
//!   primary's newest version ([`ReplicaState::staleness`]). [`Region::read_fresh`] refuses
//!   ([`Error::Stale`]) to return data older than a bound;
//! - **single writer**: only the bridge writes a replica; local consistent writes fail with
//!   [`Error::ReadOnly`] until [`Region::promote`] makes it a primary of its own.
//!
//! On a replica the change-tracking table ([`super::track`]) holds the primary's versions:
//! a chunk is applied only if the replica's copy is older than the message's version, so a
//! message applied twice, or a snapshot piece older than a delta already applied, changes
//! nothing (each chunk keeps its newest version).
//!
//! The header's replication fields are written by the bridge and read by anyone: a peer with
//! write access could scribble them (as it could the data). They are only reported and
//! compared, never used as offsets.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::layout::{after_rewrite, hull};
use super::{Error, Region, Result};

pub(crate) const PRIMARY_ALIVE: u32 = 1;
pub(crate) const WRITER_ALIVE: u32 = 2;
pub(crate) const WRITER_KNOWN: u32 = 4;
pub(crate) const CATCHING_UP: u32 = 8;

const ROLE_REPLICA: u32 = 1;

/// A replica's replication state (see [`Region::replica`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicaState {
    /// The primary's incarnation ([`Region::incarnation`] there).
    pub source: u64,
    /// The primary version this replica holds every change up to.
    pub applied: u64,
    /// The newest primary version heard of.
    pub seen: u64,
    /// How long ago the primary (or its bridge) was last heard; `None`: never.
    pub heard: Option<Duration>,
    /// How long ago this replica was last known to hold the primary's newest version: an
    /// upper bound on how old what a reader reads here is (plus the network's one-way delay);
    /// `None`: never.
    pub staleness: Option<Duration>,
    /// Whether the primary's bridge is alive, as its Zenoh liveliness token says.
    pub primary_alive: bool,
    /// Whether the primary region's claimed writer ([`Region::claim_writer`]) is alive;
    /// `None`: no writer claimed it.
    pub writer_alive: Option<bool>,
    /// Whether the bridge is fetching a snapshot (data may be a mix of versions until it is
    /// done; [`Region::read_fresh`] refuses).
    pub catching_up: bool,
}

impl ReplicaState {
    /// Primary versions heard of but not applied yet.
    pub fn lag(&self) -> u64 {
        self.seen.saturating_sub(self.applied)
    }
}

/// What the primary (or its bridge) told a replica's bridge, for [`Region::note_primary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrimaryNews {
    /// The primary's newest version.
    pub version: u64,
    /// Whether the primary's bridge is alive.
    pub alive: bool,
    /// Whether the primary's claimed writer is alive; `None`: none claimed.
    pub writer_alive: Option<bool>,
    /// Whether the bridge is catching up (fetching a snapshot).
    pub catching_up: bool,
}

/// Changes of a primary, for [`Region::apply`]: the bytes of whole chunks as of one primary
/// version (a delta, or a piece of a snapshot), as [`Region::read_changes`] read them there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delta<'a> {
    /// The primary's incarnation; must be the replica's source.
    pub source: u64,
    /// The primary version the bytes belong to.
    pub version: u64,
    /// The ranges `(offset, len)`: chunk aligned (the last chunk of the region may be short),
    /// ascending.
    pub ranges: &'a [(u64, u64)],
    /// The ranges' bytes, one after the other.
    pub data: &'a [u8],
    /// The primary's torn range at that version.
    pub torn: Option<(u64, u64)>,
    /// Once applied, the replica holds every change up to this primary version (a delta that
    /// follows the last one applied, or the end of a snapshot); `None` for a snapshot piece.
    pub applied: Option<u64>,
}

/// What [`Region::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Applied {
    /// The replica's own version after the apply.
    pub version: u64,
    /// Chunks written.
    pub written: u64,
    /// Chunks left alone because the replica's copy was as new or newer.
    pub skipped: u64,
}

impl Region {
    fn replica_line(&self) -> &super::layout::ReplicaLine {
        &self.header().replica.0
    }

    /// Whether this region is a replica (written only through [`Region::apply`]).
    pub fn is_replica(&self) -> bool {
        self.replica_line().role.load(Ordering::Acquire) == ROLE_REPLICA
    }

    /// [`Error::ReadOnly`] on a replica.
    pub(super) fn refuse_if_replica(&self) -> Result<()> {
        if self.is_replica() {
            return Err(Error::ReadOnly(format!(
                "{} is a replica: only its bridge writes it (promote it to write here)",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// The replication state, or `None` if this region is no replica.
    pub fn replica(&self) -> Option<ReplicaState> {
        let l = self.replica_line();
        if l.role.load(Ordering::Acquire) != ROLE_REPLICA {
            return None;
        }
        let now = unix_ns();
        let age = |at: u64| (at != 0).then(|| Duration::from_nanos(now.saturating_sub(at)));
        let flags = l.flags.load(Ordering::Relaxed);
        Some(ReplicaState {
            source: l.source.load(Ordering::Relaxed),
            applied: l.applied.load(Ordering::Relaxed),
            seen: l.seen.load(Ordering::Relaxed),
            heard: age(l.heard_unix_ns.load(Ordering::Relaxed)),
            staleness: age(l.synced_unix_ns.load(Ordering::Relaxed)),
            primary_alive: flags & PRIMARY_ALIVE != 0,
            writer_alive: (flags & WRITER_KNOWN != 0).then_some(flags & WRITER_ALIVE != 0),
            catching_up: flags & CATCHING_UP != 0,
        })
    }

    /// Makes this region a replica of the primary incarnation `source` (the bridge calls it
    /// at start). A region that already replicates `source` keeps its state, so a restarted
    /// bridge goes on from what was applied; otherwise its data is taken as unknown (every
    /// chunk's generation 0, nothing applied) and the bridge fetches a full copy. Local writes
    /// fail with [`Error::ReadOnly`] from now on.
    pub fn become_replica(&self, source: u64) -> Result<ReplicaState> {
        self.section((0, 0), true, |_| {
            let l = self.replica_line();
            let same = l.role.load(Ordering::Relaxed) == ROLE_REPLICA
                && l.source.load(Ordering::Relaxed) == source;
            if !same {
                let (groups, gens) = self.table();
                for g in groups.iter().chain(gens) {
                    g.store(0, Ordering::Relaxed);
                }
                l.source.store(source, Ordering::Relaxed);
                for f in [&l.applied, &l.seen, &l.heard_unix_ns, &l.synced_unix_ns] {
                    f.store(0, Ordering::Relaxed);
                }
                l.flags.store(0, Ordering::Relaxed);
                l.role.store(ROLE_REPLICA, Ordering::Release);
            }
        })?;
        Ok(self
            .replica()
            .expect("the role was just set under the lock"))
    }

    /// Makes a replica a primary of its own (failover): local writes are allowed again, the
    /// region gets a new incarnation (its history departs from the old primary's), and its
    /// version moves past every generation in its table so that change tracking stays exact.
    /// Returns the new version. A region that is no replica is left alone.
    pub fn promote(&self) -> Result<u64> {
        if !self.is_replica() {
            return Ok(self.version());
        }
        self.section((0, 0), true, |_| {
            let (groups, _) = self.table();
            let newest = groups
                .iter()
                .map(|g| g.load(Ordering::Relaxed))
                .max()
                .unwrap_or(0);
            let s = &self.header().seq.0;
            // The section stores one more than the larger of this and its own version.
            s.version.fetch_max(newest, Ordering::Relaxed);
            let c = &self.header().config.0;
            c.incarnation
                .store(crate::shm::file::random_u64(), Ordering::Relaxed);
            self.replica_line().role.store(0, Ordering::Release);
        })
        .map(|((), v)| v)
    }

    /// Applies changes of the primary (see [`Delta`]) in one write section: readers of the
    /// replica see all of it or none. Each chunk is written only if the replica's copy is
    /// older than `d.version`. The torn range follows the primary's. Checks everything the
    /// message says against the region (it came over the network): a message for another
    /// primary, ranges not on chunk boundaries or past the data, or data of another length
    /// than the ranges' are [`Error::InvalidArgument`], and nothing is applied.
    pub fn apply(&self, d: &Delta<'_>) -> Result<Applied> {
        let l = self.replica_line();
        if !self.is_replica() {
            return Err(Error::InvalidArgument(
                "apply: the region is no replica (become_replica first)".into(),
            ));
        }
        if l.source.load(Ordering::Relaxed) != d.source {
            return Err(Error::InvalidArgument(format!(
                "apply: changes of primary {:#x}, this replica follows {:#x}",
                d.source,
                l.source.load(Ordering::Relaxed)
            )));
        }
        let pending = self.check_delta(d)?;
        self.intact(false)?;
        let shift = self.geo.chunk_shift;
        let ((written, skipped), version) = self.section(pending, true, |_| {
            let (mut written, mut skipped, mut at) = (0u64, 0u64, 0usize);
            let s = &self.header().seq.0;
            let mut torn = (
                s.torn_off.load(Ordering::Relaxed),
                s.torn_len.load(Ordering::Relaxed),
            );
            for &(off, len) in d.ranges {
                for c in off >> shift..(off + len).div_ceil(self.geo.chunk()) {
                    let (coff, clen) = self.chunk_range(c);
                    if self.generation(c) < d.version {
                        // SAFETY: the chunk lies inside the data (our geometry); the source
                        // is `clen` bytes of `d.data` at `at` (`check_delta` checked that the
                        // ranges' lengths sum to its length). Readers copy the destination
                        // concurrently (atomically) and discard what they read during the
                        // section.
                        unsafe {
                            crate::racy::store(
                                self.as_ptr().add(coff as usize),
                                d.data.as_ptr().add(at),
                                clen as usize,
                            )
                        };
                        self.stamp(coff, clen, d.version);
                        torn = after_rewrite(torn, (coff, clen));
                        written += 1;
                    } else {
                        skipped += 1;
                    }
                    at += clen as usize;
                }
            }
            if let Some(t) = d.torn {
                torn = hull(torn, t);
            }
            s.torn_off.store(torn.0, Ordering::Relaxed);
            s.torn_len.store(torn.1, Ordering::Relaxed);
            if let Some(a) = d.applied
                && a > l.applied.load(Ordering::Relaxed)
            {
                l.applied.store(a, Ordering::Relaxed);
            }
            (written, skipped)
        })?;
        Ok(Applied {
            version,
            written,
            skipped,
        })
    }

    /// The checks of [`Region::apply`]; returns the hull of the ranges (the pending range).
    fn check_delta(&self, d: &Delta<'_>) -> Result<(u64, u64)> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("apply: {m}")));
        let chunk = self.geo.chunk();
        let (mut total, mut end, mut hull_) = (0u64, 0u64, (0u64, 0u64));
        for &(off, len) in d.ranges {
            let Some(e) = off.checked_add(len).filter(|&e| e <= self.size) else {
                return bad(format!(
                    "range ({off}, {len}) reaches past the {} bytes",
                    self.size
                ));
            };
            if len == 0 || off % chunk != 0 || (e % chunk != 0 && e != self.size) {
                return bad(format!(
                    "range ({off}, {len}) is not whole chunks of {chunk} bytes"
                ));
            }
            if off < end {
                return bad(format!("range ({off}, {len}) is not after the one before"));
            }
            end = e;
            total += len;
            hull_ = hull(hull_, (off, len));
        }
        if total != d.data.len() as u64 {
            return bad(format!(
                "{} bytes of data for ranges of {total} bytes",
                d.data.len()
            ));
        }
        if let Some((off, len)) = d.torn
            && off.checked_add(len).is_none_or(|e| e > self.size)
        {
            return bad(format!(
                "torn range ({off}, {len}) reaches past the {} bytes",
                self.size
            ));
        }
        Ok(hull_)
    }

    /// The bridge heard from the primary: records the version it has, whether it and its
    /// writer live, and the time; if the replica holds that version (and is not catching up),
    /// it is in sync as of now. No lock: these fields are the bridge's alone.
    pub fn note_primary(&self, news: &PrimaryNews) {
        let l = self.replica_line();
        let now = unix_ns();
        l.seen.fetch_max(news.version, Ordering::Relaxed);
        let mut flags = 0;
        if news.alive {
            flags |= PRIMARY_ALIVE;
        }
        if let Some(w) = news.writer_alive {
            flags |= WRITER_KNOWN | if w { WRITER_ALIVE } else { 0 };
        }
        if news.catching_up {
            flags |= CATCHING_UP;
        }
        l.flags.store(flags, Ordering::Relaxed);
        l.heard_unix_ns.store(now, Ordering::Relaxed);
        if !news.catching_up && l.applied.load(Ordering::Relaxed) >= news.version {
            l.synced_unix_ns.store(now, Ordering::Release);
        }
    }

    /// Only the primary's liveness changed (its liveliness token went or came).
    pub fn note_primary_alive(&self, alive: bool) {
        let f = &self.replica_line().flags;
        if alive {
            f.fetch_or(PRIMARY_ALIVE, Ordering::Relaxed);
        } else {
            f.fetch_and(!PRIMARY_ALIVE, Ordering::Relaxed);
        }
    }

    /// [`Error::Stale`] if this region is a replica whose staleness exceeds `max` (or that
    /// was never in sync, or is catching up); `Ok` on a region that is no replica.
    pub fn check_fresh(&self, max: Duration) -> Result<()> {
        let Some(st) = self.replica() else {
            return Ok(());
        };
        match st.staleness {
            Some(age) if age <= max && !st.catching_up => Ok(()),
            staleness => Err(Error::Stale {
                staleness,
                applied: st.applied,
                seen: st.seen,
            }),
        }
    }

    /// [`Region::read`], refused with [`Error::Stale`] when this region is a replica that was
    /// last known in sync with its primary longer than `max` ago (see
    /// [`ReplicaState::staleness`]). On a region that is no replica, a plain read.
    pub fn read_fresh(&self, offset: u64, buf: &mut [u8], max: Duration) -> Result<u64> {
        self.check_fresh(max)?;
        self.read(offset, buf)
    }
}

/// Now, in Unix nanoseconds (`CLOCK_REALTIME`: one clock for every process of the host).
fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
