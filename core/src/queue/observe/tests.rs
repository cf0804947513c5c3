use std::os::unix::fs::FileExt;
use std::time::Duration;

use super::*;
use crate::queue::{Consumer, Policy, Producer, QueueOptions};

fn name(tag: &str) -> String {
    format!("shmio-unit-observe-{tag}-{}", std::process::id())
}

use crate::queue::testing::Cleanup;

#[test]
fn sees_every_record_from_oldest_and_only_new_ones_from_newest() {
    let q = name("basic");
    let _c = Cleanup(q.clone());
    let mut tx = Producer::create(&q, &QueueOptions::new().slots(16).slot_size(32)).unwrap();
    tx.send(b"one").unwrap();
    tx.send(b"two").unwrap();
    let mut old = Observer::open(&q, Start::Oldest).unwrap();
    let mut new = Observer::open(&q, Start::Newest).unwrap();
    tx.send(b"three").unwrap();
    let mut buf = [0u8; 32];
    let mut got = Vec::new();
    while let Some(r) = old.try_next(&mut buf).unwrap() {
        assert_eq!(r.lost_before, 0);
        got.push((r.seq, buf[..r.len].to_vec()));
    }
    assert_eq!(
        got,
        vec![
            (0, b"one".to_vec()),
            (1, b"two".to_vec()),
            (2, b"three".to_vec())
        ]
    );
    let r = new.try_next(&mut buf).unwrap().unwrap();
    assert_eq!((r.seq, &buf[..r.len]), (2, &b"three"[..]));
    assert_eq!(new.try_next(&mut buf).unwrap(), None);
    assert_eq!(old.received(), 3);
    assert_eq!(
        old.producer(),
        ProducerStatus::Alive {
            pid: std::process::id()
        }
    );
    // A short buffer gets the start of the record and its full length.
    tx.send(b"longer record").unwrap();
    let mut small = [0u8; 4];
    let r = new.try_next(&mut small).unwrap().unwrap();
    assert_eq!((r.len, &small), (13, b"long"));
    // Waiting: a timeout gives None.
    let t = std::time::Instant::now();
    assert_eq!(
        new.next_timeout(&mut buf, Some(Duration::from_millis(20)))
            .unwrap(),
        None
    );
    assert!(t.elapsed() >= Duration::from_millis(20));
}

#[test]
fn a_lapped_observer_counts_what_it_lost() {
    let q = name("lapped");
    let _c = Cleanup(q.clone());
    let mut tx = Producer::create(&q, &QueueOptions::new().slots(8).slot_size(8)).unwrap();
    let mut o = Observer::open(&q, Start::Oldest).unwrap();
    for i in 0u64..100 {
        tx.send(&i.to_le_bytes()).unwrap();
    }
    let mut buf = [0u8; 8];
    let first = o.try_next(&mut buf).unwrap().unwrap();
    assert_eq!(first.seq, 93, "the oldest record not being rewritten");
    assert_eq!(first.lost_before, 93);
    assert_eq!(u64::from_le_bytes(buf), 93);
    let mut n = 1;
    while let Some(r) = o.try_next(&mut buf).unwrap() {
        assert_eq!(u64::from_le_bytes(buf), r.seq);
        n += 1;
    }
    assert_eq!((n, o.lost(), o.received(), o.position()), (7, 93, 7, 100));
}

#[test]
fn an_observer_never_joins_so_a_back_pressure_producer_never_waits_for_it() {
    let q = name("bp");
    let _c = Cleanup(q.clone());
    let opts = QueueOptions::new()
        .slots(4)
        .slot_size(8)
        .policy(Policy::BackPressure);
    let mut tx = Producer::create(&q, &opts).unwrap();
    let mut o = Observer::open(&q, Start::Oldest).unwrap();
    for i in 0u64..40 {
        tx.try_send(&i.to_le_bytes()).unwrap();
    }
    let s = o.stats();
    assert_eq!((s.head, s.consumers.len()), (40, 0));
    let mut buf = [0u8; 8];
    let r = o.try_next(&mut buf).unwrap().unwrap();
    assert_eq!((r.seq, r.lost_before), (37, 37));
    // A real consumer does hold the producer back (it starts at record 39, the newest).
    let _rx = Consumer::open(&q, Start::Newest).unwrap();
    for i in 40u64..43 {
        tx.try_send(&i.to_le_bytes()).unwrap();
    }
    assert!(matches!(tx.try_send(b"x"), Err(Error::WouldBlock)));
}

#[test]
fn survey_tells_live_dead_and_free_roles_apart() {
    let q = name("survey");
    let _c = Cleanup(q.clone());
    let tx = Producer::create(&q, &QueueOptions::new().slots(4)).unwrap();
    let rx = Consumer::open(&q, Start::Newest).unwrap();
    let roles = survey(&q).unwrap();
    assert!(matches!(roles.producer, ProducerStatus::Alive { .. }));
    assert_eq!(roles.consumers.len(), 1);
    assert_eq!(roles.consumers[0].state, RoleState::Alive);
    assert!(roles.created_unix_ns > 0);
    drop(rx);
    drop(tx);
    let roles = survey(&q).unwrap();
    assert_eq!(roles.producer, ProducerStatus::None);
    assert!(roles.consumers.is_empty());
}

#[test]
fn nothing_read_from_the_file_is_trusted() {
    let q = name("corrupt");
    let _c = Cleanup(q.clone());
    let mut tx = Producer::create(&q, &QueueOptions::new().slots(4).slot_size(16)).unwrap();
    tx.send(b"abc").unwrap();
    let path = resolve(&q).unwrap();
    let slots_offset = Shared::open_read_only(&path).unwrap().layout.slots_offset;
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // Record 0's length beyond the slot size.
    f.write_at(&1000u32.to_le_bytes(), slots_offset + 8)
        .unwrap();
    let mut o = Observer::open(&q, Start::Oldest).unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(o.try_next(&mut buf), Err(Error::Corrupt(m)) if m.contains("1000 bytes")));
    // A head past any valid sequence number.
    f.write_at(&u64::MAX.to_le_bytes(), 128).unwrap();
    assert!(matches!(o.try_next(&mut buf), Err(Error::Corrupt(_))));
    drop(tx);
    // A truncated file does not open.
    f.set_len(100).unwrap();
    assert!(matches!(
        Observer::open(&q, Start::Oldest),
        Err(Error::Corrupt(_))
    ));
    assert!(matches!(survey(&q), Err(Error::Corrupt(_))));
}
