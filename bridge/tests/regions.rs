//! Region replication between two "hosts" (network namespaces joined by a veth pair, each with
//! its own tmpfs `SHMIO_DIR`; see `shmio_bridge::netns`): host A runs the writer and
//! `region-out`, host B `region-in` and the readers; the only way from A's region to B's is
//! Zenoh over TCP across the veth link.
//!
//! Needs root; where network namespaces cannot be created each test says so and passes.
//! Every wait is bounded, and the namespaces, mounts and processes go even when a test fails.

mod common;

use std::time::Duration;

use shmio_bridge::netns::{Hosts, Proc};
use shmio_tests::monotonic_ns;

use common::{BRIDGE, LEASE, LEASE_MS, SERIAL, T, TOOL, hosts, num};

const ENDPOINT: &str = "tcp/198.18.0.1:7448";

fn signed(line: &str, key: &str) -> i64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// A bridge for region `r` on host `on` (`region-out` listening on A, `region-in` connecting
/// on B), ready.
fn region_bridge(h: &Hosts, on: &shmio_bridge::netns::Host, cmd: &str, how: &str) -> Proc {
    let args = [cmd, "--region", "r", how, ENDPOINT, "--lease-ms", LEASE];
    let mut p = h.start(on, BRIDGE, args);
    p.line("ready", T).unwrap();
    p
}

fn region_out(h: &Hosts) -> Proc {
    region_bridge(h, &h.a, "region-out", "--listen")
}

fn region_in(h: &Hosts) -> Proc {
    region_bridge(h, &h.b, "region-in", "--connect")
}

/// The writer on A: `extra` after the region's name; ready (the region exists).
fn writer(h: &Hosts, extra: &[&str]) -> Proc {
    let mut args = vec!["region-write", "r"];
    args.extend_from_slice(extra);
    let mut w = h.start(&h.a, TOOL, args);
    w.line("ready", T).unwrap();
    w
}

/// A writer on A that has created the region and waits for [`go`] to write.
fn writer_waiting(h: &Hosts, extra: &[&str]) -> Proc {
    let go = h.a.shm_dir.join("go");
    let mut args = vec!["--go-file", go.to_str().unwrap()];
    args.extend_from_slice(extra);
    writer(h, &args)
}

fn go(h: &Hosts) {
    std::fs::write(h.a.shm_dir.join("go"), b"").unwrap();
}

/// Runs `region-state r --until COND` on host `on`; the state line once COND holds.
fn state_until(h: &Hosts, on: &shmio_bridge::netns::Host, cond: &str, ms: u64) -> String {
    state_of_until(h, on, "r", cond, ms)
}

fn state_of_until(
    h: &Hosts,
    on: &shmio_bridge::netns::Host,
    region: &str,
    cond: &str,
    ms: u64,
) -> String {
    let ms = ms.to_string();
    let mut p = h.start(
        on,
        TOOL,
        ["region-state", region, "--until", cond, "--timeout-ms", &ms],
    );
    let line = p.line("state", T).unwrap();
    assert_eq!(
        p.wait(T).unwrap().code(),
        Some(0),
        "{cond} never held: {line}"
    );
    line
}

fn state(h: &Hosts, on: &shmio_bridge::netns::Host) -> String {
    let mut p = h.start(on, TOOL, ["region-state", "r"]);
    let line = p.line("state", T).unwrap();
    p.wait(T).unwrap();
    line
}

fn stop(p: &mut Proc) -> String {
    p.term();
    p.line("end", T).unwrap()
}

#[test]
fn memsync_across_hosts_every_block_whole_and_the_regions_identical() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(h) = hosts() else { return };
    let mut w = writer_waiting(&h, &["--passes", "3", "--claim", "--then", "hold"]);
    let mut out = region_out(&h);
    let mut inb = region_in(&h);
    state_until(&h, &h.b, "fresh", 30_000);
    let stop_file = h.b.shm_dir.join("stop-reader");
    let mut reader = h.start(
        &h.b,
        TOOL,
        [
            "region-read",
            "r",
            "--stop-file",
            stop_file.to_str().unwrap(),
        ],
    );
    reader.line("ready", T).unwrap();
    go(&h);
    let done = w.line("done", T).unwrap();
    state_until(&h, &h.b, &format!("hash={}", num(&done, "hash")), 30_000);
    std::fs::write(&stop_file, b"").unwrap();
    let end = reader.line("end", T).unwrap();
    assert_eq!(reader.wait(T).unwrap().code(), Some(0), "{end}");
    assert_eq!((num(&end, "bad"), num(&end, "torn")), (0, 0), "{end}");
    assert!(
        num(&end, "whole") > 4096,
        "the reader saw the passes: {end}"
    );
    // Converged: identical bytes, every primary version applied, writer known alive.
    let b = state_until(
        &h,
        &h.b,
        &format!("applied={}", num(&done, "version")),
        5000,
    );
    assert!(
        b.contains("writer_alive=1") && b.contains("primary_alive=1"),
        "{b}"
    );
    let a_end = stop(&mut out);
    let b_end = stop(&mut inb);
    assert_eq!(num(&b_end, "full_copies"), 1, "{b_end}");
    assert_eq!(num(&b_end, "bad"), 0, "{b_end}");
    eprintln!("A: {done}\nA: {a_end}\nB: {b}\nB: {b_end}\nB reader: {end}");
}

#[test]
fn a_replica_joining_mid_run_converges() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(h) = hosts() else { return };
    // About 4 s of writing: 8 passes of 4,096 blocks, 100 us apart.
    let mut w = writer_waiting(&h, &["--passes", "8", "--pause-us", "100"]);
    let mut out = region_out(&h);
    go(&h);
    std::thread::sleep(Duration::from_millis(1000));
    let mut inb = region_in(&h);
    let done = w.line("done", T).unwrap();
    let b = state_until(&h, &h.b, &format!("hash={}", num(&done, "hash")), 30_000);
    state_until(
        &h,
        &h.b,
        &format!("applied={}", num(&done, "version")),
        5000,
    );
    let b_end = stop(&mut inb);
    assert_eq!(
        num(&b_end, "full_copies"),
        1,
        "one full copy at the join: {b_end}"
    );
    assert!(num(&b_end, "deltas") > 0, "then deltas: {b_end}");
    stop(&mut out);
    eprintln!("A: {done}\nB: {b}\nB: {b_end}");
}

#[test]
fn a_link_down_for_3_s_shows_as_growing_staleness_then_the_replica_converges() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(h) = hosts() else { return };
    let mut w = writer_waiting(&h, &["--passes", "12", "--pause-us", "100"]);
    let mut out = region_out(&h);
    let mut inb = region_in(&h);
    state_until(&h, &h.b, "fresh", 30_000);
    go(&h);
    std::thread::sleep(Duration::from_millis(300));
    h.set_link(false).unwrap();
    let down = monotonic_ns();
    // The replica says it is falling behind: staleness past 2 s while the link is down, and
    // the primary gone once the lease ran out.
    let during = state_until(&h, &h.b, "stale_ms>2000", 5000);
    assert!(during.contains("primary_alive=0"), "{during}");
    let t = num(&during, "t_ns").saturating_sub(down);
    assert!(
        t < 3_000_000_000,
        "link down for {} ms when seen",
        t / 1_000_000
    );
    std::thread::sleep(Duration::from_nanos(
        3_000_000_000u64.saturating_sub(monotonic_ns() - down),
    ));
    h.set_link(true).unwrap();
    let up = monotonic_ns();
    let fresh = state_until(&h, &h.b, "fresh", 30_000);
    let back_ms = (num(&fresh, "t_ns") - up) / 1_000_000;
    let done = w.line("done", T).unwrap();
    state_until(&h, &h.b, &format!("hash={}", num(&done, "hash")), 30_000);
    state_until(
        &h,
        &h.b,
        &format!("applied={}", num(&done, "version")),
        5000,
    );
    let b_end = stop(&mut inb);
    assert_eq!(
        num(&b_end, "full_copies"),
        1,
        "no full copy after the link: {b_end}"
    );
    assert!(
        num(&b_end, "catchups") >= 2,
        "a catch-up after the link: {b_end}"
    );
    stop(&mut out);
    eprintln!("during: {during}\nin sync {back_ms} ms after the link came back\nB: {b_end}");
}

#[test]
fn kill_9_of_the_primary_bridge_is_seen_and_a_restarted_one_resumes_without_a_full_copy() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(h) = hosts() else { return };
    let mut w = writer_waiting(&h, &[]);
    let mut out = region_out(&h);
    let mut inb = region_in(&h);
    go(&h);
    let done = w.line("done", T).unwrap();
    state_until(
        &h,
        &h.b,
        &format!("applied={}", num(&done, "version")),
        30_000,
    );
    let t0 = monotonic_ns();
    out.kill9();
    let gone = state_until(&h, &h.b, "primary_alive=0", 10_000);
    let seen_ms = (num(&gone, "t_ns") - t0) / 1_000_000;
    assert!(
        seen_ms < LEASE_MS + 1000,
        "the primary's bridge's death seen after {seen_ms} ms: {gone}"
    );
    // Meanwhile the primary moves on (its first 1 MiB); the restarted bridge brings the
    // replica up to date by sending only what changed.
    let more = writer(&h, &["--open", "--first-pass", "2", "--blocks", "1024"])
        .line("done", T)
        .unwrap();
    let mut out = region_out(&h);
    state_until(&h, &h.b, &format!("hash={}", num(&more, "hash")), 30_000);
    state_until(&h, &h.b, "primary_alive=1", 5000);
    let b_end = stop(&mut inb);
    assert_eq!(
        num(&b_end, "full_copies"),
        1,
        "only the first copy was full: {b_end}"
    );
    assert_eq!(
        num(&b_end, "catchup_bytes"),
        (4 << 20) + (1 << 20),
        "the first full copy, then the 1 MiB that changed: {b_end}"
    );
    let a_end = stop(&mut out);
    eprintln!("seen dead after {seen_ms} ms: {gone}\nB: {b_end}\nA (restarted): {a_end}");
}

#[test]
fn kill_9_of_the_primary_writer_is_seen_on_the_replica() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(h) = hosts() else { return };
    let mut w = writer(&h, &["--claim", "--then", "hold"]);
    let mut out = region_out(&h);
    let mut inb = region_in(&h);
    w.line("done", T).unwrap();
    state_until(&h, &h.b, "writer_alive=1", 30_000);
    let t0 = monotonic_ns();
    w.kill9();
    let dead = state_until(&h, &h.b, "writer_alive=0", 10_000);
    let seen_ms = (num(&dead, "t_ns") - t0) / 1_000_000;
    // A heartbeat every 100 ms carries the writer's state.
    assert!(
        seen_ms < 1000,
        "the writer's death seen after {seen_ms} ms: {dead}"
    );
    assert!(dead.contains("primary_alive=1"), "{dead}");
    stop(&mut inb);
    stop(&mut out);
    eprintln!("writer seen dead after {seen_ms} ms: {dead}");
}

#[test]
fn kill_9_of_the_replica_bridge_mid_run_and_a_restart_converge_without_a_full_copy() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(h) = hosts() else { return };
    // The writer rewrites the region's first 1 MiB for about 4 s: what changes while the
    // replica's bridge is down is within it.
    let mut w = writer_waiting(
        &h,
        &["--passes", "40", "--blocks", "1024", "--pause-us", "100"],
    );
    let mut out = region_out(&h);
    let mut inb = region_in(&h);
    state_until(&h, &h.b, "fresh", 30_000);
    go(&h);
    std::thread::sleep(Duration::from_millis(500));
    inb.kill9();
    let between = state(&h, &h.b);
    std::thread::sleep(Duration::from_millis(500));
    let mut inb = region_in(&h);
    let done = w.line("done", T).unwrap();
    state_until(&h, &h.b, &format!("hash={}", num(&done, "hash")), 30_000);
    let b_end = stop(&mut inb);
    assert_eq!(
        num(&b_end, "full_copies"),
        0,
        "resumed from the header: {b_end}"
    );
    assert!(
        num(&b_end, "catchup_bytes") <= 1 << 20,
        "only what changed meanwhile: {b_end}"
    );
    assert_eq!(signed(&between, "writer_alive"), -1, "{between}");
    stop(&mut out);
    eprintln!("after the kill: {between}\nB (restarted): {b_end}");
}

#[test]
fn two_replicas_follow_one_primary_through_a_zenoh_router() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(h) = hosts() else { return };
    let router_ep = "tcp/198.18.0.1:7445";
    let mut router = h.start(&h.a, TOOL, ["router", "--listen", router_ep]);
    router.line("ready", T).unwrap();
    let client = ["--client", "--connect", router_ep, "--lease-ms", LEASE];
    let mut w = writer_waiting(&h, &["--passes", "4", "--pause-us", "20"]);
    let mut out = h.start(
        &h.a,
        BRIDGE,
        [&["region-out", "--region", "r"][..], &client].concat(),
    );
    out.line("ready", T).unwrap();
    let mut replicas: Vec<Proc> = ["r1", "r2"]
        .iter()
        .map(|local| {
            let args = ["region-in", "--region", local, "--name", "r"];
            let mut p = h.start(&h.b, BRIDGE, [&args[..], &client].concat());
            p.line("ready", T).unwrap();
            p
        })
        .collect();
    go(&h);
    let done = w.line("done", T).unwrap();
    for local in ["r1", "r2"] {
        let cond = format!("hash={}", num(&done, "hash"));
        state_of_until(&h, &h.b, local, &cond, 30_000);
        let cond = format!("applied={}", num(&done, "version"));
        state_of_until(&h, &h.b, local, &cond, 5000);
    }
    for p in &mut replicas {
        let end = stop(p);
        assert_eq!(num(&end, "full_copies"), 1, "{end}");
    }
    stop(&mut out);
}

#[test]
fn a_local_region_of_another_geometry_is_refused_not_overwritten() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(h) = hosts() else { return };
    let mut w = writer(&h, &[]);
    w.line("done", T).unwrap();
    let mut local = h.start(
        &h.b,
        TOOL,
        ["region-write", "r", "--size", "1048576", "--passes", "1"],
    );
    let small = local.line("done", T).unwrap();
    let mut out = region_out(&h);
    let mut inb = region_in(&h);
    let status = inb.wait(T).unwrap();
    assert_eq!(status.code(), Some(1), "region-in must refuse: {status:?}");
    let b = state(&h, &h.b);
    assert!(b.contains("replica=0"), "left alone: {b}");
    assert_eq!(
        num(&b, "hash"),
        num(&small, "hash"),
        "its bytes untouched: {b}"
    );
    stop(&mut out);
}

#[test]
fn the_region_benchmark_runs_and_prints_its_ratios() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = std::process::Command::new(TOOL)
        .args([
            "bench", "--what", "region", "--pings", "50", "--passes", "2",
        ])
        .output()
        .unwrap();
    let (text, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{text} {err}");
    if err.contains("SKIPPED") {
        return;
    }
    let latency: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("replication p50"))
        .collect();
    assert_eq!(
        latency.len(),
        2,
        "default and low-latency transports: {text}"
    );
    for l in latency {
        assert!(l.contains("x RTT") && l.contains("zenoh raw p50"), "{l}");
    }
    let rows = text
        .lines()
        .filter(|l| l.contains("target >= 0.8x"))
        .count();
    assert_eq!(
        rows, 2,
        "passes over one region, one pass over a larger one: {text}"
    );
}
