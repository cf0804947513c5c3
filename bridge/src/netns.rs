//! Two "hosts" on one machine, for the tests and the benchmark: two network namespaces joined
//! by a veth pair, each with its own tmpfs mount for `SHMIO_DIR`, so the hosts share neither
//! a network stack nor a byte of queue memory.
//!
//! Needs root (`ip netns`, `mount`). The addresses are 198.18.0.1 (A) and 198.18.0.2 (B), in
//! the range set aside for benchmarking network devices (RFC 2544); the namespaces have no
//! route anywhere else, so no packet leaves them. Everything is removed when the [`Hosts`]
//! value is dropped, after a panic too: the processes started through it are killed, the
//! tmpfs mounts unmounted, the namespaces deleted.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

/// One "host": a network namespace with an address and a private `SHMIO_DIR`.
#[derive(Debug)]
pub struct Host {
    /// The namespace's name (`ip netns`).
    pub ns: String,
    /// Its address on the veth link.
    pub addr: &'static str,
    /// Its `SHMIO_DIR`, a tmpfs mount of its own.
    pub shm_dir: PathBuf,
}

/// Two hosts joined by a veth pair; see the module's documentation.
#[derive(Debug)]
pub struct Hosts {
    /// Host A, 198.18.0.1.
    pub a: Host,
    /// Host B, 198.18.0.2.
    pub b: Host,
    /// The veth ends, in A and in B.
    pub links: (String, String),
    root: PathBuf,
    pids: Mutex<Vec<u32>>,
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    run(Command::new("ip").args(args))
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Hosts {
    /// Creates the two hosts, or says why they cannot be (not root, no `ip`, no namespaces).
    pub fn create() -> Result<Hosts, String> {
        let tag = format!(
            "{}{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let root = std::env::temp_dir().join(format!("shmio-bridge-hosts-{tag}"));
        let host = |side: &str, addr| Host {
            ns: format!("shmio-br-{tag}-{side}"),
            addr,
            shm_dir: root.join(side),
        };
        let hosts = Hosts {
            a: host("a", "198.18.0.1"),
            b: host("b", "198.18.0.2"),
            links: (format!("sb{tag}a"), format!("sb{tag}b")),
            root,
            pids: Mutex::new(Vec::new()),
        };
        // From here on, Drop undoes whatever part was made.
        hosts.make()?;
        Ok(hosts)
    }

    fn make(&self) -> Result<(), String> {
        let (la, lb) = (&self.links.0, &self.links.1);
        for h in [&self.a, &self.b] {
            ip(&["netns", "add", &h.ns])?;
            ip(&["-n", &h.ns, "link", "set", "lo", "up"])?;
        }
        ip(&["link", "add", la, "type", "veth", "peer", "name", lb])?;
        for (h, l) in [(&self.a, la), (&self.b, lb)] {
            ip(&["link", "set", l, "netns", &h.ns])?;
            ip(&[
                "-n",
                &h.ns,
                "addr",
                "add",
                &format!("{}/24", h.addr),
                "dev",
                l,
            ])?;
            ip(&["-n", &h.ns, "link", "set", l, "up"])?;
            std::fs::create_dir_all(&h.shm_dir).map_err(|e| e.to_string())?;
            run(Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=1g,mode=0700", "tmpfs"])
                .arg(&h.shm_dir))?;
        }
        let dev = |p: &Path| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::dev(&m));
        if dev(&self.a.shm_dir).ok() == dev(&self.b.shm_dir).ok() {
            return Err("the two hosts' SHMIO_DIR are on the same file system".into());
        }
        Ok(())
    }

    /// A command that runs `program` on host `h`: in its namespace, with its `SHMIO_DIR`.
    pub fn command(&self, h: &Host, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &h.ns])
            .arg(program)
            .env("SHMIO_DIR", &h.shm_dir);
        c
    }

    /// Starts `program args` on host `h` with its standard output read line by line (see
    /// [`Proc`]); it is killed at the latest when the hosts go.
    pub fn start<I, S>(&self, h: &Host, program: impl AsRef<OsStr>, args: I) -> Proc
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(h, program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        self.pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child.id());
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            name: format!(
                "{} on {}",
                Path::new(cmd.get_args().nth(3).unwrap_or_default()).display(),
                h.ns
            ),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Takes the link between the hosts down (`up = false`) or up again.
    pub fn set_link(&self, up: bool) -> Result<(), String> {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.a.ns, "link", "set", &self.links.0, state])?;
        ip(&["-n", &self.b.ns, "link", "set", &self.links.1, state])
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for pid in self
            .pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            // SAFETY: kill(2) has no memory effects; `pid` is a child this value started (a
            // reaped one's number could be reused, which the short life of a test makes
            // unlikely, and every child here runs as the test's user).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        for h in [&self.a, &self.b] {
            let _ = run(Command::new("umount").arg("-l").arg(&h.shm_dir));
            let _ = ip(&["netns", "del", &h.ns]);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A process started by [`Hosts::start`], its output lines kept as they come.
#[derive(Debug)]
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    /// The process.
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

impl Proc {
    /// Waits at most `timeout` for a line that starts with `prefix`, and returns it.
    pub fn line(&mut self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.starts_with(prefix) {
                        return Ok(l);
                    }
                }
                Err(_) => {
                    return Err(format!(
                        "{}: no line starting {prefix:?} within {timeout:?}; saw {:?}",
                        self.name, self.seen
                    ));
                }
            }
        }
    }

    /// Kills it with SIGKILL (it is reaped by [`wait`](Self::wait) or when dropped).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
    }

    /// Sends it SIGTERM.
    pub fn term(&mut self) {
        // SAFETY: kill(2) on our own child, not yet reaped (it is reaped only by `wait`).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }

    /// Waits at most `timeout` for it to end; kills it and fails past that.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().map_err(|e| e.to_string())? {
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(l);
                }
                return Ok(s);
            }
            if Instant::now() >= deadline {
                self.kill9();
                let _ = self.child.wait();
                return Err(format!("{}: still running after {timeout:?}", self.name));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
        let _ = self.child.wait();
    }
}

/// The value of `key=VALUE` in a line of `key=value` fields, as a number.
pub fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}
