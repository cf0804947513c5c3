//! `shmio-bridge`: carries a shmio queue from one host to another over Zenoh.
//!
//! ```text
//! host A$ shmio-bridge queue-out --queue orders --listen tcp/192.0.2.1:7447
//! host B$ shmio-bridge queue-in  --queue orders --connect tcp/192.0.2.1:7447
//! ```
//! Both print `key=value` lines on standard output: `ready` once reachable, `end ...` with
//! their counters when a generation ends or they stop (SIGTERM, SIGINT). docs/bridge.md says
//! what is guaranteed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use shmio::queue::Start;
use shmio_bridge::config::NetOptions;
use shmio_bridge::inbound::{self, Ending, InOptions};
use shmio_bridge::outbound::{self, OutOptions};
use shmio_bridge::region_in::{self, RegionInOptions};
use shmio_bridge::region_out::{self, RegionOutOptions};
use shmio_bridge::{Error, Stop};

#[derive(Parser)]
#[command(
    name = "shmio-bridge",
    version,
    about = "Bridges shmio queues between hosts over Zenoh"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Host A: consume a local queue and publish its records.
    QueueOut(OutArgs),
    /// Host B: produce the records of a remote queue into a local queue of the same geometry.
    QueueIn(InArgs),
    /// The primary's host: publish each change of a local region, answer snapshot queries.
    RegionOut(RegionOutArgs),
    /// A replica's host: keep a local region identical to a remote primary region.
    RegionIn(RegionInArgs),
}

#[derive(Args)]
struct RegionOutArgs {
    /// The local region: a name in SHMIO_DIR (default /dev/shm) or a path.
    #[arg(long)]
    region: String,
    /// The name it is published under (default: the region's).
    #[arg(long)]
    name: Option<String>,
    /// A heartbeat after this many milliseconds without a change.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    heartbeat_ms: u64,
    /// Largest snapshot piece in bytes (one Zenoh batch by default).
    #[arg(long, default_value_t = 60 << 10)]
    piece: usize,
    #[command(flatten)]
    net: Net,
}

#[derive(Args)]
struct RegionInArgs {
    /// The local replica (created with the primary's geometry if missing).
    #[arg(long)]
    region: String,
    /// The name the primary is published under (default: the local region's).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    net: Net,
}

#[derive(Args)]
struct Net {
    /// Zenoh endpoint to listen on (repeatable), e.g. tcp/192.0.2.1:7447.
    #[arg(long, value_name = "ENDPOINT")]
    listen: Vec<String>,
    /// Zenoh endpoint to connect to (repeatable): the other bridge or a Zenoh router.
    #[arg(long, value_name = "ENDPOINT")]
    connect: Vec<String>,
    /// Connect as a client of a Zenoh router (--connect) instead of as a peer.
    #[arg(long)]
    client: bool,
    /// Zenoh lease: a link silent this long is closed and the other side declared gone.
    #[arg(long, default_value_t = 3000, value_name = "MS")]
    lease_ms: u64,
    /// Enable Zenoh's multicast and gossip scouting (off by default: explicit endpoints only).
    #[arg(long)]
    scout: bool,
    /// Key expression prefix (default shmio/queue for queues, shmio/region for regions).
    #[arg(long)]
    prefix: Option<String>,
    /// Zenoh's low-latency transport (no QoS priorities); every bridge of the system must
    /// use it alike.
    #[arg(long)]
    low_latency: bool,
    /// A Zenoh configuration file, applied before the options above.
    #[arg(long, value_name = "FILE")]
    zenoh_config: Option<String>,
}

impl Net {
    fn options(&self, default_prefix: &str) -> NetOptions {
        NetOptions {
            listen: self.listen.clone(),
            connect: self.connect.clone(),
            client: self.client,
            lease: Duration::from_millis(self.lease_ms),
            scout: self.scout,
            prefix: self.prefix.clone().unwrap_or_else(|| default_prefix.into()),
            config_file: self.zenoh_config.clone(),
            low_latency: self.low_latency,
        }
    }
}

#[derive(Args)]
struct OutArgs {
    /// The local queue: a name in SHMIO_DIR (default /dev/shm) or a path.
    #[arg(long)]
    queue: String,
    /// The stream's name on the network (default: the queue's).
    #[arg(long)]
    stream: Option<String>,
    /// Where to start reading the local queue: oldest, newest, or a sequence number.
    #[arg(long, default_value = "oldest")]
    from: String,
    /// Largest Zenoh message in bytes (records are batched while more are queued).
    #[arg(long, default_value_t = outbound::MAX_BATCH)]
    max_batch: usize,
    #[command(flatten)]
    net: Net,
}

#[derive(Args)]
struct InArgs {
    /// The remote queue's stream name.
    #[arg(long)]
    queue: String,
    /// The local queue (default: the same name), a name in SHMIO_DIR or a path.
    #[arg(long)]
    local: Option<String>,
    /// Wait for this many local consumers before producing the first record.
    #[arg(long, default_value_t = 0)]
    wait_consumers: usize,
    /// Credit window in records (back-pressure queues).
    #[arg(long)]
    window: Option<u64>,
    /// Mode of the queue file if this bridge creates it (octal).
    #[arg(long, default_value = "600")]
    mode: String,
    /// Internal: run one generation in this process (the supervisor starts these).
    #[arg(long, hide = true)]
    worker: bool,
    /// Internal: the run and position the previous worker ended at.
    #[arg(long, hide = true, value_name = "RUN:POS")]
    resume: Option<String>,
    #[command(flatten)]
    net: Net,
}

static STOP: Stop = Stop::new();

extern "C" fn on_signal(_: libc::c_int) {
    STOP.set();
}

fn catch_signals() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    catch_signals();
    let res = match cli.cmd {
        Cmd::QueueOut(a) => queue_out(&a),
        Cmd::QueueIn(a) if a.worker => return queue_in_worker(&a),
        Cmd::QueueIn(a) => return supervise(&a),
        Cmd::RegionOut(a) => region_out(&a),
        Cmd::RegionIn(a) => region_in(&a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmio-bridge: {e}");
            ExitCode::from(1)
        }
    }
}

fn queue_out(a: &OutArgs) -> Result<(), Error> {
    let start = match a.from.as_str() {
        "oldest" => Start::Oldest,
        "newest" => Start::Newest,
        s => Start::Sequence(
            s.parse()
                .map_err(|_| Error::Config(format!("--from {s}: oldest, newest or a number")))?,
        ),
    };
    let opts = OutOptions {
        queue: a.queue.clone(),
        stream: a.stream.clone(),
        start,
        max_batch: a.max_batch,
    };
    let s = outbound::run(&a.net.options("shmio/queue"), &opts, &STOP, &|| {
        say("ready")
    })?;
    say(&format!(
        "end records={} batches={} lost_here={} generations={} credit_waits={}",
        s.records, s.batches, s.lost_here, s.generations, s.credit_waits
    ));
    Ok(())
}

fn region_out(a: &RegionOutArgs) -> Result<(), Error> {
    let opts = RegionOutOptions {
        name: a.name.clone(),
        heartbeat: Duration::from_millis(a.heartbeat_ms.max(1)),
        piece: a.piece.max(1),
        ..RegionOutOptions::new(&a.region)
    };
    let s = region_out::run(&a.net.options("shmio/region"), &opts, &STOP, &|| {
        say("ready")
    })?;
    say(&format!(
        "end deltas={} delta_bytes={} heartbeats={} jumps={} queries={} snapshot_bytes={}",
        s.deltas, s.delta_bytes, s.heartbeats, s.jumps, s.queries, s.snapshot_bytes
    ));
    Ok(())
}

fn region_in(a: &RegionInArgs) -> Result<(), Error> {
    let opts = RegionInOptions {
        name: a.name.clone(),
        ..RegionInOptions::new(&a.region)
    };
    let s = region_in::run(&a.net.options("shmio/region"), &opts, &STOP, &|| {
        say("ready")
    })?;
    say(&format!(
        "end deltas={} delta_bytes={} stale={} bad={} catchups={} full_copies={} \
         catchup_bytes={} stalled={}",
        s.deltas,
        s.delta_bytes,
        s.stale,
        s.bad,
        s.catchups,
        s.full_copies,
        s.catchup_bytes,
        s.stalled
    ));
    Ok(())
}

fn in_options(a: &InArgs) -> Result<InOptions, Error> {
    let mode = u32::from_str_radix(&a.mode, 8)
        .map_err(|_| Error::Config(format!("--mode {}: an octal mode", a.mode)))?;
    let resume = a.resume.as_deref().and_then(|r| {
        let (run, pos) = r.split_once(':')?;
        Some((run.parse().ok()?, pos.parse().ok()?))
    });
    Ok(InOptions {
        stream: a.queue.clone(),
        local: a.local.clone(),
        wait_consumers: a.wait_consumers,
        window: a.window,
        mode,
        resume,
    })
}

/// One generation, in a worker process: exits 0 when the upstream closed (or on a stop), is
/// killed by its own SIGKILL when the upstream died (so the local producer dies too), exits 2
/// on an error that a new worker would meet again, 1 on others.
fn queue_in_worker(a: &InArgs) -> ExitCode {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } == 1 {
        return ExitCode::from(1);
    }
    let opts = match in_options(a) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("shmio-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    let ready = |i: &shmio::queue::QueueInfo| {
        say(&format!(
            "ready path={} slots={} size={} policy={:?}",
            i.path.display(),
            i.slot_count,
            i.slot_size,
            i.policy
        ))
    };
    match inbound::run_once(&a.net.options("shmio/queue"), &opts, &STOP, &ready) {
        Ok(out) => {
            let s = &out.stats;
            let what = match &out.ending {
                Ending::Closed => "closed".to_string(),
                Ending::Stopped => "stopped".to_string(),
                Ending::Dead(why) => format!("dead ({why})"),
            };
            say(&format!(
                "end generation={} produced={} lost_upstream={} lost_between={} duplicates={} \
                 before_join={} upstream={what}",
                s.generation,
                s.produced,
                s.lost_upstream,
                s.lost_between,
                s.duplicates,
                s.before_join
            ));
            say(&format!("resume {}:{}", s.run, s.next_pos));
            if let Ending::Dead(_) = out.ending {
                // SAFETY: raising SIGKILL on ourselves with the local producer still open: it
                // dies with us, as the upstream one did.
                unsafe { libc::raise(libc::SIGKILL) };
            }
            drop(out.producer);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shmio-bridge: {e}");
            ExitCode::from(if matches!(e, Error::Geometry(_) | Error::Config(_)) {
                2
            } else {
                1
            })
        }
    }
}

/// `queue-in`: runs one worker per upstream generation until stopped.
fn supervise(a: &InArgs) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("shmio-bridge: {e}");
            return ExitCode::from(1);
        }
    };
    let resume: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(a.resume.clone()));
    // The worker gets our arguments, less a --resume, which it gets from the last worker.
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut skip = false;
    for x in std::env::args_os().skip(1) {
        if std::mem::take(&mut skip) || x.to_string_lossy().starts_with("--resume=") {
            continue;
        }
        skip = x == "--resume";
        if !skip {
            args.push(x);
        }
    }
    loop {
        let mut cmd = Command::new(&exe);
        cmd.args(&args).arg("--worker").stdout(Stdio::piped());
        if let Some(r) = resume.lock().unwrap_or_else(|e| e.into_inner()).as_deref() {
            cmd.arg("--resume").arg(r);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("shmio-bridge: cannot start a worker: {e}");
                return ExitCode::from(1);
            }
        };
        let echo = child.stdout.take().map(|out| {
            let resume = Arc::clone(&resume);
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(r) = line.strip_prefix("resume ") {
                        *resume.lock().unwrap_or_else(|e| e.into_inner()) = Some(r.into());
                    } else {
                        say(&line);
                    }
                }
            })
        });
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {}
                Err(e) => {
                    eprintln!("shmio-bridge: {e}");
                    return ExitCode::from(1);
                }
            }
            if STOP.is_set() {
                // SAFETY: kill(2) on our own child, not yet reaped.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(t) = echo {
            let _ = t.join();
        }
        if STOP.is_set() {
            return ExitCode::SUCCESS;
        }
        match status.code() {
            Some(2) => return ExitCode::from(2),
            Some(1) => std::thread::sleep(Duration::from_secs(1)),
            _ => {}
        }
    }
}
