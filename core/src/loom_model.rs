//! Loom model of the ring protocol, on heap memory.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p shmio --lib --release --target-dir target/loom`
//! (see `scripts/test.sh`). Loom explores every interleaving (and every allowed reordering of
//! the atomics) of small scenarios built from the very functions of [`crate::queue::ring`]:
//!
//! - overwrite: a producer laps a two-slot ring while a consumer reads; every record the
//!   consumer accepts is whole, in order, and `received + lost` is exact;
//! - back-pressure: the producer never reuses a slot the consumer has not released, so the
//!   consumer gets every record, whole, in order;
//! - wake-up: the sleep announcement of `queue::wait` and the producer's `publish`/`must_wake`
//!   never lose a wake-up (a lost one is a deadlock, which loom reports);
//! - joining: a back-pressure consumer that joins while the producer runs (its slot holding a
//!   stale cursor from a dead predecessor) never has a record it claimed overwritten;
//! - the region's sequence lock ([`crate::region::seqlock`]): a reader racing two writes never
//!   accepts a mix of them, and one that reads after the writes accepts the last.
//!
//! The payload is modelled as atomic words (the real queue copies bytes with `memcpy`; the
//! stamp check discards what a concurrent rewrite tore).

use crate::queue::ring::{self, SlotState};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// A heap ring: per slot a stamp, a length and two payload words.
pub struct Ring {
    head: AtomicU64,
    stamps: Vec<AtomicU64>,
    lens: Vec<AtomicU32>,
    words: Vec<[AtomicU64; 2]>,
    cursor: AtomicU64,
    waiters: AtomicU64,
    notify: AtomicU32,
}

impl Ring {
    pub fn new(slots: usize) -> Ring {
        Ring {
            head: AtomicU64::new(0),
            stamps: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            lens: (0..slots).map(|_| AtomicU32::new(0)).collect(),
            words: (0..slots)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
            cursor: AtomicU64::new(0),
            waiters: AtomicU64::new(0),
            notify: AtomicU32::new(0),
        }
    }

    fn n(&self) -> u64 {
        self.stamps.len() as u64
    }

    fn idx(&self, seq: u64) -> usize {
        (seq % self.n()) as usize
    }

    /// The producer's steps for record `seq`, as `Producer::reserve_raw` + `commit_raw` do.
    pub fn write(&self, seq: u64) {
        let i = self.idx(seq);
        ring::begin_write(&self.stamps[i], seq);
        self.words[i][0].store(seq, Ordering::Relaxed);
        self.words[i][1].store(seq, Ordering::Relaxed);
        ring::end_write(&self.stamps[i], &self.lens[i], seq, 16);
        ring::publish(&self.head, seq);
    }

    /// One read attempt at `seq`, as `Consumer::next_record` + the copy + `check` do: the
    /// stamp alone says whether the record is there. `Ok(None)`: not written yet.
    /// `Err(next)`: overwritten (or torn); resume at `next`.
    pub fn read(&self, seq: u64) -> Result<Option<[u64; 2]>, u64> {
        let i = self.idx(seq);
        match ring::begin_read(&self.stamps[i], &self.lens[i], seq) {
            SlotState::Ready(len) => {
                assert_eq!(len, 16);
                let w = [
                    self.words[i][0].load(Ordering::Relaxed),
                    self.words[i][1].load(Ordering::Relaxed),
                ];
                if ring::still_valid(&self.stamps[i], seq) {
                    Ok(Some(w))
                } else {
                    Err(seq)
                }
            }
            SlotState::Overwritten { occupant } => {
                Err(ring::resume_after_overrun(seq, occupant, self.n()))
            }
            SlotState::Unexpected(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loom::sync::{Arc, Condvar, Mutex};
    use loom::thread;

    #[test]
    fn overwrite_reader_accepts_only_whole_records_and_counts_loss_exactly() {
        loom::model(|| {
            const TOTAL: u64 = 3;
            let r = Arc::new(Ring::new(2));
            let p = {
                let r = Arc::clone(&r);
                thread::spawn(move || {
                    for s in 0..TOTAL {
                        r.write(s);
                    }
                })
            };
            let (mut c, mut received, mut lost) = (0u64, Vec::new(), 0u64);
            // Read whatever the stamps show, once while the producer runs and again after.
            let mut step = |done: bool| {
                while c < TOTAL {
                    match r.read(c) {
                        Ok(Some(w)) => {
                            assert_eq!(w, [c, c], "torn or foreign record accepted");
                            received.push(c);
                            c += 1;
                        }
                        Ok(None) => {
                            assert!(!done, "record {c} missing after the producer finished");
                            return;
                        }
                        Err(next) if next > c => {
                            lost += next - c;
                            c = next;
                        }
                        Err(_) => {
                            assert!(!done, "record {c} torn after the producer finished");
                            return;
                        }
                    }
                }
            };
            step(false);
            p.join().unwrap();
            step(true);
            assert_eq!(c, TOTAL);
            assert_eq!(received.len() as u64 + lost, TOTAL);
            assert!(received.windows(2).all(|w| w[0] < w[1]));
        });
    }

    #[test]
    fn backpressure_reader_gets_every_record_whole_and_in_order() {
        loom::model(|| {
            const TOTAL: u64 = 3;
            let r = Arc::new(Ring::new(2));
            let p = {
                let r = Arc::clone(&r);
                thread::spawn(move || {
                    for s in 0..TOTAL {
                        while !ring::has_space(s, r.cursor.load(Ordering::SeqCst), r.n()) {
                            thread::yield_now();
                        }
                        r.write(s);
                    }
                })
            };
            for s in 0..TOTAL {
                while ring::committed(&r.head) <= s {
                    thread::yield_now();
                }
                assert_eq!(r.read(s), Ok(Some([s, s])));
                ring::release_to(&r.cursor, s + 1);
            }
            p.join().unwrap();
        });
    }

    /// A futex stand-in: `wait` sleeps only if the word still holds `expected`, checked under
    /// the same lock `wake` takes, which is the atomicity futex(2) gives.
    struct Futex {
        m: Mutex<()>,
        cv: Condvar,
    }

    impl Futex {
        fn wait(&self, word: &AtomicU32, expected: u32) {
            let g = self.m.lock().unwrap();
            if word.load(Ordering::SeqCst) == expected {
                drop(self.cv.wait(g).unwrap());
            }
        }
        fn wake_all(&self) {
            let _g = self.m.lock().unwrap();
            self.cv.notify_all();
        }
    }

    #[test]
    fn sleeping_consumer_is_never_left_asleep() {
        loom::model(|| {
            let r = Arc::new(Ring::new(2));
            let f = Arc::new(Futex {
                m: Mutex::new(()),
                cv: Condvar::new(),
            });
            let p = {
                let (r, f) = (Arc::clone(&r), Arc::clone(&f));
                thread::spawn(move || {
                    r.write(0);
                    // `queue::wait::wake_consumers`.
                    if ring::must_wake(&r.waiters) {
                        r.notify.fetch_add(1, Ordering::SeqCst);
                        f.wake_all();
                    }
                })
            };
            // `queue::wait::wait_for_data` for cursor 0, without the spin.
            loop {
                if ring::committed(&r.head) > 0 {
                    break;
                }
                let e = ring::announce_sleep(&r.waiters);
                let n = r.notify.load(Ordering::Acquire);
                if ring::committed(&r.head) > 0 {
                    ring::retract_sleep(&r.waiters, e);
                    break;
                }
                f.wait(&r.notify, n);
                ring::retract_sleep(&r.waiters, e);
            }
            assert_eq!(r.read(0), Ok(Some([0, 0])));
            p.join().unwrap();
        });
    }

    #[test]
    fn reset_of_the_sleeper_count_never_strands_a_sleeper() {
        // The producer resets the count (as after wakes that found nobody) and then publishes;
        // a consumer sleeping meanwhile must be woken and must count itself again. The
        // consumer may loop, so bound the preemptions to keep the search finite and quick.
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let r = Arc::new(Ring::new(2));
            let f = Arc::new(Futex {
                m: Mutex::new(()),
                cv: Condvar::new(),
            });
            let p = {
                let (r, f) = (Arc::clone(&r), Arc::clone(&f));
                thread::spawn(move || {
                    // `queue::wait::repair_sleepers`.
                    ring::reset_sleepers(&r.waiters);
                    r.notify.fetch_add(1, Ordering::SeqCst);
                    f.wake_all();
                    r.write(0);
                    if ring::must_wake(&r.waiters) {
                        r.notify.fetch_add(1, Ordering::SeqCst);
                        f.wake_all();
                    }
                })
            };
            loop {
                if ring::committed(&r.head) > 0 {
                    break;
                }
                let e = ring::announce_sleep(&r.waiters);
                let n = r.notify.load(Ordering::Acquire);
                if ring::epoch_of(&r.waiters) != e {
                    ring::retract_sleep(&r.waiters, e);
                    continue;
                }
                if ring::committed(&r.head) > 0 {
                    ring::retract_sleep(&r.waiters, e);
                    break;
                }
                f.wait(&r.notify, n);
                ring::retract_sleep(&r.waiters, e);
            }
            assert_eq!(r.read(0), Ok(Some([0, 0])));
            p.join().unwrap();
            assert_eq!(r.waiters.load(Ordering::SeqCst) & 0xffff_ffff, 0);
        });
    }

    #[test]
    fn joining_backpressure_consumer_never_loses_a_claimed_record() {
        // Two spinning threads make the full state space huge; three preemptions cover the
        // interleavings that matter here (join between the producer's epoch load and write).
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            const TOTAL: u64 = 3;
            let r = Arc::new(Ring::new(2));
            // The consumer slot: claimed flag (the robust owner word), and a stale cursor left
            // by a dead predecessor far ahead.
            let claimed = Arc::new(AtomicU32::new(0));
            r.cursor.store(100, Ordering::Relaxed);
            let epoch = Arc::new(AtomicU32::new(0));
            r.write(0);
            let p = {
                let (r, claimed, epoch) =
                    (Arc::clone(&r), Arc::clone(&claimed), Arc::clone(&epoch));
                thread::spawn(move || {
                    // `Producer::ensure_space` + `wait::scan_consumers`.
                    let (mut seen, mut limit) = (0u32, u64::MAX);
                    for s in 1..TOTAL {
                        loop {
                            let e = epoch.load(Ordering::SeqCst);
                            if e != seen || s >= limit {
                                seen = e;
                                limit = if claimed.load(Ordering::SeqCst) != 0 {
                                    r.cursor.load(Ordering::Acquire).saturating_add(r.n())
                                } else {
                                    u64::MAX
                                };
                            }
                            if s < limit {
                                break;
                            }
                            thread::yield_now();
                        }
                        r.write(s);
                        // The fence of `must_wake` after every publish.
                        let _ = ring::must_wake(&r.waiters);
                    }
                })
            };
            // `Consumer::open` with `Start::Oldest`: claim, provisional cursor, epoch, fence,
            // head, start.
            claimed.store(1, Ordering::SeqCst);
            let provisional = r.head.load(Ordering::SeqCst).saturating_sub(r.n());
            ring::release_to(&r.cursor, provisional);
            epoch.fetch_add(1, Ordering::SeqCst);
            ring::join_fence();
            let head = r.head.load(Ordering::Acquire);
            let start = head.saturating_add(1).saturating_sub(r.n());
            ring::release_to(&r.cursor, start);
            for s in start..TOTAL {
                let got = loop {
                    match r.read(s) {
                        Ok(Some(w)) => break w,
                        Ok(None) => thread::yield_now(),
                        Err(_) => {
                            panic!("record {s} was overwritten after the consumer claimed it")
                        }
                    }
                };
                assert_eq!(got, [s, s]);
                ring::release_to(&r.cursor, s + 1);
            }
            p.join().unwrap();
        });
    }

    #[test]
    fn sleeping_backpressure_producer_is_never_left_asleep() {
        loom::model(|| {
            let r = Arc::new(Ring::new(2));
            let f = Arc::new(Futex {
                m: Mutex::new(()),
                cv: Condvar::new(),
            });
            let flag = Arc::new(AtomicU32::new(0));
            let space = Arc::new(AtomicU32::new(0));
            r.write(0);
            r.write(1);
            let c = {
                let (r, f, flag, space) = (
                    Arc::clone(&r),
                    Arc::clone(&f),
                    Arc::clone(&flag),
                    Arc::clone(&space),
                );
                thread::spawn(move || {
                    assert_eq!(r.read(0), Ok(Some([0, 0])));
                    // `Consumer::set_cursor` + `queue::wait::wake_producer`.
                    ring::release_to(&r.cursor, 1);
                    if ring::producer_sleeping(&flag) {
                        space.fetch_add(1, Ordering::SeqCst);
                        f.wake_all();
                    }
                })
            };
            // `queue::wait::wait_for_space` for record 2 in a 2-slot ring, without the spin.
            loop {
                if ring::has_space(2, r.cursor.load(Ordering::Acquire), r.n()) {
                    break;
                }
                ring::announce_space_wait(&flag);
                let sn = space.load(Ordering::Acquire);
                if ring::has_space(2, r.cursor.load(Ordering::Acquire), r.n()) {
                    flag.store(0, Ordering::Relaxed);
                    break;
                }
                f.wait(&space, sn);
                flag.store(0, Ordering::Relaxed);
            }
            r.write(2);
            c.join().unwrap();
        });
    }

    /// Two consistent writes of a two-word value while a reader makes two attempts: every
    /// accepted read is one write's value (both words equal), never a mix, and versions seen
    /// by accepted reads never go backwards; after the writer, a read succeeds with the last.
    #[test]
    fn region_seqlock_never_accepts_a_mix_of_two_writes() {
        use crate::region::seqlock;
        loom::model(|| {
            let seq = Arc::new(AtomicU32::new(0));
            let data = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
            let w = {
                let (seq, data) = (Arc::clone(&seq), Arc::clone(&data));
                thread::spawn(move || {
                    for v in 1..=2u64 {
                        // `Region::write_inner`, the writer lock held (one writer here).
                        let start = seqlock::begin_write(&seq);
                        data[0].store(v, Ordering::Relaxed);
                        data[1].store(v, Ordering::Relaxed);
                        seqlock::end_write(&seq, start);
                    }
                })
            };
            // `Region::read_inner`, without the spin or the lock fallback.
            let read = || -> Option<[u64; 2]> {
                let s1 = seqlock::read_begin(&seq)?;
                let got = [
                    data[0].load(Ordering::Relaxed),
                    data[1].load(Ordering::Relaxed),
                ];
                seqlock::read_valid(&seq, s1).then_some(got)
            };
            let mut last = 0;
            for _ in 0..2 {
                if let Some([a, b]) = read() {
                    assert_eq!(a, b, "a read mixing two writes was accepted");
                    assert!(a >= last, "an accepted read went back in time");
                    last = a;
                }
            }
            w.join().unwrap();
            assert_eq!(read(), Some([2, 2]));
        });
    }
}
