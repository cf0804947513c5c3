//! The child processes: `shmio-qtool` processes whose stdout lines a thread forwards, reaped
//! (and killed if still running) when dropped.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use shmio_tests::EndLine;

enum Msg {
    Line(String),
    /// Exit code, or 128 + signal number.
    Exit(i32),
}

/// A `shmio-qtool` process; a thread forwards its stdout lines, then reaps it.
pub struct Kid {
    pub pid: i32,
    rx: Receiver<Msg>,
    /// Its stdout lines so far.
    pub lines: Vec<String>,
    /// Its exit code (128 + N for a death by signal N) once reaped.
    pub exit: Option<i32>,
    pub stdin: Option<ChildStdin>,
}

impl Kid {
    pub fn spawn(qtool: &Path, args: &[String], stdin: bool, group: Option<i32>) -> Kid {
        let mut cmd = Command::new(qtool);
        cmd.args(args)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(g) = group {
            cmd.process_group(g);
        }
        // SAFETY: the hook runs in the forked child before exec and only calls prctl(2), which
        // is async-signal-safe and touches no memory; it makes the child die with this driver
        // (a streaming producer left behind would run for ever).
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", qtool.display()));
        let out = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = channel();
        let pid = child.id() as i32;
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(Msg::Line(line)).is_err() {
                    break;
                }
            }
            let code = match child.wait() {
                Ok(st) => st.code().unwrap_or_else(|| {
                    use std::os::unix::process::ExitStatusExt;
                    128 + st.signal().unwrap_or(0)
                }),
                Err(_) => -1,
            };
            let _ = tx.send(Msg::Exit(code));
        });
        Kid {
            pid,
            rx,
            lines: Vec::new(),
            exit: None,
            stdin,
        }
    }

    fn take(&mut self, m: Msg) {
        match m {
            Msg::Line(l) => self.lines.push(l),
            Msg::Exit(c) => self.exit = Some(c),
        }
    }

    /// Waits for a line starting with `prefix`.
    pub fn expect(&mut self, prefix: &str, within: Duration) -> Result<String, String> {
        if let Some(l) = self.lines.iter().find(|l| l.starts_with(prefix)) {
            return Ok(l.clone());
        }
        let deadline = Instant::now() + within;
        loop {
            if self.exit.is_some() {
                return Err(format!("exited ({:?}) before {prefix:?}", self.exit));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(m) => {
                    let is_match = matches!(&m, Msg::Line(l) if l.starts_with(prefix));
                    self.take(m);
                    if is_match {
                        return Ok(self.lines.last().cloned().unwrap_or_default());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("no {prefix:?} within {within:?}"));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("gone before {prefix:?}"));
                }
            }
        }
    }

    /// Waits for the exit; `None` if it did not come within `within`.
    pub fn finish(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while self.exit.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(m) => self.take(m),
                Err(_) => return None,
            }
        }
        self.exit
    }

    pub fn kill(&self) {
        if self.exit.is_none() {
            kill9(self.pid);
        }
    }

    /// The consumer's `end ...` line, if it printed one.
    pub fn end(&self) -> Option<EndLine> {
        EndLine::find(&self.lines)
    }

    /// The rest of the first line that starts with `prefix`.
    pub fn line_after(&self, prefix: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| l.strip_prefix(prefix))
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        // Nothing outlives its cycle: kill a process we did not see exit, and let the reaper
        // thread collect it.
        if self.exit.is_none() {
            kill9(self.pid);
            let _ = self.finish(Duration::from_secs(5));
        }
    }
}

pub fn kill9(pid: i32) {
    // SAFETY: kill(2) on a process we spawned (or its process group); no memory is involved.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}
