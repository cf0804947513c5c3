//! The context-manager protocol of the handle classes whose `close` releases them.

/// Gives `$class` (a `#[pyclass]` with `fn close(&self, py: Python<'_>) -> PyResult<()>`)
/// `__enter__` (returns the handle) and `__exit__` (closes it; exceptions are not suppressed,
/// nor replaced by a failure of the close: see [`exit_keeping`]), in a `#[pymethods]` block of
/// their own (pyo3's `multiple-pymethods`).
macro_rules! closing_context_manager {
    ($class:ty) => {
        #[pyo3::pymethods]
        impl $class {
            fn __enter__(slf: pyo3::Bound<'_, Self>) -> pyo3::Bound<'_, Self> {
                slf
            }

            #[pyo3(signature = (*args))]
            fn __exit__(
                &self,
                py: pyo3::Python<'_>,
                args: &pyo3::Bound<'_, pyo3::types::PyTuple>,
            ) -> pyo3::PyResult<()> {
                $crate::glue::exit_keeping(py, args, self.close(py))
            }
        }
    };
}

pub(crate) use closing_context_manager;

/// The end of an `__exit__` whose cleanup gave `cleanup`: an exception leaving the `with`
/// block (`args[1]`) is never replaced by the cleanup's failure (a `BufferError` because the
/// traceback keeps a buffer on a view alive, say), which is added to it as a note instead.
pub(crate) fn exit_keeping(
    py: pyo3::Python<'_>,
    args: &pyo3::Bound<'_, pyo3::types::PyTuple>,
    cleanup: pyo3::PyResult<()>,
) -> pyo3::PyResult<()> {
    use pyo3::types::{PyAnyMethods, PyTupleMethods, PyTypeMethods};
    let exc = args.get_item(1).ok().filter(|e| !e.is_none());
    match (cleanup, exc) {
        (Err(e), Some(exc)) => {
            let note = format!(
                "shmio: cleaning up after this exception failed too ({}: {})",
                e.get_type(py).name()?,
                e.value(py)
            );
            exc.call_method1("add_note", (note,))?;
            Ok(())
        }
        (r, _) => r,
    }
}
