//! Glue that every handle class shares: the handle lock, GIL-released waits, argument
//! conversion, buffers obtained from Python objects, and the handles' `repr()`.

mod buffer;
mod lock;
mod repr;
mod wait;

pub(crate) use buffer::PyBuf;
pub(crate) use lock::{HandleGuard, HandleLock, LockError, lock};
pub(crate) use repr::handle_repr;
pub(crate) use wait::{Blocking, spin_arg, timeout_arg, wait_op};
