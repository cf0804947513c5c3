//! The plumbing every exported function shares: the thread-local last error, the panic
//! boundary and the checked conversion of C arguments. The status codes, and which one each
//! core error is reported as, are in `status.rs`.

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

use crate::status::{self, shmio_status, shmio_status::*};

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
        Failure {
            status: status::of(e.kind()),
            detail: Detail::Queue(e),
        }
    }
}

impl From<region::Error> for Failure {
    fn from(e: region::Error) -> Failure {
        Failure {
            status: status::of(e.kind()),
            detail: Detail::Region(e),
        }
    }
}

impl From<vm::Error> for Failure {
    fn from(e: vm::Error) -> Failure {
        Failure {
            status: status::of(e.kind()),
            detail: Detail::Vm(e),
        }
    }
}

impl<T> From<tqueue::Error<T>> for Failure {
    fn from(e: tqueue::Error<T>) -> Failure {
        Failure::new(status::of(e.kind()), e.to_string())
    }
}

impl From<poll::Error> for Failure {
    fn from(e: poll::Error) -> Failure {
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
        Failure::new(status::of(e.kind()), text)
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
