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

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use shmio_tests::{Rng, monotonic_ns};

/// The longest a consumer may stay blocked once its producer is dead, whatever the mapping says
/// (the sleep slices of the core's backstop).
const BACKSTOP_MS: u64 = 200;
/// Scheduling slack on a loaded 2-core machine, on top of the backstop.
const MARGIN_MS: u64 = 100;
/// The 99th percentile of the death-notice latency.
const P99_TARGET_MS: u64 = 50;

/// File offsets of layout version 2 that this driver reads or scribbles (checked against a
/// live queue at start-up, see `check_offsets`).
mod offsets {
    /// `Config::consumers_offset` (u64).
    pub const CONSUMERS_OFFSET: u64 = 40;
    /// `Config::slot_count` (u32).
    pub const SLOT_COUNT: u64 = 20;
    /// `Config::slot_stride` (u32).
    pub const SLOT_STRIDE: u64 = 28;
    /// `Config::slots_offset` (u64).
    pub const SLOTS_OFFSET: u64 = 48;
    /// `Header::waiters` (low u32 of the u64 count+epoch): consumers announced asleep.
    pub const WAITERS: u64 = 256;
    /// `OwnerLine::owner` (u32): the producer's robust owner word.
    pub const PRODUCER_OWNER: u64 = 384;
    /// `SpaceLine::producer_waiting` (u32): a back-pressure producer asleep for space.
    pub const PRODUCER_WAITING: u64 = 516;
    /// Bytes per consumer slot.
    pub const CONSUMER_STRIDE: u64 = 128;
    /// `ConsumerSlot::pid` (u32) within a slot.
    pub const CONSUMER_PID: u64 = 4;
    /// `ConsumerSlot::sleep[0]` (u32) within a slot: the reading thread counted asleep
    /// (`SLEEP_COUNTED` with the count's epoch), 0 otherwise.
    pub const CONSUMER_SLEEPING: u64 = 16;
}

const FUTEX_WAITERS: u32 = 0x8000_0000;

struct Opts {
    cycles: u64,
    consumer_kills: u64,
    together: u64,
    scribble: u64,
    hostile: u64,
    seed: u64,
    stuck_ms: u64,
    max_stuck: u64,
    qtool: PathBuf,
    check: bool,
    long_spins: bool,
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

// ---------------------------------------------------------------------------------------------
// Child processes

enum Msg {
    Line(String),
    /// Exit code, or 128 + signal number.
    Exit(i32),
}

/// A `shmio-qtool` process; a thread forwards its stdout lines, then reaps it.
struct Kid {
    pid: i32,
    rx: Receiver<Msg>,
    lines: Vec<String>,
    exit: Option<i32>,
    stdin: Option<ChildStdin>,
}

impl Kid {
    fn spawn(qtool: &PathBuf, args: &[String], stdin: bool, group: Option<i32>) -> Kid {
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
    fn expect(&mut self, prefix: &str, within: Duration) -> Result<String, String> {
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
    fn finish(&mut self, within: Duration) -> Option<i32> {
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

    fn kill(&self) {
        if self.exit.is_none() {
            kill9(self.pid);
        }
    }

    fn end(&self) -> Option<End> {
        self.lines
            .iter()
            .find(|l| l.starts_with("end "))
            .and_then(|l| End::parse(l))
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

fn kill9(pid: i32) {
    // SAFETY: kill(2) on a process we spawned (or its process group); no memory is involved.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// A consumer's `end ...` line.
#[derive(Debug, Clone)]
struct End {
    status: String,
    received: u64,
    lost: u64,
    start: u64,
    first: Option<u64>,
    last: Option<u64>,
    dup: u64,
    order: u64,
    gaps: u64,
    torn: u64,
    t_last_ns: u64,
    t_end_ns: u64,
    /// Records found in a second look after `ProducerDead` (committed at the death's instant).
    after_dead: u64,
}

impl End {
    fn parse(line: &str) -> Option<End> {
        let mut it = line.split_whitespace().skip(1);
        let status = it.next()?.to_string();
        let kv: BTreeMap<&str, &str> = it.filter_map(|f| f.split_once('=')).collect();
        let n = |k: &str| kv.get(k).and_then(|v| v.parse::<u64>().ok());
        Some(End {
            status,
            received: n("received")?,
            lost: n("lost")?,
            start: n("start")?,
            first: n("first"),
            last: n("last"),
            dup: n("dup")?,
            order: n("order")?,
            gaps: n("gaps")?,
            torn: n("torn")?,
            t_last_ns: n("t_last_ns")?,
            t_end_ns: n("t_end_ns")?,
            after_dead: n("after_dead").unwrap_or(0),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The queue file, read and written from outside

fn queue_name(tag: &str, n: u64) -> String {
    format!("shmio-ks-{tag}-{}-{n}", std::process::id())
}

/// Removes the queue files of earlier drivers that died before unlinking them.
fn remove_stale_queues() {
    let Ok(dir) = std::fs::read_dir(shmio::queue::queue_dir()) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("shmio-ks-") else {
            continue;
        };
        let stale = rest
            .split('-')
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|pid| {
                pid != std::process::id() && !PathBuf::from(format!("/proc/{pid}")).exists()
            });
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Unlinks the queue when the cycle is over, however it ended.
struct QueueFile {
    name: String,
    file: Option<File>,
}

impl QueueFile {
    fn new(name: String) -> QueueFile {
        QueueFile { name, file: None }
    }

    fn file(&mut self) -> Option<&File> {
        if self.file.is_none() {
            let path = shmio::queue::resolve(&self.name).ok()?;
            self.file = File::open(path).ok();
        }
        self.file.as_ref()
    }

    fn read_u32(&mut self, off: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.file()?.read_exact_at(&mut b, off).ok()?;
        Some(u32::from_le_bytes(b))
    }

    fn read_u64(&mut self, off: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.file()?.read_exact_at(&mut b, off).ok()?;
        Some(u64::from_le_bytes(b))
    }

    /// Overwrites the producer's owner word, as a hostile or buggy peer could.
    fn scribble_owner(&mut self, value: u32) -> bool {
        let Some(path) = shmio::queue::resolve(&self.name).ok() else {
            return false;
        };
        let Ok(f) = std::fs::OpenOptions::new().write(true).open(path) else {
            return false;
        };
        f.write_all_at(&value.to_le_bytes(), offsets::PRODUCER_OWNER)
            .is_ok()
    }

    /// Whether the slot of record `seq` is being written (its stamp odd for `seq`): a
    /// reservation was open when the producer died.
    fn mid_write(&mut self, seq: u64) -> bool {
        let (Some(n), Some(stride), Some(base)) = (
            self.read_u32(offsets::SLOT_COUNT),
            self.read_u32(offsets::SLOT_STRIDE),
            self.read_u64(offsets::SLOTS_OFFSET),
        ) else {
            return false;
        };
        let idx = seq & u64::from(n.max(1) - 1);
        self.read_u64(base + idx * u64::from(stride)) == Some(2 * seq + 1)
    }

    /// The `sleeping` word of the consumer slot held by process `pid`.
    fn consumer_sleeping(&mut self, pid: i32) -> Option<u32> {
        let st = shmio::queue::inspect(&self.name).ok()?;
        let c = st.consumers.iter().find(|c| c.pid == pid as u32)?;
        let base = self.read_u64(offsets::CONSUMERS_OFFSET)?
            + u64::from(c.index) * offsets::CONSUMER_STRIDE;
        self.read_u32(base + offsets::CONSUMER_SLEEPING)
    }

    fn head(&self) -> Option<u64> {
        shmio::queue::inspect(&self.name).ok().map(|s| s.head)
    }
}

impl Drop for QueueFile {
    fn drop(&mut self) {
        // A hostile round may have scribbled the magic, and `unlink` leaves a file that is not
        // a queue alone: the name is ours, remove it anyway.
        if shmio::queue::unlink(&self.name).is_err()
            && let Ok(path) = shmio::queue::resolve(&self.name)
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Polls `f` every 100 us until it holds or `within` passes.
fn poll_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Checks the offsets above against a queue made here, so that a layout change fails loudly
/// instead of making the suite poke the wrong words.
fn check_offsets() {
    use shmio::queue::{Consumer, Producer, QueueOptions, Start};
    let mut q = QueueFile::new(queue_name("offsets", 0));
    let p = Producer::create(&q.name, &QueueOptions::new().slots(8)).expect("create");
    let c = Consumer::open(&q.name, Start::Newest).expect("open");
    let owner = q.read_u32(offsets::PRODUCER_OWNER).expect("read owner");
    assert_eq!(
        owner & 0x3fff_ffff,
        p.keeper_tid(),
        "the producer's owner word is not at file offset {}",
        offsets::PRODUCER_OWNER
    );
    let base = q
        .read_u64(offsets::CONSUMERS_OFFSET)
        .expect("consumers offset")
        + u64::from(c.index()) * offsets::CONSUMER_STRIDE;
    assert_eq!(
        q.read_u32(base + offsets::CONSUMER_PID),
        Some(std::process::id()),
        "consumer slots are not where the config line says"
    );
    assert_eq!(q.read_u32(offsets::WAITERS), Some(0));
    let mut p = p;
    let r = p.reserve().expect("reserve");
    assert!(
        q.mid_write(0),
        "slot stamps are not where the config line says"
    );
    r.commit(8).expect("commit");
    assert!(!q.mid_write(0));
    assert_eq!(q.read_u32(offsets::PRODUCER_WAITING), Some(0));
}

// ---------------------------------------------------------------------------------------------
// Figures

fn pct(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Latencies in microseconds.
#[derive(Default, Clone)]
struct Lat(Vec<u64>);

impl Lat {
    fn add(&mut self, us: u64) {
        self.0.push(us);
    }
    fn sorted(&self) -> Vec<u64> {
        let mut v = self.0.clone();
        v.sort_unstable();
        v
    }
    fn p(&self, q: f64) -> u64 {
        pct(&self.sorted(), q)
    }
    fn max(&self) -> u64 {
        self.0.iter().copied().max().unwrap_or(0)
    }
    fn show(&self) -> String {
        let v = self.sorted();
        format!(
            "{:.2}/{:.2}/{:.2} ms",
            pct(&v, 0.5) as f64 / 1e3,
            pct(&v, 0.99) as f64 / 1e3,
            v.last().copied().unwrap_or(0) as f64 / 1e3
        )
    }
}

/// What the consumers of one mode showed.
#[derive(Default)]
struct Figures {
    runs: u64,
    consumers: u64,
    torn: u64,
    dup: u64,
    order: u64,
    /// Back-pressure: committed records a consumer never received.
    lost: u64,
    /// Overwrite: records neither received nor reported lost (or reported twice).
    unaccounted: u64,
    /// Records past the head (never committed) that a consumer delivered.
    phantom: u64,
    /// Consumers that delivered the record completed but not published at the death.
    at_head: u64,
    /// Records that became visible only after the consumer had reported `ProducerDead`.
    after_dead: u64,
    /// Consumers that ended with another status than the mode expects.
    wrong_end: u64,
    /// Consumers that timed out or hung: blocked far past the backstop.
    stuck: u64,
    /// Consumers that noticed the death later than the backstop and margin allow.
    late: u64,
    /// Per kill point: cycles, and those whose producer died with a reservation open (the
    /// slot at the head half written).
    mid_write: BTreeMap<String, (u64, u64)>,
    /// Consumers whose end came before the kill.
    early: u64,
    /// Whether a consumer may end before the kill (the scribble rounds: a consumer that sees a
    /// foreign owner word may give up at once); such ends are counted here, not in `early`.
    early_ok: bool,
    ended_before_kill: u64,
    /// Setups that went wrong (a process that did not start, a state never reached).
    setup: u64,
    statuses: BTreeMap<String, u64>,
    /// From just before kill(2) to the consumer's final status.
    raw: Lat,
    /// From the later of the kill and the consumer's last record.
    notice: Lat,
    by_point: BTreeMap<String, (u64, Lat)>,
    problems: Vec<String>,
    /// Runs (cycles or rounds) in which some check failed.
    bad_runs: u64,
    elapsed: Duration,
    aborted: bool,
}

impl Figures {
    /// Everything a run can get wrong, added up (to tell which runs went wrong).
    fn faults(&self) -> u64 {
        self.torn
            + self.dup
            + self.order
            + self.lost
            + self.unaccounted
            + self.phantom
            + self.wrong_end
            + self.stuck
            + self.late
            + self.early
            + self.setup
    }

    fn problem(&mut self, what: String) {
        if self.problems.len() < 12 {
            self.problems.push(what);
        }
    }

    /// Checks one consumer that should have drained a dead producer's queue up to `head`.
    /// `ok_status`: the end statuses this mode accepts; `drain`: whether a consumer that ended
    /// producer-dead must have received everything.
    #[allow(clippy::too_many_arguments)]
    fn consumer(
        &mut self,
        ctx: &str,
        end: Option<End>,
        exit: Option<i32>,
        head: u64,
        bp: bool,
        t_kill: u64,
        ok_status: &[&str],
        point: &str,
    ) {
        self.consumers += 1;
        let Some(e) = end else {
            self.stuck += 1;
            let waited = monotonic_ns().saturating_sub(t_kill) / 1000;
            self.raw.add(waited);
            self.notice.add(waited);
            self.problem(format!(
                "{ctx}: no end line (exit {exit:?}): hung or crashed"
            ));
            return;
        };
        *self.statuses.entry(e.status.clone()).or_default() += 1;
        self.torn += e.torn;
        self.dup += e.dup;
        self.order += e.order;
        self.after_dead += e.after_dead;
        if e.torn + e.dup + e.order > 0 {
            self.problem(format!("{ctx}: {e:?}"));
        }
        if e.status == "timeout" {
            self.stuck += 1;
            self.problem(format!("{ctx}: blocked until its timeout after the kill"));
        } else if !ok_status.contains(&e.status.as_str()) {
            self.wrong_end += 1;
            self.problem(format!("{ctx}: ended {} (exit {exit:?})", e.status));
        }
        let before_kill = e.t_end_ns < t_kill;
        if before_kill && self.early_ok {
            self.ended_before_kill += 1;
        } else if before_kill {
            self.early += 1;
            self.problem(format!("{ctx}: ended {} before the kill", e.status));
        }
        let raw = e.t_end_ns.saturating_sub(t_kill) / 1000;
        let notice = e.t_end_ns.saturating_sub(t_kill.max(e.t_last_ns)) / 1000;
        if notice > (BACKSTOP_MS + MARGIN_MS) * 1000 && e.status != "timeout" {
            self.late += 1;
            self.problem(format!(
                "{ctx}: ended {} only {:.1} ms after the kill",
                e.status,
                notice as f64 / 1e3
            ));
        }
        self.raw.add(raw);
        self.notice.add(notice);
        let slot = self.by_point.entry(point.to_string()).or_default();
        slot.0 += 1;
        slot.1.add(notice);
        if e.status != "dead" || before_kill {
            return;
        }
        // Every committed record, from where it opened up to the head.
        if let Some(last) = e.last {
            if last > head {
                self.phantom += 1;
                self.problem(format!("{ctx}: received {last}, beyond the head {head}"));
            } else if last == head {
                self.at_head += 1;
            }
        }
        let end_seq = head.max(e.last.map_or(0, |l| l + 1));
        let expected = end_seq.saturating_sub(e.start);
        let unique = e.received.saturating_sub(e.dup + e.order);
        if bp {
            let missing = expected.saturating_sub(unique) + e.lost;
            if missing > 0 {
                self.lost += missing;
                self.problem(format!(
                    "{ctx}: back-pressure consumer missed {missing} of {expected} (head {head}): {e:?}"
                ));
            }
        } else if unique + e.lost != expected {
            self.unaccounted += expected.abs_diff(unique + e.lost);
            self.problem(format!(
                "{ctx}: received {unique} + lost {} != {expected} (head {head}): {e:?}",
                e.lost
            ));
        }
    }

    fn print(&self, title: &str, unit: &str) {
        println!(
            "\n{title}: {} {unit} ({} with a failed check), {} consumers checked, {:.1} s{}",
            self.runs,
            self.bad_runs,
            self.consumers,
            self.elapsed.as_secs_f64(),
            if self.aborted {
                " (stopped early: too many stuck consumers)"
            } else {
                ""
            }
        );
        println!(
            "  death notice p50/p99/max {}   (from the kill: {})",
            self.notice.show(),
            self.raw.show()
        );
        if self.by_point.len() > 1 {
            let limit = (BACKSTOP_MS + MARGIN_MS) * 1000;
            for (point, (n, lat)) in &self.by_point {
                let late = lat.0.iter().filter(|&&v| v > limit).count();
                let mid = self.mid_write.get(point).map_or(String::new(), |(c, m)| {
                    format!("; {m} of {c} cycles killed mid-write")
                });
                println!(
                    "    {point:<22} {n:>5} consumers  {}  ({late} past {} ms{mid})",
                    lat.show(),
                    limit / 1000
                );
            }
        }
        println!(
            "  torn={} dup={} order={} lost={} unaccounted={} phantom={} wrong_end={} stuck={} \
             late={} early={} setup={}  (at-head deliveries {}, found after ProducerDead {})",
            self.torn,
            self.dup,
            self.order,
            self.lost,
            self.unaccounted,
            self.phantom,
            self.wrong_end,
            self.stuck,
            self.late,
            self.early,
            self.setup,
            self.at_head,
            self.after_dead
        );
        println!("  end statuses: {:?}", self.statuses);
        if self.early_ok {
            println!("  ended before the kill: {}", self.ended_before_kill);
        }
        for p in &self.problems {
            println!("  ! {p}");
        }
    }

    fn summary(&self, mode: &str) -> String {
        format!(
            "summary {mode} runs={} bad_runs={} consumers={} torn={} dup={} order={} lost={} \
             unaccounted={} phantom={} wrong_end={} stuck={} late={} early={} setup={} \
             after_dead={} notice_p50_us={} notice_p99_us={} notice_max_us={} raw_p99_us={} \
             raw_max_us={} aborted={}",
            self.runs,
            self.bad_runs,
            self.consumers,
            self.torn,
            self.dup,
            self.order,
            self.lost,
            self.unaccounted,
            self.phantom,
            self.wrong_end,
            self.stuck,
            self.late,
            self.early,
            self.setup,
            self.after_dead,
            self.notice.p(0.5),
            self.notice.p(0.99),
            self.notice.max(),
            self.raw.p(0.99),
            self.raw.max(),
            u8::from(self.aborted)
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Cycles

struct Ctx {
    o: Opts,
    rng: Rng,
}

impl Ctx {
    fn args(&self, list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn seed_arg(&mut self, v: &mut Vec<String>) {
        v.push("--seed".into());
        v.push(self.rng.next_u64().to_string());
    }

    fn slots(&mut self, choices: &[u32]) -> u32 {
        *self.rng.pick(choices)
    }

    fn consumer_args(&mut self, name: &str, zero_copy: bool, extra: &[String]) -> Vec<String> {
        let mut v = self.args(&["consume", name, "--from", "oldest", "--quiet"]);
        v.extend(["--timeout-ms".to_string(), self.o.stuck_ms.to_string()]);
        v.extend(["--after-dead-ms".to_string(), "2".to_string()]);
        if zero_copy {
            v.push("--zero-copy".into());
        }
        v.extend(extra.iter().cloned());
        self.seed_arg(&mut v);
        v
    }

    fn spawn(&self, args: &[String]) -> Kid {
        Kid::spawn(&self.o.qtool, args, false, None)
    }
}

const POINTS_BP: [&str; 6] = [
    "mid-reserve",
    "mid-reserve-open",
    "streaming",
    "asleep-full-ring",
    "idle-consumers-asleep",
    "spinning",
];
const POINTS_OW: [&str; 5] = [
    "mid-reserve",
    "mid-reserve-open",
    "streaming",
    "idle-consumers-asleep",
    "spinning",
];

/// Spawns the consumers of a cycle and waits for each to have opened the queue.
fn spawn_consumers(ctx: &Ctx, list: &[Vec<String>], f: &mut Figures) -> Option<Vec<Kid>> {
    let mut kids: Vec<Kid> = list.iter().map(|a| ctx.spawn(a)).collect();
    for k in &mut kids {
        if let Err(e) = k.expect("opened", Duration::from_secs(10)) {
            f.setup += 1;
            f.problem(format!("consumer did not open: {e}"));
            return None;
        }
    }
    Some(kids)
}

fn producer_kill_cycle(ctx: &mut Ctx, n: u64, f: &mut Figures) {
    let bp = ctx.rng.one_in(2);
    let point = if bp {
        *ctx.rng.pick(&POINTS_BP)
    } else {
        *ctx.rng.pick(&POINTS_OW)
    };
    let slow_ring = matches!(point, "asleep-full-ring" | "spinning") && bp;
    let slots = if slow_ring {
        ctx.slots(&[8, 16, 32])
    } else {
        ctx.slots(&[8, 16, 32, 64, 128, 256])
    };
    let size = ctx.rng.range(16, 512);
    let k = ctx.rng.range(1, 4);
    let mut q = QueueFile::new(queue_name("pk", n));
    let mut pargs = ctx.args(&["produce", &q.name]);
    pargs.extend(
        [
            "--policy",
            if bp { "bp" } else { "overwrite" },
            "--slots",
            &slots.to_string(),
            "--size",
            &size.to_string(),
            "--min-size",
            "8",
            "--wait-consumers",
            &k.to_string(),
        ]
        .map(String::from),
    );
    let zc_producer = point.starts_with("mid-reserve") || ctx.rng.one_in(2);
    if !zc_producer {
        pargs.push("--copy".into());
    }
    let forever = "1000000000000".to_string();
    let idle_count = ctx.rng.range(0, 3 * u64::from(slots));
    match point {
        "mid-reserve" => pargs.extend([
            "--count".into(),
            forever,
            "--hold-reserve-us".into(),
            "300".into(),
        ]),
        "mid-reserve-open" => pargs.extend([
            "--count".into(),
            idle_count.to_string(),
            "--final-reserve".into(),
        ]),
        "idle-consumers-asleep" => {
            pargs.extend(["--count".into(), idle_count.to_string(), "--hold".into()])
        }
        "spinning" if bp => pargs.extend([
            "--count".into(),
            forever,
            "--spin-us".into(),
            "1000000".into(),
        ]),
        "spinning" => pargs.extend([
            "--count".into(),
            forever,
            "--burst".into(),
            "32".into(),
            "--pause-us".into(),
            "2000".into(),
        ]),
        _ => pargs.extend(["--count".into(), forever]),
    }
    ctx.seed_arg(&mut pargs);
    let mut prod = ctx.spawn(&pargs);
    if let Err(e) = prod.expect("ready", Duration::from_secs(10)) {
        f.setup += 1;
        f.problem(format!("cycle {n}: producer did not start: {e}"));
        return;
    }
    let mut clist = Vec::new();
    let mut kinds = Vec::new();
    for _ in 0..k {
        let zc = ctx.rng.one_in(2);
        let mut extra = Vec::new();
        if slow_ring {
            extra.extend(["--slow-us".into(), ctx.rng.range(20, 100).to_string()]);
        } else if point == "streaming" && ctx.rng.one_in(4) {
            extra.extend(["--slow-us".into(), "20".into()]);
        }
        if point == "spinning" && ctx.o.long_spins && ctx.rng.one_in(2) {
            extra.extend(["--spin-us".into(), "1000000".into()]);
        } else if point == "spinning" && !bp {
            extra.extend(["--spin-us".into(), ctx.rng.range(200, 5000).to_string()]);
        }
        if zc && point.starts_with("mid-reserve") && ctx.rng.one_in(3) {
            extra.extend(["--hold-read-us".into(), "200".into()]);
        }
        kinds.push(if zc { "zc" } else { "copy" });
        clist.push(ctx.consumer_args(&q.name, zc, &extra));
    }
    let Some(mut consumers) = spawn_consumers(ctx, &clist, f) else {
        return;
    };
    let k32 = k as u32;
    let reached = match point {
        "asleep-full-ring" => poll_until(Duration::from_secs(2), || {
            q.read_u32(offsets::PRODUCER_WAITING).unwrap_or(0) != 0
        }),
        "idle-consumers-asleep" | "mid-reserve-open" => {
            let line = if point == "mid-reserve-open" {
                "holding"
            } else {
                "sent"
            };
            prod.expect(line, Duration::from_secs(10)).is_ok()
                && poll_until(Duration::from_secs(2), || {
                    q.read_u32(offsets::WAITERS) == Some(k32)
                })
        }
        _ => {
            std::thread::sleep(Duration::from_micros(ctx.rng.range(2000, 20_000)));
            true
        }
    };
    if !reached {
        f.setup += 1;
        f.problem(format!(
            "cycle {n} ({point}): state not reached, killed anyway"
        ));
    }
    let t_kill = monotonic_ns();
    prod.kill();
    if prod.finish(Duration::from_secs(5)).is_none() {
        f.setup += 1;
        f.problem(format!("cycle {n}: producer not reaped after kill -9"));
    }
    let head = q.head().unwrap_or(0);
    let mw = f.mid_write.entry(point.to_string()).or_default();
    mw.0 += 1;
    if q.mid_write(head) {
        mw.1 += 1;
    } else if point == "mid-reserve-open" {
        f.setup += 1;
        f.problem(format!(
            "cycle {n}: the slot of head {head} is not mid-write"
        ));
    }
    let wait = Duration::from_millis(ctx.o.stuck_ms + 3000);
    for (i, c) in consumers.iter_mut().enumerate() {
        let exit = c.finish(wait);
        let cx = format!(
            "cycle {n} ({}, {point}, slots {slots}, producer {}, consumer {i}/{k} {})",
            if bp { "bp" } else { "ow" },
            if zc_producer { "zc" } else { "copy" },
            kinds[i]
        );
        f.consumer(&cx, c.end(), exit, head, bp, t_kill, &["dead"], point);
    }
    f.runs += 1;
}

/// Kills the producer together with the consumer that went to sleep first.
fn together_round(ctx: &mut Ctx, n: u64, f: &mut Figures) {
    let bp = ctx.rng.one_in(2);
    let slots = ctx.slots(&[16, 64, 256]);
    let count = ctx.rng.range(0, 50);
    let group = n % 2 == 1;
    let mut q = QueueFile::new(queue_name("tg", n));
    let mut pargs = ctx.args(&[
        "produce",
        &q.name,
        "--policy",
        if bp { "bp" } else { "overwrite" },
        "--slots",
        &slots.to_string(),
        "--size",
        "64",
        "--count",
        &count.to_string(),
        "--hold",
    ]);
    ctx.seed_arg(&mut pargs);
    let mut prod = Kid::spawn(&ctx.o.qtool, &pargs, false, group.then_some(0));
    if let Err(e) = prod.expect("sent", Duration::from_secs(10)) {
        f.setup += 1;
        f.problem(format!("round {n}: producer: {e}"));
        return;
    }
    let zc = ctx.rng.one_in(2);
    let a_args = ctx.consumer_args(&q.name, zc, &[]);
    let mut a = Kid::spawn(&ctx.o.qtool, &a_args, false, group.then_some(prod.pid));
    if let Err(e) = a.expect("opened", Duration::from_secs(10)) {
        f.setup += 1;
        f.problem(format!("round {n}: consumer A: {e}"));
        return;
    }
    // A asleep first (counted, then a moment to reach the futex), then the others.
    let a_asleep = poll_until(Duration::from_secs(2), || {
        q.read_u32(offsets::WAITERS) == Some(1)
    });
    std::thread::sleep(Duration::from_millis(2));
    let others = ctx.rng.range(1, 3);
    let list: Vec<Vec<String>> = (0..others)
        .map(|_| {
            let zc = ctx.rng.one_in(2);
            ctx.consumer_args(&q.name, zc, &[])
        })
        .collect();
    let Some(mut rest) = spawn_consumers(ctx, &list, f) else {
        return;
    };
    let all_asleep = poll_until(Duration::from_secs(2), || {
        q.read_u32(offsets::WAITERS) == Some(1 + others as u32)
    });
    std::thread::sleep(Duration::from_millis(2));
    if !(a_asleep && all_asleep) {
        f.setup += 1;
        f.problem(format!(
            "round {n}: consumers not all asleep, killed anyway"
        ));
    }
    let t_kill = monotonic_ns();
    if group {
        kill9(-prod.pid);
    } else {
        kill9(prod.pid);
        kill9(a.pid);
    }
    let _ = prod.finish(Duration::from_secs(5));
    let _ = a.finish(Duration::from_secs(5));
    let head = q.head().unwrap_or(0);
    let wait = Duration::from_millis(ctx.o.stuck_ms + 3000);
    let how = if group { "group kill" } else { "two kills" };
    for (i, c) in rest.iter_mut().enumerate() {
        let exit = c.finish(wait);
        let cx = format!(
            "round {n} ({}, {how}, {count} records, survivor {i}/{others})",
            if bp { "bp" } else { "ow" }
        );
        f.consumer(&cx, c.end(), exit, head, bp, t_kill, &["dead"], how);
    }
    f.runs += 1;
}

/// A thread id that no task on this machine has (pid_max is at most 2^22).
fn absent_tid(rng: &mut Rng) -> u32 {
    loop {
        let v = rng.range(300, (1 << 22) - 1) as u32;
        if !std::path::Path::new(&format!("/proc/{v}")).exists() {
            return v;
        }
    }
}

/// Overwrites the producer's owner word, then kills the producer.
fn scribble_round(ctx: &mut Ctx, n: u64, f: &mut Figures) {
    let bp = ctx.rng.one_in(2);
    let slots = ctx.slots(&[16, 64, 256]);
    let streaming = ctx.rng.one_in(2);
    let k = ctx.rng.range(1, 4);
    let mut q = QueueFile::new(queue_name("sc", n));
    let mut pargs = ctx.args(&[
        "produce",
        &q.name,
        "--policy",
        if bp { "bp" } else { "overwrite" },
        "--slots",
        &slots.to_string(),
        "--size",
        "128",
        "--min-size",
        "8",
        "--wait-consumers",
        &k.to_string(),
    ]);
    let count = ctx.rng.range(0, 50);
    if streaming {
        pargs.extend(
            [
                "--count",
                "1000000000000",
                "--burst",
                "64",
                "--pause-us",
                "500",
            ]
            .map(String::from),
        );
    } else {
        pargs.extend(["--count".into(), count.to_string(), "--hold".into()]);
    }
    ctx.seed_arg(&mut pargs);
    let mut prod = ctx.spawn(&pargs);
    if let Err(e) = prod.expect("ready", Duration::from_secs(10)) {
        f.setup += 1;
        f.problem(format!("round {n}: producer: {e}"));
        return;
    }
    let list: Vec<Vec<String>> = (0..k)
        .map(|_| {
            let zc = ctx.rng.one_in(2);
            ctx.consumer_args(&q.name, zc, &[])
        })
        .collect();
    let Some(mut consumers) = spawn_consumers(ctx, &list, f) else {
        return;
    };
    let reached = if streaming {
        std::thread::sleep(Duration::from_micros(ctx.rng.range(2000, 10_000)));
        true
    } else {
        prod.expect("sent", Duration::from_secs(10)).is_ok()
            && poll_until(Duration::from_secs(2), || {
                q.read_u32(offsets::WAITERS) == Some(k as u32)
            })
    };
    if !reached {
        f.setup += 1;
        f.problem(format!("round {n}: consumers not asleep, went on anyway"));
    }
    let with_waiters = ctx.rng.one_in(2);
    let value = absent_tid(&mut ctx.rng) | if with_waiters { FUTEX_WAITERS } else { 0 };
    if !q.scribble_owner(value) {
        f.setup += 1;
        f.problem(format!("round {n}: could not write the owner word"));
    }
    std::thread::sleep(Duration::from_micros(ctx.rng.range(0, 2000)));
    let t_kill = monotonic_ns();
    prod.kill();
    let _ = prod.finish(Duration::from_secs(5));
    let head = q.head().unwrap_or(0);
    let wait = Duration::from_millis(ctx.o.stuck_ms + 3000);
    let how = if streaming { "streaming" } else { "asleep" };
    for (i, c) in consumers.iter_mut().enumerate() {
        let exit = c.finish(wait);
        let cx = format!(
            "round {n} ({}, consumers {how}, owner word := {value:#x}, consumer {i}/{k})",
            if bp { "bp" } else { "ow" }
        );
        f.consumer(
            &cx,
            c.end(),
            exit,
            head,
            bp,
            t_kill,
            &["dead", "corrupt"],
            how,
        );
    }
    f.runs += 1;
}

/// The error messages (by prefix, as `Display` writes them) accepted from a hostile round's
/// processes besides the consumer statuses dead/closed/corrupt/timeout: a scribbled file is
/// corrupt, whatever call notices it. `corrupt queue file:` is `Error::Corrupt` (a producer's
/// reserve, send or commit may see it too); `queue file has layout version` is
/// `Error::VersionMismatch` (the version word scribbled, seen by a re-validation).
const HOSTILE_OK: &[&str] = &["corrupt queue file:", "queue file has layout version"];

/// What the hostile-peer rounds showed.
#[derive(Default)]
struct HostileFigures {
    runs: u64,
    consumers: u64,
    /// Consumer end statuses (`none`: no end line).
    statuses: BTreeMap<String, u64>,
    /// How the producers ended: `killed` (by the driver), `failed: KIND` (by themselves).
    producer: BTreeMap<String, u64>,
    /// Processes that died of a signal the driver did not send, or panicked.
    signals: u64,
    /// Consumers or producers that ended with an error outside the documented ones.
    undocumented: u64,
    /// Consumers that timed out or never ended.
    stuck: u64,
    /// Consumers that ended past the backstop and margin after the kill.
    late: u64,
    ended_before_kill: u64,
    torn: u64,
    /// From the kill to each consumer's end (0 if it ended before).
    blocked: Lat,
    writes: u64,
    setup: u64,
    problems: Vec<String>,
    elapsed: Duration,
}

impl HostileFigures {
    fn problem(&mut self, what: String) {
        if self.problems.len() < 12 {
            self.problems.push(what);
        }
    }

    fn faults(&self) -> u64 {
        self.signals + self.undocumented + self.stuck + self.late + self.setup
    }
}

fn documented(msg: &str) -> bool {
    HOSTILE_OK.iter().any(|p| msg.starts_with(p))
}

/// Exit codes of 128 + N are deaths by signal N (see `Kid`); 101 is a Rust panic.
fn signal_or_panic(code: i32) -> bool {
    code > 128 || code == 101 || code < 0
}

/// A producer and consumers while a third process scribbles the live file, then kill -9.
fn hostile_round(ctx: &mut Ctx, n: u64, f: &mut HostileFigures) {
    let bp = ctx.rng.one_in(2);
    let copy = ctx.rng.one_in(2);
    let streaming = ctx.rng.one_in(2);
    let slots = ctx.slots(&[16, 64, 256]);
    let size = ctx.rng.range(16, 512);
    let k = ctx.rng.range(1, 3);
    let q = QueueFile::new(queue_name("ho", n));
    let mut pargs = ctx.args(&[
        "produce",
        &q.name,
        "--policy",
        if bp { "bp" } else { "overwrite" },
        "--slots",
        &slots.to_string(),
        "--size",
        &size.to_string(),
        "--min-size",
        "8",
        "--wait-consumers",
        &k.to_string(),
    ]);
    if copy {
        pargs.push("--copy".into());
    }
    if streaming {
        pargs.extend(
            [
                "--count",
                "1000000000000",
                "--burst",
                "64",
                "--pause-us",
                "500",
            ]
            .map(String::from),
        );
    } else {
        let count = ctx.rng.range(0, 2 * u64::from(slots));
        pargs.extend(["--count".into(), count.to_string(), "--hold".into()]);
    }
    ctx.seed_arg(&mut pargs);
    let mut prod = ctx.spawn(&pargs);
    if let Err(e) = prod.expect("ready", Duration::from_secs(10)) {
        f.setup += 1;
        f.problem(format!("round {n}: producer: {e}"));
        return;
    }
    let list: Vec<Vec<String>> = (0..k)
        .map(|_| {
            let zc = ctx.rng.one_in(2);
            ctx.consumer_args(&q.name, zc, &[])
        })
        .collect();
    let mut figs = Figures::default();
    let Some(mut consumers) = spawn_consumers(ctx, &list, &mut figs) else {
        f.setup += 1;
        f.problem(format!("round {n}: {:?}", figs.problems));
        return;
    };
    if streaming {
        std::thread::sleep(Duration::from_micros(ctx.rng.range(1000, 5000)));
    } else if prod.expect("sent", Duration::from_secs(10)).is_err() {
        f.setup += 1;
        f.problem(format!("round {n}: idle producer never sent"));
    }
    let Ok(path) = shmio::queue::resolve(&q.name) else {
        f.setup += 1;
        return;
    };
    let ms = ctx.rng.range(1, 5);
    let sargs = vec![
        "scribble".to_string(),
        path.display().to_string(),
        ctx.rng.next_u64().to_string(),
        ms.to_string(),
    ];
    let mut scrib = ctx.spawn(&sargs);
    let scode = scrib.finish(Duration::from_secs(10));
    if scode != Some(0) {
        f.setup += 1;
        f.problem(format!("round {n}: scribbler ended {scode:?}"));
    }
    f.writes += scrib
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("done ").and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(0);
    std::thread::sleep(Duration::from_micros(ctx.rng.range(0, 2000)));
    let what = format!(
        "round {n} ({}, producer {}, {}, slots {slots}, size {size}, scribbled {ms} ms)",
        if bp { "bp" } else { "ow" },
        if copy { "copy" } else { "zc" },
        if streaming { "streaming" } else { "idle" }
    );
    let t_kill = monotonic_ns();
    let killed = prod.exit.is_none();
    prod.kill();
    let pcode = prod.finish(Duration::from_secs(5));
    let failed = prod
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("failed "))
        .map(str::to_string);
    let pkind = match (pcode, &failed) {
        (Some(137), _) if killed => "killed".to_string(),
        (Some(1), Some(m)) => {
            if !documented(m.split_once(": ").map_or(m.as_str(), |(_, e)| e)) {
                f.undocumented += 1;
                f.problem(format!("{what}: producer failed: {m}"));
            }
            format!(
                "failed: {}",
                m.split(':').take(2).collect::<Vec<_>>().join(":")
            )
        }
        (c, _) => {
            if c.is_none_or(signal_or_panic) {
                f.signals += 1;
            } else {
                f.undocumented += 1;
            }
            f.problem(format!(
                "{what}: producer ended {c:?}, lines {:?}",
                prod.lines
            ));
            format!("exit {c:?}")
        }
    };
    *f.producer.entry(pkind).or_default() += 1;
    let wait = Duration::from_millis(ctx.o.stuck_ms + 3000);
    let limit_us = (BACKSTOP_MS + MARGIN_MS) * 1000;
    for (i, c) in consumers.iter_mut().enumerate() {
        f.consumers += 1;
        let exit = c.finish(wait);
        let cx = format!("{what}, consumer {i}/{k}");
        let Some(e) = c.end() else {
            *f.statuses.entry("none".into()).or_default() += 1;
            if exit.is_some_and(|c| !signal_or_panic(c)) {
                f.undocumented += 1;
            } else if exit.is_some() {
                f.signals += 1;
            } else {
                f.stuck += 1;
            }
            f.blocked.add(monotonic_ns().saturating_sub(t_kill) / 1000);
            f.problem(format!(
                "{cx}: no end line (exit {exit:?}): hung or crashed"
            ));
            continue;
        };
        *f.statuses.entry(e.status.clone()).or_default() += 1;
        f.torn += e.torn;
        let blocked = e.t_end_ns.saturating_sub(t_kill) / 1000;
        if e.t_end_ns < t_kill {
            f.ended_before_kill += 1;
        }
        f.blocked.add(blocked);
        let expected_code = match e.status.as_str() {
            "dead" => Some(3),
            "closed" => Some(0),
            "corrupt" => Some(1),
            "timeout" => Some(4),
            "error" => {
                let msg = c
                    .lines
                    .iter()
                    .find_map(|l| l.strip_prefix("error "))
                    .unwrap_or("");
                if !documented(msg) {
                    f.undocumented += 1;
                    f.problem(format!("{cx}: error {msg:?}"));
                }
                Some(1)
            }
            _ => None,
        };
        if exit != expected_code {
            if exit.is_some_and(signal_or_panic) {
                f.signals += 1;
            } else {
                f.undocumented += 1;
            }
            f.problem(format!("{cx}: ended {} with exit {exit:?}", e.status));
        }
        if e.status == "timeout" {
            f.stuck += 1;
            f.problem(format!("{cx}: timed out"));
        } else if blocked > limit_us {
            f.late += 1;
            f.problem(format!(
                "{cx}: ended {} only {:.1} ms after the kill",
                e.status,
                blocked as f64 / 1e3
            ));
        }
    }
    f.runs += 1;
}

/// What the consumer-kill sessions showed.
#[derive(Default)]
struct KillFigures {
    kills: u64,
    sessions: u64,
    by_kind: BTreeMap<&'static str, u64>,
    /// Victims meant to be killed asleep whose `sleeping` word never showed it.
    not_asleep: u64,
    survivors: u64,
    torn: u64,
    dup: u64,
    order: u64,
    lost: u64,
    wrong_end: u64,
    setup: u64,
    stall_max_us: u64,
    stalls_over_10ms: u64,
    stalls_over_100ms: u64,
    sends: u64,
    session_stall_max: Lat,
    problems: Vec<String>,
    elapsed: Duration,
}

impl KillFigures {
    fn problem(&mut self, what: String) {
        if self.problems.len() < 12 {
            self.problems.push(what);
        }
    }
}

const VICTIMS: [&str; 4] = ["asleep", "mid-read", "holding-read", "mid-release"];

/// One session: a back-pressure producer, survivors, and `kills` victims killed one by one.
fn consumer_kill_session(ctx: &mut Ctx, n: u64, kills: u64, f: &mut KillFigures) {
    let slots = ctx.slots(&[16, 32, 64, 128, 256]);
    let survivors = ctx.rng.range(1, 3);
    let size = ctx.rng.range(16, 512);
    let mut q = QueueFile::new(queue_name("ck", n));
    let mut pargs = ctx.args(&[
        "produce",
        &q.name,
        "--policy",
        "bp",
        "--slots",
        &slots.to_string(),
        "--size",
        &size.to_string(),
        "--min-size",
        "8",
        "--until-eof",
        "--burst",
        &(2 * slots).to_string(),
        "--pause-us",
        "1000",
        "--stall-report",
        "--timeout-ms",
        "5000",
        "--wait-consumers",
        &survivors.to_string(),
    ]);
    if ctx.rng.one_in(2) {
        pargs.push("--copy".into());
    }
    if ctx.o.long_spins && ctx.rng.one_in(2) {
        pargs.extend(["--spin-us".into(), "1000000".into()]);
    }
    ctx.seed_arg(&mut pargs);
    let mut prod = Kid::spawn(&ctx.o.qtool, &pargs, true, None);
    if let Err(e) = prod.expect("ready", Duration::from_secs(10)) {
        f.setup += 1;
        f.problem(format!("session {n}: producer: {e}"));
        return;
    }
    let list: Vec<Vec<String>> = (0..survivors)
        .map(|_| {
            let zc = ctx.rng.one_in(2);
            let mut a = ctx.consumer_args(&q.name, zc, &[]);
            if let Some(i) = a.iter().position(|s| s == "--timeout-ms") {
                a[i + 1] = "10000".into();
            }
            a
        })
        .collect();
    let mut figs = Figures::default();
    let Some(mut alive) = spawn_consumers(ctx, &list, &mut figs) else {
        f.setup += 1;
        return;
    };
    for v in 0..kills {
        let kind = *ctx.rng.pick(&VICTIMS);
        let zc = matches!(kind, "holding-read" | "mid-release")
            || (kind == "asleep" && ctx.rng.one_in(2));
        let mut extra: Vec<String> = Vec::new();
        if kind == "holding-read" {
            extra.extend(["--hold-read-us".into(), "2000".into()]);
        }
        let mut a = ctx.consumer_args(&q.name, zc, &extra);
        a[3] = "newest".into();
        let mut victim = ctx.spawn(&a);
        if let Err(e) = victim.expect("opened", Duration::from_secs(10)) {
            f.setup += 1;
            f.problem(format!("session {n} victim {v}: {e}"));
            continue;
        }
        if kind == "asleep" {
            let pid = victim.pid;
            if !poll_until(Duration::from_millis(500), || {
                q.consumer_sleeping(pid).unwrap_or(0) != 0
            }) {
                f.not_asleep += 1;
            }
        } else {
            std::thread::sleep(Duration::from_micros(ctx.rng.range(1000, 10_000)));
        }
        victim.kill();
        let _ = victim.finish(Duration::from_secs(5));
        f.kills += 1;
        *f.by_kind.entry(kind).or_default() += 1;
    }
    // Close the producer's stdin: it stops, reports its stalls and closes the queue.
    drop(prod.stdin.take());
    let code = prod.finish(Duration::from_secs(15));
    let sent: Option<u64> = prod
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("sent ").and_then(|v| v.parse().ok()));
    let stalls: BTreeMap<String, u64> = prod
        .lines
        .iter()
        .find(|l| l.starts_with("stalls "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
                .collect()
        })
        .unwrap_or_default();
    f.sessions += 1;
    // A producer that timed out waiting (5 s) still reports its stalls.
    let smax = stalls.get("max_us").copied().unwrap_or(u64::MAX);
    f.stall_max_us = f.stall_max_us.max(smax);
    f.session_stall_max.add(smax);
    f.stalls_over_10ms += stalls.get("over10ms").copied().unwrap_or(0);
    f.stalls_over_100ms += stalls.get("over100ms").copied().unwrap_or(0);
    f.sends += stalls.get("n").copied().unwrap_or(0);
    if smax > (BACKSTOP_MS + MARGIN_MS) * 1000 {
        f.problem(format!(
            "session {n} (slots {slots}, {survivors} survivors): producer stalled {smax} us"
        ));
    }
    let (Some(sent), Some(0)) = (sent, code) else {
        f.setup += 1;
        f.problem(format!(
            "session {n}: producer ended {code:?}, lines {:?}",
            prod.lines
        ));
        return;
    };
    for (i, c) in alive.iter_mut().enumerate() {
        let exit = c.finish(Duration::from_secs(15));
        f.survivors += 1;
        let Some(e) = c.end() else {
            f.wrong_end += 1;
            f.problem(format!("session {n} survivor {i}: no end line ({exit:?})"));
            continue;
        };
        f.torn += e.torn;
        f.dup += e.dup;
        f.order += e.order;
        let unique = e.received.saturating_sub(e.dup + e.order);
        let missing = sent.saturating_sub(unique) + e.gaps;
        f.lost += missing;
        if e.status != "closed" || exit != Some(0) {
            f.wrong_end += 1;
        }
        let first_ok = sent == 0 || e.first == Some(0);
        if e.status != "closed" || missing + e.torn + e.dup + e.order > 0 || !first_ok {
            f.problem(format!("session {n} survivor {i} (sent {sent}): {e:?}"));
        }
    }
}

// ---------------------------------------------------------------------------------------------

fn run_mode(
    ctx: &mut Ctx,
    count: u64,
    f: &mut Figures,
    mut round: impl FnMut(&mut Ctx, u64, &mut Figures),
) {
    let t = Instant::now();
    let mut last_report = Instant::now();
    for n in 0..count {
        let before = f.faults();
        round(ctx, n, f);
        if f.faults() > before {
            f.bad_runs += 1;
        }
        if f.stuck + f.late >= ctx.o.max_stuck.max(1) {
            f.aborted = true;
            break;
        }
        if last_report.elapsed() > Duration::from_secs(20) {
            last_report = Instant::now();
            println!(
                "  ... {} of {count} in {:.0} s",
                n + 1,
                t.elapsed().as_secs_f64()
            );
            let _ = std::io::stdout().flush();
        }
    }
    f.elapsed = t.elapsed();
}

struct Targets(Vec<(String, u64, u64)>);

impl Targets {
    /// A target: `value` must be at most `limit`.
    fn at_most(&mut self, name: &str, value: u64, limit: u64) {
        self.0.push((name.to_string(), value, limit));
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
    remove_stale_queues();
    check_offsets();
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
    let limit_us = (BACKSTOP_MS + MARGIN_MS) * 1000;
    let p99_us = P99_TARGET_MS * 1000;
    let mut targets = Targets(Vec::new());
    let mut summaries = Vec::new();

    if ctx.o.cycles > 0 {
        let mut f = Figures::default();
        let cycles = ctx.o.cycles;
        run_mode(&mut ctx, cycles, &mut f, producer_kill_cycle);
        f.print("producer kill -9", "cycles");
        summaries.push(f.summary("producer-kill"));
        targets.at_most("producer-kill.torn", f.torn, 0);
        targets.at_most("producer-kill.dup+order", f.dup + f.order + f.phantom, 0);
        targets.at_most("producer-kill.lost", f.lost + f.unaccounted, 0);
        targets.at_most(
            "producer-kill.not-dead",
            f.wrong_end + f.stuck + f.early + f.setup,
            0,
        );
        targets.at_most("producer-kill.notice-p99-us", f.notice.p(0.99), p99_us);
        targets.at_most("producer-kill.notice-max-us", f.notice.max(), limit_us);
        targets.at_most("producer-kill.cycles-short", cycles - f.runs, 0);
    }

    if ctx.o.consumer_kills > 0 {
        let mut k = KillFigures::default();
        let t = Instant::now();
        let per = 15;
        let mut n = 0;
        while k.kills + k.setup < ctx.o.consumer_kills {
            let left = ctx.o.consumer_kills - k.kills - k.setup;
            consumer_kill_session(&mut ctx, n, left.min(per), &mut k);
            n += 1;
        }
        k.elapsed = t.elapsed();
        println!(
            "\nconsumer kill -9 under a back-pressure producer: {} kills in {} sessions, {:.1} s",
            k.kills,
            k.sessions,
            k.elapsed.as_secs_f64()
        );
        println!(
            "  victims {:?} (asleep ones never seen asleep: {})",
            k.by_kind, k.not_asleep
        );
        println!(
            "  producer's longest send: {:.2} ms (per session p50/p99/max {}); {} sends, {} over \
             10 ms, {} over 100 ms",
            k.stall_max_us as f64 / 1e3,
            k.session_stall_max.show(),
            k.sends,
            k.stalls_over_10ms,
            k.stalls_over_100ms
        );
        println!(
            "  survivors {}: torn={} dup={} order={} lost={} wrong_end={} setup={}",
            k.survivors, k.torn, k.dup, k.order, k.lost, k.wrong_end, k.setup
        );
        for p in &k.problems {
            println!("  ! {p}");
        }
        summaries.push(format!(
            "summary consumer-kill kills={} sessions={} survivors={} torn={} dup={} order={} \
             lost={} wrong_end={} setup={} not_asleep={} stall_max_us={} stalls_over_100ms={}",
            k.kills,
            k.sessions,
            k.survivors,
            k.torn,
            k.dup,
            k.order,
            k.lost,
            k.wrong_end,
            k.setup,
            k.not_asleep,
            k.stall_max_us,
            k.stalls_over_100ms
        ));
        targets.at_most("consumer-kill.survivors-torn", k.torn, 0);
        targets.at_most("consumer-kill.survivors-dup+order", k.dup + k.order, 0);
        targets.at_most("consumer-kill.survivors-lost", k.lost, 0);
        targets.at_most(
            "consumer-kill.survivors-not-closed",
            k.wrong_end + k.setup,
            0,
        );
        targets.at_most(
            "consumer-kill.producer-stall-max-us",
            k.stall_max_us,
            limit_us,
        );
    }

    if ctx.o.together > 0 {
        let mut f = Figures::default();
        let rounds = ctx.o.together;
        run_mode(&mut ctx, rounds, &mut f, together_round);
        f.print(
            "producer killed together with the consumer asleep first",
            "rounds",
        );
        summaries.push(f.summary("together"));
        targets.at_most("together.torn+dup+order", f.torn + f.dup + f.order, 0);
        targets.at_most("together.lost", f.lost + f.unaccounted + f.phantom, 0);
        targets.at_most(
            "together.survivors-not-dead",
            f.wrong_end + f.stuck + f.early + f.setup,
            0,
        );
        targets.at_most("together.notice-p99-us", f.notice.p(0.99), p99_us);
        targets.at_most("together.notice-max-us", f.notice.max(), limit_us);
        targets.at_most("together.rounds-short", rounds - f.runs, 0);
    }

    if ctx.o.scribble > 0 {
        let mut f = Figures {
            early_ok: true,
            ..Figures::default()
        };
        let rounds = ctx.o.scribble;
        run_mode(&mut ctx, rounds, &mut f, scribble_round);
        f.print(
            "owner word scribbled (offset 384), then producer killed",
            "rounds",
        );
        summaries.push(f.summary("scribble"));
        targets.at_most("scribble.torn+dup+order", f.torn + f.dup + f.order, 0);
        targets.at_most(
            "scribble.not-dead-or-corrupt",
            f.wrong_end + f.stuck + f.early + f.setup,
            0,
        );
        targets.at_most("scribble.blocked-max-us", f.raw.max(), limit_us);
        targets.at_most("scribble.rounds-short", rounds - f.runs, 0);
    }

    if ctx.o.hostile > 0 {
        let mut f = HostileFigures::default();
        let rounds = ctx.o.hostile;
        let t = Instant::now();
        let mut bad_runs = 0;
        for n in 0..rounds {
            let before = f.faults();
            hostile_round(&mut ctx, n, &mut f);
            if f.faults() > before {
                bad_runs += 1;
            }
            if f.stuck + f.late >= ctx.o.max_stuck.max(1) {
                break;
            }
        }
        f.elapsed = t.elapsed();
        println!(
            "\nhostile peer scribbling the live file, then producer killed: {} rounds ({bad_runs} \
             with a failed check), {} consumers, {} random writes, {:.1} s",
            f.runs,
            f.consumers,
            f.writes,
            f.elapsed.as_secs_f64()
        );
        println!(
            "  consumer end statuses: {:?} (ended before the kill: {})",
            f.statuses, f.ended_before_kill
        );
        println!("  producer ends: {:?}", f.producer);
        println!(
            "  blocked after the kill p50/p99/max {}; signals/panics={} undocumented={} \
             stuck={} late={} setup={} torn={} (torn records are not checked here)",
            f.blocked.show(),
            f.signals,
            f.undocumented,
            f.stuck,
            f.late,
            f.setup,
            f.torn
        );
        for p in &f.problems {
            println!("  ! {p}");
        }
        summaries.push(format!(
            "summary hostile runs={} bad_runs={bad_runs} consumers={} signals={} undocumented={} \
             stuck={} late={} setup={} blocked_p99_us={} blocked_max_us={} statuses={:?}",
            f.runs,
            f.consumers,
            f.signals,
            f.undocumented,
            f.stuck,
            f.late,
            f.setup,
            f.blocked.p(0.99),
            f.blocked.max(),
            f.statuses
        ));
        targets.at_most("hostile.signals", f.signals, 0);
        targets.at_most("hostile.undocumented", f.undocumented, 0);
        targets.at_most("hostile.stuck", f.stuck, 0);
        targets.at_most("hostile.blocked-max-us", f.blocked.max(), limit_us);
        targets.at_most("hostile.setup", f.setup, 0);
        targets.at_most("hostile.rounds-short", rounds - f.runs, 0);
    }

    println!();
    for s in &summaries {
        println!("{s}");
    }
    let missed = targets.0.iter().filter(|(_, v, l)| v > l).count();
    for (name, value, limit) in &targets.0 {
        println!(
            "target {name} = {value} (at most {limit}) {}",
            if value <= limit { "met" } else { "MISSED" }
        );
    }
    println!(
        "targets: {} met, {missed} missed (seed {})",
        targets.0.len() - missed,
        ctx.o.seed
    );
    if ctx.o.check && missed > 0 {
        std::process::exit(1);
    }
}
