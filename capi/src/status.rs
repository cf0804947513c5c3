//! The status codes of the C API and the one table from the core's error kinds to them.

use std::ffi::CStr;

use shmio_core::ErrorKind;

/// Result of every fallible shmio call. The numbers are stable and never reused.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum shmio_status {
    /// Success.
    SHMIO_OK = 0,
    /// An argument was out of range or malformed (including a string that is not UTF-8).
    SHMIO_ERR_INVALID_ARGUMENT = 1,
    /// A required pointer argument was NULL.
    SHMIO_ERR_NULL_POINTER = 2,
    /// A system call failed.
    SHMIO_ERR_IO = 3,
    /// No queue or region by that name or path.
    SHMIO_ERR_NOT_FOUND = 4,
    /// A file by that name or path exists already. Poller: the fd is registered already, its
    /// open file is in another RT-signal poller, the thread has an RT-signal poller already,
    /// or the poller has a waker with another token.
    SHMIO_ERR_ALREADY_EXISTS = 5,
    /// The file's permissions refuse access (or, for a vm knob, the caller is not privileged).
    SHMIO_ERR_PERMISSION_DENIED = 6,
    /// The file is not a valid queue or region. From `shmio_queue_unlink` and
    /// `shmio_region_unlink`: the file at the path is not that kind of shmio file (another
    /// kind, a text file, a symbolic link, a directory); it was left alone.
    SHMIO_ERR_CORRUPT = 7,
    /// The file was made by an incompatible layout version.
    SHMIO_ERR_VERSION_MISMATCH = 8,
    /// Nothing to read, no space to write, right now (timeout 0).
    SHMIO_ERR_WOULD_BLOCK = 9,
    /// The timeout expired.
    SHMIO_ERR_TIMEOUT = 10,
    /// A signal interrupted a blocking wait (like EINTR); the call may be retried.
    SHMIO_ERR_INTERRUPTED = 11,
    /// The producer died; every record it committed has been delivered.
    SHMIO_ERR_PRODUCER_DEAD = 12,
    /// Closed: the producer closed the queue and every record was delivered, or the hand-off
    /// queue is closed (and, for a pop, drained).
    SHMIO_ERR_CLOSED = 13,
    /// A live producer already holds the queue.
    SHMIO_ERR_PRODUCER_EXISTS = 14,
    /// All consumer slots are held by live consumers.
    SHMIO_ERR_TOO_MANY_CONSUMERS = 15,
    /// A record larger than the queue's slot size.
    SHMIO_ERR_TOO_LARGE = 16,
    /// The buffer cannot hold the next record; nothing was consumed.
    SHMIO_ERR_BUFFER_TOO_SMALL = 17,
    /// Overwrite mode: the record read in place was overwritten meanwhile (it counts as lost).
    SHMIO_ERR_OVERRUN = 18,
    /// The kernel lacks something shmio needs.
    SHMIO_ERR_UNSUPPORTED = 19,
    /// A bug: a Rust panic was caught at the C boundary. The handle involved should be closed.
    SHMIO_ERR_PANIC = 20,
    /// A region read overlaps data whose writer died (or failed) mid-write; it is refused until
    /// that range is rewritten (`shmio_region_torn` tells which range).
    SHMIO_ERR_TORN = 21,
    /// The handle was opened by a parent of this process: handles do not survive `fork()`.
    /// Open a new one in the child; closing the inherited one is harmless and leaves the
    /// parent's handle alone.
    SHMIO_ERR_FORKED = 22,
    /// The wait was cancelled (`shmio_*_cancel`): the handle is being closed by another thread.
    SHMIO_ERR_CANCELLED = 23,
    /// Create: the file system cannot hold the queue or region file (the message gives the
    /// bytes needed and available). Nothing is left behind. Blocks are reserved at creation,
    /// so an object that was created never runs out of space later (no SIGBUS).
    SHMIO_ERR_NO_SPACE = 24,
    /// A replica region last known in sync with its primary longer ago than the reader
    /// allows, never in sync yet, or catching up (`shmio_region_read_fresh`,
    /// `shmio_region_check_fresh`; the message says how stale). Nothing was read.
    SHMIO_ERR_STALE = 25,
    /// A local write (or touch) to a replica region: only its replication bridge writes it
    /// (`shmio_region_promote` makes it writable).
    SHMIO_ERR_READ_ONLY = 26,
    /// `shmio_region_claim_writer`: a live process (the message gives its pid) claimed the
    /// region's writer role already.
    SHMIO_ERR_WRITER_EXISTS = 27,
    /// Poller: the fd is not registered.
    SHMIO_ERR_NOT_REGISTERED = 30,
    /// Poller: a call from a thread that may not make it now: an RT-signal poller waited on
    /// from a thread other than the one that created it, or a call that overlaps another
    /// thread's call on the same poller (see `shmio_poller`).
    SHMIO_ERR_WRONG_THREAD = 31,
}

use shmio_status::*;

impl shmio_status {
    /// Every status, in numeric order (0..=27, then the poller's from 30).
    pub(crate) const ALL: [shmio_status; 30] = [
        SHMIO_OK,
        SHMIO_ERR_INVALID_ARGUMENT,
        SHMIO_ERR_NULL_POINTER,
        SHMIO_ERR_IO,
        SHMIO_ERR_NOT_FOUND,
        SHMIO_ERR_ALREADY_EXISTS,
        SHMIO_ERR_PERMISSION_DENIED,
        SHMIO_ERR_CORRUPT,
        SHMIO_ERR_VERSION_MISMATCH,
        SHMIO_ERR_WOULD_BLOCK,
        SHMIO_ERR_TIMEOUT,
        SHMIO_ERR_INTERRUPTED,
        SHMIO_ERR_PRODUCER_DEAD,
        SHMIO_ERR_CLOSED,
        SHMIO_ERR_PRODUCER_EXISTS,
        SHMIO_ERR_TOO_MANY_CONSUMERS,
        SHMIO_ERR_TOO_LARGE,
        SHMIO_ERR_BUFFER_TOO_SMALL,
        SHMIO_ERR_OVERRUN,
        SHMIO_ERR_UNSUPPORTED,
        SHMIO_ERR_PANIC,
        SHMIO_ERR_TORN,
        SHMIO_ERR_FORKED,
        SHMIO_ERR_CANCELLED,
        SHMIO_ERR_NO_SPACE,
        SHMIO_ERR_STALE,
        SHMIO_ERR_READ_ONLY,
        SHMIO_ERR_WRITER_EXISTS,
        SHMIO_ERR_NOT_REGISTERED,
        SHMIO_ERR_WRONG_THREAD,
    ];

    /// The status with this number, if any.
    pub(crate) fn from_u32(n: u32) -> Option<shmio_status> {
        Self::ALL.iter().copied().find(|s| *s as u32 == n)
    }

    /// A short static description.
    pub(crate) fn description(self) -> &'static CStr {
        match self {
            SHMIO_OK => c"ok",
            SHMIO_ERR_INVALID_ARGUMENT => c"invalid argument",
            SHMIO_ERR_NULL_POINTER => c"null pointer",
            SHMIO_ERR_IO => c"I/O error",
            SHMIO_ERR_NOT_FOUND => c"not found",
            SHMIO_ERR_ALREADY_EXISTS => c"already exists",
            SHMIO_ERR_PERMISSION_DENIED => c"permission denied",
            SHMIO_ERR_CORRUPT => c"corrupt file",
            SHMIO_ERR_VERSION_MISMATCH => c"file layout version mismatch",
            SHMIO_ERR_WOULD_BLOCK => c"operation would block",
            SHMIO_ERR_TIMEOUT => c"timed out",
            SHMIO_ERR_INTERRUPTED => c"interrupted by a signal",
            SHMIO_ERR_PRODUCER_DEAD => c"producer died",
            SHMIO_ERR_CLOSED => c"closed",
            SHMIO_ERR_PRODUCER_EXISTS => c"a live producer exists",
            SHMIO_ERR_TOO_MANY_CONSUMERS => c"too many consumers",
            SHMIO_ERR_TOO_LARGE => c"record too large",
            SHMIO_ERR_BUFFER_TOO_SMALL => c"buffer too small",
            SHMIO_ERR_OVERRUN => c"record overwritten while read",
            SHMIO_ERR_UNSUPPORTED => c"unsupported",
            SHMIO_ERR_PANIC => c"internal panic",
            SHMIO_ERR_TORN => c"torn data: its writer died mid-write",
            SHMIO_ERR_FORKED => c"handle inherited through fork()",
            SHMIO_ERR_CANCELLED => c"wait cancelled",
            SHMIO_ERR_NO_SPACE => c"no space on the file system",
            SHMIO_ERR_STALE => c"stale replica: out of sync with its primary too long",
            SHMIO_ERR_READ_ONLY => c"read-only: a replica is written by its bridge only",
            SHMIO_ERR_WRITER_EXISTS => c"a live writer claimed the region already",
            SHMIO_ERR_NOT_REGISTERED => c"fd not registered",
            SHMIO_ERR_WRONG_THREAD => c"wrong thread for this poller",
        }
    }
}

/// The table: the status C reports for each kind of core error ([`ErrorKind`], which every
/// core error type reports alike: `e.kind()`).
///
/// Where Python is finer than C: it has classes of their own for the poller's `RtSigInUse`,
/// `FileInUse`, `WakerExists` and `AlreadyRegistered`, which C reports as
/// `SHMIO_ERR_ALREADY_EXISTS` (each is "the thing asked for is held already": the thread's
/// RT-signal poller, the open file's RT-signal owner, the poller's waker, the fd's registration;
/// the message tells which, and the status's documentation lists them), and for `OutOfBounds`
/// and `FdTooLarge`, which C reports as `SHMIO_ERR_INVALID_ARGUMENT`. No other status fits them
/// better, and the numbers are stable, so C keeps these. Python's `Forked` and `Cancelled` are
/// coarser (`InvalidArgument` and `Closed`); C has `SHMIO_ERR_FORKED` and
/// `SHMIO_ERR_CANCELLED`. vm's `Parse` (a `/proc` file of an unexpected form) is
/// `SHMIO_ERR_IO`, as is a kind added later (with its full message: `ErrorKind` is
/// non-exhaustive).
pub(crate) fn of(kind: ErrorKind) -> shmio_status {
    use ErrorKind as K;
    match kind {
        K::InvalidArgument | K::OutOfBounds | K::FdTooLarge => SHMIO_ERR_INVALID_ARGUMENT,
        K::AlreadyExists | K::AlreadyRegistered | K::RtSigInUse | K::FileInUse | K::WakerExists => {
            SHMIO_ERR_ALREADY_EXISTS
        }
        K::NotFound => SHMIO_ERR_NOT_FOUND,
        K::NotRegistered => SHMIO_ERR_NOT_REGISTERED,
        K::PermissionDenied => SHMIO_ERR_PERMISSION_DENIED,
        K::Corrupt => SHMIO_ERR_CORRUPT,
        K::VersionMismatch => SHMIO_ERR_VERSION_MISMATCH,
        K::NoSpace => SHMIO_ERR_NO_SPACE,
        K::WouldBlock => SHMIO_ERR_WOULD_BLOCK,
        K::Timeout => SHMIO_ERR_TIMEOUT,
        K::Interrupted => SHMIO_ERR_INTERRUPTED,
        K::ProducerDead => SHMIO_ERR_PRODUCER_DEAD,
        K::Closed => SHMIO_ERR_CLOSED,
        K::ProducerExists => SHMIO_ERR_PRODUCER_EXISTS,
        K::TooManyConsumers => SHMIO_ERR_TOO_MANY_CONSUMERS,
        K::TooLarge => SHMIO_ERR_TOO_LARGE,
        K::BufferTooSmall => SHMIO_ERR_BUFFER_TOO_SMALL,
        K::Overrun => SHMIO_ERR_OVERRUN,
        K::Torn => SHMIO_ERR_TORN,
        K::Stale => SHMIO_ERR_STALE,
        K::ReadOnly => SHMIO_ERR_READ_ONLY,
        K::WriterExists => SHMIO_ERR_WRITER_EXISTS,
        K::Unsupported => SHMIO_ERR_UNSUPPORTED,
        K::Cancelled => SHMIO_ERR_CANCELLED,
        K::Forked => SHMIO_ERR_FORKED,
        K::WrongThread => SHMIO_ERR_WRONG_THREAD,
        K::Parse | K::Io => SHMIO_ERR_IO,
        _ => SHMIO_ERR_IO,
    }
}
