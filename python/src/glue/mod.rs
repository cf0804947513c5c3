//! Glue that every handle class shares: the handle lock, GIL-released waits, argument
//! conversion, buffers obtained from Python objects, the `with` protocol and the handles'
//! `repr()`.

mod buffer;
mod closing;
mod lock;
mod repr;
mod unsigned;
mod wait;

pub(crate) use buffer::PyBuf;
pub(crate) use closing::{closing_context_manager, exit_keeping};
pub(crate) use lock::{HandleGuard, HandleLock, LockError, lock};
pub(crate) use repr::handle_repr;
pub(crate) use unsigned::Unsigned;
pub(crate) use wait::{Blocking, spin_arg, timeout_arg, wait_op, wait_timeout_arg};
