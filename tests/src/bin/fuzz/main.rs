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
mod queue;
mod region;
mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use util::{CaseFile, Rng, Tally, case_seed, qkind, rkind};

// ---------------------------------------------------------------------------------------------
// Oracle: no allocation above the file's size.

/// Allocations larger than this fail the running case (`usize::MAX`: between cases).
static ALLOC_LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
/// The largest allocation above the limit in the running case (0: none).
static ALLOC_BIG: AtomicUsize = AtomicUsize::new(0);

struct Counting;

#[inline]
fn note_size(size: usize) {
    if size > ALLOC_LIMIT.load(Ordering::Relaxed) {
        ALLOC_BIG.fetch_max(size, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed unchanged to the system allocator; the only addition is a
// relaxed atomic update, which neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_size(layout.size());
        // SAFETY: the caller's layout meets `GlobalAlloc::alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_size(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` (every allocation above goes there) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_size(new_size);
        // SAFETY: `ptr` came from `System` with `layout`; the caller meets `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---------------------------------------------------------------------------------------------
// Oracles: no panic (any thread), no hang (watchdog).

static PANICS: AtomicU64 = AtomicU64::new(0);
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());
/// The running case and when it started (ns since `EPOCH`; 0: no case running).
static CASE_NO: AtomicU64 = AtomicU64::new(0);
static CASE_T0: AtomicU64 = AtomicU64::new(0);
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

fn gettid() -> u32 {
    // SAFETY: gettid(2) has no arguments and cannot fail.
    unsafe { libc::gettid() as u32 }
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        let thread = std::thread::current();
        let msg = format!("thread {:?}: {info}", thread.name().unwrap_or("?"));
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = msg;
        }
    }));
}

/// Aborts the process if a case runs longer than `limit`, after saying which (and removing
/// `cleanup`, the work directory of a replay, which no supervisor removes).
fn spawn_watchdog(
    limit: Duration,
    seed: u64,
    progress: Option<File>,
    cleanup: Option<PathBuf>,
) -> u32 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("fuzz-watchdog".into())
        .spawn(move || {
            let _ = tx.send(gettid());
            loop {
                std::thread::sleep(Duration::from_millis(25));
                let t0 = CASE_T0.load(Ordering::SeqCst);
                if t0 != 0 && now_ns().saturating_sub(t0) > limit.as_nanos() as u64 {
                    let n = CASE_NO.load(Ordering::SeqCst);
                    eprintln!(
                        "FAIL hang seed={seed} case={n}: still running after {limit:?}\n  \
                         replay: shmio-fuzz --seed {seed} --case {n}"
                    );
                    if let Some(p) = &progress {
                        let _ = p.write_all_at(&1u64.to_le_bytes(), 8);
                    }
                    if let Some(d) = &cleanup {
                        let _ = std::fs::remove_dir_all(d);
                    }
                    std::process::abort();
                }
            }
        })
        .expect("spawn the watchdog");
    rx.recv().unwrap_or(0)
}

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

    pub fn q<T: std::fmt::Debug>(&mut self, what: &str, r: &Result<T, shmio::queue::Error>) {
        if self.verbose {
            eprintln!("  q.{what}: {r:?}");
        }
        let k = match r {
            Ok(_) => "Ok".into(),
            Err(e) => qkind(e),
        };
        self.tally.add(&format!("q.{what}.{k}"), 1);
    }

    pub fn r<T: std::fmt::Debug>(&mut self, what: &str, r: &Result<T, shmio::region::Error>) {
        if self.verbose {
            eprintln!("  r.{what}: {r:?}");
        }
        let k = match r {
            Ok(_) => "Ok".into(),
            Err(e) => rkind(e),
        };
        self.tally.add(&format!("r.{what}.{k}"), 1);
    }

    pub fn fail(&mut self, kind: &'static str, msg: String) {
        self.failures.push((kind, msg));
    }

    /// From here on, an allocation above max(`file_len`, 1 MiB) fails the case.
    pub fn set_alloc_limit(&self, file_len: u64) {
        let limit = file_len.max(1 << 20).min(usize::MAX as u64) as usize;
        ALLOC_LIMIT.store(limit, Ordering::SeqCst);
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
        CASE_NO.store(n, Ordering::SeqCst);
        let t0 = now_ns();
        CASE_T0.store(t0, Ordering::SeqCst);
        let panics = PANICS.load(Ordering::SeqCst);
        ALLOC_BIG.store(0, Ordering::SeqCst);
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
        ALLOC_LIMIT.store(usize::MAX, Ordering::SeqCst);
        CASE_T0.store(0, Ordering::SeqCst);
        let took = now_ns() - t0;
        if took > self.slowest.0 {
            self.slowest = (took, n);
        }
        let mut failures = std::mem::take(&mut c.failures);
        if PANICS.load(Ordering::SeqCst) != panics {
            let msg = LAST_PANIC.lock().map(|m| m.clone()).unwrap_or_default();
            failures.push(("panic", msg));
        }
        let big = ALLOC_BIG.swap(0, Ordering::SeqCst);
        if big != 0 {
            failures.push((
                "alloc",
                format!("an allocation of {big} bytes, above max(file size, 1 MiB)"),
            ));
        }
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
// Command line, workers and the supervisor.

struct Args {
    cases: u64,
    seed: u64,
    jobs: u64,
    hang: Duration,
    live_per_mille: u64,
    replay: Option<u64>,
    /// Worker mode: (index, first case).
    worker: Option<(u64, u64)>,
    dir: Option<PathBuf>,
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

fn base_dir() -> PathBuf {
    let root = std::env::var_os("SHMIO_FUZZ_DIR").map_or_else(|| "/dev/shm".into(), PathBuf::from);
    root.join(format!("shmio-fuzz-{}", std::process::id()))
}

fn main() {
    EPOCH.get_or_init(Instant::now);
    let a = parse_args();
    install_panic_hook();
    if let Some(n) = a.replay {
        std::process::exit(replay(&a, n));
    }
    if let Some((index, first)) = a.worker {
        std::process::exit(worker(&a, index, first));
    }
    std::process::exit(supervise(&a));
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

/// What one worker slot reported, over its restarts.
#[derive(Default)]
struct Report {
    tally: Tally,
    slowest: (u64, u64),
}

fn supervise(a: &Args) -> i32 {
    let base = a.dir.clone().unwrap_or_else(base_dir);
    let exe = std::env::current_exe().expect("find this executable");
    println!(
        "shmio-fuzz: seed {} ({} cases, {} workers; replay a case: shmio-fuzz --seed {} --case N)",
        a.seed, a.cases, a.jobs, a.seed
    );
    let started = Instant::now();
    let reports: Vec<Report> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..a.jobs)
            .map(|i| {
                let (exe, base) = (&exe, &base);
                s.spawn(move || run_worker(a, exe, &base.join(format!("w{i}")), i))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&base);
    let mut t = Tally::default();
    let mut slowest = (0, 0);
    for r in &reports {
        t.merge(&r.tally);
        slowest = slowest.max(r.slowest);
    }
    summarise(a, &t, secs, slowest)
}

/// Runs worker slot `i` to the end, restarting it after the case it crashed or hung in.
fn run_worker(a: &Args, exe: &Path, dir: &Path, i: u64) -> Report {
    let mut report = Report::default();
    let mut first = i;
    let mut restarts = 0;
    while first < a.cases {
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(dir.join("progress"), [0u8; 16]);
        let child = Command::new(exe)
            .args(["--cases", &a.cases.to_string()])
            .args(["--seed", &a.seed.to_string()])
            .args(["--jobs", &a.jobs.to_string()])
            .args(["--hang-ms", &a.hang.as_millis().to_string()])
            .args(["--live-per-mille", &a.live_per_mille.to_string()])
            .args(["--worker", &i.to_string(), &first.to_string()])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                eprintln!("shmio-fuzz: cannot start a worker: {e}");
                report.tally.add("fail.spawn", 1);
                return report;
            }
        };
        let out = child.stdout.take().expect("piped stdout");
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let mut f = line.split_whitespace();
            match (
                f.next(),
                f.next(),
                f.next().and_then(|v| v.parse::<u64>().ok()),
            ) {
                (Some("STAT"), Some("slowest_ns"), Some(_)) => {}
                (Some("STAT"), Some(k), Some(v)) => report.tally.add(k, v),
                (Some("SLOWEST"), Some(ns), Some(case)) => {
                    let ns = ns.parse().unwrap_or(0);
                    report.slowest = report.slowest.max((ns, case));
                }
                _ => println!("{line}"),
            }
        }
        let status = child.wait().expect("wait for a worker");
        let Some(sig) = status.signal() else {
            break;
        };
        // Died in a case: which one, and did the watchdog say it hung?
        let p = std::fs::read(dir.join("progress")).unwrap_or_default();
        let word = |o: usize| {
            p.get(o..o + 8)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
        };
        let (case, hung) = (word(0), word(8) == 1);
        let kind = if hung { "hang" } else { "crash" };
        if !hung {
            eprintln!(
                "FAIL crash seed={} case={case}: the worker died of signal {sig}\n  \
                 replay: shmio-fuzz --seed {} --case {case}",
                a.seed, a.seed
            );
        }
        report.tally.add(&format!("fail.{kind}"), 1);
        // Cases done before the one that died (their detailed tally is lost with the worker).
        report
            .tally
            .add("cases", (case.saturating_sub(first)) / a.jobs + 1);
        restarts += 1;
        if restarts > 20 {
            eprintln!("shmio-fuzz: worker {i} died {restarts} times; giving up on it");
            break;
        }
        first = case + a.jobs;
    }
    report
}

fn summarise(a: &Args, t: &Tally, secs: f64, slowest: (u64, u64)) -> i32 {
    let cases = t.get("cases");
    let fails = |k: &str| t.get(&format!("fail.{k}"));
    let mut by_kind: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (k, v) in &t.0 {
        let mut parts = k.rsplitn(2, '.');
        let (Some(kind), Some(op)) = (parts.next(), parts.next()) else {
            continue;
        };
        if op.starts_with("q.") || op.starts_with("r.") {
            by_kind
                .entry(op.to_string())
                .or_default()
                .insert(kind.to_string(), *v);
        }
    }
    println!("outcomes by call:");
    let mut errors: BTreeMap<(char, &str), u64> = BTreeMap::new();
    for (op, kinds) in &by_kind {
        let list: Vec<String> = kinds.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("  {op}: {}", list.join(", "));
        let file = if op.starts_with("q.") { 'q' } else { 'r' };
        for (k, v) in kinds.iter().filter(|(k, _)| *k != "Ok") {
            *errors.entry((file, k.as_str())).or_default() += v;
        }
    }
    for (file, what) in [('q', "queue"), ('r', "region")] {
        let list: Vec<String> = errors
            .iter()
            .filter(|((f, _), _)| *f == file)
            .map(|((_, k), v)| format!("{k} {v}"))
            .collect();
        println!("shmio-fuzz: {what} errors by kind: {}", list.join(", "));
    }
    println!(
        "shmio-fuzz: seed {}: {cases} cases (queue {}, region {}, live {}, controls {}) in \
         {secs:.1} s = {:.0} cases/s; slowest {:.1} ms (case {}), {} over 100 ms",
        a.seed,
        t.get("cases.queue"),
        t.get("cases.region"),
        t.get("cases.live"),
        t.get("q.control") + t.get("r.control"),
        cases as f64 / secs.max(1e-9),
        slowest.0 as f64 / 1e6,
        slowest.1,
        t.get("cases.slow"),
    );
    let mean = |k: &str| t.get(&format!("us.{k}")) / t.get(&format!("cases.{k}")).max(1);
    println!(
        "shmio-fuzz: mean wall time per case (one worker): queue {} us, region {} us, live {} us",
        mean("queue"),
        mean("region"),
        mean("live")
    );
    let total = fails("panic")
        + fails("hang")
        + fails("crash")
        + fails("alloc")
        + fails("oracle")
        + fails("spawn");
    println!(
        "shmio-fuzz: summary: cases {cases}, panics {}, hangs {}, crashes {}, big allocations {}, \
         oracle failures {}: {}",
        fails("panic"),
        fails("hang"),
        fails("crash"),
        fails("alloc"),
        fails("oracle"),
        if total == 0 { "PASS" } else { "FAIL" }
    );
    if cases < a.cases && total == 0 {
        println!("shmio-fuzz: only {cases} of {} cases ran", a.cases);
        return 1;
    }
    i32::from(total != 0)
}
