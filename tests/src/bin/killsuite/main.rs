//! `shmio-killsuite`: real processes, real `kill -9`, many times; prints figures and checks
//! the liveness targets of the broadcast queue.
//!
//! ```text
//! shmio-killsuite [--cycles N] [--consumer-kills N] [--together N] [--scribble N]
//!                 [--hostile N] [--seed S] [--stuck-ms MS] [--max-stuck N] [--qtool PATH] [--check]
//!                 [--long-spins]
//! ```
//! Every process is a `shmio-qtool` (found next to this binary unless `--qtool` says where);
//! every queue gets a name of its own in /dev/shm and is unlinked after its cycle. Modes, run
//! in this order (a count of 0 skips one):
//!
//! - `--cycles N` producer kills (default 1000). Each cycle: a producer and 1-4 consumers,
//!   overwrite or back-pressure, copying or zero-copy calls on either side, random slot counts
//!   and record sizes; the producer is killed mid-reserve (reservations held open half
//!   written, or one left open for good), streaming, asleep (a back-pressure producer blocked
//!   on a full ring: killed once its `producer_waiting` word is set), idle with every consumer
//!   asleep, or spinning (a long spin in the wait for space; in overwrite mode, the consumers
//!   spin). Each consumer must then drain every committed record (up to the head that
//!   `inspect` finds after the kill; the record at the head too if the producer died between
//!   completing and publishing it), with no torn record, no repeat, in order, no loss in
//!   back-pressure mode and every loss counted in overwrite mode, and end with producer-dead
//!   (exit 3). Latency: from just before kill(2) to the consumer's `ProducerDead`, both
//!   `CLOCK_MONOTONIC`; "notice" counts from the later of the kill and the consumer's last
//!   record, so a backlog drained after the kill is not counted as lateness. Consumers look
//!   again 2 ms after `ProducerDead` (qtool `--after-dead-ms`: the README's known limit, a
//!   record committed at the very instant of the death may show up just after); what they find
//!   then is received, and counted apart.
//! - `--consumer-kills N` (default 300), in sessions of up to 15: a back-pressure producer
//!   streams in bursts to 1-3 surviving consumers while victim consumers join and are killed
//!   asleep (once their `sleeping` word is set), mid-read (copying), holding a zero-copy read
//!   (between read and release), or mid-release (zero-copy, streaming). The producer times every
//!   reserve/send: its longest wait must stay within the backstop; the survivors must get every
//!   record, in order, then `Closed`.
//! - `--together N` (default 200): consumer A drains and goes to sleep first, then 1-3 others;
//!   then the producer and A are killed in one go (two kill(2) calls back to back, or one to
//!   their process group, alternately). Every other consumer must end with producer-dead.
//! - `--scribble N` (default 200): before the producer is killed, this process overwrites the
//!   producer's owner word (a thread id that exists nowhere, sometimes with the waiters bit),
//!   with the consumers asleep or streaming. No consumer may stay blocked past the backstop:
//!   each must end with producer-dead or corrupt (ending even before the kill, on seeing the
//!   foreign word, is allowed and counted; one that ends producer-dead after the kill must
//!   have drained every committed record, as in the producer kills).
//! - `--hostile N` (default 0): a producer (overwrite or back-pressure, copying or zero-copy,
//!   streaming or idle) and 1-3 consumers run while a third process (`shmio-qtool scribble`)
//!   writes random bytes for 1-5 ms into the live header (any line: config, head, waiters,
//!   owner, space), the consumer slots and the slot headers; then the producer is killed. No
//!   record can be checked then; what is: no process dies of a signal but the driver's own
//!   kill -9 (no SIGBUS, SIGSEGV, abort) and none panics; no consumer stays blocked past the
//!   backstop and margin after the kill; every consumer ends with a documented status (dead,
//!   closed, corrupt, timeout counted apart; `error` only with a message in `HOSTILE_OK`), and
//!   a producer that stops by itself ends with `failed` and a documented error.
//!
//! `--long-spins` (not in CI) also gives half the consumers of the "spinning" producer kills,
//! and half the producers of the consumer-kill sessions, the longest spin (1 s, `set_spin`'s
//! limit): spins watch only the ring, not the peers' owner words, so today a death is noticed
//! only when the spin ends.
//!
//! A consumer that gets no answer within `--stuck-ms` (default 1000) times out (qtool exit 4)
//! and counts as stuck; one that notices the death past the backstop and margin counts as late
//! (today's code often says `ProducerDead` only when its own timeout expires: it re-checks the
//! owner word then); after `--max-stuck` (default 20) stuck or late consumers a mode stops
//! early (pass a large value to measure every round anyway).
//! Figures per mode, then `summary MODE key=value...` lines and one `target NAME ... met|MISSED`
//! line per target; with `--check` the exit status is 1 if any target is missed.

mod consumer_kill;
mod figures;
mod hostile;
mod kid;
mod producer_kill;
mod queue_file;
mod scribble;
mod together;
mod util;

use std::io::Write;
use std::path::PathBuf;

use shmio_tests::{Rng, monotonic_ns};

use util::Ctx;

/// The longest a consumer may stay blocked once its producer is dead, whatever the mapping says
/// (the sleep slices of the core's backstop).
const BACKSTOP_MS: u64 = 200;
/// Scheduling slack on a loaded 2-core machine, on top of the backstop.
const MARGIN_MS: u64 = 100;
/// The longest a death may go unnoticed, in microseconds: the backstop and the margin.
const LIMIT_US: u64 = (BACKSTOP_MS + MARGIN_MS) * 1000;
/// The 99th percentile of the death-notice latency.
const P99_TARGET_MS: u64 = 50;
const P99_US: u64 = P99_TARGET_MS * 1000;

pub struct Opts {
    pub cycles: u64,
    pub consumer_kills: u64,
    pub together: u64,
    pub scribble: u64,
    pub hostile: u64,
    pub seed: u64,
    pub stuck_ms: u64,
    pub max_stuck: u64,
    pub qtool: PathBuf,
    pub check: bool,
    pub long_spins: bool,
}

fn parse_opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |flag: &str| -> Option<String> {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args.get(i + 1).cloned().unwrap_or_default())
    };
    let num = |flag: &str, default: u64| -> u64 {
        get(flag).map_or(default, |v| {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("bad value for {flag}: {v}"))
        })
    };
    let qtool = get("--qtool").map(PathBuf::from).unwrap_or_else(|| {
        let me = std::env::current_exe().expect("current_exe");
        me.with_file_name("shmio-qtool")
    });
    Opts {
        cycles: num("--cycles", 1000),
        consumer_kills: num("--consumer-kills", 300),
        together: num("--together", 200),
        scribble: num("--scribble", 200),
        hostile: num("--hostile", 0),
        seed: num("--seed", monotonic_ns() ^ u64::from(std::process::id())),
        stuck_ms: num("--stuck-ms", 1000),
        max_stuck: num("--max-stuck", 20),
        qtool,
        check: args.iter().any(|a| a == "--check"),
        long_spins: args.iter().any(|a| a == "--long-spins"),
    }
}

/// The summary lines and the targets of every mode run.
#[derive(Default)]
pub struct Report {
    summaries: Vec<String>,
    targets: Vec<(String, u64, u64)>,
}

impl Report {
    pub fn summary(&mut self, line: String) {
        self.summaries.push(line);
    }

    /// A target: `value` must be at most `limit`.
    pub fn at_most(&mut self, name: &str, value: u64, limit: u64) {
        self.targets.push((name.to_string(), value, limit));
    }

    /// Prints the summaries, then each target; returns how many were missed.
    fn print(&self, seed: u64) -> usize {
        println!();
        for s in &self.summaries {
            println!("{s}");
        }
        let missed = self.targets.iter().filter(|(_, v, l)| v > l).count();
        for (name, value, limit) in &self.targets {
            println!(
                "target {name} = {value} (at most {limit}) {}",
                if value <= limit { "met" } else { "MISSED" }
            );
        }
        println!(
            "targets: {} met, {missed} missed (seed {seed})",
            self.targets.len() - missed
        );
        missed
    }
}

fn main() {
    let o = parse_opts();
    if !o.qtool.exists() {
        eprintln!(
            "shmio-killsuite: {} not found (build it, or pass --qtool PATH)",
            o.qtool.display()
        );
        std::process::exit(2);
    }
    queue_file::remove_stale_queues();
    queue_file::check_offsets();
    println!(
        "shmio-killsuite: seed {} ({} producer-kill cycles, {} consumer kills, {} together, \
         {} scribble, {} hostile; stuck after {} ms; backstop {BACKSTOP_MS} ms + {MARGIN_MS} ms margin{})",
        o.seed,
        o.cycles,
        o.consumer_kills,
        o.together,
        o.scribble,
        o.hostile,
        o.stuck_ms,
        if o.long_spins { "; long spins" } else { "" }
    );
    let _ = std::io::stdout().flush();
    let rng = Rng::new(o.seed);
    let mut ctx = Ctx { o, rng };
    let mut report = Report::default();
    producer_kill::run(&mut ctx, &mut report);
    consumer_kill::run(&mut ctx, &mut report);
    together::run(&mut ctx, &mut report);
    scribble::run(&mut ctx, &mut report);
    hostile::run(&mut ctx, &mut report);
    let missed = report.print(ctx.o.seed);
    if ctx.o.check && missed > 0 {
        std::process::exit(1);
    }
}
