//! The sections beyond the size-by-pattern grid, for the configurations users pick that the
//! grid's defaults do not show:
//! - **deep queues** of 64 KiB records (`--deep`, by default 16, 256 and 1,024 buffered
//!   records in a full run): shmio's ring walks the whole buffer, where iceoryx2 recycles its
//!   most recently freed samples, so depth is where a ring may lose;
//! - **overwrite mode under load** (`--load`, on in a full run): 64 B and 1 KiB records,
//!   shmio's overwrite and back-pressure queues with one extra CPU-bound process running, so
//!   that consumers are preempted and lapped readers must catch up.
//!
//! Their cases are keyed by pattern names of their own (`1to1@256`, `1to4+load`), so that the
//! targets can find them and the sanity gates' lossless check covers them.

use std::process::{Child, Command, Stdio};

use crate::cli::Settings;
use crate::interleave;
use crate::report::Out;
use crate::systems::{self, Sys};
use crate::throughput::throughput;

/// The record size of the deep-queue section.
pub const DEEP_SIZE: usize = 65536;

/// The pattern name of a deep-queue case: `1to1@256`.
pub fn deep_pattern(pattern: &str, depth: usize) -> &'static str {
    intern(format!("{pattern}@{depth}"))
}

/// The pattern name of a case run beside the CPU-bound process: `1to1+load`.
pub fn load_pattern(pattern: &str) -> &'static str {
    intern(format!("{pattern}+load"))
}

/// A pattern name for the figures' keys, which outlive the run's sections (a few dozen
/// short strings per run).
fn intern(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The systems a section compares that the run selected.
fn selected(run: &Settings, of: &[Sys]) -> Vec<Sys> {
    of.iter()
        .copied()
        .filter(|s| run.systems.contains(s))
        .collect()
}

/// The deep-queue section: each of shmio's back-pressure calls and iceoryx2, 1 -> 1 and
/// 1 -> 4, at each depth of `--deep` (when the run selected iceoryx2 and one of them).
pub fn deep_queues(run: &Settings, out: &mut Out) {
    let systems = selected(run, &[Sys::Iceoryx2, Sys::ShmioBp, Sys::ShmioBpZc]);
    // A comparison: iceoryx2 and at least one of shmio's calls.
    if run.deep.is_empty() || systems.len() < 2 || systems[0] != Sys::Iceoryx2 {
        return;
    }
    let count = run.count(DEEP_SIZE);
    if !out.is_json() {
        println!(
            "\n## {DEEP_SIZE} B records in deep queues: {count} records to each consumer, \
             {:?} buffered per channel (--deep)",
            run.deep
        );
    }
    let mut cases = Vec::new();
    for &depth in &run.deep {
        for &sys in &systems {
            for (consumers, pattern) in [(1usize, "1to1"), (4, "1to4")] {
                if run.want(pattern) {
                    cases.push((sys, consumers, depth, deep_pattern(pattern, depth)));
                }
            }
        }
    }
    let before = systems::depth();
    let runs = interleave(run.repeat, &cases, |&(sys, consumers, depth, pattern)| {
        systems::set_depth(Some(depth));
        throughput(sys, DEEP_SIZE, consumers, count, pattern)
    });
    for ((sys, _, depth, pattern), r) in cases.iter().zip(runs) {
        // (The depth a JSON line reports.)
        systems::set_depth(Some(*depth));
        out.throughput(sys.name(), pattern, DEEP_SIZE, &r);
    }
    systems::set_depth(before);
}

/// The sizes of the overwrite-under-load section.
pub const LOAD_SIZES: [usize; 2] = [64, 1024];

/// The overwrite-under-load section: shmio's overwrite and back-pressure queues, 1 -> 1 and
/// 1 -> 4, with one CPU-bound process running (not pinned: the scheduler places it).
pub fn overwrite_under_load(run: &Settings, out: &mut Out) {
    let systems = selected(run, &[Sys::ShmioBp, Sys::ShmioOw]);
    if !run.load || systems.len() < 2 {
        return;
    }
    for size in LOAD_SIZES {
        let count = run.count(size);
        if !out.is_json() {
            println!(
                "\n## {size} B records beside a CPU-bound process (--load): {count} records \
                 to each consumer, {} buffered per channel",
                systems::capacity(size)
            );
        }
        let mut cases = Vec::new();
        for &sys in &systems {
            for (consumers, pattern) in [(1usize, "1to1"), (4, "1to4")] {
                if run.want(pattern) {
                    cases.push((sys, consumers, load_pattern(pattern)));
                }
            }
        }
        let burner = Burner::start();
        let runs = interleave(run.repeat, &cases, |&(sys, consumers, pattern)| {
            throughput(sys, size, consumers, count, pattern)
        });
        drop(burner);
        for ((sys, _, pattern), r) in cases.iter().zip(runs) {
            out.throughput(sys.name(), pattern, size, &r);
        }
    }
}

/// A child process that only burns CPU, killed when dropped (also when the run panics).
struct Burner(Child);

impl Burner {
    fn start() -> Burner {
        let exe = std::env::current_exe().expect("the benchmark's own path");
        let cpus: Vec<String> = crate::pin::run_cpus()
            .iter()
            .map(usize::to_string)
            .collect();
        let child = Command::new(exe)
            .arg("--child-burn")
            .arg(cpus.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawning the CPU-bound process");
        Burner(child)
    }
}

impl Drop for Burner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `--child-burn CPUS`: spins until killed, on whichever of the run's CPUs the scheduler gives
/// it (the pinning it inherited is undone first, so it competes with every process of the run).
pub fn child_burn(args: &[String]) {
    let cpus: Vec<usize> = args
        .first()
        .map(|s| s.split(',').filter_map(|c| c.parse().ok()).collect())
        .unwrap_or_default();
    if !cpus.is_empty() {
        crate::pin::apply(&crate::pin::set_of(&cpus));
    }
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}
