//! Integer arguments that must not be negative: a negative one, or one too large, raises
//! `InvalidArgument` (a `ValueError`) with the value, where pyo3's own conversion to an
//! unsigned type raises a bare `OverflowError`.

use pyo3::prelude::*;
use pyo3::types::PyInt;

use crate::errors::invalid;

/// A Python `int` >= 0 that fits in 64 bits (see [`Unsigned::get`] for narrower ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unsigned(pub(crate) u64);

impl<'a, 'py> FromPyObject<'a, 'py> for Unsigned {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let py = obj.py();
        // Only ints (and what `__index__` makes one): a float or a str stays a TypeError.
        let int = obj.call_method0("__index__").map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "an integer is required, not {}",
                obj.get_type()
                    .name()
                    .map_or_else(|_| "?".to_string(), |n| n.to_string())
            ))
        })?;
        let int = int.cast_into::<PyInt>()?;
        if int.lt(0)? {
            return Err(invalid(py, format!("expected an integer >= 0, not {int}")));
        }
        int.extract::<u64>()
            .map(Unsigned)
            .map_err(|_| invalid(py, format!("{int} is too large (at most {})", u64::MAX)))
    }
}

impl Unsigned {
    /// The value as `T`, or `InvalidArgument` naming `what` if it does not fit.
    pub(crate) fn get<T: TryFrom<u64>>(self, py: Python<'_>, what: &str) -> PyResult<T> {
        T::try_from(self.0).map_err(|_| invalid(py, format!("{what} = {} is too large", self.0)))
    }
}
