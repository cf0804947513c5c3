//! A primary whose snapshot queryable takes queries and never answers (as a query sent while a
//! link is coming back can go unanswered): the replica gives each fetch up after its
//! `reply_idle`, counts it, and its thread stays responsive (it stops when asked, at once,
//! rather than after the query's 60 s timeout). One process, Zenoh over loopback only.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shmio_bridge::Stop;
use shmio_bridge::config::NetOptions;
use shmio_bridge::region_in::{self, RegionInOptions};
use shmio_bridge::region_wire::{Kind, Msg};
use zenoh::Wait;

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_snapshot_query_nobody_answers_is_given_up_and_the_replica_stays_responsive() {
    let endpoint = format!("tcp/127.0.0.1:{}", free_port());
    let prefix = format!("shmio/test-silent-{}", std::process::id());
    let primary_net = NetOptions {
        listen: vec![endpoint.clone()],
        prefix: prefix.clone(),
        ..NetOptions::default()
    };
    let replica_net = NetOptions {
        connect: vec![endpoint],
        prefix,
        ..NetOptions::default()
    };
    let name = format!("silent-{}", std::process::id());
    // The replica's region, removed also when the test fails.
    struct Unlink(String);
    impl Drop for Unlink {
        fn drop(&mut self) {
            let _ = shmio::region::unlink(&self.0);
        }
    }
    let _unlink = Unlink(name.clone());
    let primary = primary_net.open().unwrap();
    // Queries are kept, unanswered: dropping one would end it (an empty answer).
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = Arc::clone(&held);
    let _queryable = primary
        .declare_queryable(primary_net.key(&name, "snapshot"))
        .callback(move |q| h.lock().unwrap().push(q))
        .wait()
        .unwrap();
    let publisher = primary
        .declare_publisher(primary_net.key(&name, "delta"))
        .wait()
        .unwrap();

    let stop = Arc::new(Stop::new());
    let opts = RegionInOptions {
        reply_idle: Duration::from_millis(300),
        ..RegionInOptions::new(&name)
    };
    let replica = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || region_in::run(&replica_net, &opts, &stop, &|| {}))
    };
    // A delta that the empty replica cannot apply without a fetch, sent until a query comes.
    let data = [7u8; 1024];
    let delta = Msg {
        kind: Kind::Delta,
        incarnation: 42,
        version: 5,
        base: 3,
        size: 64 << 10,
        chunk: 1024,
        flags: 0,
        torn: None,
        part: 0,
        parts: 1,
        ranges: vec![(0, 1024)],
        data: &data,
    }
    .encode();
    let t0 = Instant::now();
    while held.lock().unwrap().len() < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the replica never asked for a snapshot"
        );
        publisher.put(delta.clone()).wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    // Two queries: the first was given up (a 60 s wait would have held the thread).
    assert!(t0.elapsed() < Duration::from_secs(20));
    let asked = Instant::now();
    stop.set();
    let stats = replica.join().unwrap().unwrap();
    let took = asked.elapsed();
    assert!(stats.stalled >= 1, "{stats:?}");
    assert!(stats.catchups >= 2, "{stats:?}");
    // At most the fetch in flight (300 ms without a reply) and one poll of the stop flag.
    assert!(
        took < Duration::from_secs(2),
        "stopped {took:?} after it was asked"
    );
    let _ = shmio::region::unlink(&name);
}
