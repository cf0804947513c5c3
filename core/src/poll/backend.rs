//! [`Backend`]: which kernel mechanism a [`Poller`](super::Poller) uses.

/// Which kernel mechanism a [`Poller`](super::Poller) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The best available: epoll, level-triggered.
    Auto,
    /// `select(2)`.
    Select,
    /// `poll(2)`.
    Poll,
    /// `epoll(7)`, level-triggered.
    Epoll,
    /// `epoll(7)`, edge-triggered (`EPOLLET`).
    EpollEdge,
    /// POSIX real-time signals (`F_SETSIG`), overflow recovered by a `poll()` rescan.
    RtSig,
    /// Real-time signals with signal-per-fd semantics.
    RtSigOneFd,
}

impl Backend {
    /// Every concrete backend (not `Auto`).
    pub const ALL: [Backend; 6] = [
        Backend::Select,
        Backend::Poll,
        Backend::Epoll,
        Backend::EpollEdge,
        Backend::RtSig,
        Backend::RtSigOneFd,
    ];

    /// The name used by the C demos' `-b` option: `select`, `poll`, `epoll`, `epoll-et`,
    /// `rtsig`, `rtsig-onefd` (`auto` for `Auto`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Select => "select",
            Backend::Poll => "poll",
            Backend::Epoll => "epoll",
            Backend::EpollEdge => "epoll-et",
            Backend::RtSig => "rtsig",
            Backend::RtSigOneFd => "rtsig-onefd",
        }
    }

    /// The backend with this [`name`](Backend::name).
    pub fn from_name(name: &str) -> Option<Backend> {
        [Backend::Auto]
            .into_iter()
            .chain(Backend::ALL)
            .find(|b| b.name() == name)
    }

    /// Whether the backend reports an fd only on new readiness (edge-triggered).
    pub fn is_edge_triggered(self) -> bool {
        matches!(self, Backend::EpollEdge | Backend::RtSig)
    }
}
