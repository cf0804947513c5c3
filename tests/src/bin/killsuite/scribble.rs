//! `--scribble N`: the producer's owner word overwritten (a thread id that exists nowhere,
//! sometimes with the waiters bit) before the producer is killed; no consumer may stay blocked
//! past the backstop.

use std::time::Duration;

use shmio_tests::Rng;
use shmio_tests::layout::FUTEX_WAITERS;

use crate::figures::{Death, Figures, KillMode, Setup};
use crate::queue_file::{QueueFile, queue_name};
use crate::util::{Ctx, kill, produce_args, push, push_load, start_round, tag};
use crate::{LIMIT_US, Report};

const MODE: KillMode = KillMode {
    name: "scribble",
    title: "owner word scribbled (offset 384), then producer killed",
    unit: "rounds",
    early_ok: true,
};

pub fn run(ctx: &mut Ctx, report: &mut Report) {
    let rounds = ctx.o.scribble;
    let Some(f) = Figures::run_mode(ctx, &MODE, rounds, round, report) else {
        return;
    };
    report.at_most("scribble.torn+dup+order", f.torn + f.dup + f.order, 0);
    report.at_most("scribble.not-dead-or-corrupt", f.not_ended_as_expected(), 0);
    report.at_most("scribble.blocked-max-us", f.raw.max(), LIMIT_US);
    report.at_most("scribble.rounds-short", rounds - f.runs, 0);
}

/// A thread id that no task on this machine has (pid_max is at most 2^22).
fn absent_tid(rng: &mut Rng) -> u32 {
    loop {
        let v = rng.range(300, (1 << 22) - 1) as u32;
        if !std::path::Path::new(&format!("/proc/{v}")).exists() {
            return v;
        }
    }
}

/// Overwrites the producer's owner word, then kills the producer.
fn round(ctx: &mut Ctx, n: u64, f: &mut Figures) {
    let bp = ctx.rng.one_in(2);
    let slots = ctx.slots(&[16, 64, 256]);
    let streaming = ctx.rng.one_in(2);
    let k = ctx.rng.range(1, 4);
    let mut q = QueueFile::new(queue_name("sc", n));
    let mut pargs = produce_args(&q.name, bp, slots, 128);
    push(
        &mut pargs,
        &["--min-size", "8", "--wait-consumers", &k.to_string()],
    );
    push_load(&mut pargs, streaming, || ctx.rng.range(0, 50));
    let list = ctx.random_consumers(&q.name, k);
    let what = format!("round {n}");
    let Some((mut prod, mut consumers)) = start_round(ctx, pargs, &list, f, &what) else {
        return;
    };
    let reached = if streaming {
        std::thread::sleep(Duration::from_micros(ctx.rng.range(2000, 10_000)));
        true
    } else {
        prod.expect("sent", Duration::from_secs(10)).is_ok() && q.await_sleepers(k)
    };
    if !reached {
        f.setup_fault(format!("{what}: consumers not asleep, went on anyway"));
    }
    let with_waiters = ctx.rng.one_in(2);
    let value = absent_tid(&mut ctx.rng) | if with_waiters { FUTEX_WAITERS } else { 0 };
    if !q.scribble_owner(value) {
        f.setup_fault(format!("{what}: could not write the owner word"));
    }
    std::thread::sleep(Duration::from_micros(ctx.rng.range(0, 2000)));
    let (t_kill, _) = kill(&mut prod);
    let how = if streaming { "streaming" } else { "asleep" };
    let death = Death {
        head: q.head().unwrap_or(0),
        bp,
        t_kill,
        ok_status: &["dead", "corrupt"],
        point: how,
    };
    f.check_consumers(&mut consumers, ctx.end_wait(), &death, |i| {
        format!(
            "{what} ({}, consumers {how}, owner word := {value:#x}, consumer {i}/{k})",
            tag(bp)
        )
    });
}
