//! Waiting: timeout and spin arguments, and blocking calls that wait with the GIL released and
//! run Python's signal handlers when interrupted.

use std::time::{Duration, Instant};

use pyo3::prelude::*;

use shmio::queue::Error;
use shmio::region;

use crate::errors::invalid;

/// `None` (no limit) or a number of seconds; negative or NaN is an error, infinity no limit.
pub(crate) fn timeout_arg(py: Python<'_>, t: Option<f64>) -> PyResult<Option<Duration>> {
    timeout_secs(t).map_err(|msg| invalid(py, msg))
}

/// `timeout_arg` for the waits of queues and regions, where zero is a deadline already passed:
/// one attempt, then `Timeout`, as with any timeout that runs out (a wait of one nanosecond).
/// So `recv(timeout=0)` and `recv(timeout=1e-9)` raise the same; the calls that never wait and
/// never raise for it are the `try_` ones.
pub(crate) fn wait_timeout_arg(py: Python<'_>, t: Option<f64>) -> PyResult<Option<Duration>> {
    Ok(timeout_arg(py, t)?.map(|d| d.max(Duration::from_nanos(1))))
}

/// `timeout_arg`'s conversion; the error is the message of its `InvalidArgument`. A timeout
/// too large for a `Duration` is no limit, as infinity is.
fn timeout_secs(t: Option<f64>) -> Result<Option<Duration>, String> {
    match t {
        None => Ok(None),
        Some(s) if s.is_nan() || s < 0.0 => {
            Err(format!("timeout must be None or a number >= 0, not {s}"))
        }
        Some(s) => Ok(Duration::try_from_secs_f64(s).ok()),
    }
}

/// A spin duration in seconds: a finite number >= 0 (above one second is clamped by the core).
pub(crate) fn spin_arg(py: Python<'_>, s: f64) -> PyResult<Duration> {
    spin_secs(s).map_err(|msg| invalid(py, msg))
}

/// `spin_arg`'s conversion; the error is the message of its `InvalidArgument`.
fn spin_secs(s: f64) -> Result<Duration, String> {
    if !s.is_finite() || s < 0.0 {
        return Err(format!(
            "spin must be a finite number of seconds >= 0, not {s}"
        ));
    }
    Ok(Duration::try_from_secs_f64(s.min(1.0)).unwrap_or(Duration::from_secs(1)))
}

/// Runs `op` without waiting, with the GIL held; if it would block and `timeout` allows a wait,
/// runs it again with the GIL released, for the rest of the timeout. A wait that a signal
/// interrupts runs Python's signal handlers (so Ctrl-C raises KeyboardInterrupt) and resumes.
/// The outer result carries Python exceptions from signal handlers, the inner one the core's.
pub(crate) fn wait_op<T, E, F>(
    py: Python<'_>,
    timeout: Option<Duration>,
    mut op: F,
) -> PyResult<Result<T, E>>
where
    T: Send,
    E: Blocking + Send,
    F: FnMut(Option<Duration>) -> Result<T, E> + Send,
{
    match op(Some(Duration::ZERO)) {
        Err(e) if e.would_block() && timeout != Some(Duration::ZERO) => {}
        r => return Ok(r),
    }
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        // A signal that arrived while we held the GIL has already been taken by the process:
        // handle it now, as the wait below would not see it.
        py.check_signals()?;
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match py.detach(|| op(left)) {
            Err(e) if e.interrupted() => py.check_signals()?,
            // The rest of the timeout was zero: the wait ran out.
            Err(e) if e.would_block() => return Ok(Err(E::timeout())),
            r => return Ok(r),
        }
    }
}

/// The error variants `wait_op` needs to tell apart, for each module's error type.
pub(crate) trait Blocking {
    fn would_block(&self) -> bool;
    fn interrupted(&self) -> bool;
    fn timeout() -> Self;
}

impl Blocking for Error {
    fn would_block(&self) -> bool {
        matches!(self, Error::WouldBlock)
    }
    fn interrupted(&self) -> bool {
        matches!(self, Error::Interrupted)
    }
    fn timeout() -> Self {
        Error::Timeout
    }
}

impl Blocking for region::Error {
    fn would_block(&self) -> bool {
        matches!(self, region::Error::WouldBlock)
    }
    fn interrupted(&self) -> bool {
        matches!(self, region::Error::Interrupted)
    }
    fn timeout() -> Self {
        region::Error::Timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_none_zero_and_seconds() {
        assert_eq!(timeout_secs(None), Ok(None));
        assert_eq!(timeout_secs(Some(0.0)), Ok(Some(Duration::ZERO)));
        assert_eq!(timeout_secs(Some(-0.0)), Ok(Some(Duration::ZERO)));
        assert_eq!(
            timeout_secs(Some(1.5)),
            Ok(Some(Duration::from_millis(1500)))
        );
        assert_eq!(
            timeout_secs(Some(20e-6)),
            Ok(Some(Duration::from_micros(20)))
        );
    }

    #[test]
    fn timeout_infinite_or_too_large_is_no_limit() {
        assert_eq!(timeout_secs(Some(f64::INFINITY)), Ok(None));
        assert_eq!(timeout_secs(Some(1e30)), Ok(None));
    }

    #[test]
    fn timeout_negative_or_nan_is_refused() {
        assert_eq!(
            timeout_secs(Some(-1.0)),
            Err("timeout must be None or a number >= 0, not -1".to_string())
        );
        assert_eq!(
            timeout_secs(Some(f64::NAN)),
            Err("timeout must be None or a number >= 0, not NaN".to_string())
        );
        assert!(timeout_secs(Some(f64::NEG_INFINITY)).is_err());
    }

    #[test]
    fn spin_is_clamped_to_one_second() {
        assert_eq!(spin_secs(0.0), Ok(Duration::ZERO));
        assert_eq!(spin_secs(20e-6), Ok(Duration::from_micros(20)));
        assert_eq!(spin_secs(1.0), Ok(Duration::from_secs(1)));
        assert_eq!(spin_secs(3600.0), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn spin_must_be_finite_and_not_negative() {
        for s in [-1e-9, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(spin_secs(s).is_err(), "{s}");
        }
        assert_eq!(
            spin_secs(-2.0),
            Err("spin must be a finite number of seconds >= 0, not -2".to_string())
        );
    }
}
