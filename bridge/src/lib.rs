//! shmio-bridge: shmio queues carried between hosts over [Zenoh](https://zenoh.io).
//!
//! On host A, [`outbound::run`] (`shmio-bridge queue-out`) consumes a local queue and
//! publishes its records; on host B, [`inbound::run_once`] (`shmio-bridge queue-in`) produces
//! them into a local queue of the same geometry. The two bridges exchange the messages of
//! [`wire`] on three key expressions under `PREFIX/NAME/` (`stream`, `info`, `credit/*`) and two
//! liveliness tokens (`out`, `in/*`); [`config::NetOptions`] says how the Zenoh session is
//! reached (explicit endpoints, no scouting by default).
//!
//! Guarantees, in short (docs/bridge.md has the details):
//! - back-pressure queues: B grants A credit for as many records as it can hold; A takes a
//!   record from its queue only with credit, so a full queue on B slows A's producer, and
//!   nothing is lost or repeated while both bridges run (Zenoh's blocking congestion control
//!   keeps the wire lossless);
//! - overwrite queues: nobody waits; records lost on A's ring or between the bridges are
//!   counted on B from the sequence numbers and stream positions that travel with them;
//! - A's producer dying, A's bridge dying, or the link silent for longer than the Zenoh lease:
//!   B's producer ends as a dead producer, so B's consumers drain and then see
//!   `ProducerDead`; A's producer closing makes them see `Closed`; a producer taking over on
//!   A is followed by a take-over on B.
//!
//! The crate depends on Zenoh; shmio's core, its C library and its Python wheel do not.

#![warn(missing_docs)]

pub mod config;
pub mod inbound;
pub mod netns;
pub mod outbound;
pub mod wire;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

/// Errors of a bridge.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A local queue call failed.
    Queue(shmio::queue::Error),
    /// Zenoh refused a configuration or a call.
    Zenoh(String),
    /// A configuration Zenoh refused, or an option out of range.
    Config(String),
    /// A message that is not what the protocol allows.
    Protocol(String),
    /// The local queue exists with another geometry than the upstream one.
    Geometry(String),
    /// A system call failed.
    Io(std::io::Error),
}

impl Error {
    pub(crate) fn zenoh(e: impl fmt::Display) -> Error {
        Error::Zenoh(e.to_string())
    }
}

impl From<shmio::queue::Error> for Error {
    fn from(e: shmio::queue::Error) -> Self {
        Error::Queue(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Queue(e) => write!(f, "queue: {e}"),
            Error::Zenoh(e) => write!(f, "zenoh: {e}"),
            Error::Config(e) => write!(f, "configuration: {e}"),
            Error::Protocol(e) => write!(f, "protocol: {e}"),
            Error::Geometry(e) => write!(f, "geometry: {e}"),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

/// A bridge result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A flag a long-running bridge call polls (every 100 ms at most) and returns when set.
#[derive(Debug, Default)]
pub struct Stop(AtomicBool);

impl Stop {
    /// A flag that is not set.
    pub const fn new() -> Stop {
        Stop(AtomicBool::new(false))
    }
    /// Asks the call to return.
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether it was asked to.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A run id: random enough that two runs of a bridge never share one.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}
