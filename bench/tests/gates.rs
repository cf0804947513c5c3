//! `shmio-bench`'s sanity gates: a crafted result set with an inverted floor or a lossless
//! system that lost records fails (exit 1, naming the case); a consistent one and a normal
//! quick run pass.

use std::process::{Command, Output};

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shmio-bench"))
}

/// Runs `--gates-from` on `lines` (a saved `--json` run).
fn gates_on(name: &str, lines: &[String]) -> Output {
    let path = std::env::temp_dir().join(format!("shmio-gates-{}-{name}", std::process::id()));
    std::fs::write(&path, lines.join("\n")).unwrap();
    let out = bench()
        .args(["--gates-from", path.to_str().unwrap()])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    out
}

fn tput(system: &str, pattern: &str, rate: f64, spread: f64, delivered: f64) -> String {
    format!(
        "{{\"system\":\"{system}\",\"pattern\":\"{pattern}\",\"size\":64,\"records_per_s\":{rate:.0},\
         \"median_per_s\":{rate:.0},\"spread\":{spread},\"repeats\":3,\"sent_per_s\":{rate:.0},\
         \"gbps\":0.1,\"delivered\":{delivered}}}"
    )
}

fn rtt(system: &str, p50: f64, spread: f64) -> String {
    format!(
        "{{\"system\":\"{system}\",\"pattern\":\"rtt-spin\",\"size\":64,\"p50_ns\":{p50:.0},\
         \"p99_ns\":{p50:.0},\"p999_ns\":{p50:.0},\"median_p50_ns\":{p50:.0},\"spread\":{spread},\
         \"repeats\":3,\"trips\":1000}}"
    )
}

/// A set that could be true: the ring above every copying system, the ping-pong below every
/// round trip, lossless systems complete, overwrite mode allowed to lose.
fn sound() -> Vec<String> {
    vec![
        tput("minimal-ring", "1to1", 60e6, 0.1, 1.0),
        tput("shmio-bp", "1to1", 20e6, 0.1, 1.0),
        tput("shmio-overwrite", "1to4", 1e6, 0.3, 0.4),
        // Zero-copy readers are not bounded by a copying ring.
        tput("shmio-bp-zerocopy", "1to1", 70e6, 0.1, 1.0),
        // Nor is 1 -> 4 (the ring writes each record once per consumer).
        tput("minimal-ring", "1to4", 1e6, 0.1, 1.0),
        tput("shmio-bp", "1to4", 5e6, 0.1, 1.0),
        rtt("cacheline-pingpong", 300.0, 0.1),
        rtt("shmio-bp", 600.0, 0.1),
    ]
}

#[test]
fn a_consistent_set_passes() {
    let out = gates_on("sound", &sound());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("sanity gates passed (8 cases)"));
}

/// Asserts that the gates fail `set` with exit status 1 and a line containing `says`.
fn fails_saying(name: &str, set: &[String], says: &str) {
    let out = gates_on(name, set);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(says), "{stderr}");
}

#[test]
fn an_inverted_ceiling_fails_naming_the_case() {
    // The quick run: the minimal ring at 205 k/s beside shmio's 22 M/s.
    let mut set = sound();
    set[0] = tput("minimal-ring", "1to1", 205e3, 0.1, 1.0);
    set[1] = tput("shmio-bp", "1to1", 22e6, 0.1, 1.0);
    fails_saying(
        "ceiling",
        &set,
        "sanity gate failed: shmio-bp 1to1 64 B: the minimal ring",
    );
}

#[test]
fn an_inversion_within_the_spread_passes() {
    // The ring 30% below shmio-bp, but the ring's own repeats spread by 50%.
    let mut set = sound();
    set[0] = tput("minimal-ring", "1to1", 14e6, 0.5, 1.0);
    assert!(gates_on("spread", &set).status.success());
    // The same inversion with tight repeats fails.
    set[0] = tput("minimal-ring", "1to1", 14e6, 0.05, 1.0);
    fails_saying("tight", &set, "shmio-bp 1to1 64 B: the minimal ring");
}

#[test]
fn an_inverted_ping_pong_fails_naming_the_case() {
    let mut set = sound();
    set.push(rtt("pipe", 150.0, 0.1));
    fails_saying(
        "pingpong",
        &set,
        "pipe rtt-spin 64 B: the cache-line ping-pong",
    );
}

#[test]
fn a_lossless_system_losing_records_fails_naming_the_case() {
    let mut set = sound();
    set.push(tput("posix-mq", "1to4", 1e5, 0.1, 0.999));
    fails_saying(
        "lost",
        &set,
        "posix-mq 1to4 64 B: a lossless system delivered",
    );
}

#[test]
fn a_normal_quick_run_is_gated() {
    // The quick run of scripts/main.sh (pinned, three repeats), kept short: 64 B only, and
    // the patterns the gates look at (blocking round trips are not gated). Whether the gates
    // pass is a measurement (the main job's benchmark reports it); this test checks that a
    // real run is judged, and that a failed gate names its case and fails the run.
    let out = bench()
        .args([
            "--quick",
            "--sizes",
            "64",
            "--patterns",
            "1to1,1to4,rtt-spin",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("each case 3 time(s)"), "{stdout}");
    if stdout.contains("## Sanity gates: passed") {
        assert!(out.status.success(), "{stderr}\n{stdout}");
    } else {
        assert!(
            !out.status.success(),
            "a failed gate fails the run: {stdout}"
        );
        assert!(
            stderr.contains("1to1") || stderr.contains("rtt"),
            "names the case: {stderr}"
        );
    }
}
