//! The queue bridge between two "hosts": network namespaces joined by a veth pair, each with
//! its own tmpfs `SHMIO_DIR` (see `shmio_bridge::netns`). Host A runs the producer and
//! `queue-out`, host B `queue-in` and a checking consumer; the only way from A's queue to
//! B's is Zenoh over TCP across the veth link.
//!
//! Needs root; where network namespaces cannot be created each test says so and passes.
//! Every wait is bounded, and the namespaces, mounts and processes go even when a test fails.

mod common;

use std::time::Duration;

use shmio_bridge::netns::{Hosts, Proc};
use shmio_tests::monotonic_ns;

use common::{BRIDGE, LEASE, LEASE_MS, SERIAL, T, TOOL, hosts, num};

const ENDPOINT: &str = "tcp/198.18.0.1:7447";

/// `queue-out` for queue `q` on host A, ready.
fn queue_out(h: &Hosts) -> Proc {
    let args = [
        "queue-out",
        "--queue",
        "q",
        "--listen",
        ENDPOINT,
        "--lease-ms",
        LEASE,
    ];
    let mut out = h.start(&h.a, BRIDGE, args);
    out.line("ready", T).unwrap();
    out
}

/// The two bridges for queue `q`, both ready.
fn bridges(h: &Hosts, extra_in: &[&str]) -> (Proc, Proc) {
    let out = queue_out(h);
    let mut args = vec![
        "queue-in",
        "--queue",
        "q",
        "--connect",
        ENDPOINT,
        "--lease-ms",
        LEASE,
    ];
    args.extend_from_slice(extra_in);
    let mut inb = h.start(&h.b, BRIDGE, args);
    inb.line("ready", T).unwrap();
    (out, inb)
}

#[test]
fn a_million_records_in_back_pressure_mode_arrive_whole_in_order_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(h) = hosts() else { return };
    let n = "1000000";
    let mut producer = h.start(
        &h.a,
        TOOL,
        [
            "produce",
            "q",
            "--count",
            n,
            "--size",
            "64",
            "--slots",
            "1024",
            "--wait-consumers",
            "1",
        ],
    );
    producer.line("ready", T).unwrap();
    let (mut out, mut inb) = bridges(&h, &["--wait-consumers", "1"]);
    let mut check = h.start(
        &h.b,
        TOOL,
        ["check", "q", "--count", n, "--timeout-ms", "30000"],
    );
    let end = check.line("end", Duration::from_secs(120)).unwrap();
    assert_eq!(check.wait(T).unwrap().code(), Some(0), "{end}");
    for (k, v) in [
        ("received", 1_000_000),
        ("dup", 0),
        ("order", 0),
        ("gaps", 0),
    ] {
        assert_eq!(num(&end, k), v, "{k} in {end}");
    }
    for (k, v) in [("torn", 0), ("first", 0), ("last", 999_999), ("lost", 0)] {
        assert_eq!(num(&end, k), v, "{k} in {end}");
    }
    let sent = producer.line("sent", T).unwrap();
    assert_eq!(producer.wait(T).unwrap().code(), Some(0));
    // The producer closed: B's bridge ends the generation as closed, with nothing lost.
    let b = inb.line("end", T).unwrap();
    assert!(b.contains("upstream=closed"), "{b}");
    for (k, v) in [
        ("produced", 1_000_000),
        ("lost_upstream", 0),
        ("lost_between", 0),
    ] {
        assert_eq!(num(&b, k), v, "{k} in {b}");
    }
    assert_eq!(num(&b, "duplicates"), 0, "{b}");
    out.term();
    let a = out.line("end", T).unwrap();
    assert_eq!(num(&a, "records"), 1_000_000, "{a}");
    let secs: f64 = check_secs(&end);
    eprintln!(
        "1,000,000 records of 64 B from A to B: {:.0} records/s ({sent})",
        1e6 / secs
    );
}

fn check_secs(end: &str) -> f64 {
    end.split_whitespace()
        .find_map(|w| w.strip_prefix("secs="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn a_full_queue_on_b_slows_the_producer_on_a() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(h) = hosts() else { return };
    // 64-slot rings on both hosts and a 64-record credit window: about 200 records fit
    // between the producer and the slow consumer; the other 4800 wait 200 us each for it.
    let mut producer = h.start(
        &h.a,
        TOOL,
        [
            "produce",
            "q",
            "--count",
            "5000",
            "--slots",
            "64",
            "--wait-consumers",
            "1",
        ],
    );
    producer.line("ready", T).unwrap();
    let (_out, _inb) = bridges(&h, &["--wait-consumers", "1", "--window", "64"]);
    let mut check = h.start(
        &h.b,
        TOOL,
        ["check", "q", "--count", "5000", "--slow-us", "200"],
    );
    let sent = producer.line("sent", T).unwrap();
    let end = check.line("end", T).unwrap();
    assert_eq!(num(&end, "received"), 5000, "{end}");
    assert_eq!(
        (num(&end, "gaps"), num(&end, "dup"), num(&end, "torn")),
        (0, 0, 0),
        "{end}"
    );
    let secs = check_secs(&sent);
    assert!(
        secs > 0.5,
        "the producer was not slowed by B's consumer: {sent}"
    );
}

#[test]
fn producer_death_on_a_is_seen_on_b_after_draining_and_a_take_over_is_followed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(h) = hosts() else { return };
    let mut first = h.start(
        &h.a,
        TOOL,
        [
            "produce",
            "q",
            "--count",
            "1000",
            "--wait-consumers",
            "1",
            "--then",
            "die",
        ],
    );
    first.line("ready", T).unwrap();
    let (_out, mut inb) = bridges(&h, &["--wait-consumers", "1"]);
    let mut check = h.start(&h.b, TOOL, ["check", "q", "--count", "1500", "--follow"]);
    // All 1000 records, then the death (the bridge's own producer on B died).
    let gone = check.line("gone", T).unwrap();
    assert!(gone.starts_with("gone dead received=1000"), "{gone}");
    let b = inb.line("end", T).unwrap();
    assert!(
        b.contains("upstream=dead (the upstream producer died)"),
        "{b}"
    );
    assert_eq!(
        first.wait(T).unwrap().code(),
        None,
        "killed by its own SIGKILL"
    );
    // A new producer takes the queue over on A; B's bridge takes B's over, and the consumer
    // goes on from record 1000.
    let mut second = h.start(
        &h.a,
        TOOL,
        [
            "produce",
            "q",
            "--open",
            "--count",
            "500",
            "--wait-consumers",
            "1",
        ],
    );
    second.line("ready 1000", T).unwrap();
    check.line("back", T).unwrap();
    let end = check.line("end", T).unwrap();
    assert!(end.starts_with("end done received=1500"), "{end}");
    for (k, v) in [
        ("first", 0),
        ("last", 1499),
        ("gaps", 0),
        ("dup", 0),
        ("torn", 0),
    ] {
        assert_eq!(num(&end, k), v, "{k} in {end}");
    }
}

#[test]
fn bridge_kill_on_a_is_seen_on_b_at_once_and_a_silent_link_within_the_lease() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(h) = hosts() else { return };
    let mut producer = h.start(
        &h.a,
        TOOL,
        [
            "produce",
            "q",
            "--count",
            "100",
            "--wait-consumers",
            "1",
            "--then",
            "hold",
        ],
    );
    producer.line("ready", T).unwrap();
    let (mut out, mut inb) = bridges(&h, &["--wait-consumers", "1"]);
    let mut check = h.start(
        &h.b,
        TOOL,
        ["check", "q", "--follow", "--timeout-ms", "20000"],
    );
    producer.line("sent 100", T).unwrap();
    // kill -9 of A's bridge: its TCP connection closes with it.
    std::thread::sleep(Duration::from_millis(300));
    let t_kill = monotonic_ns();
    out.kill9();
    let gone = check.line("gone", T).unwrap();
    assert!(gone.starts_with("gone dead received=100"), "{gone}");
    let took_ms = (num(&gone, "t_ns") - t_kill) / 1_000_000;
    eprintln!("A's bridge killed: B's consumer saw ProducerDead {took_ms} ms later");
    assert!(took_ms < LEASE_MS, "{took_ms} ms");
    let b = inb.line("end", T).unwrap();
    assert!(b.contains("upstream bridge is gone"), "{b}");

    // A new bridge on A; B's next worker takes its queue over.
    let _out = queue_out(&h);
    check.line("back", T).unwrap();
    // The link goes silent (no FIN, no RST): B notices within the lease.
    std::thread::sleep(Duration::from_millis(300));
    let t_down = monotonic_ns();
    h.set_link(false).unwrap();
    let gone = check.line("gone", T).unwrap();
    let took_ms = (num(&gone, "t_ns") - t_down) / 1_000_000;
    eprintln!("link down: B's consumer saw ProducerDead {took_ms} ms later (lease {LEASE_MS} ms)");
    assert!(gone.starts_with("gone dead"), "{gone}");
    assert!(took_ms < 2 * LEASE_MS + 500, "{took_ms} ms");
    h.set_link(true).unwrap();
    check.line("back", T).unwrap();
}

#[test]
fn overwrite_mode_loses_records_and_counts_every_one() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(h) = hosts() else { return };
    let total = 200_000u64;
    // Nothing holds an overwrite producer back: it starts once B's consumer is attached.
    let go = h.a.shm_dir.join("go");
    let mut producer = h.start(
        &h.a,
        TOOL,
        [
            "produce",
            "q",
            "--count",
            &total.to_string(),
            "--policy",
            "overwrite",
            "--slots",
            "64",
            "--go-file",
            go.to_str().unwrap(),
        ],
    );
    producer.line("ready", T).unwrap();
    let (mut out, mut inb) = bridges(&h, &["--wait-consumers", "1"]);
    let mut check = h.start(&h.b, TOOL, ["check", "q"]);
    check.line("opened", T).unwrap();
    std::fs::write(&go, b"").unwrap();
    let end = check.line("end", T).unwrap();
    assert!(end.starts_with("end closed"), "{end}");
    let b = inb.line("end", T).unwrap();
    out.term();
    let a = out.line("end", T).unwrap();
    let (published, lost_a) = (num(&a, "records"), num(&a, "lost_here"));
    let (produced, lost_up, lost_between) = (
        num(&b, "produced"),
        num(&b, "lost_upstream"),
        num(&b, "lost_between"),
    );
    eprintln!("overwrite: {a} / {b} / {end}");
    // Every record was published or lost on A; every published one produced on B or lost
    // between the bridges; the consumer on B accounts for every sequence number it missed.
    assert_eq!(published + lost_a, total, "{a}");
    assert!(lost_a > 0 && lost_up > 0, "no loss to count: {a} {b}");
    assert!(lost_up <= lost_a, "{a} {b}");
    assert_eq!(produced + lost_between, published, "{a} {b}");
    assert_eq!(
        (num(&end, "dup"), num(&end, "order"), num(&end, "torn")),
        (0, 0, 0)
    );
    // What B's consumer missed: before its first record, in gaps, and after its last (the
    // stream's last batches may be dropped between the bridges, which B's bridge counts from
    // the end message).
    let last = num(&end, "last");
    assert!(last < total, "{end}");
    let missed = num(&end, "first") + num(&end, "gaps") + (total - 1 - last);
    assert_eq!(
        missed,
        lost_a + lost_between + num(&end, "lost"),
        "{a} {b} {end}"
    );
}

#[test]
fn the_benchmark_runs_and_prints_its_ratios() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = std::process::Command::new(TOOL)
        .args([
            "bench",
            "--what",
            "queue",
            "--count64",
            "20000",
            "--count64k",
            "300",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if String::from_utf8_lossy(&out.stderr).contains("SKIPPED") {
        return;
    }
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_end().ends_with('x'))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows[0].trim_start().starts_with("64 ") && rows[1].trim_start().starts_with("65536"));
}

#[test]
fn both_bridges_can_go_through_a_zenoh_router() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(h) = hosts() else { return };
    let router_ep = "tcp/198.18.0.1:7446";
    let mut router = h.start(&h.a, TOOL, ["router", "--listen", router_ep]);
    router.line("ready", T).unwrap();
    let mut producer = h.start(
        &h.a,
        TOOL,
        ["produce", "q", "--count", "20000", "--wait-consumers", "1"],
    );
    producer.line("ready", T).unwrap();
    let client = ["--client", "--connect", router_ep, "--lease-ms", LEASE];
    let mut out = h.start(
        &h.a,
        BRIDGE,
        [&["queue-out", "--queue", "q"][..], &client].concat(),
    );
    out.line("ready", T).unwrap();
    let in_args = ["queue-in", "--queue", "q", "--wait-consumers", "1"];
    let mut inb = h.start(&h.b, BRIDGE, [&in_args[..], &client].concat());
    inb.line("ready", T).unwrap();
    let mut check = h.start(&h.b, TOOL, ["check", "q", "--count", "20000"]);
    let end = check.line("end", T).unwrap();
    assert!(
        end.starts_with("end done received=20000 dup=0 order=0 gaps=0 torn=0"),
        "{end}"
    );
}

#[test]
fn a_receiver_joining_mid_stream_gets_the_rest_and_counts_no_loss() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(h) = hosts() else { return };
    let mut producer = h.start(
        &h.a,
        TOOL,
        ["produce", "q", "--count", "30000", "--wait-consumers", "1"],
    );
    producer.line("ready", T).unwrap();
    let (_out, _inb) = bridges(&h, &["--wait-consumers", "1"]);
    // The first receiver's consumer is slow, so the stream (paced by it) lasts seconds.
    let mut first = h.start(
        &h.b,
        TOOL,
        ["check", "q", "--count", "30000", "--slow-us", "20"],
    );
    first.line("opened", T).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let second_in = [
        "queue-in",
        "--queue",
        "q",
        "--local",
        "q2",
        "--connect",
        ENDPOINT,
        "--wait-consumers",
        "1",
        "--lease-ms",
        LEASE,
    ];
    let mut inb2 = h.start(&h.b, BRIDGE, second_in);
    inb2.line("ready", T).unwrap();
    let mut second = h.start(&h.b, TOOL, ["check", "q2"]);
    let end = first.line("end", T).unwrap();
    assert!(
        end.starts_with("end done received=30000 dup=0 order=0 gaps=0"),
        "{end}"
    );
    let end2 = second.line("end", T).unwrap();
    let b2 = inb2.line("end", T).unwrap();
    eprintln!("joined mid-stream: {b2} / {end2}");
    assert!(end2.starts_with("end closed"), "{end2}");
    assert_eq!(
        (num(&end2, "gaps"), num(&end2, "dup"), num(&end2, "torn")),
        (0, 0, 0)
    );
    assert_eq!(num(&end2, "last"), 29_999, "{end2}");
    assert!(num(&end2, "first") > 0, "did not join mid-stream: {end2}");
    assert_eq!(
        (num(&b2, "lost_between"), num(&b2, "duplicates")),
        (0, 0),
        "{b2}"
    );
    assert_eq!(num(&b2, "produced"), num(&end2, "received"), "{b2} {end2}");
}
