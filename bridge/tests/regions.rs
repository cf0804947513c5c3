//! Region replication between two "hosts" (network namespaces joined by a veth pair, each with
//! its own tmpfs `SHMIO_DIR`; see `shmio_bridge::netns`): host A runs the writer and
//! `region-out`, host B `region-in` and the readers; the only way from A's region to B's is
//! Zenoh over TCP across the veth link.
//!
//! Needs root; where network namespaces cannot be created each test says so and passes.
//! Every wait is bounded, and the namespaces, mounts and processes go even when a test fails.

use std::sync::Mutex;
use std::time::Duration;

use shmio_bridge::netns::{Hosts, Proc, field};
use shmio_tests::monotonic_ns;

const BRIDGE: &str = env!("CARGO_BIN_EXE_shmio-bridge");
const TOOL: &str = env!("CARGO_BIN_EXE_shmio-bridge-tool");
const ENDPOINT: &str = "tcp/198.18.0.1:7448";
/// The Zenoh lease of these tests: the bound on noticing a silent link or a dead bridge.
const LEASE_MS: u64 = 1000;
const LEASE: &str = "1000";
const T: Duration = Duration::from_secs(60);

static SERIAL: Mutex<()> = Mutex::new(());

fn hosts() -> Option<Hosts> {
    match Hosts::create() {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!("SKIPPED: network namespaces cannot be created here ({e})");
            None
        }
    }
}

fn num(line: &str, key: &str) -> u64 {
    field(line, key).unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn signed(line: &str, key: &str) -> i64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn region_out(h: &Hosts) -> Proc {
    let args = [
        "region-out",
        "--region",
        "r",
        "--listen",
        ENDPOINT,
        "--lease-ms",
        LEASE,
    ];
    let mut p = h.start(&h.a, BRIDGE, args);
    p.line("ready", T).unwrap();
    p
}

fn region_in(h: &Hosts) -> Proc {
    let args = [
        "region-in",
        "--region",
        "r",
        "--connect",
        ENDPOINT,
        "--lease-ms",
        LEASE,
    ];
    let mut p = h.start(&h.b, BRIDGE, args);
    p.line("ready", T).unwrap();
    p
}

/// The writer on A: `extra` after the region's name; ready (the region exists).
fn writer(h: &Hosts, extra: &[&str]) -> Proc {
    let mut args = vec!["region-write", "r"];
    args.extend_from_slice(extra);
    let mut w = h.start(&h.a, TOOL, args);
    w.line("ready", T).unwrap();
    w
}

/// Runs `region-state r --until COND` on host `on`; the state line once COND holds.
fn state_until(h: &Hosts, on: &shmio_bridge::netns::Host, cond: &str, ms: u64) -> String {
    let ms = ms.to_string();
    let mut p = h.start(
        on,
        TOOL,
        ["region-state", "r", "--until", cond, "--timeout-ms", &ms],
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
    let go = h.a.shm_dir.join("go");
    let go_s = go.to_str().unwrap();
    let mut w = writer(&h, &["--passes", "3", "--claim", "--go-file", go_s]);
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
    std::fs::write(&go, b"").unwrap();
    let done = w.line("done", T).unwrap();
    let b = state_until(&h, &h.b, &format!("hash={}", num(&done, "hash")), 30_000);
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
