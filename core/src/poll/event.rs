//! [`Event`] and [`Events`], the event array [`Poller::wait`](super::Poller::wait) fills.

use super::Interest;

/// One readiness event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Event {
    /// The token given at registration.
    pub token: u64,
    /// Readable (or at end of file).
    pub readable: bool,
    /// Writable.
    pub writable: bool,
    /// Hang-up: the peer closed (`POLLHUP`/`POLLRDHUP`). Not reported by `select`, which
    /// shows a hang-up as readable.
    pub hangup: bool,
    /// An error condition (`POLLERR`); `select` shows it as readable or writable.
    pub error: bool,
}

impl Event {
    /// The event for `revents` from poll(2) under `interest`, or `None` if nothing of interest.
    pub(crate) fn from_poll(
        token: u64,
        revents: libc::c_short,
        interest: Interest,
    ) -> Option<Event> {
        let ev = Event {
            token,
            readable: interest.readable && revents & libc::POLLIN != 0,
            writable: interest.writable && revents & libc::POLLOUT != 0,
            hangup: revents & (libc::POLLHUP | libc::POLLRDHUP) != 0,
            error: revents & (libc::POLLERR | libc::POLLNVAL) != 0,
        };
        (ev.readable || ev.writable || ev.hangup || ev.error).then_some(ev)
    }
}

/// The event array [`Poller::wait`](super::Poller::wait) fills.
#[derive(Debug, Clone)]
pub struct Events {
    list: Vec<Event>,
    cap: usize,
}

impl Events {
    /// Room for `cap` events per wait (at least 1).
    pub fn with_capacity(cap: usize) -> Events {
        let cap = cap.max(1);
        Events {
            list: Vec::with_capacity(cap),
            cap,
        }
    }
    /// The events of the last wait.
    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.list.iter()
    }
    /// The events of the last wait, as a slice.
    pub fn as_slice(&self) -> &[Event] {
        &self.list
    }
    /// How many events the last wait returned.
    pub fn len(&self) -> usize {
        self.list.len()
    }
    /// Whether the last wait returned none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    /// The most events one wait returns.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Empties the array for a new wait.
    pub(crate) fn clear(&mut self) {
        self.list.clear();
    }
    /// Whether the array holds `capacity()` events: a backend keeps the other ready fds for
    /// the next wait.
    pub(crate) fn is_full(&self) -> bool {
        self.list.len() >= self.cap
    }
    /// Adds an event (the backends check [`is_full`](Self::is_full) first).
    pub(crate) fn push(&mut self, ev: Event) {
        debug_assert!(!self.is_full());
        self.list.push(ev);
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}
