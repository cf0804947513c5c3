//! Process plumbing for the end-to-end tests: unique queue and region names, child processes
//! whose lines arrive on a channel, and the checks most tests make of a consumer's output.
#![allow(dead_code)]

use std::fmt;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

static N: AtomicU32 = AtomicU32::new(0);

/// A queue name unique to this test process, unlinked on drop.
pub struct QueueName(pub String);

impl QueueName {
    pub fn new(tag: &str) -> QueueName {
        QueueName(format!(
            "shmio-e2e-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }
    pub fn path(&self) -> PathBuf {
        shmio::queue::resolve(&self.0).unwrap()
    }
}

impl Drop for QueueName {
    fn drop(&mut self) {
        // By path, not `queue::unlink`: tests truncate and scribble their queues, and the
        // checked unlink (rightly) refuses a file that no longer looks like a queue.
        let _ = std::fs::remove_file(self.path());
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A region name unique to this test process, removed on drop.
pub struct RegionName(pub String);

impl RegionName {
    pub fn new(tag: &str) -> RegionName {
        RegionName(format!(
            "shmio-e2e-region-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }
    pub fn path(&self) -> PathBuf {
        shmio::region::resolve(&self.0).unwrap()
    }
}

impl Drop for RegionName {
    fn drop(&mut self) {
        // By path: a scribbled or truncated region is refused by the checked unlink.
        let _ = std::fs::remove_file(self.path());
    }
}

pub fn qtool() -> &'static str {
    env!("CARGO_BIN_EXE_shmio-qtool")
}

pub fn rtool() -> &'static str {
    env!("CARGO_BIN_EXE_shmio-rtool")
}

/// The words of a command line (split at spaces), to spawn: `words("consume NAME --hold")`.
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// The low 32 bits of the queue's sleeper-count word.
fn waiters_word(q: &QueueName) -> u32 {
    let f = std::fs::File::open(q.path()).unwrap();
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, shmio_tests::layout::queue::WAITERS)
        .unwrap();
    u32::from_le_bytes(b)
}

/// The queue's sleeper count: how many consumers are counted asleep (the low 30 bits).
pub fn waiters(q: &QueueName) -> u32 {
    waiters_word(q) & 0x3fff_ffff
}

/// The barrier agreement in the sleeper-count word: (a consumer asked producers to fence
/// because `membarrier(2)` was refused to it, a producer fences every publish).
pub fn fence_bits(q: &QueueName) -> (bool, bool) {
    let w = waiters_word(q);
    (w & 1 << 31 != 0, w & 1 << 30 != 0)
}

/// Writes `bytes` at `off` of the file at `path`, as a peer scribbling it would.
pub fn scribble(path: &Path, off: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, off).unwrap();
}

/// A child process whose stdout lines arrive on a channel.
pub struct Proc {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
    pub name: String,
}

impl Proc {
    pub fn spawn(program: &str, args: &[&str]) -> Proc {
        Proc::spawn_env(program, args, &[])
    }

    /// Like [`spawn`](Self::spawn), with extra environment variables.
    pub fn spawn_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
            name: format!("{program} {}", args.join(" ")),
        }
    }

    pub fn qtool(args: &[&str]) -> Proc {
        Proc::spawn(qtool(), args)
    }

    /// `shmio-qtool` with the words of `line`: `Proc::qtool_line(&format!("consume {q}"))`.
    pub fn qtool_line(line: &str) -> Proc {
        Proc::qtool(&words(line))
    }

    /// Waits for a line starting with `prefix`; returns it.
    pub fn expect_line(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.starts_with(prefix) {
                        return l;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: no line starting with {prefix:?} within {within:?}",
                        self.name
                    )
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{}: exited before printing {prefix:?}; last lines: {:?}",
                    self.name,
                    self.seen.iter().rev().take(5).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Waits for a line starting with `prefix` (as [`expect_line`](Self::expect_line)), then
    /// hands the process back: `Proc::qtool_line(..).once("ready", T)`.
    pub fn once(mut self, prefix: &str, within: Duration) -> Proc {
        self.expect_line(prefix, within);
        self
    }

    /// Waits for the process to exit; returns (exit code, every stdout line).
    pub fn finish(mut self, within: Duration) -> (i32, Vec<String>) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // Collect the rest of the output.
                while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
                    self.seen.push(l);
                }
                let code = st.code().unwrap_or(-1);
                return (code, std::mem::take(&mut self.seen));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{}: did not exit within {within:?}", self.name);
            }
            while let Ok(l) = self.lines.try_recv() {
                self.seen.push(l);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Moves the lines printed so far into `seen` without waiting; returns how many there are.
    pub fn take_lines(&mut self) -> usize {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        self.seen.len()
    }

    pub fn kill9(&mut self) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `rec SEQ` lines into sequence numbers.
pub fn recs(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("rec "))
        .map(|s| s.parse().unwrap())
        .collect()
}

/// The `end ...` line's fields: (status, received, lost).
pub fn end_line(lines: &[String]) -> (String, u64, u64) {
    let e = shmio_tests::EndLine::find(lines).unwrap_or_else(|| {
        panic!(
            "no end line in {:?}",
            lines.iter().rev().take(5).collect::<Vec<_>>()
        )
    });
    (e.status, e.received, e.lost)
}

/// `consume Q --from oldest VARIANT` for each variant (extra options, or none: "").
pub fn from_oldest(q: &QueueName, variants: &[&str]) -> Vec<String> {
    variants
        .iter()
        .map(|v| format!("consume {q} --from oldest {v}"))
        .collect()
}

/// Starts one process per command line of `lines` with `spawn` (e.g. `Proc::qtool`), each
/// once it printed a line starting with `opened`.
pub fn start_all(
    spawn: impl Fn(&[&str]) -> Proc,
    lines: &[String],
    opened: &str,
    within: Duration,
) -> Vec<Proc> {
    lines
        .iter()
        .map(|l| {
            let mut c = spawn(&words(l));
            c.expect_line(opened, within);
            c
        })
        .collect()
}

/// Waits for a consumer's exit and asserts that it exited with `code`, received every record
/// `0..count` exactly once and in order, and ended `status` with nothing lost. Returns its
/// lines.
pub fn assert_every_record(
    c: Proc,
    within: Duration,
    code: i32,
    count: u64,
    status: &str,
) -> Vec<String> {
    let (got, lines) = c.finish(within);
    check_every_record(got, &lines, code, count, status);
    lines
}

fn check_every_record(got: i32, lines: &[String], code: i32, count: u64, status: &str) {
    assert_eq!(
        got,
        code,
        "{:?}",
        lines.iter().rev().take(3).collect::<Vec<_>>()
    );
    assert!(recs(lines).into_iter().eq(0..count), "gap or duplicate");
    assert_eq!(end_line(lines), (status.into(), count, 0));
}

/// Waits for a producer's exit: code 0, after sending `count` records.
pub fn assert_sent(p: Proc, within: Duration, count: u64) {
    let (code, lines) = p.finish(within);
    assert_eq!(code, 0, "{lines:?}");
    assert!(lines.contains(&format!("sent {count}")));
}

/// Lets the consumers drain and fall asleep for `settle`, kills their producer (`kill`), and
/// asserts that each noticed within a second: exit 3 (producer dead) after every record
/// `0..count`. Returns each consumer's lines.
pub fn assert_death_noticed(
    consumers: Vec<Proc>,
    count: u64,
    settle: Duration,
    what: &str,
    kill: impl FnOnce(),
) -> Vec<Vec<String>> {
    std::thread::sleep(settle);
    let killed = Instant::now();
    kill();
    consumers
        .into_iter()
        .map(|c| {
            let (got, lines) = c.finish(Duration::from_secs(5));
            let took = killed.elapsed();
            println!("death noticed ({what}): {took:?}");
            assert!(took < Duration::from_secs(1), "noticed after {took:?}");
            check_every_record(got, &lines, 3, count, "dead");
            lines
        })
        .collect()
}

/// Waits until `f` holds, or panics after `within`.
pub fn eventually(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn live_consumers(q: &QueueName) -> usize {
    shmio::queue::inspect(&q.0).map_or(0, |s| s.live_consumers())
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Path of a C demo, building them all once per test binary with `make -C examples-c` (which
/// also builds libshmio in release mode if missing).
///
/// With `SHMIO_C_DEMO_DIR` set, the demos (or wrappers of the same names) are taken from that
/// directory, built by whoever set it: `scripts/c_sanitize.sh` runs these tests on the
/// sanitised build and under valgrind this way.
pub fn demo(name: &str) -> String {
    if let Some(dir) = std::env::var_os("SHMIO_C_DEMO_DIR") {
        let p = PathBuf::from(dir).join(name);
        assert!(p.exists(), "SHMIO_C_DEMO_DIR: no {}", p.display());
        return p.to_string_lossy().into_owned();
    }
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let st = Command::new("make")
            .arg("-C")
            .arg(root().join("examples-c"))
            .status()
            .expect("run make");
        assert!(st.success(), "make -C examples-c failed");
    });
    root()
        .join("examples-c/build")
        .join(name)
        .to_string_lossy()
        .into_owned()
}
