//! A queue or region file shrunk under live mappings (issue 11 item 3): before, the next access
//! to a page past the new end raised SIGBUS and killed every process that had it mapped. Now
//! each gets `Corrupt` and lives on.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::*;
use shmio::queue::{Consumer, Error, Policy, Producer, QueueOptions, Start};
use shmio::region::{self, Region, RegionOptions};

const T: Duration = Duration::from_secs(30);

fn truncate(path: &std::path::Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn a_blocked_consumer_gets_corrupt_when_the_queue_file_shrinks() {
    let q = QueueName::new("trunc-blocked");
    let mut p = Proc::qtool(&["produce", &q.0, "--count", "1", "--hold"]);
    p.expect_line("sent 1", T);
    let mut c = Consumer::open(&q.0, Start::Sequence(1)).unwrap();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let r = c.recv_for(&mut buf, Some(Duration::from_secs(10)));
        let again = c.try_recv(&mut buf);
        (r.map(|_| ()), again.map(|_| ()), Instant::now())
    });
    std::thread::sleep(Duration::from_millis(100));
    let cut = Instant::now();
    truncate(&q.path(), 0);
    let (r, again, done) = h.join().unwrap();
    assert!(matches!(r, Err(Error::Corrupt(_))), "{r:?}");
    assert!(matches!(again, Err(Error::Corrupt(_))), "{again:?}");
    assert!(done.duration_since(cut) < Duration::from_secs(1));
    p.kill9();
}

#[test]
fn busy_processes_survive_the_queue_file_shrinking_under_them() {
    for policy in ["bp", "overwrite"] {
        let q = QueueName::new("trunc-busy");
        let mut p = Proc::qtool(&[
            "produce",
            &q.0,
            "--policy",
            policy,
            "--slots",
            "256",
            "--size",
            "1024",
            "--count",
            "100000000",
            "--wait-consumers",
            "1",
            "--interval-us",
            "2",
        ]);
        p.expect_line("ready", T);
        let mut c = Proc::qtool(&[
            "consume",
            &q.0,
            "--from",
            "oldest",
            "--quiet",
            "--zero-copy",
        ]);
        c.expect_line("opened", T);
        std::thread::sleep(Duration::from_millis(200));
        // Keep only the header page: every slot page is gone for both of them.
        truncate(&q.path(), 4096);
        for (who, proc_) in [("consumer", &mut c), ("producer", &mut p)] {
            let deadline = Instant::now() + Duration::from_secs(10);
            let st = loop {
                if let Some(st) = proc_.child.try_wait().unwrap() {
                    break st;
                }
                assert!(Instant::now() < deadline, "{policy}: the {who} went on");
                std::thread::sleep(Duration::from_millis(5));
            };
            assert_eq!(
                st.signal(),
                None,
                "{policy}: the {who} was killed by a signal"
            );
            assert_eq!(
                st.code(),
                Some(1),
                "{policy}: the {who} must fail with an error"
            );
        }
        let (_, lines) = c.finish(T);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("shrank") || l.contains("corrupt")),
            "{lines:?}"
        );
    }
}

#[test]
fn an_in_process_producer_and_consumer_get_corrupt_not_sigbus() {
    let q = QueueName::new("trunc-inproc");
    let opts = QueueOptions::new()
        .slots(64)
        .slot_size(512)
        .policy(Policy::Overwrite);
    let mut p = Producer::create(&q.0, &opts).unwrap();
    let mut c = Consumer::open(&q.0, Start::Oldest).unwrap();
    p.send(b"before").unwrap();
    truncate(&q.path(), 4096);
    let mut failed = false;
    for i in 0..200u64 {
        if let Err(e) = p.send(&i.to_le_bytes()) {
            assert!(matches!(e, Error::Corrupt(_)), "{e}");
            failed = true;
            break;
        }
    }
    assert!(failed, "the producer kept writing into a shrunk file");
    let mut buf = [0u8; 512];
    assert!(matches!(c.try_recv(&mut buf), Err(Error::Corrupt(_))));
}

#[test]
fn region_readers_and_writers_get_corrupt_when_the_file_shrinks() {
    let n = format!("shmio-e2e-region-trunc-{}", std::process::id());
    let r = std::sync::Arc::new(Region::create(&n, 1 << 20, &RegionOptions::new()).unwrap());
    r.write(0, &[1u8; 1 << 20]).unwrap();
    let reader = {
        let r = std::sync::Arc::clone(&r);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            let t = Instant::now();
            loop {
                if let Err(e) = r.read(512 << 10, &mut buf) {
                    return Some(e.to_string());
                }
                if t.elapsed() > Duration::from_secs(10) {
                    return None;
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    truncate(&region::resolve(&n).unwrap(), 4096 + 4096);
    let err = reader.join().unwrap().expect("the reader went on reading");
    assert!(err.contains("shrank"), "{err}");
    assert!(r.write(600 << 10, b"x").is_err());
    assert!(
        r.wait_changed(r.version(), Some(Duration::from_millis(10)))
            .is_err()
    );
    drop(r);
    // By path: the shrunk file no longer has a region header, so the checked unlink refuses it.
    std::fs::remove_file(region::resolve(&n).unwrap()).unwrap();
}
