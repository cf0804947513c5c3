//! `TQueue`: the in-process hand-off queue the shared-memory note plans.
//!
//! A module reads records from the shared-memory queue on one thread and hands them to its
//! processing threads through a `TQueue`, passing only pointers (or any `T`), so a burst of
//! input is buffered without copying the data again. Bounded, multi-producer, multi-consumer,
//! blocking with timeouts, built on a mutex and two condition variables as the note designs.
//!
//! ```
//! use shmio::tqueue::TQueue;
//! use std::sync::Arc;
//! let q = Arc::new(TQueue::new(64).unwrap());
//! let q2 = Arc::clone(&q);
//! let worker = std::thread::spawn(move || {
//!     let mut sum = 0;
//!     while let Ok(v) = q2.pop() { sum += v; }
//!     sum
//! });
//! for i in 1..=10 { q.push(i).unwrap(); }
//! q.close();
//! assert_eq!(worker.join().unwrap(), 55);
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Errors of the hand-off queue. Failed pushes give the item back.
#[derive(Debug, PartialEq, Eq)]
pub enum Error<T> {
    /// `try_` call: full (a push, which gives its item back) or empty (a pop: `None`); the
    /// message says which.
    WouldBlock(Option<T>),
    /// The timeout expired first (full or empty, as for `WouldBlock`).
    Timeout(Option<T>),
    /// The queue is closed (push), or closed and drained (pop).
    Closed(Option<T>),
    /// Capacity 0 asked for.
    InvalidCapacity,
}

impl<T> Error<T> {
    /// The item a failed push gives back.
    pub fn into_inner(self) -> Option<T> {
        match self {
            Error::WouldBlock(t) | Error::Timeout(t) | Error::Closed(t) => t,
            Error::InvalidCapacity => None,
        }
    }

    /// The class of the error ([`ErrorKind`](crate::ErrorKind)), named alike in every module
    /// (`InvalidCapacity` is an `InvalidArgument`).
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        match self {
            Error::WouldBlock(_) => K::WouldBlock,
            Error::Timeout(_) => K::Timeout,
            Error::Closed(_) => K::Closed,
            Error::InvalidCapacity => K::InvalidArgument,
        }
    }
}

impl<T> fmt::Display for Error<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A failed push gives its item back, a failed pop has none: that tells full from empty.
        f.write_str(match self {
            Error::WouldBlock(Some(_)) => "hand-off queue is full",
            Error::WouldBlock(None) => "hand-off queue is empty",
            Error::Timeout(Some(_)) => "timed out: the hand-off queue stayed full",
            Error::Timeout(None) => "timed out: the hand-off queue stayed empty",
            Error::Closed(_) => "hand-off queue is closed",
            Error::InvalidCapacity => "capacity must be at least 1",
        })
    }
}

impl<T: fmt::Debug> std::error::Error for Error<T> {}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
}

/// A bounded blocking MPMC queue. Share it with `Arc`.
pub struct TQueue<T> {
    state: Mutex<State<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
}

impl<T> fmt::Debug for TQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TQueue")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

enum Wait {
    Now,
    Until(Instant),
    Forever,
}

impl Wait {
    fn from(timeout: Option<Duration>) -> Wait {
        match timeout {
            None => Wait::Forever,
            Some(d) if d.is_zero() => Wait::Now,
            // A timeout too large to represent waits for ever.
            Some(d) => Instant::now()
                .checked_add(d)
                .map_or(Wait::Forever, Wait::Until),
        }
    }
}

impl<T> TQueue<T> {
    /// A queue holding at most `capacity` items.
    pub fn new(capacity: usize) -> Result<TQueue<T>, Error<T>> {
        if capacity == 0 {
            return Err(Error::InvalidCapacity);
        }
        Ok(TQueue {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(capacity.min(1 << 16)),
                closed: false,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock cannot leave the deque inconsistent: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most items it holds; `push` waits beyond that.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items queued now (a snapshot: other threads may push or pop meanwhile).
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether no item is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`TQueue::close`] was called: pushes fail, pops drain what is left.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Pushes, waiting while full.
    pub fn push(&self, item: T) -> Result<(), Error<T>> {
        self.push_for(item, None)
    }

    /// Pushes, failing with `WouldBlock` when full.
    pub fn try_push(&self, item: T) -> Result<(), Error<T>> {
        self.push_for(item, Some(Duration::ZERO))
    }

    /// Pushes, waiting at most `timeout` while full (`None`: no limit).
    pub fn push_for(&self, item: T, timeout: Option<Duration>) -> Result<(), Error<T>> {
        let wait = Wait::from(timeout);
        let mut st = self.lock();
        loop {
            if st.closed {
                return Err(Error::Closed(Some(item)));
            }
            if st.items.len() < self.capacity {
                st.items.push_back(item);
                drop(st);
                self.not_empty.notify_one();
                return Ok(());
            }
            st = match wait {
                Wait::Now => return Err(Error::WouldBlock(Some(item))),
                Wait::Forever => self.not_full.wait(st).unwrap_or_else(|p| p.into_inner()),
                Wait::Until(t) => {
                    let now = Instant::now();
                    if now >= t {
                        return Err(Error::Timeout(Some(item)));
                    }
                    self.not_full
                        .wait_timeout(st, t - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }

    /// Pops, waiting while empty. After [`close`](Self::close), pops what is left, then fails
    /// with `Closed`.
    pub fn pop(&self) -> Result<T, Error<T>> {
        self.pop_for(None)
    }

    /// Pops, failing with `WouldBlock` when empty.
    pub fn try_pop(&self) -> Result<T, Error<T>> {
        self.pop_for(Some(Duration::ZERO))
    }

    /// Pops, waiting at most `timeout` while empty.
    pub fn pop_for(&self, timeout: Option<Duration>) -> Result<T, Error<T>> {
        let wait = Wait::from(timeout);
        let mut st = self.lock();
        loop {
            if let Some(item) = st.items.pop_front() {
                drop(st);
                self.not_full.notify_one();
                return Ok(item);
            }
            if st.closed {
                return Err(Error::Closed(None));
            }
            st = match wait {
                Wait::Now => return Err(Error::WouldBlock(None)),
                Wait::Forever => self.not_empty.wait(st).unwrap_or_else(|p| p.into_inner()),
                Wait::Until(t) => {
                    let now = Instant::now();
                    if now >= t {
                        return Err(Error::Timeout(None));
                    }
                    self.not_empty
                        .wait_timeout(st, t - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }

    /// Closes the queue: pushes fail from now on, pops drain what is left and then fail.
    /// Wakes every waiter.
    pub fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn fifo_and_bounds() {
        let q = TQueue::new(2).unwrap();
        q.push(1).unwrap();
        q.push(2).unwrap();
        assert_eq!(q.try_push(3), Err(Error::WouldBlock(Some(3))));
        assert_eq!(q.pop(), Ok(1));
        assert_eq!(q.pop(), Ok(2));
        assert_eq!(q.try_pop(), Err(Error::WouldBlock(None)));
        assert!(matches!(TQueue::<u8>::new(0), Err(Error::InvalidCapacity)));
    }

    #[test]
    fn timeouts_wait_about_that_long() {
        let q = TQueue::<u32>::new(1).unwrap();
        let t = Instant::now();
        assert_eq!(
            q.pop_for(Some(Duration::from_millis(30))),
            Err(Error::Timeout(None))
        );
        assert!(t.elapsed() >= Duration::from_millis(30));
        q.push(1).unwrap();
        assert_eq!(
            q.push_for(2, Some(Duration::from_millis(10))),
            Err(Error::Timeout(Some(2)))
        );
    }

    #[test]
    fn close_drains_then_fails_and_wakes_blocked_poppers() {
        let q = Arc::new(TQueue::<u32>::new(4).unwrap());
        let q2 = Arc::clone(&q);
        let blocked = std::thread::spawn(move || q2.pop());
        std::thread::sleep(Duration::from_millis(20));
        q.close();
        assert_eq!(blocked.join().unwrap(), Err(Error::Closed(None)));
        let q = TQueue::new(4).unwrap();
        q.push(7).unwrap();
        q.close();
        assert_eq!(q.push(8), Err(Error::Closed(Some(8))));
        assert_eq!(q.pop(), Ok(7));
        assert_eq!(q.pop(), Err(Error::Closed(None)));
    }

    #[test]
    fn many_producers_many_consumers_lose_nothing() {
        let q = Arc::new(TQueue::new(8).unwrap());
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let q = Arc::clone(&q);
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        q.push(p * 1_000_000 + i).unwrap();
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let q = Arc::clone(&q);
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Ok(v) = q.pop() {
                        got.push(v);
                    }
                    got
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        q.close();
        let mut all: Vec<u64> = consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        all.sort_unstable();
        let mut want: Vec<u64> = (0..4u64)
            .flat_map(|p| (0..10_000u64).map(move |i| p * 1_000_000 + i))
            .collect();
        want.sort_unstable();
        assert_eq!(all, want);
    }
}
