//! A short session of the queue's public API over a (mutated) queue file: opens, sends,
//! receives and reads, with now and then a mutation while the file is mapped; and the control
//! case, an untouched template that must work.

use std::time::Duration;

use shmio::queue::{self, Consumer, Producer, Start};

use crate::Case;
use crate::queue::{QTemplate, mutate};
use crate::util::{CaseFile, interesting_u64};

fn start(c: &mut Case<'_>, t: &QTemplate) -> Start {
    match c.rng.below(4) {
        0 => Start::Newest,
        1 => Start::Oldest,
        2 => Start::Sequence(t.head().wrapping_sub(c.rng.below(4))),
        _ => Start::Sequence(interesting_u64(&mut c.rng, &t.near())),
    }
}

/// A short timeout: mostly none or a few microseconds (the cases run for their number, and a
/// timed wait sleeps its whole timeout on a file that never changes), now and then 1 ms.
pub fn tiny(c: &mut Case<'_>) -> Option<Duration> {
    Some(match c.rng.below(32) {
        0..=15 => Duration::ZERO,
        16..=23 => Duration::from_micros(20),
        24..=29 => Duration::from_micros(200),
        _ => Duration::from_millis(1),
    })
}

/// One queue case: the template, mutations, then a short session of opens and calls, with
/// now and then a mutation while the file is mapped.
pub fn case(f: &mut CaseFile, t: &QTemplate, c: &mut Case<'_>) {
    c.note(|| format!("queue template: {}", t.what));
    f.reset(&t.bytes, t.slots_offset)
        .expect("reset the case file");
    let nm = c.mutation_count(8);
    for _ in 0..nm {
        mutate(f, t, c, false);
    }
    if nm == 0 && t.clean {
        control(f, t, c);
        return;
    }
    c.set_alloc_limit(f.len().max(t.total));
    let name = f.name.clone();
    let mut prod: Option<Producer> = None;
    let mut cons: Vec<Consumer> = Vec::new();
    let steps = 1 + c.rng.below(10);
    let mut buf = vec![0u8; t.slot_size as usize + 16];
    for step in 0..steps {
        let r = if step == 0 {
            c.rng.below(40)
        } else {
            c.rng.below(100)
        };
        match r {
            0..=7 => {
                let res = queue::inspect(&name);
                c.q("inspect", &res);
            }
            8..=29 => {
                if cons.len() < 3 {
                    let s = start(c, t);
                    let res = Consumer::open(&name, s);
                    c.q("open", &res);
                    if let Ok(k) = res {
                        if c.rng.chance(300) {
                            let mut k = k;
                            k.set_spin(Duration::ZERO);
                            cons.push(k);
                        } else {
                            cons.push(k);
                        }
                    }
                }
            }
            30..=39 => {
                if prod.is_none() {
                    let res = Producer::open(&name);
                    c.q("open", &res);
                    prod = res.ok();
                }
            }
            40..=57 => {
                if let Some(p) = prod.as_mut() {
                    // A producer call writes at most the slot of its next record (and the
                    // header).
                    let slot = p.next_seq() & u64::from(t.slot_count - 1);
                    f.mark(t.slots_offset + slot * t.stride, t.stride);
                    producer_op(p, t, c, &mut buf);
                }
            }
            58..=83 => {
                if !cons.is_empty() {
                    let i = c.rng.below(cons.len() as u64) as usize;
                    consumer_op(&mut cons[i], t, c, &mut buf);
                }
            }
            84..=93 => mutate(f, t, c, true),
            _ => {
                if c.rng.chance(500) {
                    prod = None;
                } else if !cons.is_empty() {
                    cons.swap_remove(0);
                }
            }
        }
    }
    drop(cons);
    drop(prod);
}

fn producer_op(p: &mut Producer, t: &QTemplate, c: &mut Case<'_>, buf: &mut [u8]) {
    let max = t.slot_size as usize;
    let len = match c.rng.below(4) {
        0 => 0,
        1 => max,
        2 => max + 1,
        _ => c.rng.below(max as u64 + 1) as usize,
    }
    .min(buf.len());
    match c.rng.below(9) {
        0..=2 => {
            let r = p.try_send(&buf[..len]);
            c.q("send", &r);
        }
        3 => {
            let d = tiny(c);
            let r = p.send_for(&buf[..len], d);
            c.q("send", &r);
        }
        4 | 5 => {
            let d = tiny(c);
            let commit = c.rng.below(4);
            let fill = c.rng.next_u64() as u8;
            let r = p.reserve_for(d).map(|mut res| {
                let cap = res.buf().len();
                res.buf().fill(fill);
                match commit {
                    0 => None,
                    1 => Some(res.commit(cap + 1)),
                    _ => Some(res.commit(len.min(cap))),
                }
            });
            match r {
                Ok(Some(r)) => c.q("commit", &r),
                Ok(None) => c.q("reserve", &Ok::<(), queue::Error>(())),
                Err(e) => c.q("reserve", &Err::<(), _>(e)),
            }
        }
        6 => {
            let d = tiny(c);
            let r = p.wait_consumers(1 + c.rng.below(3) as usize, d);
            c.q("wait_consumers", &r);
        }
        7 => {
            let s = p.stats();
            c.note(|| format!("stats: head {} consumers {}", s.head, s.consumers.len()));
            let _ = (p.info(), p.next_seq(), p.wake_calls());
        }
        _ => p.set_spin(Duration::ZERO),
    }
}

fn consumer_op(k: &mut Consumer, t: &QTemplate, c: &mut Case<'_>, buf: &mut [u8]) {
    let n = match c.rng.below(4) {
        0 => 0,
        1 => 1,
        _ => buf
            .len()
            .min(t.slot_size as usize + c.rng.below(2) as usize * 16),
    };
    match c.rng.below(11) {
        0..=2 => {
            let r = k.try_recv(&mut buf[..n]);
            c.q("recv", &r);
        }
        3 => {
            let d = tiny(c);
            let r = k.recv_seq_for(&mut buf[..n], d);
            c.q("recv", &r);
        }
        4 | 5 => {
            let d = tiny(c);
            let release = c.rng.chance(700);
            match k.read_for(d) {
                Ok(g) => {
                    let sum = g
                        .bytes()
                        .iter()
                        .fold(0u64, |a, b| a.rotate_left(5) ^ u64::from(b));
                    c.note(|| format!("read seq {} len {} sum {sum:#x}", g.seq(), g.len()));
                    if release {
                        let r = g.release();
                        c.q("release", &r);
                    } else {
                        drop(g);
                    }
                }
                Err(e) => c.q("read", &Err::<(), _>(e)),
            }
        }
        6 => {
            let r = k.recv_vec_for(Some(Duration::ZERO));
            c.q("recv", &r.map(|v| v.len()));
        }
        7 => {
            let d = tiny(c);
            let r = k.wait_producer(d);
            c.q("wait_producer", &r);
        }
        8 => {
            let r = k.fd();
            c.q("fd", &r);
        }
        9 => {
            let s = k.stats();
            c.note(|| format!("stats: head {} consumers {}", s.head, s.consumers.len()));
            let _ = (k.info(), k.position(), k.lost(), k.received(), k.index());
        }
        _ => k.set_spin(Duration::ZERO),
    }
}

/// The untouched, closed template: a take-over producer and a new consumer must work, and a
/// record sent must arrive intact. Checks the fuzzer as much as the library.
fn control(f: &CaseFile, t: &QTemplate, c: &mut Case<'_>) {
    c.tally.add("q.control", 1);
    f.mark_all();
    let name = &f.name;
    let mut p = match Producer::open(name) {
        Ok(p) => p,
        Err(e) => return c.fail("oracle", format!("clean queue: Producer::open: {e}")),
    };
    let mut k = match Consumer::open(name, Start::Newest) {
        Ok(k) => k,
        Err(e) => return c.fail("oracle", format!("clean queue: Consumer::open: {e}")),
    };
    let msg = b"fuzz-control";
    let len = msg.len().min(t.slot_size as usize);
    let seq = match p.try_send(&msg[..len]) {
        Ok(s) => s,
        Err(e) => return c.fail("oracle", format!("clean queue: try_send: {e}")),
    };
    let mut buf = vec![0u8; t.slot_size as usize];
    for _ in 0..=t.slot_count + 1 {
        match k.recv_seq_for(&mut buf, Some(Duration::ZERO)) {
            Ok((s, n)) if s == seq => {
                if buf[..n] != msg[..len] {
                    c.fail("oracle", format!("clean queue: record {s} arrived changed"));
                }
                return;
            }
            Ok(_) => {}
            Err(e) => {
                return c.fail("oracle", format!("clean queue: recv before {seq}: {e}"));
            }
        }
    }
    c.fail("oracle", format!("clean queue: record {seq} never arrived"));
}
