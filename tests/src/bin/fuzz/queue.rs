//! Queue files: templates made by the library, mutations aimed at every field of the format,
//! and a short drive of the public API over the result.

use std::path::Path;

use shmio::queue::{self, Consumer, Policy, Producer, QueueOptions, Start};
use shmio_tests::layout::queue::*;

use crate::Case;
use crate::util::{
    CaseFile, FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS, Rng, interesting_u32,
    interesting_u64, le_u32, le_u64, set_le_u64,
};

pub use crate::queue_session::{case, tiny};

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
            let off = HEADER_LEN + u64::from(i) * CONSUMER_STRIDE;
            let w = le_u32(&bytes, off) & FUTEX_TID_MASK;
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

    pub fn head(&self) -> u64 {
        le_u64(&self.bytes, HEAD)
    }

    /// Values a field of this queue is likely to be compared with.
    pub fn near(&self) -> [u64; 8] {
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
                c.rng.pick(CONFIG_FIELDS)
            } else {
                c.rng.pick(LIVE_FIELDS)
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
