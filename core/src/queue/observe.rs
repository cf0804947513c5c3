//! A read-only observer of a queue, and a survey of every role's state: what `shmio tail`,
//! `shmio stat` and `shmio gc` use.
//!
//! An [`Observer`] opens the queue file read-only (`O_RDONLY`, a `PROT_READ` mapping) and
//! never joins it: it takes no consumer slot, holds no liveness lock, writes nothing to the
//! file and is never counted as a sleeper. So a back-pressure producer never waits for it (it
//! waits only for consumers that joined), and the producer's wake-ups ignore it. The price is
//! that it must poll the head (with a short backoff, see [`Observer::next_timeout`]) and that
//! a producer faster than it laps it: it then skips to the oldest record still held and counts
//! the records it missed as lost. Each record is copied with a byte-wise atomic copy
//! (`crate::racy`) between two looks at the slot's stamp (a sequence lock, as a consumer of an
//! overwrite-mode queue reads), so a copy the producer overwrote meanwhile is never returned.
//!
//! Nothing read from the file is trusted: the head is checked against the largest valid
//! sequence number, the length of a record against the slot size, and the file's size after
//! every copy (a truncation shows as [`Error::Corrupt`], never as a crash).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::layout::{MAX_SEQ, PRODUCER_BYTE, Shared, consumer_byte};
use super::ring::{self, SlotState};
use super::{Error, ProducerStatus, QueueStats, Result, Start, resolve, stats_of};
use crate::sys::robust::{Owner, owner_of};

/// A record an [`Observer`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// Its sequence number.
    pub seq: u64,
    /// Its length (at most the slot size); `min(len, buf.len())` bytes were copied.
    pub len: usize,
    /// Records skipped just before it because the producer had overwritten them (the observer
    /// was lapped).
    pub lost_before: u64,
}

/// A read-only observer of a queue (see the module docs): reads every record it can without
/// joining, so it never slows the producer.
pub struct Observer {
    shared: Shared,
    next: u64,
    lost: u64,
    received: u64,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("path", &self.shared.path)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// The first poll interval of [`Observer::next_timeout`] once spinning found nothing; it
/// doubles up to [`MAX_POLL`].
const MIN_POLL: Duration = Duration::from_micros(50);
/// The longest poll interval of [`Observer::next_timeout`].
pub const MAX_POLL: Duration = Duration::from_millis(2);

impl Observer {
    /// Opens the queue `name` (a name or a path, as for [`Consumer::open`](super::Consumer))
    /// read-only, starting at `start` ([`Start::Oldest`], [`Start::Newest`]: the next record to
    /// be committed, or [`Start::Sequence`]).
    pub fn open(name: &str, start: Start) -> Result<Observer> {
        let shared = Shared::open_read_only(&resolve(name)?)?;
        let mut o = Observer {
            shared,
            next: 0,
            lost: 0,
            received: 0,
        };
        let head = o.head()?;
        o.next = match start {
            Start::Oldest => o.oldest(head),
            Start::Newest => head,
            Start::Sequence(s) => s.min(head),
        };
        Ok(o)
    }

    fn head(&self) -> Result<u64> {
        let head = ring::committed(&self.shared.header().prod.0.head);
        if head > MAX_SEQ {
            return Err(Error::Corrupt(format!("head {head} is past {MAX_SEQ}")));
        }
        Ok(head)
    }

    /// The oldest record the ring holds that the producer is not rewriting now.
    fn oldest(&self, head: u64) -> u64 {
        (head + 1).saturating_sub(u64::from(self.shared.layout.slot_count))
    }

    /// The next sequence number it reads.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Records it skipped because the producer overwrote them before it read them.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Records it read.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The queue's longest record: a buffer this long receives every record whole.
    pub fn slot_size(&self) -> usize {
        self.shared.layout.slot_size as usize
    }

    /// A snapshot of the queue's state (as [`inspect`](super::inspect)).
    pub fn stats(&self) -> QueueStats {
        stats_of(&self.shared)
    }

    /// Reads the next record into `buf` without waiting: `Ok(None)` if none is committed yet.
    pub fn try_next(&mut self, buf: &mut [u8]) -> Result<Option<Observed>> {
        let n = u64::from(self.shared.layout.slot_count);
        let mut lost_before = 0;
        loop {
            let head = self.head()?;
            if self.next > head {
                // The head moved back: not something a valid queue does. Follow it.
                self.next = head;
            }
            if self.next == head {
                self.lost += lost_before;
                return Ok(None);
            }
            if head - self.next >= n {
                let oldest = self.oldest(head);
                lost_before += oldest - self.next;
                self.next = oldest;
            }
            let seq = self.next;
            let (slot, payload) = self.shared.slot(seq);
            match ring::begin_read(&slot.stamp, &slot.len, seq) {
                SlotState::Ready(len) => {
                    let len = len as usize;
                    let copied = len.min(buf.len());
                    if len <= self.slot_size() {
                        // SAFETY: `payload` starts a slot's payload of `slot_size` bytes inside
                        // the mapping (`Shared::slot`) and `copied <= len <= slot_size`; `buf`
                        // is ours, valid for `copied` bytes, and cannot overlap a read-only
                        // shared mapping. The copy is byte-wise atomic, so racing stores of
                        // the producer are no undefined behaviour; the stamp check below
                        // discards such a copy.
                        unsafe { crate::racy::load(buf.as_mut_ptr(), payload, copied) };
                    }
                    self.shared.intact(false)?;
                    if ring::still_valid(&slot.stamp, seq) {
                        if len > self.slot_size() {
                            return Err(Error::Corrupt(format!(
                                "record {seq} is {len} bytes, longer than the slot size {}",
                                self.slot_size()
                            )));
                        }
                        self.next = seq + 1;
                        self.lost += lost_before;
                        self.received += 1;
                        return Ok(Some(Observed {
                            seq,
                            len,
                            lost_before,
                        }));
                    }
                    // Overwritten during the copy: look again (the next pass skips ahead).
                    lost_before += 1;
                    self.next = seq + 1;
                }
                SlotState::Overwritten { occupant } => {
                    let to = ring::resume_after_overrun(seq, occupant.min(MAX_SEQ), n);
                    lost_before += to - seq;
                    self.next = to;
                }
                SlotState::Unexpected(stamp) => {
                    return Err(Error::Corrupt(format!(
                        "slot of committed record {seq} has stamp {stamp}, older than the record"
                    )));
                }
            }
        }
    }

    /// Reads the next record into `buf`, polling until `timeout` passes (`None`: forever):
    /// `Ok(None)` on timeout. An observer cannot sleep on the queue's futex (it would have to
    /// count itself among the sleepers, a write), so it spins briefly, then polls the head
    /// every 50 µs, doubling to [`MAX_POLL`] while nothing arrives.
    pub fn next_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<Option<Observed>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut pause = MIN_POLL;
        let mut spins = 0u32;
        loop {
            if let Some(r) = self.try_next(buf)? {
                return Ok(Some(r));
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            if spins < 100 {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            let left = deadline.map_or(pause, |d| d.saturating_duration_since(now));
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// The producer role's state, checked against its liveness lock (see [`survey`]).
    pub fn producer(&self) -> ProducerStatus {
        roles_of(&self.shared).producer
    }
}

/// The state of a role (the producer, a consumer slot) as [`survey`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoleState {
    /// Nobody holds it (never taken, or released cleanly).
    Free,
    /// A live process holds it.
    Alive,
    /// Its holder died without releasing it (its robust futex word says so, and nobody holds
    /// its liveness lock).
    Dead,
}

/// One consumer slot that is not free, as [`survey`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRole {
    /// The slot's index.
    pub index: u32,
    /// The pid recorded in the slot (this PID namespace's, when it was written).
    pub pid: u32,
    /// Alive or dead.
    pub state: RoleState,
}

/// Every role of a queue: what [`survey`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    /// The queue's state, as [`inspect`](super::inspect) reports it.
    pub stats: QueueStats,
    /// The producer role, checked against its liveness lock.
    pub producer: ProducerStatus,
    /// Every consumer slot that is alive or was left by a dead consumer (joined or not).
    pub consumers: Vec<SlotRole>,
    /// When the queue was created (Unix nanoseconds, as the file says).
    pub created_unix_ns: u64,
}

/// Opens a queue read-only and reports every role: the producer and every consumer slot that
/// is not free, alive or dead. A role counts as alive when its robust futex word names a live
/// holder or another process holds its liveness lock (so a word scribbled to "dead" never
/// makes a live role look dead); dead when the word says its holder died and nobody holds the
/// lock.
pub fn survey(name: &str) -> Result<Roles> {
    let shared = Shared::open_read_only(&resolve(name)?)?;
    Ok(roles_of(&shared))
}

fn role(shared: &Shared, word: u32, byte: i64) -> RoleState {
    let held = shared.role_held(byte);
    match owner_of(word) {
        Owner::Alive(_) => RoleState::Alive,
        _ if held => RoleState::Alive,
        Owner::Free => RoleState::Free,
        Owner::Died | Owner::Evicting => RoleState::Dead,
    }
}

fn roles_of(shared: &Shared) -> Roles {
    let h = shared.header();
    let pid = h.owner.0.pid.load(Ordering::Relaxed);
    let producer = match role(
        shared,
        h.owner.0.owner.load(Ordering::SeqCst),
        PRODUCER_BYTE,
    ) {
        RoleState::Free => ProducerStatus::None,
        RoleState::Alive => ProducerStatus::Alive { pid },
        RoleState::Dead => ProducerStatus::Dead { pid },
    };
    let consumers = (0..shared.consumer_scan_len())
        .filter_map(|i| {
            let c = shared.consumer(i);
            let state = role(shared, c.owner.load(Ordering::SeqCst), consumer_byte(i));
            (state != RoleState::Free).then(|| SlotRole {
                index: i,
                pid: c.pid.load(Ordering::Relaxed),
                state,
            })
        })
        .collect();
    Roles {
        stats: stats_of(shared),
        producer,
        consumers,
        created_unix_ns: h.config.0.created_unix_ns.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests;
