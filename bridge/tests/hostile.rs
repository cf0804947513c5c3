//! Nothing that arrives over the network is trusted: region messages mutated at random are
//! refused by the decoder or by `Region::apply`, never a panic, and a refused message changes
//! nothing on the replica. In one process, no network (no root needed).

use shmio::region::replica::Delta;
use shmio::region::track::Changes;
use shmio::region::{Region, RegionOptions};
use shmio_bridge::region_wire::{self, Kind, Msg};
use shmio_tests::Rng;

struct Names(Vec<String>);
impl Drop for Names {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = shmio::region::unlink(n);
        }
    }
}

/// The replica's bytes, read raw (a message may have marked a range torn, which consistent
/// reads then refuse).
fn contents(r: &Region) -> Vec<u8> {
    // SAFETY: the mapping is `len()` bytes from `as_ptr()` while `r` lives, and nothing else
    // writes the region during the test (its one writer is this thread, between calls).
    unsafe { std::slice::from_raw_parts(r.as_ptr(), r.len()) }.to_vec()
}

#[test]
fn mutated_region_messages_are_refused_or_applied_whole_never_a_panic() {
    let pid = std::process::id();
    let names = Names(vec![format!("hostile-p-{pid}"), format!("hostile-r-{pid}")]);
    let o = RegionOptions::new().chunk_size(1024);
    let p = Region::create(&names.0[0], 64 << 10, &o).unwrap();
    let r = Region::create(&names.0[1], 64 << 10, &o).unwrap();
    r.become_replica(p.incarnation()).unwrap();
    for i in 0..8u64 {
        p.write(i * 5000, &[i as u8 + 1; 700]).unwrap();
    }
    let mut c = Changes::new();
    p.read_changes(None, 0..u64::MAX, usize::MAX, &mut c)
        .unwrap();
    let good = Msg {
        kind: Kind::Delta,
        incarnation: c.incarnation(),
        version: c.version(),
        base: 0,
        size: p.len() as u64,
        chunk: 1024,
        flags: 0,
        torn: None,
        part: 0,
        parts: 1,
        ranges: c.ranges().to_vec(),
        data: c.data(),
    }
    .encode();
    let mut rng = Rng::new(0x5eed_1234_abcd_0001);
    let (mut refused, mut applied) = (0u32, 0u32);
    for case in 0..20_000 {
        let mut m = good.clone();
        for _ in 0..1 + rng.below(4) {
            match rng.below(4) {
                // A byte anywhere (header, ranges or data).
                0 | 1 if !m.is_empty() => {
                    let at = rng.below(m.len() as u64) as usize;
                    m[at] = rng.next_u64() as u8;
                }
                // A u64 of the header or the ranges set to an edge value.
                2 if m.len() >= 16 => {
                    let at = rng.below(m.len().min(200) as u64 - 8) as usize;
                    let v = [0, 1, u64::MAX, u64::MAX / 2, 1 << 40, 1024][rng.below(6) as usize];
                    m[at..at + 8].copy_from_slice(&v.to_le_bytes());
                }
                // Cut short.
                3 => m.truncate(rng.below(m.len() as u64) as usize),
                _ => {}
            }
        }
        let before = (r.version(), r.replica().unwrap().applied);
        let Ok(msg) = region_wire::decode(&m) else {
            refused += 1;
            continue;
        };
        let snapshot = contents(&r);
        let res = r.apply(&Delta {
            source: msg.incarnation,
            version: msg.version,
            ranges: &msg.ranges,
            data: msg.data,
            torn: msg.torn,
            applied: None,
        });
        match res {
            Ok(_) => applied += 1,
            Err(_) => {
                refused += 1;
                assert_eq!(r.version(), before.0, "case {case}: a refused apply wrote");
                assert_eq!(
                    contents(&r),
                    snapshot,
                    "case {case}: a refused apply changed data"
                );
            }
        }
        assert_eq!(r.replica().unwrap().applied, before.1, "case {case}");
    }
    assert!(
        refused > 10_000 && applied > 0,
        "refused {refused}, applied {applied}"
    );
}
