//! The claimed writer: a process declares itself the region's single writer, so that others
//! (the replication bridge, replicas on other hosts) can tell whether it lives. A statement
//! others can check, not a lock: it stops no one from writing.

use shmio_core::region::WriterClaim;

use super::shmio_region;
use crate::ffi::{Out, boundary, handle_ref, write_opt};
use crate::status::shmio_status;

/// Writer state: no process ever claimed the region's writer role.
pub const SHMIO_REGION_WRITER_NONE: u32 = 0;
/// Writer state: the claiming process lives and holds its claim.
pub const SHMIO_REGION_WRITER_ALIVE: u32 = 1;
/// Writer state: the last claim was released, or its process died.
pub const SHMIO_REGION_WRITER_DEAD: u32 = 2;

/// A claim on a region's writer role (opaque), from `shmio_region_claim_writer`. Independent
/// of the region handle it came from: it may be released before or after that handle is
/// closed.
pub struct shmio_region_claim {
    _inner: WriterClaim,
}

/// Claims the region's writer role: `*out` receives the claim, held until
/// `shmio_region_claim_release` or the process's death (however it dies: the kernel drops
/// it). A live process holding it already (this one included, through another claim) ->
/// `SHMIO_ERR_WRITER_EXISTS`, the message naming its pid. Claiming is optional and does not
/// stop anyone else from writing; `shmio_region_writer` and a replica's
/// `shmio_region_replica_stats.writer_state` report it.
///
/// Ownership: on success `*out` receives a claim to release with
/// `shmio_region_claim_release`; on failure `*out` is set to NULL. A child forked while the
/// claim is held shares it (the claim ends when both have released it or exited). Does not
/// block. Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle; `out` NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_claim_writer(
    r: *const shmio_region,
    out: *mut *mut shmio_region_claim,
) -> shmio_status {
    boundary("shmio_region_claim_writer", || {
        let out = Out::new(out, "out")?;
        // SAFETY: valid for writing a pointer by the contract.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: a live handle (contract).
        let r = unsafe { handle_ref(r, "r") }?;
        let claim = r.inner.claim_writer()?;
        let handle = Box::into_raw(Box::new(shmio_region_claim { _inner: claim }));
        // SAFETY: valid for writing a pointer by the contract.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Releases the claim and frees it. NULL is a no-op.
///
/// Ownership: takes the claim; it is invalid afterwards. Does not block. Must not race with
/// another call on the same claim.
///
/// # Safety
/// `claim` must be NULL or a live claim from `shmio_region_claim_writer`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_claim_release(claim: *mut shmio_region_claim) {
    boundary("shmio_region_claim_release", || {
        if !claim.is_null() {
            // SAFETY: a live claim is a `Box` we leaked; the caller gives it back once.
            drop(unsafe { Box::from_raw(claim) });
        }
        Ok(())
    });
}

/// The region's claimed writer: `*state_out` receives `SHMIO_REGION_WRITER_NONE` (no process
/// ever claimed it), `SHMIO_REGION_WRITER_ALIVE` or `SHMIO_REGION_WRITER_DEAD`, and `*pid_out`
/// (if not NULL) the pid that made the last claim, in its PID namespace (0 with `NONE`).
///
/// Ownership: outputs are the caller's. Does not block. Thread-safe.
///
/// # Safety
/// `r` must be NULL or a live handle; `state_out` NULL or valid for writing a `uint32_t`;
/// `pid_out` NULL or valid for writing a `uint32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmio_region_writer(
    r: *const shmio_region,
    state_out: *mut u32,
    pid_out: *mut u32,
) -> shmio_status {
    boundary("shmio_region_writer", || {
        // SAFETY: a live handle (contract).
        let r = unsafe { handle_ref(r, "r") }?;
        let state_out = Out::new(state_out, "state_out")?;
        let pid_out = Out::optional(pid_out);
        let (state, pid) = match r.inner.writer() {
            None => (SHMIO_REGION_WRITER_NONE, 0),
            Some(w) if w.alive => (SHMIO_REGION_WRITER_ALIVE, w.pid),
            Some(w) => (SHMIO_REGION_WRITER_DEAD, w.pid),
        };
        // SAFETY: writable (or NULL where optional) by the contract.
        unsafe {
            state_out.write(state);
            write_opt(pid_out, pid);
        }
        Ok(())
    })
}
