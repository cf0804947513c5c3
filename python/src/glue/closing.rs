//! The context-manager protocol of the handle classes whose `close` releases them.

/// Gives `$class` (a `#[pyclass]` with `fn close(&self, py: Python<'_>) -> PyResult<()>`)
/// `__enter__` (returns the handle) and `__exit__` (closes it; exceptions are not
/// suppressed), in a `#[pymethods]` block of their own (pyo3's `multiple-pymethods`).
macro_rules! closing_context_manager {
    ($class:ty) => {
        #[pyo3::pymethods]
        impl $class {
            fn __enter__(slf: pyo3::Bound<'_, Self>) -> pyo3::Bound<'_, Self> {
                slf
            }

            #[pyo3(signature = (*_args))]
            fn __exit__(
                &self,
                py: pyo3::Python<'_>,
                _args: &pyo3::Bound<'_, pyo3::types::PyTuple>,
            ) -> pyo3::PyResult<bool> {
                self.close(py)?;
                Ok(false)
            }
        }
    };
}

pub(crate) use closing_context_manager;
