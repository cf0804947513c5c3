//! `shmio-bench` end to end: every system runs between real processes, checks its own
//! delivery (lossless systems assert order and completeness in the consumer), and reports one
//! JSON object per system x pattern x size. Small counts: this checks the benchmark works and
//! says what it measured, not how fast anything is.

use std::collections::HashSet;
use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shmio-bench"))
}

/// Pulls `"key":value` out of one JSON line (the benchmark prints flat objects).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"'))
}

fn num(line: &str, key: &str) -> f64 {
    field(line, key)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .parse()
        .unwrap()
}

#[test]
fn every_system_reports_every_pattern_and_lossless_ones_lose_nothing() {
    let out = bench()
        .args([
            "--json",
            "--sizes",
            "64,4096",
            "--count",
            "3000",
            "--trips",
            "300",
            // A smoke run: one repeat each, too short for the gates to mean anything
            // (tests/gates.rs runs them).
            "--repeat",
            "1",
            "--no-gates",
            // The extra sections have a test of their own.
            "--deep",
            "none",
            "--no-load",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "shmio-bench failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen = HashSet::new();
    for line in stdout.lines().filter(|l| l.starts_with('{')) {
        let system = field(line, "system").unwrap().to_string();
        let pattern = field(line, "pattern").unwrap().to_string();
        let size: usize = num(line, "size") as usize;
        match pattern.as_str() {
            "1to1" | "1to4" => {
                assert!(num(line, "records_per_s") > 0.0, "{line}");
                assert_eq!(
                    num(line, "median_per_s"),
                    num(line, "records_per_s"),
                    "{line}"
                );
                assert_eq!(
                    (num(line, "spread"), num(line, "repeats")),
                    (0.0, 1.0),
                    "{line}"
                );
                let delivered = num(line, "delivered");
                assert!((0.0..=1.0).contains(&delivered), "{line}");
                if !matches!(system.as_str(), "shmio-overwrite" | "fcntl-lock-shm") {
                    assert_eq!(delivered, 1.0, "a lossless system lost records: {line}");
                }
            }
            "rtt-spin" | "rtt-block" => {
                let (p50, p99, p999) = (
                    num(line, "p50_ns"),
                    num(line, "p99_ns"),
                    num(line, "p999_ns"),
                );
                assert!(p50 > 0.0 && p50 <= p99 && p99 <= p999, "{line}");
                assert_eq!(num(line, "trips"), 300.0, "{line}");
            }
            "1" => assert!(num(line, "gbps") > 0.0, "{line}"),
            other => panic!("unexpected pattern {other} in {line}"),
        }
        assert!(seen.insert((system, pattern, size)), "duplicate row {line}");
    }
    let has = |s: &str, p: &str, size: usize| seen.contains(&(s.to_string(), p.to_string(), size));
    for size in [64, 4096] {
        assert!(has("memcpy", "1", size));
        for s in [
            "shmio-bp",
            "shmio-bp-zerocopy",
            "shmio-overwrite",
            "iceoryx2",
            "pipe",
            "unix-stream",
            "posix-mq",
            "fcntl-lock-shm",
            "minimal-ring",
        ] {
            assert!(has(s, "1to1", size) && has(s, "1to4", size), "{s} {size}");
        }
        for s in [
            "shmio-bp",
            "shmio-bp-zerocopy",
            "iceoryx2",
            "pipe",
            "unix-stream",
            "posix-mq",
        ] {
            assert!(
                has(s, "rtt-spin", size) && has(s, "rtt-block", size),
                "{s} {size}"
            );
        }
        assert!(has("minimal-ring", "rtt-spin", size));
        assert!(has("cacheline-pingpong", "rtt-spin", size));
        assert!(has("futex-pingpong", "rtt-block", size));
    }
}

#[test]
fn text_report_ends_with_the_targets() {
    let out = bench()
        .args([
            "--sizes",
            "64",
            "--count",
            "2000",
            "--trips",
            "200",
            "--systems",
            "shmio-bp,pipe,minimal-ring",
            "--repeat",
            "2",
            "--no-gates",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("## Targets (this run)"), "{s}");
    assert!(s.contains("64 B 1->1 throughput, shmio-bp vs pipe"), "{s}");
    assert!(
        s.contains("shmio-bp vs minimal-ring (stamp per slot, 128 B stride)"),
        "{s}"
    );
    assert!(s.contains("each case 2 time(s)"), "{s}");
    assert!(s.contains("median") && s.contains("spread"), "{s}");
    // Peers not run are said to be missing, not invented.
    assert!(
        s.contains("[n/a] 64 B 1->1 throughput, shmio-bp vs iceoryx2"),
        "{s}"
    );
}

#[test]
fn bad_arguments_are_refused_with_exit_2() {
    for args in [
        &["--bogus"][..],
        &["--systems", "nope"],
        &["--sizes"],
        &["--repeat"],
        &["--depth", "0"],
        &["--depth", "many"],
        &["--deep", "0"],
        &["--deep", "16,x"],
    ] {
        let out = bench().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    }
    let help = bench().arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("iceoryx2"));
    // --help says which systems honour --depth.
    assert!(
        help.contains("--depth N") && help.contains("honoured by shmio"),
        "{help}"
    );
}

/// Runs shmio-bench with `args` (split at spaces), which must succeed; returns its stdout.
fn run_ok(args: &str) -> String {
    let out = bench().args(args.split_whitespace()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "shmio-bench {args} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn depth_sets_the_buffered_records_and_lossless_systems_still_lose_nothing() {
    // 3 rounds up to 4: a ring this short makes every producer wait on its consumers.
    let stdout = run_ok(
        "--json --depth 3 --sizes 64 --count 3000 --patterns 1to1,1to4 --repeat 1 --no-gates \
         --deep none --no-load",
    );
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with('{') && field(l, "pattern").is_some_and(|p| p.starts_with("1to")))
        .collect();
    assert_eq!(rows.len(), 18, "9 systems x 2 patterns: {stdout}");
    for line in rows {
        assert_eq!(num(line, "depth"), 4.0, "{line}");
        if !matches!(
            field(line, "system"),
            Some("shmio-overwrite" | "fcntl-lock-shm")
        ) {
            assert_eq!(
                num(line, "delivered"),
                1.0,
                "a lossless system lost records: {line}"
            );
        }
    }
    // The text report says the depth in its header line; without --depth, the defaults.
    let text = |extra: &str| {
        run_ok(&format!(
            "--sizes 64 --count 2000 --systems shmio-bp --patterns 1to1 --repeat 1 --no-gates \
             {extra}"
        ))
    };
    let s = text("--depth 100");
    let header = s.lines().nth(1).unwrap();
    assert!(header.contains("depth: 128 records per channel"), "{s}");
    assert!(s.contains("128 buffered per channel"), "{s}");
    let s = text("");
    assert!(
        s.lines()
            .nth(1)
            .unwrap()
            .contains("depth: each system's default"),
        "{s}"
    );
    assert!(s.contains("1024 buffered per channel"), "{s}");
}

#[test]
fn the_fcntl_design_shows_its_send_rate_beside_what_arrived() {
    let run = |extra: &str| {
        run_ok(&format!(
            "--systems fcntl-lock-shm --sizes 64 --count 3000 --patterns 1to1,1to4 --repeat 2 \
             --no-gates --no-pin {extra}"
        ))
    };
    // What arrived, and beside it what was sent, on every line (lapped or not).
    let s = run("");
    let lines: Vec<&str> = s
        .lines()
        .filter(|l| l.trim_start().starts_with("fcntl-lock-shm"))
        .collect();
    assert_eq!(lines.len(), 2, "{s}");
    for l in lines {
        assert!(
            l.contains("(sent ") && l.contains("the slowest consumer got"),
            "{l}"
        );
    }
    // Its consumers run pinned even with --no-pin, and the header says so.
    assert!(
        s.lines()
            .nth(1)
            .unwrap()
            .contains("not pinned (but the fcntl design's cases"),
        "{s}"
    );
    // JSON: the delivered rate never exceeds the send rate it came from.
    let s = run("--json");
    let rows: Vec<&str> = s.lines().filter(|l| l.contains("fcntl-lock-shm")).collect();
    assert_eq!(rows.len(), 2, "{s}");
    for l in rows {
        let (got, sent, delivered) = (
            num(l, "records_per_s"),
            num(l, "sent_per_s"),
            num(l, "delivered"),
        );
        assert!(got > 0.0 && got <= sent + 1.0, "{l}");
        assert!(delivered > 0.0 && delivered <= 1.0, "{l}");
    }
}

#[test]
fn deep_queue_and_loaded_overwrite_sections_report_their_cases_and_targets() {
    // 3 buffered records of 64 KiB (rounded up to 4; the text run below takes 16); 64 B and
    // 1 KiB records beside a CPU-bound process.
    let stdout = run_ok(
        "--json --sizes 64 --count 2000 --systems shmio-bp,shmio-bp-zerocopy,shmio-overwrite,\
         iceoryx2 --patterns 1to1,1to4 --repeat 1 --no-gates --deep 3 --load",
    );
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with('{')).collect();
    let row = |system: &str, pattern: &str, size: usize| {
        let want = format!("\"system\":\"{system}\",\"pattern\":\"{pattern}\",\"size\":{size},");
        let hits: Vec<&&str> = rows.iter().filter(|l| l.contains(&want)).collect();
        assert_eq!(hits.len(), 1, "{system} {pattern} {size}: {stdout}");
        *hits[0]
    };
    let depth = 4;
    for system in ["shmio-bp", "shmio-bp-zerocopy", "iceoryx2"] {
        for pattern in ["1to1", "1to4"] {
            let line = row(system, &format!("{pattern}@{depth}"), 65536);
            assert_eq!(num(line, "depth"), depth as f64, "{line}");
            assert_eq!(num(line, "delivered"), 1.0, "lossless: {line}");
        }
    }
    for size in [64, 1024] {
        for pattern in ["1to1+load", "1to4+load"] {
            assert_eq!(num(row("shmio-bp", pattern, size), "delivered"), 1.0);
            let ow = num(row("shmio-overwrite", pattern, size), "delivered");
            assert!(ow > 0.0 && ow <= 1.0, "{stdout}");
        }
    }
    // No CPU-bound process outlives the run.
    let burners = std::process::Command::new("pgrep")
        .args([
            "-f",
            &format!("{} --child-burn", env!("CARGO_BIN_EXE_shmio-bench")),
        ])
        .output()
        .unwrap();
    assert!(burners.stdout.is_empty(), "a CPU burner was left running");
    // The text report checks the targets on them.
    let s = run_ok(
        "--sizes 64 --count 2000 --systems shmio-bp,shmio-overwrite,iceoryx2 --patterns 1to1 \
         --repeat 1 --no-gates --deep 16 --load",
    );
    for target in [
        "64 KiB 1to1 throughput with 16 buffered, shmio vs iceoryx2: ",
        "64 B 1to1 received, shmio-overwrite vs shmio-bp: ",
        "1024 B 1to1 received, shmio-overwrite vs shmio-bp, beside a CPU-bound process: ",
    ] {
        assert!(
            s.lines()
                .any(|l| l.contains(target) && (l.contains("[met]") || l.contains("[MISSED]"))),
            "{target}: {s}"
        );
    }
    assert!(
        s.contains("[n/a] 64 KiB 1to1 throughput with 256 buffered"),
        "{s}"
    );
}
