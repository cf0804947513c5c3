//! The closing section: the benchmark issue's targets, checked against this run's figures.

use crate::cli::Settings;
use crate::extra::{DEEP_SIZE, LOAD_SIZES, deep_pattern, load_pattern};
use crate::report::{Out, floor};

/// Checks the benchmark issue's targets against this run's figures.
pub fn targets(out: &Out, run: &Settings) {
    let sizes = &run.sizes;
    println!("\n## Targets (this run)");
    let line = |what: String, ratio: Option<f64>, goal: f64, at_most: bool| match ratio {
        Some(r) => {
            let met = if at_most { r <= goal } else { r >= goal };
            let op = if at_most { "<=" } else { ">=" };
            println!(
                "  [{}] {what}: {r:.2}x (goal {op} {goal}x)",
                if met { "met" } else { "MISSED" }
            );
        }
        None => println!("  [n/a] {what}: not measured in this run"),
    };
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    // System `a` against `b` in one case, more is better.
    let versus = |what: String, (a, b): (&str, &str), pattern: &'static str, size, goal| {
        line(
            what,
            ratio(out.get(a, pattern, size), out.get(b, pattern, size)),
            goal,
            false,
        )
    };
    // The better of shmio's back-pressure calls (the lower figure for round trips).
    let shmio_best = |pattern: &'static str, size, lower: bool| {
        ["shmio-bp", "shmio-bp-zerocopy"]
            .iter()
            .filter_map(|s| out.get(s, pattern, size))
            .reduce(if lower { f64::min } else { f64::max })
    };
    let bp64 = out.get("shmio-bp", "1to1", 64);
    for (peer, goal) in [("iceoryx2", 5.0), ("pipe", 10.0), ("fcntl-lock-shm", 100.0)] {
        line(
            format!("64 B 1->1 throughput, shmio-bp vs {peer}"),
            ratio(bp64, out.get(peer, "1to1", 64)),
            goal,
            false,
        );
    }
    // The ceiling: a ring with a stamp per slot, the tail published once every 64 records and
    // shmio's own slot stride (128 B for 64 B records).
    line(
        format!(
            "64 B 1->1 throughput, shmio-bp vs minimal-ring (stamp per slot, {} B stride)",
            crate::ring::stride(64)
        ),
        ratio(bp64, out.get("minimal-ring", "1to1", 64)),
        0.5,
        false,
    );
    for (how, pattern, floor_name, goal) in [
        ("spinning", "rtt-spin", "cache-line ping-pong", 1.5),
        ("blocking", "rtt-block", "raw futex ping-pong", 1.1),
    ] {
        line(
            format!("64 B round trip p50, {how}: shmio-bp vs {floor_name}"),
            ratio(
                out.get("shmio-bp", pattern, 64),
                out.get(floor(pattern), pattern, 64),
            ),
            goal,
            true,
        );
    }
    line(
        "64 KiB 1->1 zero-copy bandwidth vs single-core memcpy".into(),
        ratio(
            out.get("shmio-bp-zerocopy", "1to1", 65536)
                .map(|r| r * 65536.0 / 1e9),
            out.get("memcpy", "1", 65536),
        ),
        0.5,
        false,
    );
    // Zero copy never slower than copying.
    for &size in sizes {
        for pattern in ["1to1", "1to4"] {
            versus(
                format!("{size} B {pattern} throughput, zero-copy read vs copying recv"),
                ("shmio-bp-zerocopy", "shmio-bp"),
                pattern,
                size,
                1.0,
            );
        }
    }
    // A lapped overwrite reader keeps reading: what it receives against what a back-pressure
    // consumer receives in the same pattern, on a quiet machine and beside a CPU-bound
    // process.
    for size in LOAD_SIZES {
        for pattern in ["1to1", "1to4"] {
            for (p, how) in [
                (pattern, ""),
                (load_pattern(pattern), ", beside a CPU-bound process"),
            ] {
                versus(
                    format!("{size} B {pattern} received, shmio-overwrite vs shmio-bp{how}"),
                    ("shmio-overwrite", "shmio-bp"),
                    p,
                    size,
                    0.5,
                );
            }
        }
    }
    // Deep queues of large records: the better of shmio's back-pressure calls against iceoryx2.
    for depth in [16, 256, 1024] {
        for pattern in ["1to1", "1to4"] {
            let p = deep_pattern(pattern, depth);
            let best = shmio_best(p, DEEP_SIZE, false);
            line(
                format!(
                    "{} KiB {pattern} throughput with {depth} buffered, shmio vs iceoryx2",
                    DEEP_SIZE / 1024
                ),
                ratio(best, out.get("iceoryx2", p, DEEP_SIZE)),
                1.5,
                false,
            );
        }
    }
    // Ahead of iceoryx2 everywhere: the better of shmio's back-pressure calls (iceoryx2 also
    // reads in place, `shmio_best`), at every size and pattern measured.
    for &size in sizes {
        for pattern in ["1to1", "1to4", "rtt-spin", "rtt-block"] {
            // Throughput: more is better; round trips: shorter is.
            let rtt = pattern.starts_with("rtt");
            let best = shmio_best(pattern, size, rtt);
            let what = if rtt {
                format!("{size} B {pattern} p50, shmio vs iceoryx2 (lower is better)")
            } else {
                format!("{size} B {pattern} throughput, shmio vs iceoryx2")
            };
            line(
                what,
                ratio(best, out.get("iceoryx2", pattern, size)),
                1.0,
                rtt,
            );
        }
    }
}
