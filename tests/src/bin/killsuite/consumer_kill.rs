//! `--consumer-kills N`: in sessions of up to 15, a back-pressure producer streams to 1-3
//! surviving consumers while victim consumers join and are killed asleep, mid-read, holding a
//! zero-copy read or mid-release. The producer's longest wait must stay within the backstop;
//! the survivors must get every record, in order, then `Closed`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::figures::{Lat, Problems, Setup};
use crate::kid::Kid;
use crate::queue_file::{QueueFile, poll_until, queue_name};
use crate::util::{Ctx, produce_args, push, spawn_consumers, started};
use crate::{LIMIT_US, Report};

/// What the consumer-kill sessions showed.
#[derive(Default)]
struct KillFigures {
    kills: u64,
    sessions: u64,
    by_kind: BTreeMap<&'static str, u64>,
    /// Victims meant to be killed asleep whose `sleeping` word never showed it.
    not_asleep: u64,
    survivors: u64,
    torn: u64,
    dup: u64,
    order: u64,
    lost: u64,
    wrong_end: u64,
    setup: u64,
    stall_max_us: u64,
    stalls_over_10ms: u64,
    stalls_over_100ms: u64,
    sends: u64,
    session_stall_max: Lat,
    problems: Problems,
    elapsed: Duration,
}

impl Setup for KillFigures {
    fn setup_fault(&mut self, what: String) {
        self.setup += 1;
        self.problems.add(what);
    }
}

impl KillFigures {
    fn print(&self) {
        println!(
            "\nconsumer kill -9 under a back-pressure producer: {} kills in {} sessions, {:.1} s",
            self.kills,
            self.sessions,
            self.elapsed.as_secs_f64()
        );
        println!(
            "  victims {:?} (asleep ones never seen asleep: {})",
            self.by_kind, self.not_asleep
        );
        println!(
            "  producer's longest send: {:.2} ms (per session p50/p99/max {}); {} sends, {} over \
             10 ms, {} over 100 ms",
            self.stall_max_us as f64 / 1e3,
            self.session_stall_max.show(),
            self.sends,
            self.stalls_over_10ms,
            self.stalls_over_100ms
        );
        println!(
            "  survivors {}: torn={} dup={} order={} lost={} wrong_end={} setup={}",
            self.survivors, self.torn, self.dup, self.order, self.lost, self.wrong_end, self.setup
        );
        self.problems.print();
    }

    fn summary(&self) -> String {
        format!(
            "summary consumer-kill kills={} sessions={} survivors={} torn={} dup={} order={} \
             lost={} wrong_end={} setup={} not_asleep={} stall_max_us={} stalls_over_100ms={}",
            self.kills,
            self.sessions,
            self.survivors,
            self.torn,
            self.dup,
            self.order,
            self.lost,
            self.wrong_end,
            self.setup,
            self.not_asleep,
            self.stall_max_us,
            self.stalls_over_100ms
        )
    }
}

const VICTIMS: [&str; 4] = ["asleep", "mid-read", "holding-read", "mid-release"];

pub fn run(ctx: &mut Ctx, report: &mut Report) {
    let total = ctx.o.consumer_kills;
    if total == 0 {
        return;
    }
    let mut k = KillFigures::default();
    let t = Instant::now();
    let per = 15;
    let mut n = 0;
    while k.kills + k.setup < total {
        let left = total - k.kills - k.setup;
        session(ctx, n, left.min(per), &mut k);
        n += 1;
    }
    k.elapsed = t.elapsed();
    k.print();
    report.summary(k.summary());
    report.at_most("consumer-kill.survivors-torn", k.torn, 0);
    report.at_most("consumer-kill.survivors-dup+order", k.dup + k.order, 0);
    report.at_most("consumer-kill.survivors-lost", k.lost, 0);
    report.at_most(
        "consumer-kill.survivors-not-closed",
        k.wrong_end + k.setup,
        0,
    );
    report.at_most(
        "consumer-kill.producer-stall-max-us",
        k.stall_max_us,
        LIMIT_US,
    );
}

/// One session: a back-pressure producer, survivors, and `kills` victims killed one by one.
fn session(ctx: &mut Ctx, n: u64, kills: u64, f: &mut KillFigures) {
    let slots = ctx.slots(&[16, 32, 64, 128, 256]);
    let survivors = ctx.rng.range(1, 3);
    let size = ctx.rng.range(16, 512);
    let mut q = QueueFile::new(queue_name("ck", n));
    let mut pargs = produce_args(&q.name, true, slots, size);
    push(
        &mut pargs,
        &[
            "--min-size",
            "8",
            "--until-eof",
            "--burst",
            &(2 * slots).to_string(),
            "--pause-us",
            "1000",
            "--stall-report",
            "--timeout-ms",
            "5000",
            "--wait-consumers",
            &survivors.to_string(),
        ],
    );
    if ctx.rng.one_in(2) {
        pargs.push("--copy".into());
    }
    if ctx.o.long_spins && ctx.rng.one_in(2) {
        push(&mut pargs, &["--spin-us", "1000000"]);
    }
    ctx.seed_arg(&mut pargs);
    let what = format!("session {n}");
    let prod = Kid::spawn(&ctx.o.qtool, &pargs, true, None);
    let Some(mut prod) = started(prod, "ready", f, &format!("{what}: producer")) else {
        return;
    };
    let list: Vec<Vec<String>> = (0..survivors)
        .map(|_| {
            let zc = ctx.rng.one_in(2);
            let mut a = ctx.consumer_args(&q.name, zc, &[]);
            if let Some(i) = a.iter().position(|s| s == "--timeout-ms") {
                a[i + 1] = "10000".into();
            }
            a
        })
        .collect();
    let Some(mut alive) = spawn_consumers(ctx, &list, f, &what) else {
        return;
    };
    for v in 0..kills {
        kill_victim(ctx, &mut q, f, &format!("{what} victim {v}"));
    }
    // Close the producer's stdin: it stops, reports its stalls and closes the queue.
    drop(prod.stdin.take());
    let code = prod.finish(Duration::from_secs(15));
    let sent: Option<u64> = prod.line_after("sent ").and_then(|v| v.parse().ok());
    let stalls: BTreeMap<String, u64> = prod
        .line_after("stalls ")
        .map(|l| {
            l.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
                .collect()
        })
        .unwrap_or_default();
    f.sessions += 1;
    // A producer that timed out waiting (5 s) still reports its stalls.
    let smax = stalls.get("max_us").copied().unwrap_or(u64::MAX);
    f.stall_max_us = f.stall_max_us.max(smax);
    f.session_stall_max.add(smax);
    f.stalls_over_10ms += stalls.get("over10ms").copied().unwrap_or(0);
    f.stalls_over_100ms += stalls.get("over100ms").copied().unwrap_or(0);
    f.sends += stalls.get("n").copied().unwrap_or(0);
    if smax > LIMIT_US {
        f.problems.add(format!(
            "{what} (slots {slots}, {survivors} survivors): producer stalled {smax} us"
        ));
    }
    let (Some(sent), Some(0)) = (sent, code) else {
        f.setup_fault(format!(
            "{what}: producer ended {code:?}, lines {:?}",
            prod.lines
        ));
        return;
    };
    for (i, c) in alive.iter_mut().enumerate() {
        let exit = c.finish(Duration::from_secs(15));
        f.survivors += 1;
        let Some(e) = c.end() else {
            f.wrong_end += 1;
            f.problems
                .add(format!("{what} survivor {i}: no end line ({exit:?})"));
            continue;
        };
        f.torn += e.torn;
        f.dup += e.dup;
        f.order += e.order;
        let unique = e.received.saturating_sub(e.dup + e.order);
        let missing = sent.saturating_sub(unique) + e.gaps;
        f.lost += missing;
        if e.status != "closed" || exit != Some(0) {
            f.wrong_end += 1;
        }
        let first_ok = sent == 0 || e.first == Some(0);
        if e.status != "closed" || missing + e.torn + e.dup + e.order > 0 || !first_ok {
            f.problems
                .add(format!("{what} survivor {i} (sent {sent}): {e:?}"));
        }
    }
}

/// A victim consumer joins at the newest record and is killed in the state its kind names.
fn kill_victim(ctx: &mut Ctx, q: &mut QueueFile, f: &mut KillFigures, what: &str) {
    let kind = *ctx.rng.pick(&VICTIMS);
    let zc =
        matches!(kind, "holding-read" | "mid-release") || (kind == "asleep" && ctx.rng.one_in(2));
    let mut extra: Vec<String> = Vec::new();
    if kind == "holding-read" {
        extra.extend(["--hold-read-us".into(), "2000".into()]);
    }
    let mut a = ctx.consumer_args(&q.name, zc, &extra);
    a[3] = "newest".into();
    let Some(mut victim) = started(ctx.spawn(&a), "opened", f, what) else {
        return;
    };
    if kind == "asleep" {
        let pid = victim.pid;
        if !poll_until(Duration::from_millis(500), || {
            q.consumer_sleeping(pid).unwrap_or(0) != 0
        }) {
            f.not_asleep += 1;
        }
    } else {
        std::thread::sleep(Duration::from_micros(ctx.rng.range(1000, 10_000)));
    }
    victim.kill();
    let _ = victim.finish(Duration::from_secs(5));
    f.kills += 1;
    *f.by_kind.entry(kind).or_default() += 1;
}
