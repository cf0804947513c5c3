//! What every scenario uses: the driver's context (its options and random numbers), the
//! argument lists of the `shmio-qtool` processes, starting them, killing the producer, and the
//! loop that runs a mode's rounds.

use std::io::Write;
use std::time::{Duration, Instant};

use shmio_tests::{Rng, monotonic_ns};

use crate::Opts;
use crate::figures::Setup;
use crate::kid::Kid;

/// A record count no producer reaches: it streams until killed.
pub const FOREVER: &str = "1000000000000";

/// Streams for ever, in bursts of 1-64 records with pauses of up to 500 us.
pub const STREAMING: &[&str] = &["--count", FOREVER, "--burst", "64", "--pause-us", "500"];

pub struct Ctx {
    pub o: Opts,
    pub rng: Rng,
}

impl Ctx {
    pub fn seed_arg(&mut self, v: &mut Vec<String>) {
        v.push("--seed".into());
        v.push(self.rng.next_u64().to_string());
    }

    pub fn slots(&mut self, choices: &[u32]) -> u32 {
        *self.rng.pick(choices)
    }

    pub fn consumer_args(&mut self, name: &str, zero_copy: bool, extra: &[String]) -> Vec<String> {
        let mut v = strings(&["consume", name, "--from", "oldest", "--quiet"]);
        push(&mut v, &["--timeout-ms", &self.o.stuck_ms.to_string()]);
        push(&mut v, &["--after-dead-ms", "2"]);
        if zero_copy {
            v.push("--zero-copy".into());
        }
        v.extend(extra.iter().cloned());
        self.seed_arg(&mut v);
        v
    }

    /// The arguments of `k` consumers, each copying or zero-copy at random.
    pub fn random_consumers(&mut self, name: &str, k: u64) -> Vec<Vec<String>> {
        (0..k)
            .map(|_| {
                let zc = self.rng.one_in(2);
                self.consumer_args(name, zc, &[])
            })
            .collect()
    }

    pub fn spawn(&self, args: &[String]) -> Kid {
        Kid::spawn(&self.o.qtool, args, false, None)
    }

    /// How long a consumer may take to end once its producer was killed: its own timeout, and
    /// 3 s.
    pub fn end_wait(&self) -> Duration {
        Duration::from_millis(self.o.stuck_ms + 3000)
    }
}

pub fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Appends `list` to the argument list `v`.
pub fn push(v: &mut Vec<String>, list: &[&str]) {
    v.extend(list.iter().map(|s| s.to_string()));
}

/// `produce NAME --policy bp|overwrite --slots N --size N`.
pub fn produce_args(name: &str, bp: bool, slots: u32, size: u64) -> Vec<String> {
    let policy = if bp { "bp" } else { "overwrite" };
    let (slots, size) = (slots.to_string(), size.to_string());
    strings(&[
        "produce", name, "--policy", policy, "--slots", &slots, "--size", &size,
    ])
}

/// The policy as the problem lines name it.
pub fn tag(bp: bool) -> &'static str {
    if bp { "bp" } else { "ow" }
}

/// Waits for `kid`'s line starting with `line` (`ready`, `sent`); if it does not come, counts a
/// setup fault (`what: error`) and gives up the process.
pub fn started(mut kid: Kid, line: &str, f: &mut impl Setup, what: &str) -> Option<Kid> {
    match kid.expect(line, Duration::from_secs(10)) {
        Ok(_) => Some(kid),
        Err(e) => {
            f.setup_fault(format!("{what}: {e}"));
            None
        }
    }
}

/// Spawns the consumers of a round and waits for each to have opened the queue.
pub fn spawn_consumers(
    ctx: &Ctx,
    list: &[Vec<String>],
    f: &mut impl Setup,
    what: &str,
) -> Option<Vec<Kid>> {
    let kids: Vec<Kid> = list.iter().map(|a| ctx.spawn(a)).collect();
    let what = format!("{what}: consumer did not open");
    kids.into_iter()
        .map(|k| started(k, "opened", f, &what))
        .collect()
}

/// Adds what the producer sends: a stream until killed, or `count()` records before it holds
/// the queue open.
pub fn push_load(v: &mut Vec<String>, streaming: bool, count: impl FnOnce() -> u64) {
    if streaming {
        push(v, STREAMING);
    } else {
        push(v, &["--count", &count().to_string(), "--hold"]);
    }
}

/// Starts a round: the producer `pargs` (a seed added), once it is `ready` the consumers
/// `clist`, once each has `opened` the queue.
pub fn start_round(
    ctx: &mut Ctx,
    mut pargs: Vec<String>,
    clist: &[Vec<String>],
    f: &mut impl Setup,
    what: &str,
) -> Option<(Kid, Vec<Kid>)> {
    ctx.seed_arg(&mut pargs);
    let prod = started(ctx.spawn(&pargs), "ready", f, &format!("{what}: producer"))?;
    let consumers = spawn_consumers(ctx, clist, f, what)?;
    Some((prod, consumers))
}

/// kill -9 and reap (within 5 s): the time just before kill(2), and the exit if reaped.
pub fn kill(kid: &mut Kid) -> (u64, Option<i32>) {
    let t_kill = monotonic_ns();
    kid.kill();
    (t_kill, kid.finish(Duration::from_secs(5)))
}

/// A mode's figures, as the loop over its rounds sees them.
pub trait Mode {
    /// Everything a round can get wrong, added up (to tell which rounds went wrong).
    fn faults(&self) -> u64;
    /// Consumers stuck or late so far.
    fn stuck_or_late(&self) -> u64;
}

/// How a mode's rounds went.
#[derive(Default)]
pub struct Rounds {
    /// Rounds in which some check failed.
    pub bad: u64,
    /// Stopped early: too many stuck or late consumers.
    pub aborted: bool,
    pub elapsed: Duration,
}

/// Runs `count` rounds (`round(ctx, n, f)`), stopping early after `--max-stuck` stuck or late
/// consumers, with a progress line every 20 s.
pub fn run_rounds<F: Mode>(
    ctx: &mut Ctx,
    count: u64,
    f: &mut F,
    mut round: impl FnMut(&mut Ctx, u64, &mut F),
) -> Rounds {
    let t = Instant::now();
    let mut last_report = Instant::now();
    let mut r = Rounds::default();
    for n in 0..count {
        let before = f.faults();
        round(ctx, n, f);
        if f.faults() > before {
            r.bad += 1;
        }
        if f.stuck_or_late() >= ctx.o.max_stuck.max(1) {
            r.aborted = true;
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
    r.elapsed = t.elapsed();
    r
}
