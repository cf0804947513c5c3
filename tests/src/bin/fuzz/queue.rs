//! Queue files: templates made by the library, mutations aimed at every field of the format,
//! and a short drive of the public API over the result.

use std::path::Path;
use std::time::Duration;

use shmio::queue::{self, Consumer, Policy, Producer, QueueOptions, Start};

use crate::Case;
use crate::util::{
    CaseFile, FUTEX_OWNER_DIED, FUTEX_WAITERS, Rng, interesting_u32, interesting_u64, le_u32,
    le_u64, set_le_u64,
};

// Offsets of the queue file, layout version 2 (`core/src/queue/layout.rs`). Checked against
// every template the library makes (see `QTemplate::make`).
pub const MAGIC: u64 = 0;
const HEADER_SIZE: u64 = 12;
const SLOT_COUNT: u64 = 20;
const SLOT_SIZE: u64 = 24;
const SLOT_STRIDE: u64 = 28;
const MAX_CONSUMERS: u64 = 32;
const CONSUMERS_OFFSET: u64 = 40;
const SLOTS_OFFSET: u64 = 48;
const TOTAL_SIZE: u64 = 56;
pub const HEAD: u64 = 128;
const NOTIFY: u64 = 136;
const WAITERS: u64 = 256;
pub const OWNER: u64 = 384;
const CONSUMERS_HWM: u64 = 524;
pub const HEADER_LEN: u64 = 640;

/// Header fields: (offset, width).
pub const HEADER_FIELDS: &[(u64, u8)] = &[
    (0, 8),   // magic
    (8, 4),   // layout_version
    (12, 4),  // header_size
    (16, 4),  // policy
    (20, 4),  // slot_count
    (24, 4),  // slot_size
    (28, 4),  // slot_stride
    (32, 4),  // max_consumers
    (36, 4),  // consumer_stride
    (40, 8),  // consumers_offset
    (48, 8),  // slots_offset
    (56, 8),  // total_size
    (64, 8),  // created_unix_ns
    (128, 8), // head
    (136, 4), // notify
    (256, 8), // waiters (count | epoch << 32)
    (256, 4), // waiters: the count alone
    (260, 4), // waiters: the epoch alone
    (384, 4), // owner
    (388, 4), // pid
    (392, 4), // generation
    (512, 4), // space_notify
    (516, 4), // producer_waiting
    (520, 4), // consumers_epoch
    (524, 4), // consumers_hwm
];
/// The first `CONFIG_FIELDS` of [`HEADER_FIELDS`] are the configuration (read once at open).
const CONFIG_FIELDS: usize = 13;

/// Consumer slot fields, relative to the slot: (offset, width).
pub const CONSUMER_FIELDS: &[(u64, u8)] = &[
    (0, 4),  // owner
    (4, 4),  // pid
    (8, 4),  // death
    (12, 4), // reserved
    (16, 4), // sleep[0]
    (20, 4), // sleep[1]
    (24, 8), // cursor
    (32, 8), // lost
    (40, 8), // received
];
pub const CONSUMER_STRIDE: u64 = 128;
const C_OWNER: u64 = 0;
const C_DEATH: u64 = 8;
const C_SLEEP: u64 = 16;
const C_CURSOR: u64 = 24;
/// Slot header fields: stamp (u64), len (u32), reserved (u32).
const S_STAMP: u64 = 0;
const S_LEN: u64 = 8;
const SLOT_HEADER: u64 = 16;

/// A valid queue file made by the library, and its geometry.
pub struct QTemplate {
    pub bytes: Vec<u8>,
    pub slot_count: u32,
    pub slot_size: u32,
    pub stride: u64,
    pub max_consumers: u32,
    pub consumers_offset: u64,
    pub slots_offset: u64,
    pub total: u64,
    /// Snapshotted after every handle closed: opening it as producer and consumer must work.
    pub clean: bool,
    pub what: String,
}

impl QTemplate {
    /// Makes a queue at `path` with random geometry, produces and consumes a little, and
    /// snapshots the file in one of three states: everything closed, everything live (the
    /// words hold keeper thread ids that are dead by the time a case runs), or the producer
    /// closed with consumers live. Collects the keeper thread ids it saw into `tids`.
    pub fn make(path: &Path, rng: &mut Rng, tids: &mut Vec<u32>) -> QTemplate {
        let name = path.to_str().unwrap();
        let _ = std::fs::remove_file(path);
        // Mostly small files (each case rewrites its template); now and then a large one.
        let (slots, slot_size) = if rng.chance(100) {
            (
                *rng.pick(&[1000u32, 4096, 16]),
                *rng.pick(&[1u32, 64, 4096, 65536]),
            )
        } else {
            (
                *rng.pick(&[2u32, 2, 4, 4, 8, 16, 32, 64]),
                *rng.pick(&[1u32, 1, 7, 8, 16, 48, 49, 64, 100, 240, 1000]),
            )
        };
        let slot_size = if u64::from(slots) * u64::from(slot_size) > (1 << 21) {
            64
        } else {
            slot_size
        };
        let consumers = *rng.pick(&[1u32, 1, 2, 3, 4, 8, 31, 127]);
        let policy = if rng.chance(500) {
            Policy::Overwrite
        } else {
            Policy::BackPressure
        };
        let opts = QueueOptions::new()
            .slots(slots)
            .slot_size(slot_size)
            .max_consumers(consumers)
            .policy(policy);
        let mut p = Producer::create(name, &opts).expect("create a template queue");
        tids.push(p.keeper_tid());
        let ncons = rng.below(u64::from(consumers.min(3)) + 1);
        let mut cs: Vec<Consumer> = (0..ncons)
            .map(|_| Consumer::open(name, Start::Oldest).expect("open a template consumer"))
            .collect();
        let records = rng.below(u64::from(slots) * 3 + 2);
        let mut buf = vec![0u8; slot_size as usize];
        for s in 0..records {
            let len = rng.below(u64::from(slot_size) + 1) as usize;
            shmio_tests::fill_record(&mut buf[..len], s);
            let _ = p.try_send(&buf[..len]);
            for c in cs.iter_mut() {
                if rng.chance(600) {
                    let _ = c.try_recv(&mut buf);
                }
            }
        }
        let state = rng.below(3);
        let snapshot = || std::fs::read(path).expect("read the template");
        let (bytes, what) = match state {
            0 => {
                drop(cs);
                drop(p);
                (snapshot(), "closed")
            }
            1 => {
                let b = snapshot();
                drop(cs);
                drop(p);
                (b, "live")
            }
            _ => {
                drop(p);
                let b = snapshot();
                drop(cs);
                (b, "producer-closed")
            }
        };
        let _ = std::fs::remove_file(path);
        for i in 0..consumers {
            let off = 640 + u64::from(i) * CONSUMER_STRIDE;
            let w = le_u32(&bytes, off) & crate::util::FUTEX_TID_MASK;
            if w != 0 && !tids.contains(&w) {
                tids.push(w);
            }
        }
        let t = QTemplate {
            slot_count: le_u32(&bytes, SLOT_COUNT),
            slot_size: le_u32(&bytes, SLOT_SIZE),
            stride: u64::from(le_u32(&bytes, SLOT_STRIDE)),
            max_consumers: le_u32(&bytes, MAX_CONSUMERS),
            consumers_offset: le_u64(&bytes, CONSUMERS_OFFSET),
            slots_offset: le_u64(&bytes, SLOTS_OFFSET),
            total: le_u64(&bytes, TOTAL_SIZE),
            clean: state == 0,
            what: format!(
                "{policy:?} {slots} slots of {slot_size} B, {consumers} consumers, \
                 {records} records, {ncons} consumers, {}",
                what
            ),
            bytes,
        };
        // The fuzzer's map of the format must match the library's.
        assert_eq!(
            le_u64(&t.bytes, MAGIC),
            u64::from_le_bytes(*b"SHMIOQ\0\x01")
        );
        assert_eq!(u64::from(le_u32(&t.bytes, HEADER_SIZE)), HEADER_LEN);
        assert_eq!(t.consumers_offset, HEADER_LEN);
        assert_eq!(OWNER, queue::OWNER_WORD_OFFSET);
        assert_eq!(t.total, t.bytes.len() as u64);
        assert_eq!(t.slot_count, slots.max(2).next_power_of_two());
        assert_eq!(t.max_consumers, consumers);
        t
    }

    fn head(&self) -> u64 {
        le_u64(&self.bytes, HEAD)
    }

    /// Values a field of this queue is likely to be compared with.
    fn near(&self) -> [u64; 8] {
        [
            u64::from(self.slot_count),
            u64::from(self.slot_size),
            self.stride,
            u64::from(self.max_consumers),
            self.slots_offset,
            self.total,
            self.head(),
            self.head().wrapping_sub(u64::from(self.slot_count)),
        ]
    }
}

/// One mutation of a queue file. `mapped`: handles have it mapped, so it must not shrink.
pub fn mutate(f: &mut CaseFile, t: &QTemplate, c: &mut Case<'_>, mapped: bool) {
    let near = t.near();
    let n = u64::from(t.slot_count);
    let r = c.rng.below(100);
    match r {
        // A header field: a quarter of them in the configuration.
        0..=27 => {
            let &(off, w) = if c.rng.chance(250) {
                c.rng.pick(&HEADER_FIELDS[..CONFIG_FIELDS])
            } else {
                c.rng.pick(&HEADER_FIELDS[CONFIG_FIELDS..])
            };
            put_field(f, c, off, w, &near);
        }
        // A consumer slot field (now and then of a slot past `max_consumers`).
        28..=47 => {
            let past = u64::from(c.rng.chance(50));
            let i = c.rng.below(u64::from(t.max_consumers) + past);
            let &(fo, w) = c.rng.pick(CONSUMER_FIELDS);
            let off = t.consumers_offset + i * CONSUMER_STRIDE + fo;
            put_field(f, c, off, w, &near);
        }
        // A slot header: stamps that name nearby records, or nonsense; lengths near the slot
        // size.
        48..=63 => {
            let j = c.rng.below(n);
            let base = t.slots_offset + j * t.stride;
            if c.rng.chance(650) {
                let head = t.head();
                let seq = match c.rng.below(6) {
                    0 => head,
                    1 => head.wrapping_sub(1),
                    2 => head.wrapping_add(n),
                    3 => j + n * c.rng.below(8),
                    4 => head.wrapping_sub(n).wrapping_add(j),
                    _ => interesting_u64(&mut c.rng, &near),
                };
                let stamp = match c.rng.below(5) {
                    0 => seq.wrapping_mul(2).wrapping_add(1),
                    1..=2 => seq.wrapping_mul(2).wrapping_add(2),
                    3 => interesting_u64(&mut c.rng, &[]),
                    _ => seq,
                };
                c.note(|| format!("slot {j} stamp := {stamp:#x}"));
                f.put_u64(base + S_STAMP, stamp);
            } else {
                let v = interesting_u32(&mut c.rng, c.tids, &near);
                c.note(|| format!("slot {j} len := {v:#x}"));
                f.put_u32(base + S_LEN, v);
            }
        }
        // A bit flip in the header, the consumer slots or a slot header.
        64..=73 => {
            let off = match c.rng.below(3) {
                0 => c.rng.below(HEADER_LEN),
                1 => t.consumers_offset + c.rng.below(u64::from(t.max_consumers) * CONSUMER_STRIDE),
                _ => t.slots_offset + c.rng.below(n) * t.stride + c.rng.below(SLOT_HEADER),
            };
            let bit = c.rng.below(8) as u32;
            c.note(|| format!("flip bit {bit} of byte {off}"));
            f.flip(off, bit);
        }
        // Random bytes anywhere, or in a payload.
        74..=81 => {
            let off = if c.rng.chance(500) {
                c.rng.below(f.len().max(1))
            } else {
                t.slots_offset + c.rng.below(n) * t.stride + SLOT_HEADER
            };
            let len = 1 + c.rng.below(32) as usize;
            let mut b = [0u8; 32];
            for x in b.iter_mut() {
                *x = c.rng.next_u64() as u8;
            }
            c.note(|| format!("{len} random bytes at {off}"));
            f.put(off, &b[..len]);
        }
        // States a peer's death or misbehaviour leaves.
        82..=89 => composite(f, t, c),
        // The same queue, far along: head, stamps and cursors moved by a multiple of the ring.
        90..=93 if !mapped => rebase(f, t, c),
        // The length: shrunk or grown (only grown while mapped).
        _ => {
            let len = if mapped || c.rng.chance(300) {
                f.len() + *c.rng.pick(&[1u64, 7, 4096, 65536])
            } else {
                match c.rng.below(7) {
                    0 => 0,
                    1 => c.rng.below(HEADER_LEN + 1),
                    2 => HEADER_LEN - 1,
                    3 => t.total - 1,
                    4 => t.total.saturating_sub(t.stride),
                    5 => t.slots_offset,
                    _ => c.rng.below(t.total),
                }
            };
            c.note(|| format!("length := {len}"));
            f.set_len(len);
        }
    }
}

fn put_field(f: &CaseFile, c: &mut Case<'_>, off: u64, w: u8, near: &[u64]) {
    if w == 8 {
        let v = interesting_u64(&mut c.rng, near);
        c.note(|| format!("u64 at {off} := {v:#x}"));
        f.put_u64(off, v);
    } else {
        let v = interesting_u32(&mut c.rng, c.tids, near);
        c.note(|| format!("u32 at {off} := {v:#x}"));
        f.put_u32(off, v);
    }
}

/// A dead producer, a dead or live-looking consumer, sleepers counted that do not exist.
fn composite(f: &CaseFile, t: &QTemplate, c: &mut Case<'_>) {
    let cons = |i: u32, fo: u64| t.consumers_offset + u64::from(i) * CONSUMER_STRIDE + fo;
    let waiters = if c.rng.chance(500) { FUTEX_WAITERS } else { 0 };
    match c.rng.below(5) {
        0 => {
            c.note(|| "composite: the producer died".into());
            f.put_u32(OWNER, FUTEX_OWNER_DIED | waiters);
            for i in 0..t.max_consumers {
                f.put_u32(cons(i, C_DEATH), FUTEX_OWNER_DIED | waiters);
            }
        }
        1 => {
            let i = c.rng.below(u64::from(t.max_consumers)) as u32;
            c.note(|| format!("composite: consumer {i} died asleep"));
            f.put_u32(cons(i, C_OWNER), FUTEX_OWNER_DIED | waiters);
            f.put_u32(cons(i, C_SLEEP), 0x8000_0000 | c.rng.below(4) as u32);
            f.put_u64(WAITERS, 1 + c.rng.below(3));
            f.put_u32(CONSUMERS_HWM, t.max_consumers);
        }
        2 => {
            // Every word held by a live-looking id: ours (live) or a template's (dead).
            let tid = *c.rng.pick(c.tids);
            c.note(|| format!("composite: every owner word shows thread {tid}"));
            f.put_u32(OWNER, tid | waiters);
            for i in 0..t.max_consumers {
                f.put_u32(cons(i, C_OWNER), tid);
                f.put_u32(cons(i, C_DEATH), tid | waiters);
            }
            f.put_u32(CONSUMERS_HWM, u32::MAX);
        }
        3 => {
            let i = c.rng.below(u64::from(t.max_consumers)) as u32;
            let cur = interesting_u64(&mut c.rng, &[t.head()]);
            c.note(|| format!("composite: consumer {i} live-looking at cursor {cur:#x}"));
            f.put_u32(cons(i, C_OWNER), *c.rng.pick(c.tids));
            f.put_u64(cons(i, C_CURSOR), cur);
            f.put_u32(CONSUMERS_HWM, i + 1);
        }
        _ => {
            let v = interesting_u64(&mut c.rng, &[]);
            c.note(|| format!("composite: sleeper count {v:#x}, notify bumped"));
            f.put_u64(WAITERS, v);
            f.put_u32(NOTIFY, c.rng.next_u64() as u32);
        }
    }
}

/// Moves the whole queue `k * slot_count` records on, consistently, so that sequence numbers,
/// stamps and cursors sit near the interesting boundaries of 64-bit arithmetic.
fn rebase(f: &CaseFile, t: &QTemplate, c: &mut Case<'_>) {
    let n = u64::from(t.slot_count);
    let noise = c.rng.next_u64();
    let target = *c.rng.pick(&[
        1u64 << 32,
        1 << 40,
        (1 << 62) - 2 * n,
        1 << 62,
        (1 << 63) - 2 * n,
        1 << 63,
        u64::MAX - 4 * n,
        u64::MAX - n,
        noise,
    ]);
    let shift = target / n * n;
    c.note(|| format!("rebase by {shift:#x}"));
    let mut b = t.bytes.clone();
    let head = le_u64(&b, HEAD).wrapping_add(shift);
    set_le_u64(&mut b, HEAD, head);
    for j in 0..n {
        let off = t.slots_offset + j * t.stride + S_STAMP;
        let s = le_u64(&b, off);
        if s != 0 {
            set_le_u64(&mut b, off, s.wrapping_add(shift.wrapping_mul(2)));
        }
    }
    for i in 0..u64::from(t.max_consumers) {
        let off = t.consumers_offset + i * CONSUMER_STRIDE + C_CURSOR;
        let v = le_u64(&b, off);
        set_le_u64(&mut b, off, v.wrapping_add(shift));
    }
    f.put(0, &b);
}

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
    let nm = match c.rng.below(100) {
        0..=2 => 0,
        3..=60 => 1,
        61..=85 => 2,
        _ => 3 + c.rng.below(8),
    };
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
