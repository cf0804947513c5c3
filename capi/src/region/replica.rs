//! Replicas: the replication state of a region that a bridge keeps identical to a primary on
//! another host, reads that refuse stale data, and promotion (failover). The bridge's own
//! calls (becoming a replica, applying deltas, noting the primary) are not in the C API.

use std::ffi::c_void;
use std::time::Duration;

use shmio_core::ErrorKind;
use shmio_core::region::replica::ReplicaState;
use shmio_core::region::{self, Region};

use super::{
    SHMIO_REGION_WRITER_ALIVE, SHMIO_REGION_WRITER_DEAD, SHMIO_REGION_WRITER_NONE, read_buf,
    shmio_region,
};
use crate::ffi::{Failure, Out, Result, boundary, handle_ref, non_null, write_opt};
use crate::sized::write_sized;
use crate::status::shmio_status;

/// A time the state reports as never (`heard_ms`, `staleness_ms`).
pub const SHMIO_REGION_NEVER: u64 = u64::MAX;

/// A region's replication state (see `shmio_region_replica`). Fill it with
/// `shmio_region_replica_stats_init` first: that sets `struct_size`, which lets later versions
/// add fields at the end.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct shmio_region_replica_stats {
    /// Size of this struct as the caller knows it; set by `shmio_region_replica_stats_init`.
    /// `shmio_region_replica` sets it to the number of bytes it filled in.
    pub struct_size: u32,
    /// 1 if the region is a replica, 0 if not (then every other field is 0).
    pub is_replica: u32,
    /// The primary's incarnation (`shmio_region_incarnation` on the primary).
    pub source: u64,
    /// The primary version this replica holds every change up to.
    pub applied: u64,
    /// The newest primary version heard of.
    pub seen: u64,
    /// Primary versions heard of but not applied yet (`seen - applied`).
    pub lag: u64,
    /// Milliseconds since the primary (or its bridge) was last heard;
    /// `SHMIO_REGION_NEVER` (`UINT64_MAX`): never.
    pub heard_ms: u64,
    /// Milliseconds since this replica was last known to hold the primary's newest version:
    /// an upper bound on how old what a reader reads here is (plus the network's one-way
    /// delay); `SHMIO_REGION_NEVER`: never.
    pub staleness_ms: u64,
    /// 1 if the primary's bridge is alive (as its Zenoh liveliness token says), else 0.
    pub primary_alive: u32,
    /// The primary region's claimed writer: `SHMIO_REGION_WRITER_NONE` (none claimed it),
    /// `SHMIO_REGION_WRITER_ALIVE` or `SHMIO_REGION_WRITER_DEAD`.
    pub writer_state: u32,
    /// 1 while the bridge fetches a snapshot (the data may be a mix of versions until it is
    /// done; fresh reads refuse), else 0.
    pub catching_up: u32,
    /// Always 0 (keeps the struct free of padding).
    pub reserved: u32,
}

const STATS_SIZE: u32 = size_of::<shmio_region_replica_stats>() as u32;

impl shmio_region_replica_stats {
    /// A non-replica's state: all zero but the size.
    const NONE: shmio_region_replica_stats = shmio_region_replica_stats {
        struct_size: STATS_SIZE,
        is_replica: 0,
        source: 0,
        applied: 0,
        seen: 0,
        lag: 0,
        heard_ms: 0,
        staleness_ms: 0,
        primary_alive: 0,
        writer_state: 0,
        catching_up: 0,
        reserved: 0,
    };

    fn of(st: Option<ReplicaState>) -> shmio_region_replica_stats {
        let Some(st) = st else {
            return Self::NONE;
        };
        let ms = |d: Option<Duration>| {
            d.map_or(SHMIO_REGION_NEVER, |d| {
                u64::try_from(d.as_millis()).unwrap_or(SHMIO_REGION_NEVER - 1)
            })
        };
        shmio_region_replica_stats {
            is_replica: 1,
            source: st.source,
            applied: st.applied,
            seen: st.seen,
            lag: st.lag(),
            heard_ms: ms(st.heard),
            staleness_ms: ms(st.staleness),
            primary_alive: u32::from(st.primary_alive),
            writer_state: match st.writer_alive {
                None => SHMIO_REGION_WRITER_NONE,
                Some(true) => SHMIO_REGION_WRITER_ALIVE,
                Some(false) => SHMIO_REGION_WRITER_DEAD,
            },
            catching_up: u32::from(st.catching_up),
            ..Self::NONE
        }
    }
}

/// Fills `*s` with a non-replica's state (all zero) and sets `struct_size`.
///
/// Ownership: `s` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `s` must be NULL (-> `SHMIO_ERR_NULL_POINTER`) or valid for writing a
/// `shmio_region_replica_stats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_replica_stats_init(
    s: *mut shmio_region_replica_stats,
) -> shmio_status {
    boundary("shmio_region_replica_stats_init", || {
        let out = Out::new(s, "s")?;
        // SAFETY: valid for writing by the contract.
        unsafe { out.write(shmio_region_replica_stats::NONE) };
        Ok(())
    })
}

/// The region's replication state, read from its header (any process may ask; the bridge
/// that keeps the replica writes it). On a region that is no replica: `is_replica` 0, every
/// other field 0, and `SHMIO_OK`. `s->struct_size` smaller than this library's first version
/// of the struct -> `SHMIO_ERR_INVALID_ARGUMENT` (fill it with
/// `shmio_region_replica_stats_init`).
///
/// Ownership: `s` is the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle; `s` NULL or a struct filled by
/// `shmio_region_replica_stats_init`, writable for its `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_replica(
    r: *const shmio_region,
    s: *mut shmio_region_replica_stats,
) -> shmio_status {
    boundary("shmio_region_replica", || {
        // SAFETY: a live handle (contract).
        let r = unsafe { handle_ref(r, "r") }?;
        let s = non_null(s, "s")?;
        let v = shmio_region_replica_stats::of(r.inner.replica());
        // SAFETY: writable for its `struct_size` bytes (contract); the struct begins with
        // `struct_size` and holds integers only, without padding (`reserved` fills the tail).
        unsafe { write_sized(s, STATS_SIZE as usize, v, "s") }
    })
}

/// `SHMIO_ERR_STALE` as the C API reports it: the core's message (how long ago the replica
/// was in sync, the versions applied and seen), the bound, and whether it is catching up.
fn stale(r: &shmio_region, e: region::Error, max_ms: u64) -> Failure {
    if e.kind() != ErrorKind::Stale {
        return e.into();
    }
    let catching_up = r.inner.replica().is_some_and(|st| st.catching_up);
    let why = if catching_up {
        ", and it is catching up (fetching a snapshot)"
    } else {
        ""
    };
    Failure::new(
        crate::status::of(ErrorKind::Stale),
        format!("{e}; allowed: {max_ms} ms{why}"),
    )
}

/// `Region::check_fresh` with a bound in milliseconds, its `Stale` described by [`stale`].
fn check_fresh(r: &shmio_region, max_ms: u64) -> Result<()> {
    r.inner
        .check_fresh(Duration::from_millis(max_ms))
        .map_err(|e| stale(r, e, max_ms))
}

/// `SHMIO_OK` if the region is no replica, or a replica last known in sync with its primary
/// at most `max_staleness_ms` ago (and not catching up); otherwise `SHMIO_ERR_STALE`, with a
/// message giving how long ago it was in sync and the versions applied and seen. For readers
/// that read through `shmio_region_data` or check before a series of reads.
///
/// Ownership: none. Does not block. Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_check_fresh(
    r: *const shmio_region,
    max_staleness_ms: u64,
) -> shmio_status {
    boundary("shmio_region_check_fresh", || {
        // SAFETY: a live handle (contract).
        let r = unsafe { handle_ref(r, "r") }?;
        check_fresh(r, max_staleness_ms)
    })
}

/// `shmio_region_read`, refused with `SHMIO_ERR_STALE` (nothing copied) when the region is a
/// replica last known in sync with its primary longer than `max_staleness_ms` ago, never in
/// sync yet, or catching up (see `shmio_region_replica_stats.staleness_ms`). On a region that
/// is no replica it is a plain consistent read. Other errors, ownership and blocking as for
/// `shmio_region_read`.
///
/// # Safety
/// As for `shmio_region_read`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_read_fresh(
    r: *const shmio_region,
    offset: u64,
    buf: *mut c_void,
    len: usize,
    max_staleness_ms: u64,
    version_out: *mut u64,
) -> shmio_status {
    boundary("shmio_region_read_fresh", || {
        // SAFETY: a live handle (contract).
        let r = unsafe { handle_ref(r, "r") }?;
        let version_out = Out::optional(version_out);
        // SAFETY: writable for `len` bytes when not NULL (contract).
        let buf = unsafe { read_buf(r, buf, len) }?;
        check_fresh(r, max_staleness_ms)?;
        let v = r.inner.read_uninit(offset, buf)?;
        // SAFETY: NULL or writable by the contract.
        unsafe { write_opt(version_out, v) };
        Ok(())
    })
}

/// Makes a replica a primary of its own (failover): local writes are allowed again, the
/// region gets a new incarnation, and its version moves past every change it received.
/// `*version_out` (if not NULL) receives the new version. A region that is no replica is left
/// alone (its current version is reported). The old primary's changes are refused from then
/// on: stop the replica's bridge.
///
/// Ownership: none. Blocking: briefly, behind writers. Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle; `version_out` NULL or valid for writing a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_promote(
    r: *const shmio_region,
    version_out: *mut u64,
) -> shmio_status {
    // SAFETY: forwarded contract.
    unsafe { super::change("shmio_region_promote", r, version_out, Region::promote) }
}
