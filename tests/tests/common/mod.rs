//! Process plumbing for the end-to-end tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
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

pub fn qtool() -> &'static str {
    env!("CARGO_BIN_EXE_shmio-qtool")
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
    let l = lines
        .iter()
        .find(|l| l.starts_with("end "))
        .unwrap_or_else(|| {
            panic!(
                "no end line in {:?}",
                lines.iter().rev().take(5).collect::<Vec<_>>()
            )
        });
    let mut it = l.split_whitespace().skip(1);
    let status = it.next().unwrap().to_string();
    let num = |s: Option<&str>| s.unwrap().split('=').nth(1).unwrap().parse().unwrap();
    (status, num(it.next()), num(it.next()))
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
