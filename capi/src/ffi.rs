//! The plumbing every exported function shares: status codes, the thread-local last error,
//! the panic boundary and the checked conversion of C arguments.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_int};
use std::fmt;
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::time::Duration;

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

/// Why a call failed: the status and what to put in the last-error message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: shmio_status,
    detail: Detail,
}

#[derive(Debug)]
enum Detail {
    Queue(queue::Error),
    Region(region::Error),
    Vm(vm::Error),
    Text(Cow<'static, str>),
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Detail::Queue(e) => e.fmt(f),
            Detail::Region(e) => e.fmt(f),
            Detail::Vm(e) => e.fmt(f),
            Detail::Text(t) => f.write_str(t),
        }
    }
}

impl Failure {
    pub(crate) fn new(status: shmio_status, text: impl Into<Cow<'static, str>>) -> Failure {
        Failure {
            status,
            detail: Detail::Text(text.into()),
        }
    }

    pub(crate) fn invalid(text: impl Into<Cow<'static, str>>) -> Failure {
        Failure::new(SHMIO_ERR_INVALID_ARGUMENT, text)
    }

    pub(crate) fn null(what: &'static str) -> Failure {
        Failure::new(SHMIO_ERR_NULL_POINTER, format!("argument `{what}` is NULL"))
    }
}

impl From<queue::Error> for Failure {
    fn from(e: queue::Error) -> Failure {
        use queue::Error as E;
        let status = match &e {
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
            // `queue::Error` is non-exhaustive: a variant added later without a status of its
            // own is reported as an I/O error, with its full message.
            _ => SHMIO_ERR_IO,
        };
        Failure {
            status,
            detail: Detail::Queue(e),
        }
    }
}

impl From<region::Error> for Failure {
    fn from(e: region::Error) -> Failure {
        use region::Error as E;
        let status = match &e {
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
            // Non-exhaustive: a later variant without a status of its own is an I/O error.
            _ => SHMIO_ERR_IO,
        };
        Failure {
            status,
            detail: Detail::Region(e),
        }
    }
}

impl From<vm::Error> for Failure {
    fn from(e: vm::Error) -> Failure {
        use vm::Error as E;
        let status = match &e {
            E::InvalidArgument(_) => SHMIO_ERR_INVALID_ARGUMENT,
            E::PermissionDenied(_) => SHMIO_ERR_PERMISSION_DENIED,
            E::Unsupported(_) => SHMIO_ERR_UNSUPPORTED,
            E::Parse { .. } | E::Io { .. } => SHMIO_ERR_IO,
            _ => SHMIO_ERR_IO,
        };
        Failure {
            status,
            detail: Detail::Vm(e),
        }
    }
}

impl<T> From<tqueue::Error<T>> for Failure {
    fn from(e: tqueue::Error<T>) -> Failure {
        use tqueue::Error as E;
        let status = match &e {
            E::WouldBlock(_) => SHMIO_ERR_WOULD_BLOCK,
            E::Timeout(_) => SHMIO_ERR_TIMEOUT,
            E::Closed(_) => SHMIO_ERR_CLOSED,
            E::InvalidCapacity => SHMIO_ERR_INVALID_ARGUMENT,
        };
        Failure::new(status, e.to_string())
    }
}

impl From<poll::Error> for Failure {
    fn from(e: poll::Error) -> Failure {
        use poll::Error as E;
        let status = match &e {
            E::InvalidArgument(_) | E::FdTooLarge { .. } => SHMIO_ERR_INVALID_ARGUMENT,
            E::AlreadyRegistered(_) | E::RtSigInUse | E::FileInUse(_) | E::WakerExists { .. } => {
                SHMIO_ERR_ALREADY_EXISTS
            }
            E::Forked => SHMIO_ERR_FORKED,
            E::NotRegistered(_) => SHMIO_ERR_NOT_REGISTERED,
            E::WrongThread { .. } => SHMIO_ERR_WRONG_THREAD,
            E::Interrupted => SHMIO_ERR_INTERRUPTED,
            // Non-exhaustive: a later variant without a status of its own is an I/O error.
            _ => SHMIO_ERR_IO,
        };
        let mut text = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            // The chain, unless the message already carries it.
            let t = s.to_string();
            if !text.contains(&t) {
                text = format!("{text}: {t}");
            }
            src = s.source();
        }
        Failure::new(status, text)
    }
}

pub(crate) type Result<T, E = Failure> = std::result::Result<T, E>;

thread_local! {
    /// This thread's last failure message, NUL-terminated, or empty for none. The allocation
    /// is reused, so failing in a loop (e.g. polling until WOULD_BLOCK) does not allocate.
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|b| b.borrow_mut().clear());
}

fn set_last_error(args: fmt::Arguments<'_>) {
    let _ = LAST_ERROR.try_with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        let _ = b.write_fmt(args);
        // C reads up to the first NUL: drop any inner one rather than cut the message.
        b.retain(|&c| c != 0);
        b.push(0);
    });
}

/// The current last-error message (static "" when there is none).
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|b| {
            let b = b.borrow();
            if b.is_empty() {
                c"".as_ptr()
            } else {
                b.as_ptr().cast::<c_char>()
            }
        })
        .unwrap_or(c"".as_ptr())
}

/// The last-error message as Rust text (for tests).
#[cfg(test)]
pub(crate) fn last_error_string() -> String {
    // SAFETY: `last_error_ptr` returns a NUL-terminated string that stays valid until the next
    // change of this thread's last error, and we copy it at once.
    unsafe { CStr::from_ptr(last_error_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// The boundary every status-returning function runs its body in: clears the last error,
/// runs `body`, and turns its failure or panic into a status and a last-error message.
pub(crate) fn boundary(func: &'static str, body: impl FnOnce() -> Result<()>) -> shmio_status {
    clear_last_error();
    let caught = catch_unwind(AssertUnwindSafe(|| match body() {
        Ok(()) => SHMIO_OK,
        Err(f) => {
            set_last_error(format_args!("{func}: {}", f.detail));
            f.status
        }
    }));
    caught.unwrap_or_else(|payload| {
        set_last_error(format_args!("{func}: panic: {}", panic_text(&*payload)));
        SHMIO_ERR_PANIC
    })
}

/// The boundary for functions that return a value and cannot fail (other than by panicking,
/// which yields `fallback` and a last-error message). Does not touch the last error otherwise.
pub(crate) fn boundary_value<T>(func: &'static str, fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        set_last_error(format_args!("{func}: panic: {}", panic_text(&*payload)));
        fallback
    })
}

/// The C timeout convention: `< 0` no limit, `0` do not wait, `> 0` that many milliseconds.
pub(crate) fn timeout(ms: c_int) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// A required pointer argument.
pub(crate) fn non_null<T>(p: *mut T, what: &'static str) -> Result<NonNull<T>> {
    NonNull::new(p).ok_or_else(|| Failure::null(what))
}

/// A required pointer argument, const in C.
pub(crate) fn non_null_const<T>(p: *const T, what: &'static str) -> Result<NonNull<T>> {
    non_null(p.cast_mut(), what)
}

/// A byte count that can describe a Rust slice.
pub(crate) fn byte_len(n: usize, what: &'static str) -> Result<usize> {
    if isize::try_from(n).is_err() {
        return Err(Failure::invalid(format!(
            "`{what}` = {n} exceeds the largest object size"
        )));
    }
    Ok(n)
}

/// A handle argument, borrowed mutably for the call.
///
/// # Safety
/// A non-NULL `p` must come from the matching open/create function, not be closed, and not be
/// in use by another thread during the call.
pub(crate) unsafe fn handle_mut<'a, T>(p: *mut T, what: &'static str) -> Result<&'a mut T> {
    let p = non_null(p, what)?;
    // SAFETY: a live handle is a `Box` allocation of `T`, used by this call alone (contract).
    Ok(unsafe { &mut *p.as_ptr() })
}

/// A handle argument, borrowed shared for the call.
///
/// # Safety
/// As for [`handle_mut`], except that concurrent shared uses are allowed where the type is
/// `Sync`.
pub(crate) unsafe fn handle_ref<'a, T>(p: *const T, what: &'static str) -> Result<&'a T> {
    let p = non_null_const(p, what)?;
    // SAFETY: a live handle is a `Box` allocation of `T`; no `&mut` to it exists during the
    // call (contract).
    Ok(unsafe { &*p.as_ptr() })
}

/// A required C string argument, checked to be UTF-8.
///
/// # Safety
/// A non-NULL `p` must point to a NUL-terminated string that stays unchanged for `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &'static str) -> Result<&'a str> {
    let p = non_null_const(p, what)?;
    // SAFETY: `p` is not NULL and, by this function's contract, NUL-terminated and unchanged
    // for `'a`.
    let s = unsafe { CStr::from_ptr(p.as_ptr()) };
    s.to_str()
        .map_err(|e| Failure::invalid(format!("`{what}` is not valid UTF-8: {e}")))
}

/// An output argument: checked for NULL up front, written at the end with `write`, so that no
/// reference to possibly uninitialised C memory is ever made.
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// A required output.
    pub(crate) fn new(p: *mut T, what: &'static str) -> Result<Out<T>> {
        non_null(p, what).map(Out)
    }

    /// An optional output (NULL: not wanted).
    pub(crate) fn optional(p: *mut T) -> Option<Out<T>> {
        NonNull::new(p).map(Out)
    }

    /// Stores `v`.
    ///
    /// # Safety
    /// The pointer must be valid for a write of a `T` and suitably aligned (the C caller's
    /// obligation for every output argument).
    pub(crate) unsafe fn write(&self, v: T) {
        // SAFETY: non-NULL by construction; valid and aligned by this function's contract.
        // `write` neither reads nor drops the old (possibly uninitialised) value.
        unsafe { self.0.as_ptr().write(v) }
    }
}

/// Stores `v` through an optional output.
///
/// # Safety
/// As for [`Out::write`].
pub(crate) unsafe fn write_opt<T>(out: Option<Out<T>>, v: T) {
    if let Some(o) = out {
        // SAFETY: forwarded contract.
        unsafe { o.write(v) }
    }
}
