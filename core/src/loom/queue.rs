//! Queue scenarios: overwrite, back-pressure, wake-up (with each pairing of barriers),
//! sleeper-count reset, joining, and the back-pressure producer's sleep, each built from [`crate::queue::ring`]'s functions on the
//! heap [`Ring`](super::Ring).

use super::Ring;
use crate::queue::ring;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use ::loom::sync::{Arc, Condvar, Mutex};
use ::loom::thread;

#[test]
fn overwrite_reader_accepts_only_whole_records_and_counts_loss_exactly() {
    overwrite_reader(None);
}

/// The same with the reader resuming near the head after an overrun (`Resume::Behind(0)`, the
/// next record to be committed; `Newest`; and `Behind(2)`, half a ring in a 4-slot ring and
/// the oldest-held floor of `ring::resume_at` in this 2-slot one): a resume near the head never
/// accepts a torn record and never miscounts the loss.
#[test]
fn overwrite_reader_resuming_near_the_head_counts_loss_exactly() {
    for behind in [0, 1, 2] {
        overwrite_reader(Some(behind));
    }
}

fn overwrite_reader(behind: Option<u64>) {
    ::loom::model(move || {
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
                match r.read_resuming(c, behind) {
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
    ::loom::model(|| {
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
    fn new() -> Arc<Futex> {
        Arc::new(Futex {
            m: Mutex::new(()),
            cv: Condvar::new(),
        })
    }
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

/// `queue::wait::wake_consumers`: after a publish, wake the sleepers if any announced it.
fn wake_consumers(r: &Ring, f: &Futex, light: &mut bool) {
    if ring::must_wake(&r.waiters, light) {
        r.notify.fetch_add(1, Ordering::SeqCst);
        f.wake_all();
    }
}

/// How the two sides of the wake-up handshake get their barriers in a model.
#[derive(Clone, Copy)]
enum Barriers {
    /// The consumer's `membarrier(2)` runs; the producer publishes with a compiler fence.
    Membarrier,
    /// `membarrier` is refused to the consumer; the producer starts light and must switch to
    /// fences when it sees the request.
    Refused,
    /// The producer's process could not register: it fences from the start.
    ProducerFences,
}

#[test]
fn sleeping_consumer_is_never_left_asleep() {
    for barriers in [
        Barriers::Membarrier,
        Barriers::Refused,
        Barriers::ProducerFences,
    ] {
        sleeping_consumer(barriers);
    }
}

fn sleeping_consumer(barriers: Barriers) {
    let heavy = matches!(barriers, Barriers::Membarrier);
    // Two records, so that a refused consumer may sleep again after the producer saw its
    // request (on the first) and publishes the second with a fence. A consumer that loops on
    // short slices spins: bound the preemptions.
    const TOTAL: u64 = 2;
    let mut b = ::loom::model::Builder::new();
    b.preemption_bound = Some(3);
    crate::loom::with_light_barrier(heavy, || {
        b.check(move || {
            let r = Arc::new(Ring::new(2));
            let f = Futex::new();
            // `Producer::claim`.
            let registered = !matches!(barriers, Barriers::ProducerFences);
            let mut light = ring::producer_may_be_light(&r.waiters, registered);
            let p = {
                let (r, f) = (Arc::clone(&r), Arc::clone(&f));
                thread::spawn(move || {
                    for s in 0..TOTAL {
                        r.write(s);
                        wake_consumers(&r, &f, &mut light);
                    }
                })
            };
            // `queue::wait::wait_for_data` for each record, without the spin: its first sleep
            // announced without the heavy barrier, for a slice.
            for s in 0..TOTAL {
                let mut first_sleep = true;
                loop {
                    if ring::committed(&r.head) > s {
                        break;
                    }
                    let a = if std::mem::take(&mut first_sleep) {
                        ring::announce_sleep_light(&r.waiters)
                    } else {
                        ring::announce_sleep(&r.waiters, || heavy)
                    };
                    let n = r.notify.load(Ordering::Acquire);
                    if ring::committed(&r.head) > s {
                        ring::retract_sleep(&r.waiters, a.epoch);
                        break;
                    }
                    if a.exact {
                        f.wait(&r.notify, n);
                    } else {
                        // A timed slice that ran out.
                        thread::yield_now();
                    }
                    ring::retract_sleep(&r.waiters, a.epoch);
                }
                assert_eq!(r.read(s), Ok(Some([s, s])));
            }
            p.join().unwrap();
        })
    });
}

#[test]
fn reset_of_the_sleeper_count_never_strands_a_sleeper() {
    // The producer resets the count (as after wakes that found nobody) and then publishes;
    // a consumer sleeping meanwhile must be woken and must count itself again. The
    // consumer may loop, so bound the preemptions to keep the search finite and quick.
    let mut b = ::loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let r = Arc::new(Ring::new(2));
        let f = Futex::new();
        let p = {
            let (r, f) = (Arc::clone(&r), Arc::clone(&f));
            thread::spawn(move || {
                // `queue::wait::data::repair_sleepers`.
                ring::reset_sleepers(&r.waiters);
                r.notify.fetch_add(1, Ordering::SeqCst);
                f.wake_all();
                r.write(0);
                wake_consumers(&r, &f, &mut true);
            })
        };
        loop {
            if ring::committed(&r.head) > 0 {
                break;
            }
            let e = ring::announce_sleep(&r.waiters, || true).epoch;
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
        assert_eq!(r.waiters.load(Ordering::SeqCst) & 0x3fff_ffff, 0);
    });
}

#[test]
fn joining_backpressure_consumer_never_loses_a_claimed_record() {
    // Two spinning threads make the full state space huge; three preemptions cover the
    // interleavings that matter here (join between the producer's epoch load and write).
    let mut model = ::loom::model::Builder::new();
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
            let (r, claimed, epoch) = (Arc::clone(&r), Arc::clone(&claimed), Arc::clone(&epoch));
            thread::spawn(move || {
                // `Producer::ensure_space` + `wait::space::scan_consumers`.
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
                    // The barrier of `must_wake` after every publish (light: the consumer's
                    // join barrier is `membarrier`).
                    let _ = ring::must_wake(&r.waiters, &mut true);
                }
            })
        };
        // `Consumer::open` with `Start::Oldest`: claim, provisional cursor, epoch, fence,
        // head, start.
        claimed.store(1, Ordering::SeqCst);
        let provisional = r.head.load(Ordering::SeqCst).saturating_sub(r.n());
        ring::release_to(&r.cursor, provisional);
        epoch.fetch_add(1, Ordering::SeqCst);
        assert!(ring::join_barrier(&r.waiters, || true));
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
    // Consumers release behind the light barrier; the producer's heavy barrier makes it a
    // fence (modelled as one), or is refused (modelled as nothing: the producer then sleeps
    // in slices only).
    for heavy in [true, false] {
        sleeping_producer(heavy);
    }
}

fn sleeping_producer(heavy: bool) {
    let mut b = ::loom::model::Builder::new();
    // A producer that loops on short slices spins: bound the preemptions.
    b.preemption_bound = Some(3);
    crate::loom::with_light_barrier(heavy, || {
        b.check(move || {
            let r = Arc::new(Ring::new(2));
            let f = Futex::new();
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
                    // `Consumer::set_cursor` + `queue::wait::wake_producer`, light.
                    ring::release_to(&r.cursor, 1);
                    if ring::producer_sleeping(&flag, true) {
                        space.fetch_add(1, Ordering::SeqCst);
                        f.wake_all();
                    }
                })
            };
            // `queue::wait::wait_for_space` for record 2 in a 2-slot ring, without the spin:
            // its first sleep one slice without the heavy barrier.
            let mut first_sleep = true;
            loop {
                if ring::has_space(2, r.cursor.load(Ordering::Acquire), r.n()) {
                    break;
                }
                ring::announce_space_wait(&flag);
                let exact = !std::mem::take(&mut first_sleep) && heavy;
                let sn = space.load(Ordering::Acquire);
                if ring::has_space(2, r.cursor.load(Ordering::Acquire), r.n()) {
                    flag.store(0, Ordering::Relaxed);
                    break;
                }
                if exact {
                    f.wait(&space, sn);
                } else {
                    // A timed slice that ran out.
                    thread::yield_now();
                }
                flag.store(0, Ordering::Relaxed);
            }
            r.write(2);
            c.join().unwrap();
        })
    });
}
