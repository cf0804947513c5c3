//! `--together N`: the producer killed in the same instant as the consumer that went to sleep
//! first; every other consumer must still end producer-dead.

use std::time::Duration;

use shmio_tests::monotonic_ns;

use crate::figures::{Death, Figures, KillMode, Setup};
use crate::kid::{Kid, kill9};
use crate::queue_file::{QueueFile, queue_name};
use crate::util::{Ctx, produce_args, push, spawn_consumers, started, tag};
use crate::{LIMIT_US, P99_US, Report};

const MODE: KillMode = KillMode {
    name: "together",
    title: "producer killed together with the consumer asleep first",
    unit: "rounds",
    early_ok: false,
};

pub fn run(ctx: &mut Ctx, report: &mut Report) {
    let rounds = ctx.o.together;
    let Some(f) = Figures::run_mode(ctx, &MODE, rounds, round, report) else {
        return;
    };
    report.at_most("together.torn+dup+order", f.torn + f.dup + f.order, 0);
    report.at_most("together.lost", f.lost + f.unaccounted + f.phantom, 0);
    report.at_most("together.survivors-not-dead", f.not_ended_as_expected(), 0);
    report.at_most("together.notice-p99-us", f.notice.p(0.99), P99_US);
    report.at_most("together.notice-max-us", f.notice.max(), LIMIT_US);
    report.at_most("together.rounds-short", rounds - f.runs, 0);
}

/// Kills the producer together with the consumer that went to sleep first.
fn round(ctx: &mut Ctx, n: u64, f: &mut Figures) {
    let bp = ctx.rng.one_in(2);
    let slots = ctx.slots(&[16, 64, 256]);
    let count = ctx.rng.range(0, 50);
    let group = n % 2 == 1;
    let mut q = QueueFile::new(queue_name("tg", n));
    let mut pargs = produce_args(&q.name, bp, slots, 64);
    push(&mut pargs, &["--count", &count.to_string(), "--hold"]);
    ctx.seed_arg(&mut pargs);
    let what = format!("round {n}");
    let prod = Kid::spawn(&ctx.o.qtool, &pargs, false, group.then_some(0));
    let Some(mut prod) = started(prod, "sent", f, &format!("{what}: producer")) else {
        return;
    };
    let zc = ctx.rng.one_in(2);
    let a_args = ctx.consumer_args(&q.name, zc, &[]);
    let a = Kid::spawn(&ctx.o.qtool, &a_args, false, group.then_some(prod.pid));
    let Some(mut a) = started(a, "opened", f, &format!("{what}: consumer A")) else {
        return;
    };
    // A asleep first (counted, then a moment to reach the futex), then the others.
    let a_asleep = q.await_sleepers(1);
    std::thread::sleep(Duration::from_millis(2));
    let others = ctx.rng.range(1, 3);
    let list = ctx.random_consumers(&q.name, others);
    let Some(mut rest) = spawn_consumers(ctx, &list, f, &what) else {
        return;
    };
    let all_asleep = q.await_sleepers(1 + others);
    std::thread::sleep(Duration::from_millis(2));
    if !(a_asleep && all_asleep) {
        f.setup_fault(format!("{what}: consumers not all asleep, killed anyway"));
    }
    let t_kill = monotonic_ns();
    if group {
        kill9(-prod.pid);
    } else {
        kill9(prod.pid);
        kill9(a.pid);
    }
    let _ = prod.finish(Duration::from_secs(5));
    let _ = a.finish(Duration::from_secs(5));
    let how = if group { "group kill" } else { "two kills" };
    let death = Death {
        head: q.head().unwrap_or(0),
        bp,
        t_kill,
        ok_status: &["dead"],
        point: how,
    };
    f.check_consumers(&mut rest, ctx.end_wait(), &death, |i| {
        format!(
            "{what} ({}, {how}, {count} records, survivor {i}/{others})",
            tag(bp)
        )
    });
}
