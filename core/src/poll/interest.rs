//! [`Interest`]: what readiness to report for an fd.

/// What readiness to report for an fd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Interest {
    /// Report when readable (data, EOF, or a pending connection).
    pub readable: bool,
    /// Report when writable.
    pub writable: bool,
    /// Disable the fd after one event, until `modify`.
    pub oneshot: bool,
}

impl Interest {
    /// Readable only.
    pub const READABLE: Interest = Interest {
        readable: true,
        writable: false,
        oneshot: false,
    };
    /// Writable only.
    pub const WRITABLE: Interest = Interest {
        readable: false,
        writable: true,
        oneshot: false,
    };
    /// Readable and writable.
    pub const BOTH: Interest = Interest {
        readable: true,
        writable: true,
        oneshot: false,
    };

    /// The same interest, one-shot.
    pub fn oneshot(self) -> Interest {
        Interest {
            oneshot: true,
            ..self
        }
    }

    /// `POLLIN`/`POLLOUT` bits for this interest (plus `POLLRDHUP`).
    pub(crate) fn poll_bits(self) -> libc::c_short {
        let mut b = libc::POLLRDHUP;
        if self.readable {
            b |= libc::POLLIN;
        }
        if self.writable {
            b |= libc::POLLOUT;
        }
        b
    }
}
