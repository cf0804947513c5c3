//! The supervisor: runs the cases in worker processes (this executable again), restarts a
//! worker after the case it crashed or hung in, and sums up what they all found.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::util::Tally;
use crate::{Args, base_dir};

/// What one worker slot reported, over its restarts.
#[derive(Default)]
struct Report {
    tally: Tally,
    slowest: (u64, u64),
}

pub fn supervise(a: &Args) -> i32 {
    let base = a.dir.clone().unwrap_or_else(base_dir);
    let exe = std::env::current_exe().expect("find this executable");
    println!(
        "shmio-fuzz: seed {} ({} cases, {} workers; replay a case: shmio-fuzz --seed {} --case N)",
        a.seed, a.cases, a.jobs, a.seed
    );
    let started = Instant::now();
    let reports: Vec<Report> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..a.jobs)
            .map(|i| {
                let (exe, base) = (&exe, &base);
                s.spawn(move || run_worker(a, exe, &base.join(format!("w{i}")), i))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&base);
    let mut t = Tally::default();
    let mut slowest = (0, 0);
    for r in &reports {
        t.merge(&r.tally);
        slowest = slowest.max(r.slowest);
    }
    summarise(a, &t, secs, slowest)
}

/// Runs worker slot `i` to the end, restarting it after the case it crashed or hung in.
fn run_worker(a: &Args, exe: &Path, dir: &Path, i: u64) -> Report {
    let mut report = Report::default();
    let mut first = i;
    let mut restarts = 0;
    while first < a.cases {
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(dir.join("progress"), [0u8; 16]);
        let child = Command::new(exe)
            .args(["--cases", &a.cases.to_string()])
            .args(["--seed", &a.seed.to_string()])
            .args(["--jobs", &a.jobs.to_string()])
            .args(["--hang-ms", &a.hang.as_millis().to_string()])
            .args(["--live-per-mille", &a.live_per_mille.to_string()])
            .args(["--worker", &i.to_string(), &first.to_string()])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                eprintln!("shmio-fuzz: cannot start a worker: {e}");
                report.tally.add("fail.spawn", 1);
                return report;
            }
        };
        let out = child.stdout.take().expect("piped stdout");
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let mut f = line.split_whitespace();
            match (
                f.next(),
                f.next(),
                f.next().and_then(|v| v.parse::<u64>().ok()),
            ) {
                (Some("STAT"), Some("slowest_ns"), Some(_)) => {}
                (Some("STAT"), Some(k), Some(v)) => report.tally.add(k, v),
                (Some("SLOWEST"), Some(ns), Some(case)) => {
                    let ns = ns.parse().unwrap_or(0);
                    report.slowest = report.slowest.max((ns, case));
                }
                _ => println!("{line}"),
            }
        }
        let status = child.wait().expect("wait for a worker");
        let Some(sig) = status.signal() else {
            break;
        };
        // Died in a case: which one, and did the watchdog say it hung?
        let p = std::fs::read(dir.join("progress")).unwrap_or_default();
        let word = |o: usize| {
            p.get(o..o + 8)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
        };
        let (case, hung) = (word(0), word(8) == 1);
        let kind = if hung { "hang" } else { "crash" };
        if !hung {
            eprintln!(
                "FAIL crash seed={} case={case}: the worker died of signal {sig}\n  \
                 replay: shmio-fuzz --seed {} --case {case}",
                a.seed, a.seed
            );
        }
        report.tally.add(&format!("fail.{kind}"), 1);
        // Cases done before the one that died (their detailed tally is lost with the worker).
        report
            .tally
            .add("cases", (case.saturating_sub(first)) / a.jobs + 1);
        restarts += 1;
        if restarts > 20 {
            eprintln!("shmio-fuzz: worker {i} died {restarts} times; giving up on it");
            break;
        }
        first = case + a.jobs;
    }
    report
}

fn summarise(a: &Args, t: &Tally, secs: f64, slowest: (u64, u64)) -> i32 {
    let cases = t.get("cases");
    let fails = |k: &str| t.get(&format!("fail.{k}"));
    let mut by_kind: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (k, v) in &t.0 {
        let mut parts = k.rsplitn(2, '.');
        let (Some(kind), Some(op)) = (parts.next(), parts.next()) else {
            continue;
        };
        if op.starts_with("q.") || op.starts_with("r.") {
            by_kind
                .entry(op.to_string())
                .or_default()
                .insert(kind.to_string(), *v);
        }
    }
    println!("outcomes by call:");
    let mut errors: BTreeMap<(char, &str), u64> = BTreeMap::new();
    for (op, kinds) in &by_kind {
        let list: Vec<String> = kinds.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("  {op}: {}", list.join(", "));
        let file = if op.starts_with("q.") { 'q' } else { 'r' };
        for (k, v) in kinds.iter().filter(|(k, _)| *k != "Ok") {
            *errors.entry((file, k.as_str())).or_default() += v;
        }
    }
    for (file, what) in [('q', "queue"), ('r', "region")] {
        let list: Vec<String> = errors
            .iter()
            .filter(|((f, _), _)| *f == file)
            .map(|((_, k), v)| format!("{k} {v}"))
            .collect();
        println!("shmio-fuzz: {what} errors by kind: {}", list.join(", "));
    }
    println!(
        "shmio-fuzz: seed {}: {cases} cases (queue {}, region {}, live {}, controls {}) in \
         {secs:.1} s = {:.0} cases/s; slowest {:.1} ms (case {}), {} over 100 ms",
        a.seed,
        t.get("cases.queue"),
        t.get("cases.region"),
        t.get("cases.live"),
        t.get("q.control") + t.get("r.control"),
        cases as f64 / secs.max(1e-9),
        slowest.0 as f64 / 1e6,
        slowest.1,
        t.get("cases.slow"),
    );
    let mean = |k: &str| t.get(&format!("us.{k}")) / t.get(&format!("cases.{k}")).max(1);
    println!(
        "shmio-fuzz: mean wall time per case (one worker): queue {} us, region {} us, live {} us",
        mean("queue"),
        mean("region"),
        mean("live")
    );
    let total = fails("panic")
        + fails("hang")
        + fails("crash")
        + fails("alloc")
        + fails("oracle")
        + fails("spawn");
    println!(
        "shmio-fuzz: summary: cases {cases}, panics {}, hangs {}, crashes {}, big allocations {}, \
         oracle failures {}: {}",
        fails("panic"),
        fails("hang"),
        fails("crash"),
        fails("alloc"),
        fails("oracle"),
        if total == 0 { "PASS" } else { "FAIL" }
    );
    if cases < a.cases && total == 0 {
        println!("shmio-fuzz: only {cases} of {} cases ran", a.cases);
        return 1;
    }
    i32::from(total != 0)
}
