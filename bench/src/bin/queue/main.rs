//! `shmio-bench`: shmio's queue against what a user would pick instead, in the same run.
//!
//! Every system moves the same records between separate processes:
//! - throughput, 1 producer to 1 consumer and to 4 consumers (broadcast: shmio and iceoryx2
//!   deliver every record to every subscriber natively; peers without broadcast send to each
//!   consumer in turn), as records/s and GB/s;
//! - round-trip latency with an echoing peer (p50, p99, p99.9), once with both sides spinning
//!   (kernel transports polled non-blocking) and once with both sides blocking (every wait
//!   sleeps in the kernel: shmio with its spin set to zero, iceoryx2 with its listener).
//!
//! The limits are measured alongside: a minimal single-producer single-consumer ring (the
//! ceiling for small records), a cache-line ping-pong (the floor for spinning round trips), a
//! raw futex ping-pong (the floor for blocking round trips) and single-core memcpy bandwidth
//! (the ceiling for large records). A closing section checks the targets of the benchmark
//! issue from the figures of this run (`extra` adds the deep-queue and overwrite-under-load
//! sections they need), and the sanity gates (`gates`) fail the run when its
//! figures cannot be true. Every case runs `--repeat` times; `--pin` (the default) puts the
//! producer and the children on fixed CPUs (`pin`).
//!
//! ```text
//! shmio-bench [--quick] [--json] [--sizes 8,64,1024,65536] [--systems a,b,...]
//!             [--patterns 1to1,1to4,rtt-spin,rtt-block] [--trips N] [--count N]
//!             [--repeat K] [--depth N] [--deep D,D,... | --deep none] [--load | --no-load]
//!             [--pin | --no-pin] [--no-gates]
//! shmio-bench --gates-from FILE   (the sanity gates on a saved --json run)
//! ```

mod channels;
mod cli;
mod extra;
mod gates;
mod iox;
mod peers;
mod pin;
mod report;
mod ring;
mod rtt;
mod systems;
mod targets;
mod throughput;

use channels::{raise_mq_limit, supported, unlink_mqs_on_panic};
use cli::Settings;
use report::{Out, machine};
use rtt::{child_echo, child_pingpong, latency, pingpong};
use systems::{Mode, Sys, capacity};
use targets::targets;
use throughput::{child_rx, memcpy_gbps, racy_copy_gbps, throughput};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--child-rx") => return child_rx(&args[1..]),
        Some("--child-echo") => return child_echo(&args[1..]),
        Some("--child-pingpong") => return child_pingpong(&args[1..]),
        Some("--child-burn") => return extra::child_burn(&args[1..]),
        Some("--help") | Some("-h") => return cli::usage(),
        Some("--gates-from") if args.len() == 2 => return gates::gates_from(&args[1]),
        _ => {}
    }
    cli::check(&args);
    raise_mq_limit();
    unlink_mqs_on_panic();
    let run = Settings::parse(&args);
    systems::set_depth(run.depth);
    let mut out = Out::new(run.json);
    // The machine's CPUs as the run found them (pinning narrows this process to one).
    let machine = machine();
    let cpus = pin::start(run.pin);
    if !run.json {
        println!(
            "# shmio-bench{} — {machine}",
            if run.quick { " --quick" } else { "" },
        );
        println!(
            "# each case {} time(s): best, median, spread (max - min) / median; {}; {}",
            run.repeat,
            run.depth.map_or(
                "depth: each system's default (1024 records up to 4 KiB, 1 MiB of larger)".into(),
                |d| format!("depth: {d} records per channel (--depth)")
            ),
            if cpus.is_empty() && run.systems.contains(&Sys::Fcntl) && pin::allowed().len() > 1 {
                "not pinned (but the fcntl design's cases, whose consumers must keep up)"
                    .to_string()
            } else if cpus.is_empty() {
                "not pinned".to_string()
            } else {
                format!(
                    "pinned: producer on CPU {}, children on CPUs {:?} in turn",
                    cpus[0],
                    &cpus[1..]
                )
            }
        );
    }
    // The ceiling and the peers first, so that the other lines can show the ratios.
    let mut order = run.systems.clone();
    order.sort_by_key(|s| match s {
        Sys::Ring => 0,
        Sys::Pipe => 1,
        Sys::Iceoryx2 => 2,
        _ => 3,
    });
    for &size in &run.sizes {
        throughputs(&run, &order, size, &mut out);
        round_trips(&run, &order, size, &mut out);
    }
    extra::deep_queues(&run, &mut out);
    extra::overwrite_under_load(&run, &mut out);
    if !run.json {
        targets(&out, &run);
    }
    if run.gates {
        gates::enforce(out.rows());
        if !run.json {
            println!("\n## Sanity gates: passed ({} cases)", out.rows().len());
        }
    }
}

/// Runs every one of `cases` `repeat` times, interleaved: round `r` runs each case once, so
/// that a load that comes and goes during the run reaches every case alike (and shows in each
/// case's spread) rather than marking the cases that happened to run under it.
pub(crate) fn interleave<C, T>(
    repeat: usize,
    cases: &[C],
    mut run: impl FnMut(&C) -> T,
) -> Vec<Vec<T>> {
    let mut runs: Vec<Vec<T>> = cases.iter().map(|_| Vec::new()).collect();
    for _ in 0..repeat {
        for (c, v) in cases.iter().zip(runs.iter_mut()) {
            v.push(run(c));
        }
    }
    runs
}

/// The throughput section for `size`-byte records: the copy ceilings, then every system.
fn throughputs(run: &Settings, order: &[Sys], size: usize, out: &mut Out) {
    let count = run.count(size);
    if !run.json {
        println!(
            "\n## {size} B records: throughput, {count} records to each consumer, \
             {} buffered per channel",
            capacity(size)
        );
    }
    out.ceilings(size, memcpy_gbps(size), racy_copy_gbps(size));
    let mut cases = Vec::new();
    for &sys in order {
        if !supported(sys, size) {
            if !run.json {
                println!(
                    "  {:<20} skipped: records of {size} B exceed fs.mqueue.msgsize_max",
                    sys.name()
                );
            }
            continue;
        }
        if sys == Sys::Fcntl && size > 1024 && run.quick {
            continue;
        }
        for (consumers, pattern) in [(1usize, "1to1"), (4, "1to4")] {
            if run.want(pattern) {
                cases.push((sys, consumers, pattern));
            }
        }
    }
    let runs = interleave(run.repeat, &cases, |&(sys, consumers, pattern)| {
        if sys == Sys::Fcntl {
            // Its consumer must keep up for its figure to mean anything (`peers::Fcntl`): on
            // a CPU of its own, and over enough records (0.2 s or more at its ~0.5 M/s) that
            // one preemption of it does not decide the run.
            pin::pinned(|| throughput(sys, size, consumers, count.min(100_000), pattern))
        } else {
            throughput(sys, size, consumers, count, pattern)
        }
    });
    for ((sys, _, pattern), r) in cases.iter().zip(runs) {
        out.throughput(sys.name(), pattern, size, &r);
    }
}

/// The round-trip sections for `size`-byte records, spinning and blocking: the floor, then
/// every system that has the form.
fn round_trips(run: &Settings, order: &[Sys], size: usize, out: &mut Out) {
    let trips = run.trips;
    for (mode, pattern) in [(Mode::Spin, "rtt-spin"), (Mode::Block, "rtt-block")] {
        if !run.want(pattern) {
            continue;
        }
        if !run.json {
            println!(
                "\n## {size} B records: round trip (ns), {trips} trips, both sides {}",
                if mode == Mode::Spin {
                    "spinning (kernel transports polled non-blocking)"
                } else {
                    "blocking (every wait sleeps in the kernel)"
                }
            );
        }
        // The floor first (`None`), then every system that has the form: the fcntl design
        // has no request/response form (its producer always holds the next slot's lock); the
        // minimal ring cannot block.
        let mut cases = vec![None];
        cases.extend(
            order
                .iter()
                .filter(|&&sys| {
                    sys != Sys::Fcntl
                        && !(sys == Sys::Ring && mode == Mode::Block)
                        && supported(sys, size)
                })
                .map(|&sys| Some(sys)),
        );
        let runs = interleave(run.repeat, &cases, |c| match c {
            None => pingpong(trips, mode),
            Some(sys) => latency(*sys, size, trips, mode),
        });
        for (c, mut v) in cases.iter().zip(runs) {
            let name = c.map_or(report::floor(pattern), Sys::name);
            out.latency(name, pattern, size, &mut v);
        }
    }
}
