//! `shmio._shmio`: the Python extension module of shmio.
//!
//! This layer converts arguments and maps errors; all logic (queue, region, vm, poll) lives in
//! the `shmio` crate. Each core module's error enum maps to the `shmio` exception classes
//! through `ErrDesc`.
//! The user-facing API (`shmio.Queue`, the exception classes) is in the pure-Python package
//! beside this module.
//!
//! Concurrency: every handle keeps its core object behind a `HandleLock`: fair (first come,
//! first served), taken without blocking while the GIL is held (contention waits with the GIL
//! released), and aware of its holder, so that a re-entrant use from the holding thread raises
//! `ReentrantCall` instead of deadlocking. Blocking calls first try without waiting; only when
//! they must wait do they release the GIL (`py.detach`), and every interrupted wait (EINTR)
//! gives the lock back and runs Python's signal handlers (Ctrl-C raises KeyboardInterrupt; a
//! handler may close the handle), then takes the lock again (`wait_call`). `close()` does not
//! queue behind a blocked call: a queue handle's cancels the core handle's waits first
//! (`Canceller`), a poller's wakes the wait through its kick socket, and the call gives the lock
//! back and raises `Closed`. The same kick lets `register`, `modify`, `unregister`, `waker` and
//! `stats` run while another thread waits in `poll`, which then waits on with the change.
//! Handles inherited through `fork()` are refused before their lock is touched.
//!
//! Zero copy: `Producer.reserve` and `Consumer.recv_view` hand out memoryviews over the slot
//! itself, through a small exporter object (`_Buffer`) that counts its buffer exports and keeps
//! the handle (hence the mapping) alive. The slot is given back only when no export remains;
//! otherwise the call raises `BufferError`, as `mmap.close()` does.
//!
//! Layout: `lib.rs` registers the module; `errors` maps every core error to its exception
//! class; `glue` holds the handle lock, the GIL-released waits, argument conversion and buffers;
//! one module per capability holds its classes and functions: `queue` (`producer`, `consumer`,
//! `record_view`, `export`), `region` (`replica`, `claim`), `poll`, `vm`, `zc` (`splicer`, `zerocopy`, `cache`).

use pyo3::prelude::*;

mod errors;
mod glue;
mod poll;
mod queue;
mod region;
mod vm;
mod zc;

#[pymodule]
fn _shmio(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<queue::PyProducer>()?;
    m.add_class::<queue::PyConsumer>()?;
    m.add_class::<queue::RecordView>()?;
    m.add_function(wrap_pyfunction!(queue::create, m)?)?;
    m.add_function(wrap_pyfunction!(queue::take_over, m)?)?;
    m.add_function(wrap_pyfunction!(queue::open, m)?)?;
    m.add_function(wrap_pyfunction!(queue::unlink, m)?)?;
    m.add_function(wrap_pyfunction!(queue::stats, m)?)?;
    m.add_class::<region::PyRegion>()?;
    m.add_class::<region::PyWriterClaim>()?;
    m.add_class::<poll::PyPoller>()?;
    m.add_class::<poll::PyWaker>()?;
    m.add_function(wrap_pyfunction!(vm::vm_knobs, m)?)?;
    m.add_function(wrap_pyfunction!(vm::vm_knob, m)?)?;
    m.add_function(wrap_pyfunction!(vm::vm_set_knob, m)?)?;
    m.add_function(wrap_pyfunction!(vm::vm_thresholds, m)?)?;
    m.add_function(wrap_pyfunction!(vm::vm_system, m)?)?;
    m.add_function(wrap_pyfunction!(vm::vm_file_cache, m)?)?;
    m.add_function(wrap_pyfunction!(vm::vm_page_size, m)?)?;
    m.add_class::<zc::PySplicer>()?;
    m.add_class::<zc::PyZeroCopy>()?;
    m.add_class::<zc::PyCache>()?;
    m.add_function(wrap_pyfunction!(zc::zc_sendfile, m)?)?;
    m.add("ZC_MAX_KEY", shmio::zc::MAX_KEY)?;
    m.add("REGION_MAX_SIZE", shmio::region::MAX_SIZE)?;
    m.add("MAX_SLOTS", shmio::queue::MAX_SLOTS)?;
    m.add("MAX_SLOT_SIZE", shmio::queue::MAX_SLOT_SIZE)?;
    m.add("MAX_CONSUMERS", shmio::queue::MAX_CONSUMERS)?;
    // The package version is the workspace's (Cargo.toml), as pyproject.toml and shmio.pc read it.
    m.add("__version__", shmio::VERSION)?;
    // The queue file layout's version; `LAYOUT_VERSION` is its older name, kept.
    m.add("QUEUE_LAYOUT_VERSION", shmio::queue::LAYOUT_VERSION)?;
    m.add("LAYOUT_VERSION", shmio::queue::LAYOUT_VERSION)?;
    m.add("BACKSTOP", shmio::queue::BACKSTOP.as_secs_f64())?;
    Ok(())
}
