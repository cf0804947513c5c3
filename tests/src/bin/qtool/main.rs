//! `shmio-qtool`: a producer or consumer process driven by the end-to-end tests.
//!
//! ```text
//! shmio-qtool produce NAME [--create|--open] [--slots N] [--size N] [--policy overwrite|bp]
//!                          [--count N] [--interval-us N] [--wait-consumers N] [--hold]
//!                          [--text] [--die-mid-record] [--timeout-ms N]
//!                          [--min-size N] [--copy] [--spin-us N] [--burst N --pause-us N]
//!                          [--hold-reserve-us N] [--final-reserve] [--until-eof]
//!                          [--stall-report] [--seed N]
//! shmio-qtool consume NAME [--from newest|oldest|SEQ] [--count N] [--slow-us N]
//!                          [--zero-copy] [--text] [--timeout-ms N] [--hold] [--survive]
//!                          [--quiet] [--hold-read-us N] [--spin-us N] [--after-dead-ms N]
//!                          [--seed N] [--poll] [--flush-each]
//!                          [--resume near-oldest|half-ring|newest|oldest|N] [--work-ns N]
//! shmio-qtool scribble PATH SEED MS
//! ```
//! Producer prints `ready` once it holds the queue, `sent N` at the end. Consumer prints
//! `opened POS`, `rec SEQ` per record (`text ...` with --text), and a final
//! `end STATUS received=N lost=M` followed by more `key=value` fields (below). Exit codes as
//! the C consumer: 0 done or closed, 3 producer dead, 2 cannot open, 4 timeout, 1 other. With
//! `--survive` a consumer that finds the producer dead prints `gone dead` once and keeps trying,
//! for a new producer to take over.
//!
//! For the kill suite (`shmio-killsuite`):
//! - producer: `--min-size N` gives each record a random length in N..=size (N >= 8);
//!   `--copy` writes with `send` instead of `reserve`/`commit`; `--spin-us` sets the spin of a
//!   wait for space; `--burst N --pause-us U` pauses a random 0..=U us after bursts of 1..=N
//!   records; `--hold-reserve-us N` holds one reservation in four open for 1..=N us with only
//!   half of the record written (a consumer that delivered it would see a torn record);
//!   `--final-reserve` after the records opens one more reservation, half written, prints
//!   `holding SEQ` and sleeps until killed; `--until-eof` sends until standard input closes
//!   (then closes the queue normally); `--stall-report` times every reserve/send and prints
//!   `stalls n=N max_us=X over1ms=A over10ms=B over100ms=C max_at_ns=T` before `sent` (and
//!   before exiting 1 when a reserve or send fails, e.g. times out).
//! - consumer: `--quiet` prints no `rec` lines and goes on past a torn record (counting it);
//!   `--hold-read-us N` holds each zero-copy read 0..=N us before releasing it; the end line's
//!   extra fields are `start=` (the opening position) `first= last=` (sequence numbers, `-`
//!   if none) `dup= order= gaps=` (repeats, steps back, and records skipped between two
//!   received ones) `torn=` `t_last_ns=` (`CLOCK_MONOTONIC` of the last record) `t_end_ns=`
//!   (`CLOCK_MONOTONIC` when the final status was returned, e.g. `ProducerDead`)
//!   `after_dead=` (see `--after-dead-ms`). A corrupt queue ends with status `corrupt` (exit 1).
//!   `--after-dead-ms N`: after `ProducerDead`, wait N ms and drain once more without waiting
//!   (a record committed at the very instant of the death may become visible just after);
//!   records found then still count as received, and in `after_dead=`.
//!
//! `scribble` is the hostile peer of the kill suite's `--hostile` rounds: for MS ms it writes
//! random bytes (1 to 8 at a time, with a pause of 0, 10 or 100 us between writes, chosen by
//! SEED) with pwrite(2) into the queue file at PATH: anywhere in the header lines (config,
//! producer, waiters, owner, space), in the first four consumer slots, or in a slot header
//! (stamp and length), as the config line said when it started. It never changes the file's
//! size. Prints `done N` (the writes) and exits 0; 2 if the file cannot be opened.
//!
//! A producer whose reserve, send or commit fails also prints `failed ERROR` on stdout before
//! exiting 1.
//!
//! With `--poll` a consumer never blocks in the queue: it waits with `poll(2)` on
//! `Consumer::fd()` (`--timeout-ms` bounds each poll) and then calls `try_recv` until
//! `WouldBlock`; it prints `polls N empty M` before the end line (M: wake-ups after which the
//! first `try_recv` found nothing). `--flush-each` flushes stdout after every record line
//! (by default it is flushed only after `opened`, `gone dead` and at the end), and then
//! `try max_ns N max_cpu_ns C cpu_ns M`: the longest `try_recv` call in time and in this
//! thread's CPU time (which leaves out time the call was preempted), and the process's CPU
//! time from the open on. `--resume` sets where an overwrite consumer resumes after being lapped (`N`:
//! `Resume::Behind(N)`); `--work-ns N` busy-spins N ns after each record (a slow reader that
//! stays on the CPU).

mod consume;
mod produce;
mod scribble;

use std::time::Duration;

use shmio_tests::monotonic_ns;

fn arg<T: std::str::FromStr>(args: &[String], flag: &str) -> Option<T> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("bad value for {flag}")))
}

fn flag(args: &[String], flag: &str) -> bool {
    args.iter().any(|a| a == flag)
}

/// `--spin-us N`: the spin of a wait, if given.
fn spin(args: &[String]) -> Option<Duration> {
    arg::<u64>(args, "--spin-us").map(Duration::from_micros)
}

/// The handle an open or create gave; or, after saying why on stderr, `None` (exit code 2).
fn opened<T>(name: &str, r: Result<T, shmio::queue::Error>) -> Option<T> {
    r.inspect_err(|e| eprintln!("cannot open {name}: {e}")).ok()
}

fn seed(args: &[String]) -> u64 {
    arg(args, "--seed").unwrap_or_else(|| monotonic_ns() ^ (u64::from(std::process::id()) << 32))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(role), Some(name)) = (args.first(), args.get(1)) else {
        eprintln!("usage: shmio-qtool produce|consume NAME [options]");
        std::process::exit(2);
    };
    let code = match role.as_str() {
        "produce" => produce::produce(name, &args),
        "consume" => consume::consume(name, &args),
        "scribble" => scribble::scribble(name, &args),
        _ => 2,
    };
    std::process::exit(code);
}
