//! [`Waker`]: wakes a [`Poller`] from any thread, through a non-blocking pipe the poller
//! watches.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use super::{Error, Interest, Poller, Result};
use crate::fork::Origin;
use crate::sys;

/// The waker's shared state: a non-blocking pipe.
#[derive(Debug)]
pub(super) struct WakerPipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl WakerPipe {
    /// Empties the pipe after a wait reported the waker; returns the system calls made.
    pub(super) fn drain(&self) -> u64 {
        sys::pipe::drain(self.read.as_fd())
    }
}

/// Wakes a [`Poller`] from any thread: the poller reports an event with the waker's token.
///
/// A poller has one waker. A waker may outlive its poller: once the poller is dropped, a wake
/// does nothing (and succeeds). Neither survives `fork()`: in a child, `wake` returns
/// [`Error::Forked`] (it would wake the parent's poller).
#[derive(Debug, Clone)]
pub struct Waker {
    pipe: Arc<WakerPipe>,
    origin: Origin,
}

impl Waker {
    /// The waker of `poller`, reported with `token` (which must not be used for an fd).
    ///
    /// A poller has one waker: the first call makes it; a later call with the same token
    /// returns another handle to it (like `clone`), one with another token fails with
    /// [`Error::WakerExists`] and changes nothing.
    pub fn new(poller: &mut Poller, token: u64) -> Result<Waker> {
        poller.usable()?;
        if let Some((pipe, t)) = &poller.waker {
            if *t != token {
                return Err(Error::WakerExists { token: *t });
            }
            return Ok(Waker {
                pipe: pipe.clone(),
                origin: poller.origin,
            });
        }
        let (r, w) = sys::pipe::nonblocking().map_err(|e| Error::io("pipe2", None, e))?;
        poller.stats.syscalls += 1;
        let pipe = Arc::new(WakerPipe { read: r, write: w });
        poller.register(pipe.read.as_raw_fd(), token, Interest::READABLE)?;
        poller.waker = Some((pipe.clone(), token));
        Ok(Waker {
            pipe,
            origin: poller.origin,
        })
    }

    /// The process its poller was made in: in a forked child, [`wake`](Self::wake) returns
    /// [`Error::Forked`] (see [`crate::fork`]).
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// Makes the poller's current or next wait return with the waker's event. Thread-safe;
    /// several wakes before a wait give one event. After the poller was dropped: nothing.
    pub fn wake(&self) -> Result<()> {
        if self.origin.is_inherited() {
            return Err(Error::Forked);
        }
        sys::pipe::write_byte(self.pipe.write.as_fd()).map_err(|e| Error::io("write", None, e))
    }
}
