//! Glue that every handle class shares: the handle lock, GIL-released waits, argument
//! conversion and buffers obtained from Python objects.

mod buffer;
mod lock;
mod wait;

pub(crate) use buffer::PyBuf;
pub(crate) use lock::{HandleGuard, HandleLock, LockError, lock};
pub(crate) use wait::{Blocking, spin_arg, timeout_arg, wait_op};
