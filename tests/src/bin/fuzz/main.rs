//! `shmio-fuzz`: a seeded mutation fuzzer for the files shmio shares with processes it does not
//! control (queue and region files), on stable Rust.
//!
//! Each case takes a valid file made by the library (a template), mutates it through its file
//! descriptor (bit flips, interesting values in every field, states a peer's death leaves, the
//! whole queue moved near the ends of 64-bit arithmetic, a shorter or longer file), then opens
//! it and drives a short session of the public API. A few cases mutate the file while a
//! producer and a consumer (or a region's writer, reader and waiter) run on it in threads.
//!
//! Oracles: no panic (in any thread), no hang (a watchdog aborts a case that runs longer than
//! `--hang-ms`), no allocation larger than max(file size, 1 MiB), no crash (a supervisor runs
//! the cases in worker processes and reports the case a worker died in), and an untouched file
//! works (control cases).
//!
//! ```text
//! shmio-fuzz [--cases N] [--seed S] [--jobs J] [--hang-ms MS] [--live-per-mille P]
//! shmio-fuzz --seed S --case N      replay one case in this process, printing every step
//! ```
//!
//! Defaults: 100 000 cases, a seed from the clock (printed first), two workers per core, a
//! 2 s hang limit, 2 live cases per thousand. Work files live in `$SHMIO_FUZZ_DIR` (default
//! `/dev/shm`). Exit status 0 only if every case passed every oracle.

mod live;
mod oracles;
mod queue;
mod queue_session;
mod region;
mod supervisor;
mod util;

use std::borrow::Cow;
use std::fmt::Debug;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use oracles::{Watch, gettid, install_panic_hook, spawn_watchdog};
use util::{CaseFile, Rng, Tally, case_seed, qkind, rkind};

// ---------------------------------------------------------------------------------------------
// A case.

/// What a case works with.
pub struct Case<'a> {
    pub rng: Rng,
    pub verbose: bool,
    pub tally: &'a mut Tally,
    /// Thread ids worth writing into owner words: live ones of this process, dead keepers.
    pub tids: &'a [u32],
    pub failures: Vec<(&'static str, String)>,
    /// Region mutations leave the writer lock word alone (see `live::region`).
    pub spare_lock: bool,
}

impl Case<'_> {
    pub fn note(&self, f: impl FnOnce() -> String) {
        if self.verbose {
            eprintln!("  {}", f());
        }
    }

    /// Counts the outcome of queue call `what` (`q.WHAT.KIND` in the tally).
    pub fn q<T: Debug>(&mut self, what: &str, r: &Result<T, shmio::queue::Error>) {
        self.outcome("q", what, r, qkind);
    }

    /// Counts the outcome of region call `what` (`r.WHAT.KIND` in the tally).
    pub fn r<T: Debug>(&mut self, what: &str, r: &Result<T, shmio::region::Error>) {
        self.outcome("r", what, r, rkind);
    }

    fn outcome<T: Debug, E: Debug>(
        &mut self,
        file: &str,
        what: &str,
        r: &Result<T, E>,
        kind: fn(&E) -> Cow<'static, str>,
    ) {
        if self.verbose {
            eprintln!("  {file}.{what}: {r:?}");
        }
        let k = r.as_ref().map_or_else(kind, |_| "Ok".into());
        self.tally.add(&format!("{file}.{what}.{k}"), 1);
    }

    /// How many mutations a case makes before its session: mostly one or two, now and then
    /// none (a control case, for a clean template) or up to `2 + many`.
    pub fn mutation_count(&mut self, many: u64) -> u64 {
        match self.rng.below(100) {
            0..=2 => 0,
            3..=60 => 1,
            61..=85 => 2,
            _ => 3 + self.rng.below(many),
        }
    }

    pub fn fail(&mut self, kind: &'static str, msg: String) {
        self.failures.push((kind, msg));
    }

    /// From here on, an allocation above max(`file_len`, 1 MiB) fails the case.
    pub fn set_alloc_limit(&self, file_len: u64) {
        oracles::set_alloc_limit(file_len);
    }
}

/// A worker: its files, its templates, its tally.
struct Worker {
    seed: u64,
    /// One case file per template, so that resetting one is a plain `pwrite` of its bytes
    /// (its pages stay in the page cache between cases).
    qfiles: Vec<CaseFile>,
    rfiles: Vec<CaseFile>,
    qt: Vec<queue::QTemplate>,
    rt: Vec<region::RTemplate>,
    tids: Vec<u32>,
    tally: Tally,
    live_per_mille: u64,
    progress: Option<File>,
    printed: u32,
    slowest: (u64, u64),
}

const QUEUE_TEMPLATES: usize = 48;
const REGION_TEMPLATES: usize = 24;

impl Worker {
    /// Makes the templates: the same geometry and records for every process given `seed`.
    fn new(seed: u64, dir: PathBuf, live_per_mille: u64, watchdog_tid: u32) -> Worker {
        std::fs::create_dir_all(&dir).expect("make the work directory");
        let mut tids = vec![gettid(), watchdog_tid, std::process::id()];
        let mut rng = Rng::new(seed ^ 0x7e3a_1a7e);
        let qt: Vec<_> = (0..QUEUE_TEMPLATES)
            .map(|_| queue::QTemplate::make(&dir.join("tq"), &mut rng, &mut tids))
            .collect();
        let rt: Vec<_> = (0..REGION_TEMPLATES)
            .map(|_| region::RTemplate::make(&dir.join("tr"), &mut rng))
            .collect();
        let file = |name: String| CaseFile::create(dir.join(name)).expect("make a case file");
        let qfiles = (0..qt.len()).map(|i| file(format!("q{i}"))).collect();
        let rfiles = (0..rt.len()).map(|i| file(format!("r{i}"))).collect();
        let progress = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("progress"))
            .ok();
        Worker {
            seed,
            qfiles,
            rfiles,
            qt,
            rt,
            tids,
            tally: Tally::default(),
            live_per_mille,
            progress,
            printed: 0,
            slowest: (0, 0),
        }
    }

    /// Runs case `n`; returns whether it passed every oracle.
    fn run(&mut self, n: u64, verbose: bool) -> bool {
        if let Some(p) = &self.progress {
            let _ = p.write_all_at(&n.to_le_bytes(), 0);
        }
        let watch = Watch::start(n);
        let mut rng = Rng::new(case_seed(self.seed, n));
        let kind = rng.below(1000);
        let pick_q = rng.below(self.qt.len() as u64) as usize;
        let pick_r = rng.below(self.rt.len() as u64) as usize;
        let mut c = Case {
            rng,
            verbose,
            tally: &mut self.tally,
            tids: &self.tids,
            failures: Vec::new(),
            spare_lock: false,
        };
        let (qf, rf) = (&mut self.qfiles[pick_q], &mut self.rfiles[pick_r]);
        let (qt, rt) = (&self.qt[pick_q], &self.rt[pick_r]);
        let live = self.live_per_mille;
        let what = {
            let c = &mut c;
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                if kind < live / 2 {
                    live::queue(qf, qt, c);
                    "live"
                } else if kind < live {
                    live::region(rf, rt, c);
                    "live"
                } else if kind < 600 {
                    queue::case(qf, qt, c);
                    "queue"
                } else {
                    region::case(rf, rt, c);
                    "region"
                }
            }));
            res.unwrap_or("panicked")
        };
        let (took, seen) = watch.stop();
        if took > self.slowest.0 {
            self.slowest = (took, n);
        }
        let mut failures = std::mem::take(&mut c.failures);
        failures.extend(seen);
        self.tally.add("cases", 1);
        self.tally.add(&format!("cases.{what}"), 1);
        self.tally.add(&format!("us.{what}"), took / 1000);
        if took > 100_000_000 {
            self.tally.add("cases.slow", 1);
        }
        for (kind, msg) in &failures {
            self.tally.add(&format!("fail.{kind}"), 1);
            if self.printed < 20 || verbose {
                self.printed += 1;
                eprintln!(
                    "FAIL {kind} seed={} case={n}: {msg}\n  replay: shmio-fuzz --seed {} --case {n}",
                    self.seed, self.seed
                );
            }
        }
        failures.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// Command line and workers.

pub struct Args {
    pub cases: u64,
    pub seed: u64,
    pub jobs: u64,
    pub hang: Duration,
    pub live_per_mille: u64,
    pub replay: Option<u64>,
    /// Worker mode: (index, first case).
    pub worker: Option<(u64, u64)>,
    pub dir: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut a = Args {
        cases: 100_000,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| {
                util::mix64(d.as_nanos() as u64 ^ u64::from(std::process::id()))
            }),
        // Two workers per core: a case sleeps now and then (timed waits, thread hand-offs).
        jobs: std::thread::available_parallelism().map_or(4, |n| 2 * n.get() as u64),
        hang: Duration::from_secs(2),
        live_per_mille: 2,
        replay: None,
        worker: None,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, what: &str| -> u64 {
        let v = v.unwrap_or_else(|| usage(&format!("{what} needs a value")));
        let v = v.replace('_', "");
        if let Some(h) = v.strip_prefix("0x") {
            u64::from_str_radix(h, 16).unwrap_or_else(|_| usage(&format!("bad {what}")))
        } else {
            v.parse().unwrap_or_else(|_| usage(&format!("bad {what}")))
        }
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--cases" => a.cases = num(it.next(), "--cases"),
            "--seed" => a.seed = num(it.next(), "--seed"),
            "--jobs" => a.jobs = num(it.next(), "--jobs").max(1),
            "--hang-ms" => a.hang = Duration::from_millis(num(it.next(), "--hang-ms")),
            "--live-per-mille" => a.live_per_mille = num(it.next(), "--live-per-mille"),
            "--case" => a.replay = Some(num(it.next(), "--case")),
            "--worker" => {
                let i = num(it.next(), "--worker");
                let s = num(it.next(), "--worker");
                a.worker = Some((i, s));
            }
            "--dir" => a.dir = Some(PathBuf::from(it.next().unwrap_or_else(|| usage("--dir")))),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    a
}

fn usage(err: &str) -> ! {
    if !err.is_empty() {
        eprintln!("shmio-fuzz: {err}");
    }
    eprintln!(
        "usage: shmio-fuzz [--cases N] [--seed S] [--jobs J] [--hang-ms MS] \
         [--live-per-mille P]\n       shmio-fuzz --seed S --case N   (replay one case)"
    );
    std::process::exit(2)
}

pub fn base_dir() -> PathBuf {
    let root = std::env::var_os("SHMIO_FUZZ_DIR").map_or_else(|| "/dev/shm".into(), PathBuf::from);
    root.join(format!("shmio-fuzz-{}", std::process::id()))
}

fn main() {
    oracles::now_ns();
    let a = parse_args();
    install_panic_hook();
    if let Some(n) = a.replay {
        std::process::exit(replay(&a, n));
    }
    if let Some((index, first)) = a.worker {
        std::process::exit(worker(&a, index, first));
    }
    std::process::exit(supervisor::supervise(&a));
}

fn replay(a: &Args, n: u64) -> i32 {
    let dir = a.dir.clone().unwrap_or_else(base_dir);
    let wd = spawn_watchdog(a.hang, a.seed, None, Some(dir.clone()));
    let mut w = Worker::new(a.seed, dir.clone(), a.live_per_mille, wd);
    eprintln!("shmio-fuzz: replaying seed {} case {n}", a.seed);
    let ok = w.run(n, true);
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("case {n}: {}", if ok { "passed" } else { "FAILED" });
    if ok { 0 } else { 1 }
}

/// Runs cases `first, first + jobs, ...` below `cases`; prints its tally as `STAT` lines.
fn worker(a: &Args, index: u64, first: u64) -> i32 {
    let dir = a.dir.clone().unwrap_or_else(base_dir);
    let _ = std::fs::create_dir_all(&dir);
    let progress = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("progress"))
        .ok();
    let wd = spawn_watchdog(a.hang, a.seed, progress, None);
    let mut w = Worker::new(a.seed, dir, a.live_per_mille, wd);
    let started = Instant::now();
    let mut last = Instant::now();
    let mut ok = true;
    let mut n = first;
    let mut done = 0u64;
    while n < a.cases {
        ok &= w.run(n, false);
        n += a.jobs;
        done += 1;
        if last.elapsed() >= Duration::from_secs(60) {
            last = Instant::now();
            eprintln!(
                "shmio-fuzz: worker {index}: {done} cases, {:.0} cases/s",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    w.tally.add("slowest_ns", w.slowest.0);
    for (k, v) in &w.tally.0 {
        println!("STAT {k} {v}");
    }
    println!("SLOWEST {} {}", w.slowest.0, w.slowest.1);
    if ok { 0 } else { 1 }
}
