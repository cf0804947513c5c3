//! `--cycles N`: the producer killed at one of several points; every consumer must drain what
//! was committed and end producer-dead.

use std::time::Duration;

use shmio_tests::layout::queue;

use crate::figures::{Death, Figures, KillMode, Setup};
use crate::queue_file::{QueueFile, poll_until, queue_name};
use crate::util::{Ctx, FOREVER, kill, produce_args, push, start_round, tag};
use crate::{LIMIT_US, P99_US, Report};

const POINTS_BP: [&str; 6] = [
    "mid-reserve",
    "mid-reserve-open",
    "streaming",
    "asleep-full-ring",
    "idle-consumers-asleep",
    "spinning",
];
const POINTS_OW: [&str; 5] = [
    "mid-reserve",
    "mid-reserve-open",
    "streaming",
    "idle-consumers-asleep",
    "spinning",
];

const MODE: KillMode = KillMode {
    name: "producer-kill",
    title: "producer kill -9",
    unit: "cycles",
    early_ok: false,
};

pub fn run(ctx: &mut Ctx, report: &mut Report) {
    let cycles = ctx.o.cycles;
    let Some(f) = Figures::run_mode(ctx, &MODE, cycles, cycle, report) else {
        return;
    };
    report.at_most("producer-kill.torn", f.torn, 0);
    report.at_most("producer-kill.dup+order", f.dup + f.order + f.phantom, 0);
    report.at_most("producer-kill.lost", f.lost + f.unaccounted, 0);
    report.at_most("producer-kill.not-dead", f.not_ended_as_expected(), 0);
    report.at_most("producer-kill.notice-p99-us", f.notice.p(0.99), P99_US);
    report.at_most("producer-kill.notice-max-us", f.notice.max(), LIMIT_US);
    report.at_most("producer-kill.cycles-short", cycles - f.runs, 0);
}

fn cycle(ctx: &mut Ctx, n: u64, f: &mut Figures) {
    let bp = ctx.rng.one_in(2);
    let point = if bp {
        *ctx.rng.pick(&POINTS_BP)
    } else {
        *ctx.rng.pick(&POINTS_OW)
    };
    let slow_ring = matches!(point, "asleep-full-ring" | "spinning") && bp;
    let slots = if slow_ring {
        ctx.slots(&[8, 16, 32])
    } else {
        ctx.slots(&[8, 16, 32, 64, 128, 256])
    };
    let size = ctx.rng.range(16, 512);
    let k = ctx.rng.range(1, 4);
    let mut q = QueueFile::new(queue_name("pk", n));
    let mut pargs = produce_args(&q.name, bp, slots, size);
    push(
        &mut pargs,
        &["--min-size", "8", "--wait-consumers", &k.to_string()],
    );
    let zc_producer = point.starts_with("mid-reserve") || ctx.rng.one_in(2);
    if !zc_producer {
        pargs.push("--copy".into());
    }
    let idle_count = ctx.rng.range(0, 3 * u64::from(slots)).to_string();
    let count: &[&str] = match point {
        "mid-reserve" => &["--count", FOREVER, "--hold-reserve-us", "300"],
        "mid-reserve-open" => &["--count", &idle_count, "--final-reserve"],
        "idle-consumers-asleep" => &["--count", &idle_count, "--hold"],
        "spinning" if bp => &["--count", FOREVER, "--spin-us", "1000000"],
        "spinning" => &["--count", FOREVER, "--burst", "32", "--pause-us", "2000"],
        _ => &["--count", FOREVER],
    };
    push(&mut pargs, count);
    let mut clist = Vec::new();
    let mut kinds = Vec::new();
    for _ in 0..k {
        let zc = ctx.rng.one_in(2);
        let mut extra = Vec::new();
        if slow_ring {
            extra.extend(["--slow-us".into(), ctx.rng.range(20, 100).to_string()]);
        } else if point == "streaming" && ctx.rng.one_in(4) {
            extra.extend(["--slow-us".into(), "20".into()]);
        }
        if point == "spinning" && ctx.o.long_spins && ctx.rng.one_in(2) {
            extra.extend(["--spin-us".into(), "1000000".into()]);
        } else if point == "spinning" && !bp {
            extra.extend(["--spin-us".into(), ctx.rng.range(200, 5000).to_string()]);
        }
        if zc && point.starts_with("mid-reserve") && ctx.rng.one_in(3) {
            extra.extend(["--hold-read-us".into(), "200".into()]);
        }
        kinds.push(if zc { "zc" } else { "copy" });
        clist.push(ctx.consumer_args(&q.name, zc, &extra));
    }
    let what = format!("cycle {n}");
    let Some((mut prod, mut consumers)) = start_round(ctx, pargs, &clist, f, &what) else {
        return;
    };
    let reached = match point {
        "asleep-full-ring" => poll_until(Duration::from_secs(2), || {
            q.read_u32(queue::PRODUCER_WAITING).unwrap_or(0) != 0
        }),
        "idle-consumers-asleep" | "mid-reserve-open" => {
            let line = if point == "mid-reserve-open" {
                "holding"
            } else {
                "sent"
            };
            prod.expect(line, Duration::from_secs(10)).is_ok() && q.await_sleepers(k)
        }
        _ => {
            std::thread::sleep(Duration::from_micros(ctx.rng.range(2000, 20_000)));
            true
        }
    };
    if !reached {
        f.setup_fault(format!(
            "{what} ({point}): state not reached, killed anyway"
        ));
    }
    let (t_kill, reaped) = kill(&mut prod);
    if reaped.is_none() {
        f.setup_fault(format!("{what}: producer not reaped after kill -9"));
    }
    let head = q.head().unwrap_or(0);
    let mw = f.mid_write.entry(point.to_string()).or_default();
    mw.0 += 1;
    if q.mid_write(head) {
        mw.1 += 1;
    } else if point == "mid-reserve-open" {
        f.setup_fault(format!("{what}: the slot of head {head} is not mid-write"));
    }
    let death = Death {
        head,
        bp,
        t_kill,
        ok_status: &["dead"],
        point,
    };
    let producer = if zc_producer { "zc" } else { "copy" };
    f.check_consumers(&mut consumers, ctx.end_wait(), &death, |i| {
        format!(
            "{what} ({}, {point}, slots {slots}, producer {producer}, consumer {i}/{k} {})",
            tag(bp),
            kinds[i]
        )
    });
}
