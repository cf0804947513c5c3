//! The status codes of the C API and the one table from the core's error kinds to them.

use std::ffi::CStr;

use shmio_core::poll;
use shmio_core::queue;
use shmio_core::region;
use shmio_core::tqueue;
use shmio_core::vm;

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
    /// Poller: the fd is not registered.
    SHMIO_ERR_NOT_REGISTERED = 30,
    /// Poller: a call from a thread that may not make it now: an RT-signal poller waited on
    /// from a thread other than the one that created it, or a call that overlaps another
    /// thread's call on the same poller (see `shmio_poller`).
    SHMIO_ERR_WRONG_THREAD = 31,
}

use shmio_status::*;

impl shmio_status {
    /// Every status, in numeric order (0..=24, then the poller's from 30).
    pub(crate) const ALL: [shmio_status; 27] = [
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
            SHMIO_ERR_NOT_REGISTERED => c"fd not registered",
            SHMIO_ERR_WRONG_THREAD => c"wrong thread for this poller",
        }
    }
}

// The table: every core error kind and the status C reports for it, one function per core
// error type, side by side. The kinds the types share map alike in every one of them:
//
//   kind                       status
//   InvalidArgument            SHMIO_ERR_INVALID_ARGUMENT (also region OutOfBounds, poll
//                              FdTooLarge, tqueue InvalidCapacity: arguments out of range)
//   AlreadyExists              SHMIO_ERR_ALREADY_EXISTS
//   NotFound                   SHMIO_ERR_NOT_FOUND
//   PermissionDenied           SHMIO_ERR_PERMISSION_DENIED
//   Corrupt                    SHMIO_ERR_CORRUPT
//   VersionMismatch            SHMIO_ERR_VERSION_MISMATCH
//   NoSpace                    SHMIO_ERR_NO_SPACE
//   WouldBlock                 SHMIO_ERR_WOULD_BLOCK
//   Timeout                    SHMIO_ERR_TIMEOUT
//   Interrupted                SHMIO_ERR_INTERRUPTED
//   Closed                     SHMIO_ERR_CLOSED
//   Forked                     SHMIO_ERR_FORKED
//   Unsupported                SHMIO_ERR_UNSUPPORTED
//   Io (vm: also Parse)        SHMIO_ERR_IO
//   a variant added later      SHMIO_ERR_IO, with its full message (every core error type but
//                              tqueue's is non-exhaustive)
//
// Where Python is finer than C: it has classes of their own for the poller's RtSigInUse,
// FileInUse and WakerExists, which C reports as SHMIO_ERR_ALREADY_EXISTS (each is "the thing
// asked for is held already": the thread's RT-signal poller, the open file's RT-signal owner, the
// poller's waker; the message tells which, and the status's documentation lists them), and for
// OutOfBounds and FdTooLarge, which C reports as SHMIO_ERR_INVALID_ARGUMENT. No other status
// fits them better, and the numbers are stable, so C keeps these. Python's Forked and
// Cancelled are coarser (InvalidArgument and Closed); C has SHMIO_ERR_FORKED and
// SHMIO_ERR_CANCELLED.

/// The status of a queue error.
pub(crate) fn of_queue(e: &queue::Error) -> shmio_status {
    use queue::Error as E;
    match e {
        E::InvalidArgument(_) => SHMIO_ERR_INVALID_ARGUMENT,
        E::AlreadyExists(_) => SHMIO_ERR_ALREADY_EXISTS,
        E::NotFound(_) => SHMIO_ERR_NOT_FOUND,
        E::PermissionDenied(_) => SHMIO_ERR_PERMISSION_DENIED,
        E::Corrupt(_) => SHMIO_ERR_CORRUPT,
        E::VersionMismatch { .. } => SHMIO_ERR_VERSION_MISMATCH,
        E::NoSpace { .. } => SHMIO_ERR_NO_SPACE,
        E::WouldBlock => SHMIO_ERR_WOULD_BLOCK,
        E::Timeout => SHMIO_ERR_TIMEOUT,
        E::Interrupted => SHMIO_ERR_INTERRUPTED,
        E::ProducerDead => SHMIO_ERR_PRODUCER_DEAD,
        E::Closed => SHMIO_ERR_CLOSED,
        E::ProducerExists { .. } => SHMIO_ERR_PRODUCER_EXISTS,
        E::TooManyConsumers { .. } => SHMIO_ERR_TOO_MANY_CONSUMERS,
        E::TooLarge { .. } => SHMIO_ERR_TOO_LARGE,
        E::BufferTooSmall { .. } => SHMIO_ERR_BUFFER_TOO_SMALL,
        E::Overrun => SHMIO_ERR_OVERRUN,
        E::Unsupported(_) => SHMIO_ERR_UNSUPPORTED,
        E::Cancelled => SHMIO_ERR_CANCELLED,
        E::Forked => SHMIO_ERR_FORKED,
        E::Io { .. } => SHMIO_ERR_IO,
        _ => SHMIO_ERR_IO,
    }
}

/// The status of a region error.
pub(crate) fn of_region(e: &region::Error) -> shmio_status {
    use region::Error as E;
    match e {
        E::InvalidArgument(_) | E::OutOfBounds { .. } => SHMIO_ERR_INVALID_ARGUMENT,
        E::AlreadyExists(_) => SHMIO_ERR_ALREADY_EXISTS,
        E::NotFound(_) => SHMIO_ERR_NOT_FOUND,
        E::PermissionDenied(_) => SHMIO_ERR_PERMISSION_DENIED,
        E::Corrupt(_) => SHMIO_ERR_CORRUPT,
        E::VersionMismatch { .. } => SHMIO_ERR_VERSION_MISMATCH,
        E::NoSpace { .. } => SHMIO_ERR_NO_SPACE,
        E::Torn { .. } => SHMIO_ERR_TORN,
        E::WouldBlock => SHMIO_ERR_WOULD_BLOCK,
        E::Timeout => SHMIO_ERR_TIMEOUT,
        E::Interrupted => SHMIO_ERR_INTERRUPTED,
        E::Unsupported(_) => SHMIO_ERR_UNSUPPORTED,
        E::Io { .. } => SHMIO_ERR_IO,
        _ => SHMIO_ERR_IO,
    }
}

/// The status of a vm error.
pub(crate) fn of_vm(e: &vm::Error) -> shmio_status {
    use vm::Error as E;
    match e {
        E::InvalidArgument(_) => SHMIO_ERR_INVALID_ARGUMENT,
        E::PermissionDenied(_) => SHMIO_ERR_PERMISSION_DENIED,
        E::Unsupported(_) => SHMIO_ERR_UNSUPPORTED,
        E::Parse { .. } | E::Io { .. } => SHMIO_ERR_IO,
        _ => SHMIO_ERR_IO,
    }
}

/// The status of a poller error.
pub(crate) fn of_poll(e: &poll::Error) -> shmio_status {
    use poll::Error as E;
    match e {
        E::InvalidArgument(_) | E::FdTooLarge { .. } => SHMIO_ERR_INVALID_ARGUMENT,
        E::AlreadyRegistered(_) | E::RtSigInUse | E::FileInUse(_) | E::WakerExists { .. } => {
            SHMIO_ERR_ALREADY_EXISTS
        }
        E::NotRegistered(_) => SHMIO_ERR_NOT_REGISTERED,
        E::WrongThread { .. } => SHMIO_ERR_WRONG_THREAD,
        E::Forked => SHMIO_ERR_FORKED,
        E::Interrupted => SHMIO_ERR_INTERRUPTED,
        E::Io { .. } => SHMIO_ERR_IO,
        _ => SHMIO_ERR_IO,
    }
}

/// The status of a hand-off queue error.
pub(crate) fn of_tqueue<T>(e: &tqueue::Error<T>) -> shmio_status {
    use tqueue::Error as E;
    match e {
        E::InvalidCapacity => SHMIO_ERR_INVALID_ARGUMENT,
        E::WouldBlock(_) => SHMIO_ERR_WOULD_BLOCK,
        E::Timeout(_) => SHMIO_ERR_TIMEOUT,
        E::Closed(_) => SHMIO_ERR_CLOSED,
    }
}
