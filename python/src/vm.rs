//! The `vm_*` functions: the kernel's dirty-page knobs, thresholds and counters, and
//! page-cache state.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use shmio::vm;

use crate::errors::{invalid, to_py};

pub(crate) fn page_cache_dict<'py>(
    py: Python<'py>,
    c: &vm::PageCache,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("page_size", c.page_size)?;
    d.set_item("cached", c.cached)?;
    d.set_item("dirty", c.dirty)?;
    d.set_item("writeback", c.writeback)?;
    d.set_item("evicted", c.evicted)?;
    d.set_item("recently_evicted", c.recently_evicted)?;
    Ok(d)
}

fn knob_arg(py: Python<'_>, name: &str) -> PyResult<vm::Knob> {
    vm::Knob::ALL
        .into_iter()
        .find(|k| k.name() == name)
        .ok_or_else(|| {
            let names: Vec<&str> = vm::Knob::ALL.iter().map(|k| k.name()).collect();
            invalid(
                py,
                format!("unknown knob {name:?}; one of {}", names.join(", ")),
            )
        })
}

/// The six `vm.dirty_*` knobs, by name.
#[pyfunction]
pub(crate) fn vm_knobs<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let k = vm::knobs().map_err(|e| to_py(py, e))?;
    let d = PyDict::new(py);
    for knob in vm::Knob::ALL {
        d.set_item(knob.name(), k.get(knob))?;
    }
    Ok(d)
}

/// One knob's value.
#[pyfunction]
pub(crate) fn vm_knob(py: Python<'_>, name: &str) -> PyResult<u64> {
    let k = knob_arg(py, name)?;
    vm::knob(k).map_err(|e| to_py(py, e))
}

/// Sets a knob (needs privilege); returns its previous value.
#[pyfunction]
pub(crate) fn vm_set_knob(py: Python<'_>, name: &str, value: u64) -> PyResult<u64> {
    let k = knob_arg(py, name)?;
    vm::set_knob(k, value).map_err(|e| to_py(py, e))
}

/// The thresholds the knobs imply now, in bytes.
#[pyfunction]
pub(crate) fn vm_thresholds<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let t = vm::thresholds().map_err(|e| to_py(py, e))?;
    let d = PyDict::new(py);
    d.set_item("dirtyable_bytes", t.dirtyable_bytes)?;
    d.set_item("background_bytes", t.background_bytes)?;
    d.set_item("dirty_bytes", t.dirty_bytes)?;
    d.set_item("kernel_background_bytes", t.kernel_background_bytes)?;
    d.set_item("kernel_dirty_bytes", t.kernel_dirty_bytes)?;
    Ok(d)
}

/// System-wide Dirty and Writeback.
#[pyfunction]
pub(crate) fn vm_system<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let s = vm::system().map_err(|e| to_py(py, e))?;
    let d = PyDict::new(py);
    d.set_item("dirty_bytes", s.dirty_bytes)?;
    d.set_item("writeback_bytes", s.writeback_bytes)?;
    d.set_item("nr_dirty", s.nr_dirty)?;
    d.set_item("nr_writeback", s.nr_writeback)?;
    Ok(d)
}

/// The page-cache state of the file at `path` (cachestat(2)).
#[pyfunction]
pub(crate) fn vm_file_cache<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
) -> PyResult<Bound<'py, PyDict>> {
    let c = py
        .detach(|| vm::file_cache(&path))
        .map_err(|e| to_py(py, e))?;
    page_cache_dict(py, &c)
}

/// The system page size.
#[pyfunction]
pub(crate) fn vm_page_size() -> u64 {
    vm::page_size()
}
