//! Change tracking, replicas and the writer claim, in one process: two regions stand for the
//! primary and the replica (the bridge's network is tested in bridge/tests).

use std::time::Duration;

use shmio::region::replica::{Delta, PrimaryNews};
use shmio::region::track::Changes;
use shmio::region::{Error, Region, RegionOptions};

struct Named(Vec<String>);
impl Drop for Named {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = shmio::region::unlink(n);
        }
    }
}

fn pair(tag: &str, size: u64, chunk: u64) -> (Region, Region, Named) {
    let names = [
        format!("rrep-{tag}-p-{}", std::process::id()),
        format!("rrep-{tag}-r-{}", std::process::id()),
    ];
    let o = RegionOptions::new().chunk_size(chunk);
    let p = Region::create(&names[0], size, &o).unwrap();
    let r = Region::create(&names[1], size, &o).unwrap();
    (p, r, Named(names.to_vec()))
}

/// Ships everything the primary changed after `since` to the replica, as the bridge does.
fn ship(p: &Region, r: &Region, since: Option<u64>, applied: bool) -> u64 {
    let mut c = Changes::new();
    p.read_changes(since, 0..u64::MAX, usize::MAX, &mut c)
        .unwrap();
    r.apply(&Delta {
        source: p.incarnation(),
        version: c.version(),
        ranges: c.ranges(),
        data: c.data(),
        torn: c.torn(),
        applied: applied.then_some(c.version()),
    })
    .unwrap();
    c.version()
}

fn contents(r: &Region) -> Vec<u8> {
    let mut b = vec![0; r.len()];
    r.read(0, &mut b).unwrap();
    b
}

#[test]
fn changes_are_the_chunks_written_since_a_version() {
    let (p, _r, _n) = pair("chunks", 1 << 20, 4096);
    let v0 = p.version();
    p.write(5000, &[1; 10]).unwrap(); // chunk 1
    p.write(4096 * 3 - 1, &[2; 2]).unwrap(); // chunks 2 and 3
    let v = p.write(4096 * 200, &[3; 4096]).unwrap(); // chunk 200 only
    let mut c = Changes::new();
    p.read_changes(Some(v0), 0..u64::MAX, usize::MAX, &mut c)
        .unwrap();
    assert_eq!(c.version(), v);
    assert_eq!(c.ranges(), &[(4096, 3 * 4096), (200 * 4096, 4096)]);
    assert_eq!(c.data().len(), 4 * 4096);
    assert_eq!(&c.data()[5000 - 4096..5010 - 4096], &[1; 10]);
    assert_eq!(&c.data()[3 * 4096..], &[3; 4096]);
    // Since the second write: only chunk 200 and the chunks the second write covered.
    p.read_changes(Some(v - 1), 0..u64::MAX, usize::MAX, &mut c)
        .unwrap();
    assert_eq!(c.ranges(), &[(200 * 4096, 4096)]);
    // Nothing since the newest version.
    p.read_changes(Some(v), 0..u64::MAX, usize::MAX, &mut c)
        .unwrap();
    assert!(c.ranges().is_empty() && c.data().is_empty());
    // A byte range limits the scan; an unwritten chunk is not a change, but is in a full copy.
    p.read_changes(Some(v0), 8192..8193, usize::MAX, &mut c)
        .unwrap();
    assert_eq!(c.ranges(), &[(8192, 4096)]);
    p.read_changes(None, 0..3 * 4096, usize::MAX, &mut c)
        .unwrap();
    assert_eq!(c.ranges(), &[(0, 3 * 4096)]);
}

#[test]
fn a_scan_stops_at_max_bytes_and_goes_on_from_next() {
    let (p, _r, _n) = pair("paged", 64 * 4096, 4096);
    for i in 0..64 {
        p.write(i * 4096, &[i as u8; 4096]).unwrap();
    }
    let mut c = Changes::new();
    let (mut from, mut got) = (0, Vec::new());
    loop {
        p.read_changes(Some(0), from..u64::MAX, 10 * 4096, &mut c)
            .unwrap();
        assert!(c.data().len() <= 10 * 4096 && !c.data().is_empty());
        got.extend_from_slice(c.data());
        match c.next() {
            Some(n) => from = n,
            None => break,
        }
    }
    assert_eq!(got, contents(&p));
}

#[test]
fn touch_range_marks_raw_writes_and_touch_marks_nothing() {
    let (p, _r, _n) = pair("touch", 16 * 4096, 4096);
    let v0 = p.version();
    // SAFETY: no other handle of this region writes it in this test.
    unsafe { p.as_ptr().add(4096 * 5).write_bytes(9, 100) };
    p.touch().unwrap();
    let mut c = Changes::new();
    p.read_changes(Some(v0), 0..u64::MAX, usize::MAX, &mut c)
        .unwrap();
    assert!(c.ranges().is_empty(), "touch() names no bytes");
    p.touch_range(4096 * 5, 100).unwrap();
    p.read_changes(Some(v0), 0..u64::MAX, usize::MAX, &mut c)
        .unwrap();
    assert_eq!(c.ranges(), &[(5 * 4096, 4096)]);
}

#[test]
fn a_replica_follows_the_primary_and_is_byte_identical() {
    let (p, r, _n) = pair("follow", 1 << 20, 1024);
    r.become_replica(p.incarnation()).unwrap();
    let mut seen = None;
    for round in 0..20u8 {
        for i in 0..50u64 {
            let off = (i * 7919 + round as u64 * 131) % ((1 << 20) - 300);
            p.write(off, &[round ^ i as u8; 300]).unwrap();
        }
        seen = Some(ship(&p, &r, seen, true));
        assert_eq!(contents(&p), contents(&r), "round {round}");
    }
    let st = r.replica().unwrap();
    assert_eq!(st.applied, seen.unwrap());
    assert_eq!(st.source, p.incarnation());
}

#[test]
fn an_older_message_applied_after_a_newer_one_changes_nothing() {
    let (p, r, _n) = pair("lww", 8 * 4096, 4096);
    r.become_replica(p.incarnation()).unwrap();
    p.write(0, &[1; 4096]).unwrap();
    let mut old = Changes::new();
    p.read_changes(None, 0..u64::MAX, usize::MAX, &mut old)
        .unwrap();
    p.write(0, &[2; 4096]).unwrap();
    ship(&p, &r, None, true);
    let d = Delta {
        source: p.incarnation(),
        version: old.version(),
        ranges: old.ranges(),
        data: old.data(),
        torn: None,
        applied: None,
    };
    let a = r.apply(&d).unwrap();
    assert_eq!((a.written, a.skipped), (0, 8));
    assert_eq!(contents(&r), contents(&p));
    // The same message twice: the second applies nothing.
    p.write(4096, &[3; 10]).unwrap();
    let mut c = Changes::new();
    p.read_changes(Some(d.version + 1), 0..u64::MAX, usize::MAX, &mut c)
        .unwrap();
    let again = Delta {
        source: p.incarnation(),
        version: c.version(),
        ranges: c.ranges(),
        data: c.data(),
        torn: None,
        applied: Some(c.version()),
    };
    assert_eq!(r.apply(&again).unwrap().written, 1);
    assert_eq!(r.apply(&again).unwrap().written, 0);
    assert_eq!(contents(&r), contents(&p));
}

#[test]
fn a_replica_refuses_local_writes_until_promoted() {
    let (p, r, _n) = pair("ro", 8 * 4096, 4096);
    r.become_replica(p.incarnation()).unwrap();
    assert!(matches!(r.write(0, b"x"), Err(Error::ReadOnly(_))));
    assert!(matches!(r.touch(), Err(Error::ReadOnly(_))));
    for _ in 0..10 {
        p.write(0, b"abc").unwrap();
    }
    let applied = ship(&p, &r, None, true);
    let old = r.incarnation();
    let v = r.promote().unwrap();
    assert!(r.replica().is_none() && !r.is_replica());
    assert_ne!(
        r.incarnation(),
        old,
        "a promoted replica is another history"
    );
    assert!(
        v > applied,
        "the version moves past the table's generations"
    );
    let w = r.write(3 * 4096, b"own").unwrap();
    let mut c = Changes::new();
    r.read_changes(Some(w - 1), 0..u64::MAX, usize::MAX, &mut c)
        .unwrap();
    assert_eq!(
        c.ranges(),
        &[(3 * 4096, 4096)],
        "only the new write is newer"
    );
}

#[test]
fn apply_checks_what_came_over_the_network() {
    let (p, r, _n) = pair("check", 8 * 4096, 4096);
    let d = |ranges: &'static [(u64, u64)], data: &'static [u8], source| Delta {
        source,
        version: 5,
        ranges,
        data,
        torn: None,
        applied: Some(5),
    };
    assert!(
        matches!(r.apply(&d(&[], &[], p.incarnation())), Err(Error::InvalidArgument(m)) if m.contains("no replica"))
    );
    r.become_replica(p.incarnation()).unwrap();
    static PAGE: [u8; 4096] = [7; 4096];
    type Case = (&'static [(u64, u64)], &'static [u8], u64);
    let bad: [Case; 6] = [
        (&[(0, 4096)], &PAGE, 1),             // another primary
        (&[(1, 4096)], &PAGE, 0),             // not chunk aligned
        (&[(0, 100)], &PAGE[..100], 0),       // not a whole chunk
        (&[(7 * 4096, 8192)], &[], 0),        // past the end
        (&[(0, 4096)], &PAGE[..10], 0),       // data of another length
        (&[(4096, 4096), (0, 4096)], &[], 0), // not ascending
    ];
    for (ranges, data, src) in bad {
        let src = if src == 0 {
            p.incarnation()
        } else {
            !p.incarnation()
        };
        let v = r.version();
        let e = r.apply(&d(ranges, data, src)).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{ranges:?}: {e}");
        assert_eq!(r.version(), v, "nothing applied");
    }
    assert_eq!(r.replica().unwrap().applied, 0);
    assert!(contents(&r).iter().all(|&b| b == 0));
}

#[test]
fn staleness_bounds_reads_on_a_replica() {
    let (p, r, _n) = pair("fresh", 4096, 4096);
    let mut b = [0u8; 4];
    // No replica: always fresh.
    p.read_fresh(0, &mut b, Duration::ZERO).unwrap();
    r.become_replica(p.incarnation()).unwrap();
    let e = r
        .read_fresh(0, &mut b, Duration::from_secs(60))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Stale {
                staleness: None,
                ..
            }
        ),
        "never in sync: {e}"
    );
    p.write(0, b"data").unwrap();
    let v = ship(&p, &r, None, true);
    r.note_primary(&PrimaryNews {
        version: v,
        alive: true,
        writer_alive: Some(true),
        catching_up: false,
    });
    r.read_fresh(0, &mut b, Duration::from_secs(5)).unwrap();
    assert_eq!(&b, b"data");
    let st = r.replica().unwrap();
    assert!(st.primary_alive && st.writer_alive == Some(true) && st.lag() == 0);
    // The primary moved on, and the replica has not applied it: no longer in sync.
    std::thread::sleep(Duration::from_millis(30));
    r.note_primary(&PrimaryNews {
        version: v + 3,
        alive: true,
        writer_alive: None,
        catching_up: false,
    });
    let st = r.replica().unwrap();
    assert_eq!(st.lag(), 3);
    assert!(st.heard.unwrap() < st.staleness.unwrap());
    let e = r
        .read_fresh(0, &mut b, Duration::from_millis(20))
        .unwrap_err();
    assert!(matches!(e, Error::Stale { applied, seen, .. } if applied == v && seen == v + 3));
    r.read_fresh(0, &mut b, Duration::from_secs(5)).unwrap();
    r.note_primary_alive(false);
    assert!(!r.replica().unwrap().primary_alive);
}

#[test]
fn a_torn_range_travels_to_the_replica() {
    let (p, r, _n) = pair("torn", 4 * 4096, 4096);
    r.become_replica(p.incarnation()).unwrap();
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        p.write_with(100, 50, |_| panic!("writer dies mid-write"))
            .unwrap();
    }));
    assert_eq!(p.torn().unwrap(), Some((100, 50)));
    ship(&p, &r, Some(0), true);
    let mut b = [0u8; 10];
    assert!(matches!(
        r.read(120, &mut b),
        Err(Error::Torn {
            offset: 100,
            len: 50
        })
    ));
    r.read(4096, &mut b).unwrap();
    // The primary rewrites it; the replica's torn range goes with the next delta.
    let v = p.version();
    p.write(0, &[5; 4096]).unwrap();
    ship(&p, &r, Some(v), true);
    r.read(120, &mut b).unwrap();
    assert_eq!(b, [5; 10]);
}

#[test]
fn one_writer_claims_a_region_and_its_death_is_seen() {
    let (p, _r, _n) = pair("claim", 4096, 4096);
    let other = Region::open(p.path().to_str().unwrap(), &RegionOptions::new()).unwrap();
    assert_eq!(other.writer(), None);
    let claim = p.claim_writer().unwrap();
    let w = other.writer().unwrap();
    assert_eq!((w.pid, w.alive), (std::process::id(), true));
    assert!(
        matches!(other.claim_writer(), Err(Error::WriterExists { pid }) if pid == std::process::id())
    );
    drop(claim);
    assert!(!other.writer().unwrap().alive);
    let _again = other.claim_writer().unwrap();
    assert!(p.writer().unwrap().alive);
}

#[test]
fn chunk_sizes_out_of_range_are_refused() {
    for chunk in [0, 32, 1000, 2 << 20] {
        let e = Region::create(
            &format!("rrep-bad-{}", std::process::id()),
            4096,
            &RegionOptions::new().chunk_size(chunk),
        )
        .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{chunk}: {e}");
    }
}
