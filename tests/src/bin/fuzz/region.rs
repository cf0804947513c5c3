//! Region files: templates made by the library, mutations of every header field and of the
//! data, and a short drive of the public API over the result.

use std::path::Path;

use shmio::region::replica::Delta;
use shmio::region::track::Changes;
use shmio::region::{self, Region, RegionOptions};
use shmio_tests::layout::region::{
    CONFIG_FIELDS, DATA_SIZE, HEADER_LEN, HEADER_SIZE, LIVE_FIELDS, PENDING_LEN, PENDING_OFF, SEQ,
    TORN_LEN, TORN_OFF, VERSION, WAITERS,
};
pub use shmio_tests::layout::region::{DATA, LOCK};

use crate::Case;
use crate::util::{
    CaseFile, FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS, Rng, interesting_u32,
    interesting_u64, le_u32, le_u64,
};

pub struct RTemplate {
    pub bytes: Vec<u8>,
    pub size: u64,
    pub what: String,
}

impl RTemplate {
    /// Makes a region of random size at `path`, writes to it a little, and snapshots it.
    pub fn make(path: &Path, rng: &mut Rng) -> RTemplate {
        let name = path.to_str().unwrap();
        let _ = std::fs::remove_file(path);
        let size = *rng.pick(&[1u64, 1, 7, 8, 64, 100, 4095, 4096, 4097, 10_000, 1 << 20]);
        let r = Region::create(name, size, &RegionOptions::new()).expect("create a template");
        let writes = rng.below(5);
        for w in 0..writes {
            let off = rng.below(size);
            let len = rng.below(size - off + 1).min(256) as usize;
            let data: Vec<u8> = (0..len).map(|i| (i as u64 ^ w) as u8).collect();
            r.write(off, &data).expect("write a template");
        }
        let bytes = std::fs::read(path).expect("read the template");
        drop(r);
        let _ = std::fs::remove_file(path);
        assert_eq!(le_u64(&bytes, 0), u64::from_le_bytes(*b"SHMIOR\0\x01"));
        assert_eq!(u64::from(le_u32(&bytes, HEADER_SIZE)), HEADER_LEN);
        assert_eq!(LOCK, region::LOCK_WORD_OFFSET);
        assert_eq!(DATA, region::DATA_OFFSET);
        assert_eq!(le_u64(&bytes, DATA_SIZE), size);
        RTemplate {
            bytes,
            size,
            what: format!("{size} bytes, {writes} writes"),
        }
    }

    fn near(&self) -> [u64; 5] {
        let v = le_u64(&self.bytes, VERSION);
        [
            self.size,
            DATA + self.size,
            v,
            self.size / 2,
            u64::from(le_u32(&self.bytes, SEQ)),
        ]
    }
}

/// One mutation of a region file. `mapped`: a handle has it mapped, so it must not shrink.
pub fn mutate(f: &mut CaseFile, t: &RTemplate, c: &mut Case<'_>, mapped: bool) {
    let near = t.near();
    match c.rng.below(100) {
        0..=44 => {
            let &(off, w) = if c.rng.chance(250) {
                c.rng.pick(CONFIG_FIELDS)
            } else {
                c.rng.pick(LIVE_FIELDS)
            };
            if off == LOCK && c.spare_lock {
                return;
            }
            if w == 8 {
                let v = interesting_u64(&mut c.rng, &near);
                c.note(|| format!("u64 at {off} := {v:#x}"));
                f.put_u64(off, v);
            } else {
                let v = interesting_u32(&mut c.rng, c.tids, &near);
                c.note(|| format!("u32 at {off} := {v:#x}"));
                f.put_u32(off, v);
            }
        }
        45..=59 => {
            let off = c.rng.below(HEADER_LEN);
            if c.spare_lock && (LOCK..LOCK + 4).contains(&off) {
                return;
            }
            let bit = c.rng.below(8) as u32;
            c.note(|| format!("flip bit {bit} of byte {off}"));
            f.flip(off, bit);
        }
        60..=69 => {
            let off = DATA + c.rng.below(t.size);
            let v = c.rng.next_u64();
            c.note(|| format!("data at {off} := {v:#x}"));
            f.put_u64(off, v);
        }
        // A writer that died mid-write (the kernel marked the lock), or a counter left odd
        // with the lock free, over a pending and a torn range from anywhere.
        70..=84 => {
            let died = c.rng.chance(600);
            let seq = f.get_u32(SEQ).unwrap_or(0) | 1;
            let w = if c.rng.chance(300) { FUTEX_WAITERS } else { 0 };
            c.note(|| format!("composite: odd counter, writer died: {died}"));
            if !c.spare_lock {
                f.put_u32(LOCK, if died { FUTEX_OWNER_DIED | w } else { w });
            }
            f.put_u32(SEQ, seq);
            f.put_u64(PENDING_OFF, interesting_u64(&mut c.rng, &near));
            f.put_u64(PENDING_LEN, interesting_u64(&mut c.rng, &near));
            if c.rng.chance(500) {
                f.put_u64(TORN_OFF, interesting_u64(&mut c.rng, &near));
                f.put_u64(TORN_LEN, interesting_u64(&mut c.rng, &near));
            }
        }
        85..=89 => {
            let v = interesting_u32(&mut c.rng, c.tids, &[]);
            c.note(|| format!("waiters := {v:#x}"));
            f.put_u32(WAITERS, v);
        }
        _ => {
            let len = if mapped || c.rng.chance(300) {
                f.len() + *c.rng.pick(&[1u64, 4096, 65536])
            } else {
                match c.rng.below(5) {
                    0 => 0,
                    1 => c.rng.below(DATA + 1),
                    2 => DATA,
                    3 => DATA + t.size - 1,
                    _ => c.rng.below(DATA + t.size),
                }
            };
            c.note(|| format!("length := {len}"));
            f.set_len(len);
        }
    }
}

/// Whether the lock word shows a holder. The region's writer lock has no liveness check
/// beyond the kernel's robust-futex marking, so a scribbled live-looking id blocks untimed
/// lockers (`write`, `touch`, `torn`, a `read` that finds the counter odd) just as a live
/// holder would: by design, so the fuzzer calls only timed operations then.
fn lock_shows_holder(f: &CaseFile) -> bool {
    f.get_u32(LOCK).is_none_or(|w| w & FUTEX_TID_MASK != 0)
}

fn seq_odd(f: &CaseFile) -> bool {
    f.get_u32(SEQ).is_none_or(|s| s & 1 == 1)
}

fn range(c: &mut Case<'_>, size: u64) -> (u64, u64) {
    match c.rng.below(10) {
        0 => (0, size),
        1 => (size, c.rng.below(2)),
        2 => (interesting_u64(&mut c.rng, &[size]), c.rng.below(3)),
        3 => (c.rng.below(size + 1), interesting_u64(&mut c.rng, &[size])),
        _ => {
            let off = c.rng.below(size + 1);
            (off, c.rng.below(size - off + 1).min(8192))
        }
    }
}

/// One region case.
pub fn case(f: &mut CaseFile, t: &RTemplate, c: &mut Case<'_>) {
    c.note(|| format!("region template: {}", t.what));
    f.reset(&t.bytes, DATA).expect("reset the case file");
    let nm = c.mutation_count(6);
    for _ in 0..nm {
        mutate(f, t, c, false);
    }
    c.set_alloc_limit(f.len().max(t.bytes.len() as u64));
    let opts = RegionOptions::new().populate(c.rng.chance(100));
    let r = Region::open(&f.name, &opts);
    c.r("open", &r);
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            if nm == 0 {
                c.fail("oracle", format!("clean region: open: {e}"));
            }
            return;
        }
    };
    if nm == 0 {
        f.mark_all();
        return control(&r, t, c);
    }
    let size = r.len() as u64;
    let mut buf = vec![0u8; 8192];
    for _ in 0..1 + c.rng.below(10) {
        let untimed_ok = !lock_shows_holder(f);
        match c.rng.below(100) {
            0..=24 => {
                if untimed_ok || !seq_odd(f) {
                    let (off, len) = range(c, size);
                    let len = len.min(buf.len() as u64) as usize;
                    let res = r.read(off, &mut buf[..len]);
                    c.r("read", &res);
                }
            }
            25..=34 => {
                if untimed_ok || !seq_odd(f) {
                    let (off, len) = range(c, size);
                    let res = r.read_with(off, len, |b| {
                        b.iter().fold(0u64, |a, x| a.rotate_left(3) ^ u64::from(x))
                    });
                    c.r("read", &res);
                }
            }
            35..=49 => {
                if untimed_ok {
                    let (off, len) = range(c, size);
                    let len = len.min(buf.len() as u64) as usize;
                    f.mark(DATA.saturating_add(off), len as u64);
                    let res = r.write(off, &buf[..len]);
                    c.r("write", &res);
                }
            }
            50..=54 => {
                if untimed_ok {
                    let (off, len) = range(c, size);
                    let v = c.rng.next_u64() as u8;
                    f.mark(DATA.saturating_add(off), len);
                    let res = r.write_with(off, len, |mut b| b.fill(v));
                    c.r("write", &res);
                }
            }
            55..=57 => {
                if untimed_ok {
                    let res = r.touch();
                    c.r("touch", &res);
                }
            }
            58..=67 => {
                let v = r.version();
                let seen = if c.rng.chance(500) {
                    v
                } else {
                    v.wrapping_add(1)
                };
                let d = crate::queue::tiny(c);
                let res = r.wait_changed(seen, d);
                c.r("wait_changed", &res);
            }
            68..=72 => {
                if untimed_ok {
                    let res = r.torn();
                    c.r("torn", &res);
                }
            }
            73..=74 => {
                let (off, len) = range(c, size);
                let res = r.flush(off, len.min(size));
                c.r("flush", &res);
            }
            75 => {
                let res = r.cache_stat();
                c.r("cache_stat", &res);
            }
            76..=77 => {
                if untimed_ok {
                    let (off, len) = range(c, size);
                    let since = if c.rng.chance(250) {
                        None
                    } else {
                        Some(c.rng.below(r.version().saturating_add(2)))
                    };
                    let max = c.rng.below(64 << 10) as usize;
                    let mut ch = Changes::new();
                    let res = r.read_changes(since, off..off.saturating_add(len), max, &mut ch);
                    c.r("read_changes", &res);
                    // Applied back (the role may be scribbled to "replica"): checked, never
                    // trusted.
                    if res.is_ok() {
                        let source = r.replica().map_or(0, |s| s.source);
                        f.mark(DATA, size);
                        let res = r.apply(&Delta {
                            source,
                            version: ch.version().wrapping_add(c.rng.below(3)),
                            ranges: ch.ranges(),
                            data: ch.data(),
                            torn: ch.torn(),
                            applied: Some(ch.version()),
                        });
                        c.r("apply", &res);
                    }
                }
            }
            78 => {
                let _ = (r.replica(), r.writer(), r.chunk_size(), r.incarnation());
                let res = r.check_fresh(std::time::Duration::from_millis(c.rng.below(1000)));
                c.r("check_fresh", &res);
            }
            79 => {
                let _ = (
                    r.version(),
                    r.torn_writes(),
                    r.len(),
                    r.is_empty(),
                    r.path(),
                );
            }
            _ => mutate(f, t, c, true),
        }
    }
}

/// The untouched template: a write must read back.
fn control(r: &Region, t: &RTemplate, c: &mut Case<'_>) {
    c.tally.add("r.control", 1);
    let data: Vec<u8> = (0..t.size.min(64)).map(|i| (i as u8) ^ 0x5a).collect();
    if let Err(e) = r.write(0, &data) {
        return c.fail("oracle", format!("clean region: write: {e}"));
    }
    let mut back = vec![0u8; data.len()];
    match r.read(0, &mut back) {
        Ok(_) if back == data => {}
        Ok(_) => c.fail("oracle", "clean region: read back differs".into()),
        Err(e) => c.fail("oracle", format!("clean region: read: {e}")),
    }
}
