//! Live mutation: a producer and a consumer (or a region's writer, reader and waiter) run in
//! threads of this process while the main thread scribbles the file they have mapped, through
//! its descriptor (`pwrite`), for a few milliseconds. The file never shrinks meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shmio::queue::{Consumer, Producer, Start};
use shmio::region::{Region, RegionOptions};

use crate::Case;
use crate::queue::QTemplate;
use crate::region::{self, RTemplate};
use crate::util::{CaseFile, FUTEX_TID_MASK, Rng, Tally, qkind, rkind};

fn tq<T>(t: &mut Tally, what: &str, r: &Result<T, shmio::queue::Error>) {
    let k = match r {
        Ok(_) => "Ok".into(),
        Err(e) => qkind(e),
    };
    t.add(&format!("q.live.{what}.{k}"), 1);
}

fn tr<T>(t: &mut Tally, what: &str, r: &Result<T, shmio::region::Error>) {
    let k = match r {
        Ok(_) => "Ok".into(),
        Err(e) => rkind(e),
    };
    t.add(&format!("r.live.{what}.{k}"), 1);
}

/// Runs `mutate` on this thread for `dur` while the other threads run, then tells them to
/// stop. Yields now and then, so that all of them get the CPU on a small machine.
fn scribble_for(dur: Duration, stop: &AtomicBool, mut mutate: impl FnMut()) {
    let t0 = Instant::now();
    let mut n = 0u32;
    while t0.elapsed() < dur {
        mutate();
        n += 1;
        if n & 15 == 0 {
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::SeqCst);
}

pub fn queue(f: &mut CaseFile, t: &QTemplate, c: &mut Case<'_>) {
    c.note(|| format!("live queue, template: {}", t.what));
    f.reset(&t.bytes, t.slots_offset)
        .expect("reset the case file");
    f.mark_all();
    c.set_alloc_limit(t.total);
    let p = Producer::open(&f.name);
    c.q("live.open", &p);
    let k = Consumer::open(&f.name, Start::Oldest);
    c.q("live.open", &k);
    let (Ok(mut p), Ok(mut k)) = (p, k) else {
        return;
    };
    let dur = Duration::from_micros(500 + c.rng.below(3000));
    let stop = AtomicBool::new(false);
    let (mut prng, mut krng) = (Rng::new(c.rng.next_u64()), Rng::new(c.rng.next_u64()));
    let slot = t.slot_size as usize;
    let verbose = std::mem::replace(&mut c.verbose, false);
    let mut mutations = 0u64;
    let (pt, kt) = std::thread::scope(|s| {
        let stop = &stop;
        let hp = s.spawn(move || {
            let mut tally = Tally::default();
            let buf = vec![0xa5u8; slot + 1];
            while !stop.load(Ordering::Relaxed) {
                let len = prng.below(slot as u64 + 2) as usize;
                let r = if prng.chance(500) {
                    p.try_send(&buf[..len])
                } else {
                    p.send_for(&buf[..len], Some(Duration::from_millis(1)))
                };
                tq(&mut tally, "send", &r);
            }
            tally
        });
        let hk = s.spawn(move || {
            let mut tally = Tally::default();
            let mut buf = vec![0u8; slot];
            while !stop.load(Ordering::Relaxed) {
                if krng.chance(300) {
                    match k.read_for(Some(Duration::from_millis(1))) {
                        Ok(g) => {
                            let _ =
                                std::hint::black_box(g.bytes().iter().map(u64::from).sum::<u64>());
                            let r = g.release();
                            tq(&mut tally, "release", &r);
                        }
                        Err(e) => tq(&mut tally, "read", &Err::<(), _>(e)),
                    }
                } else {
                    let r = k.recv_for(&mut buf, Some(Duration::from_millis(1)));
                    tq(&mut tally, "recv", &r);
                }
            }
            tally
        });
        scribble_for(dur, stop, || {
            crate::queue::mutate(f, t, c, true);
            mutations += 1;
        });
        (hp.join(), hk.join())
    });
    c.verbose = verbose;
    c.note(|| format!("{mutations} mutations in {dur:?}"));
    for t in [pt, kt].into_iter().flatten() {
        c.tally.merge(&t);
    }
}

pub fn region(f: &mut CaseFile, t: &RTemplate, c: &mut Case<'_>) {
    c.note(|| format!("live region, template: {}", t.what));
    f.reset(&t.bytes, region::DATA)
        .expect("reset the case file");
    f.mark_all();
    c.set_alloc_limit(t.bytes.len() as u64);
    let r = Region::open(&f.name, &RegionOptions::new());
    c.r("live.open", &r);
    let Ok(r) = r else {
        return;
    };
    let size = t.size;
    let dur = Duration::from_micros(500 + c.rng.below(3000));
    let stop = AtomicBool::new(false);
    let seeds = [c.rng.next_u64(), c.rng.next_u64()];
    let verbose = std::mem::replace(&mut c.verbose, false);
    // A live-looking id in the lock word blocks the untimed lockers until it is cleared after
    // the run, and they notice that only at their next backstop wake (200 ms): keep it for
    // one run in eight.
    c.spare_lock = !c.rng.chance(125);
    let mut mutations = 0u64;
    let tallies = std::thread::scope(|s| {
        let (stop, r) = (&stop, &r);
        let writer = s.spawn(move || {
            let mut tally = Tally::default();
            let mut rng = Rng::new(seeds[0]);
            let buf = vec![0x3cu8; 512];
            while !stop.load(Ordering::Relaxed) {
                let off = rng.below(size);
                let len = rng.below(size - off + 1).min(512);
                let res = match rng.below(4) {
                    0 => r.touch(),
                    1 => r.write_with(off, len, |mut b| b.fill(7)).map(|()| 0),
                    _ => r.write(off, &buf[..len as usize]),
                };
                tr(&mut tally, "write", &res);
            }
            tally
        });
        let reader = s.spawn(move || {
            let mut tally = Tally::default();
            let mut rng = Rng::new(seeds[1]);
            let mut buf = vec![0u8; 512];
            while !stop.load(Ordering::Relaxed) {
                let off = rng.below(size);
                let len = rng.below(size - off + 1).min(512);
                let res = if rng.chance(500) {
                    r.read(off, &mut buf[..len as usize]).map(drop)
                } else {
                    r.read_with(off, len, |b| {
                        std::hint::black_box(b.iter().map(u64::from).sum::<u64>());
                    })
                };
                tr(&mut tally, "read", &res);
            }
            tally
        });
        let waiter = s.spawn(move || {
            let mut tally = Tally::default();
            while !stop.load(Ordering::Relaxed) {
                let res = r.wait_changed(r.version(), Some(Duration::from_millis(1)));
                tr(&mut tally, "wait_changed", &res);
            }
            tally
        });
        scribble_for(dur, stop, || {
            region::mutate(f, t, c, true);
            mutations += 1;
        });
        // A live-looking id left in the lock word would block the untimed lockers as a live
        // holder does (by design); clear it, so they finish within one backstop period.
        if f.get_u32(region::LOCK)
            .is_some_and(|w| w & FUTEX_TID_MASK != 0)
        {
            f.put_u32(region::LOCK, 0);
        }
        [writer.join(), reader.join(), waiter.join()]
    });
    c.verbose = verbose;
    c.note(|| format!("{mutations} mutations in {dur:?}"));
    for t in tallies.into_iter().flatten() {
        c.tally.merge(&t);
    }
}
