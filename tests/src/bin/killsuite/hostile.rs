//! `--hostile N`: a third process (`shmio-qtool scribble`) writes random bytes into the live
//! file while a producer and consumers run, then the producer is killed. No record can be
//! checked then; what is: no process dies of a signal but the driver's own kill -9, none
//! panics, none stays blocked past the backstop, every end is a documented one.

use std::collections::BTreeMap;
use std::time::Duration;

use shmio_tests::{EndLine, monotonic_ns};

use crate::figures::{Lat, Problems, Setup};
use crate::kid::Kid;
use crate::queue_file::{QueueFile, queue_name};
use crate::util::{
    Ctx, Mode, Rounds, kill, produce_args, push, push_load, run_rounds, start_round, tag,
};
use crate::{LIMIT_US, Report};

/// The error messages (by prefix, as `Display` writes them) accepted from a hostile round's
/// processes besides the consumer statuses dead/closed/corrupt/timeout: a scribbled file is
/// corrupt, whatever call notices it. `corrupt queue file:` is `Error::Corrupt` (a producer's
/// reserve, send or commit may see it too); `queue file has layout version` is
/// `Error::VersionMismatch` (the version word scribbled, seen by a re-validation).
const HOSTILE_OK: &[&str] = &["corrupt queue file:", "queue file has layout version"];

/// What the hostile-peer rounds showed.
#[derive(Default)]
struct HostileFigures {
    runs: u64,
    consumers: u64,
    /// Consumer end statuses (`none`: no end line).
    statuses: BTreeMap<String, u64>,
    /// How the producers ended: `killed` (by the driver), `failed: KIND` (by themselves).
    producer: BTreeMap<String, u64>,
    /// Processes that died of a signal the driver did not send, or panicked.
    signals: u64,
    /// Consumers or producers that ended with an error outside the documented ones.
    undocumented: u64,
    /// Consumers that timed out or never ended.
    stuck: u64,
    /// Consumers that ended past the backstop and margin after the kill.
    late: u64,
    ended_before_kill: u64,
    torn: u64,
    /// From the kill to each consumer's end (0 if it ended before).
    blocked: Lat,
    writes: u64,
    setup: u64,
    problems: Problems,
}

impl Setup for HostileFigures {
    fn setup_fault(&mut self, what: String) {
        self.setup += 1;
        self.problems.add(what);
    }
}

impl Mode for HostileFigures {
    fn faults(&self) -> u64 {
        self.signals + self.undocumented + self.stuck + self.late + self.setup
    }

    fn stuck_or_late(&self) -> u64 {
        self.stuck + self.late
    }
}

impl HostileFigures {
    /// Counts an exit that is not the expected one: by a signal or panic, or undocumented.
    fn bad_exit(&mut self, code: Option<i32>) {
        if code.is_none_or(signal_or_panic) {
            self.signals += 1;
        } else {
            self.undocumented += 1;
        }
    }

    fn print(&self, r: &Rounds) {
        println!(
            "\nhostile peer scribbling the live file, then producer killed: {} rounds ({} \
             with a failed check), {} consumers, {} random writes, {:.1} s",
            self.runs,
            r.bad,
            self.consumers,
            self.writes,
            r.elapsed.as_secs_f64()
        );
        println!(
            "  consumer end statuses: {:?} (ended before the kill: {})",
            self.statuses, self.ended_before_kill
        );
        println!("  producer ends: {:?}", self.producer);
        println!(
            "  blocked after the kill p50/p99/max {}; signals/panics={} undocumented={} \
             stuck={} late={} setup={} torn={} (torn records are not checked here)",
            self.blocked.show(),
            self.signals,
            self.undocumented,
            self.stuck,
            self.late,
            self.setup,
            self.torn
        );
        self.problems.print();
    }
}

pub fn run(ctx: &mut Ctx, report: &mut Report) {
    let rounds = ctx.o.hostile;
    if rounds == 0 {
        return;
    }
    let mut f = HostileFigures::default();
    let r = run_rounds(ctx, rounds, &mut f, round);
    f.print(&r);
    report.summary(format!(
        "summary hostile runs={} bad_runs={} consumers={} signals={} undocumented={} \
         stuck={} late={} setup={} blocked_p99_us={} blocked_max_us={} statuses={:?}",
        f.runs,
        r.bad,
        f.consumers,
        f.signals,
        f.undocumented,
        f.stuck,
        f.late,
        f.setup,
        f.blocked.p(0.99),
        f.blocked.max(),
        f.statuses
    ));
    report.at_most("hostile.signals", f.signals, 0);
    report.at_most("hostile.undocumented", f.undocumented, 0);
    report.at_most("hostile.stuck", f.stuck, 0);
    report.at_most("hostile.blocked-max-us", f.blocked.max(), LIMIT_US);
    report.at_most("hostile.setup", f.setup, 0);
    report.at_most("hostile.rounds-short", rounds - f.runs, 0);
}

fn documented(msg: &str) -> bool {
    HOSTILE_OK.iter().any(|p| msg.starts_with(p))
}

/// Exit codes of 128 + N are deaths by signal N (see `Kid`); 101 is a Rust panic.
fn signal_or_panic(code: i32) -> bool {
    code > 128 || code == 101 || code < 0
}

/// A producer and consumers while a third process scribbles the live file, then kill -9.
fn round(ctx: &mut Ctx, n: u64, f: &mut HostileFigures) {
    let bp = ctx.rng.one_in(2);
    let copy = ctx.rng.one_in(2);
    let streaming = ctx.rng.one_in(2);
    let slots = ctx.slots(&[16, 64, 256]);
    let size = ctx.rng.range(16, 512);
    let k = ctx.rng.range(1, 3);
    let q = QueueFile::new(queue_name("ho", n));
    let mut pargs = produce_args(&q.name, bp, slots, size);
    push(
        &mut pargs,
        &["--min-size", "8", "--wait-consumers", &k.to_string()],
    );
    if copy {
        pargs.push("--copy".into());
    }
    push_load(&mut pargs, streaming, || {
        ctx.rng.range(0, 2 * u64::from(slots))
    });
    let list = ctx.random_consumers(&q.name, k);
    let what = format!("round {n}");
    let Some((mut prod, mut consumers)) = start_round(ctx, pargs, &list, f, &what) else {
        return;
    };
    if streaming {
        std::thread::sleep(Duration::from_micros(ctx.rng.range(1000, 5000)));
    } else if prod.expect("sent", Duration::from_secs(10)).is_err() {
        f.setup_fault(format!("{what}: idle producer never sent"));
    }
    let Ok(path) = shmio::queue::resolve(&q.name) else {
        f.setup += 1;
        return;
    };
    let ms = ctx.rng.range(1, 5);
    let sargs = vec![
        "scribble".to_string(),
        path.display().to_string(),
        ctx.rng.next_u64().to_string(),
        ms.to_string(),
    ];
    let mut scrib = ctx.spawn(&sargs);
    let scode = scrib.finish(Duration::from_secs(10));
    if scode != Some(0) {
        f.setup_fault(format!("{what}: scribbler ended {scode:?}"));
    }
    f.writes += scrib
        .line_after("done ")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    std::thread::sleep(Duration::from_micros(ctx.rng.range(0, 2000)));
    let what = format!(
        "{what} ({}, producer {}, {}, slots {slots}, size {size}, scribbled {ms} ms)",
        tag(bp),
        if copy { "copy" } else { "zc" },
        if streaming { "streaming" } else { "idle" }
    );
    let killed = prod.exit.is_none();
    let (t_kill, pcode) = kill(&mut prod);
    producer_end(f, &prod, pcode, killed, &what);
    let wait = ctx.end_wait();
    for (i, c) in consumers.iter_mut().enumerate() {
        f.consumers += 1;
        let exit = c.finish(wait);
        consumer_end(f, c, exit, t_kill, &format!("{what}, consumer {i}/{k}"));
    }
    f.runs += 1;
}

/// How the producer ended: killed by the driver, or failed by itself with a documented error.
fn producer_end(f: &mut HostileFigures, prod: &Kid, code: Option<i32>, killed: bool, what: &str) {
    let failed = prod.line_after("failed ");
    let kind = match (code, failed) {
        (Some(137), _) if killed => "killed".to_string(),
        (Some(1), Some(m)) => {
            if !documented(m.split_once(": ").map_or(m, |(_, e)| e)) {
                f.undocumented += 1;
                f.problems.add(format!("{what}: producer failed: {m}"));
            }
            format!(
                "failed: {}",
                m.split(':').take(2).collect::<Vec<_>>().join(":")
            )
        }
        (c, _) => {
            f.bad_exit(c);
            f.problems.add(format!(
                "{what}: producer ended {c:?}, lines {:?}",
                prod.lines
            ));
            format!("exit {c:?}")
        }
    };
    *f.producer.entry(kind).or_default() += 1;
}

/// One consumer's end: a documented status with its exit code, within the backstop.
fn consumer_end(f: &mut HostileFigures, c: &Kid, exit: Option<i32>, t_kill: u64, cx: &str) {
    let Some(e) = c.end() else {
        *f.statuses.entry("none".into()).or_default() += 1;
        if exit.is_some_and(|c| !signal_or_panic(c)) {
            f.undocumented += 1;
        } else if exit.is_some() {
            f.signals += 1;
        } else {
            f.stuck += 1;
        }
        f.blocked.add(monotonic_ns().saturating_sub(t_kill) / 1000);
        f.problems.add(format!(
            "{cx}: no end line (exit {exit:?}): hung or crashed"
        ));
        return;
    };
    let EndLine {
        status,
        torn,
        t_end_ns,
        ..
    } = e;
    *f.statuses.entry(status.clone()).or_default() += 1;
    f.torn += torn;
    let blocked = t_end_ns.saturating_sub(t_kill) / 1000;
    if t_end_ns < t_kill {
        f.ended_before_kill += 1;
    }
    f.blocked.add(blocked);
    let expected_code = match status.as_str() {
        "dead" => Some(3),
        "closed" => Some(0),
        "corrupt" => Some(1),
        "timeout" => Some(4),
        "error" => {
            let msg = c.line_after("error ").unwrap_or("");
            if !documented(msg) {
                f.undocumented += 1;
                f.problems.add(format!("{cx}: error {msg:?}"));
            }
            Some(1)
        }
        _ => None,
    };
    if exit != expected_code {
        if exit.is_some_and(signal_or_panic) {
            f.signals += 1;
        } else {
            f.undocumented += 1;
        }
        f.problems
            .add(format!("{cx}: ended {status} with exit {exit:?}"));
    }
    if status == "timeout" {
        f.stuck += 1;
        f.problems.add(format!("{cx}: timed out"));
    } else if blocked > LIMIT_US {
        f.late += 1;
        f.problems.add(format!(
            "{cx}: ended {status} only {:.1} ms after the kill",
            blocked as f64 / 1e3
        ));
    }
}
