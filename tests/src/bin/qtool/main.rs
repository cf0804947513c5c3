//! `shmio-qtool`: a producer or consumer process driven by the end-to-end tests.
//!
//! ```text
//! shmio-qtool produce NAME [--create|--open] [--slots N] [--size N] [--policy overwrite|bp]
//!                          [--count N] [--interval-us N] [--wait-consumers N] [--hold]
//!                          [--text] [--die-mid-record] [--timeout-ms N]
//!                          [--min-size N] [--copy] [--spin-us N] [--burst N --pause-us N]
//!                          [--hold-reserve-us N] [--final-reserve] [--until-eof]
//!                          [--stall-report] [--seed N]
//! shmio-qtool consume NAME [--from newest|oldest|SEQ] [--count N] [--slow-us N]
//!                          [--zero-copy] [--text] [--timeout-ms N] [--hold] [--survive]
//!                          [--quiet] [--hold-read-us N] [--spin-us N] [--after-dead-ms N]
//!                          [--seed N] [--poll] [--flush-each]
//! shmio-qtool scribble PATH SEED MS
//! ```
//! Producer prints `ready` once it holds the queue, `sent N` at the end. Consumer prints
//! `opened POS`, `rec SEQ` per record (`text ...` with --text), and a final
//! `end STATUS received=N lost=M` followed by more `key=value` fields (below). Exit codes as
//! the C consumer: 0 done or closed, 3 producer dead, 2 cannot open, 4 timeout, 1 other. With
//! `--survive` a consumer that finds the producer dead prints `gone dead` once and keeps trying,
//! for a new producer to take over.
//!
//! For the kill suite (`shmio-killsuite`):
//! - producer: `--min-size N` gives each record a random length in N..=size (N >= 8);
//!   `--copy` writes with `send` instead of `reserve`/`commit`; `--spin-us` sets the spin of a
//!   wait for space; `--burst N --pause-us U` pauses a random 0..=U us after bursts of 1..=N
//!   records; `--hold-reserve-us N` holds one reservation in four open for 1..=N us with only
//!   half of the record written (a consumer that delivered it would see a torn record);
//!   `--final-reserve` after the records opens one more reservation, half written, prints
//!   `holding SEQ` and sleeps until killed; `--until-eof` sends until standard input closes
//!   (then closes the queue normally); `--stall-report` times every reserve/send and prints
//!   `stalls n=N max_us=X over1ms=A over10ms=B over100ms=C max_at_ns=T` before `sent` (and
//!   before exiting 1 when a reserve or send fails, e.g. times out).
//! - consumer: `--quiet` prints no `rec` lines and goes on past a torn record (counting it);
//!   `--hold-read-us N` holds each zero-copy read 0..=N us before releasing it; the end line's
//!   extra fields are `start=` (the opening position) `first= last=` (sequence numbers, `-`
//!   if none) `dup= order= gaps=` (repeats, steps back, and records skipped between two
//!   received ones) `torn=` `t_last_ns=` (`CLOCK_MONOTONIC` of the last record) `t_end_ns=`
//!   (`CLOCK_MONOTONIC` when the final status was returned, e.g. `ProducerDead`)
//!   `after_dead=` (see `--after-dead-ms`). A corrupt queue ends with status `corrupt` (exit 1).
//!   `--after-dead-ms N`: after `ProducerDead`, wait N ms and drain once more without waiting
//!   (a record committed at the very instant of the death may become visible just after);
//!   records found then still count as received, and in `after_dead=`.
//!
//! `scribble` is the hostile peer of the kill suite's `--hostile` rounds: for MS ms it writes
//! random bytes (1 to 8 at a time, with a pause of 0, 10 or 100 us between writes, chosen by
//! SEED) with pwrite(2) into the queue file at PATH: anywhere in the header lines (config,
//! producer, waiters, owner, space), in the first four consumer slots, or in a slot header
//! (stamp and length), as the config line said when it started. It never changes the file's
//! size. Prints `done N` (the writes) and exits 0; 2 if the file cannot be opened.
//!
//! A producer whose reserve, send or commit fails also prints `failed ERROR` on stdout before
//! exiting 1.
//!
//! With `--poll` a consumer never blocks in the queue: it waits with `poll(2)` on
//! `Consumer::fd()` (`--timeout-ms` bounds each poll) and then calls `try_recv` until
//! `WouldBlock`; it prints `polls N empty M` before the end line (M: wake-ups after which the
//! first `try_recv` found nothing). `--flush-each` flushes stdout after every record line
//! (by default it is flushed only after `opened`, `gone dead` and at the end).

use std::io::{Read, Write};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shmio::queue::{Consumer, Error, Policy, Producer, QueueOptions, Start};
use shmio_tests::{Rng, check_record, fill_record, monotonic_ns};

fn arg<T: std::str::FromStr>(args: &[String], flag: &str) -> Option<T> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("bad value for {flag}")))
}

fn flag(args: &[String], flag: &str) -> bool {
    args.iter().any(|a| a == flag)
}

fn seed(args: &[String]) -> u64 {
    arg(args, "--seed").unwrap_or_else(|| monotonic_ns() ^ (u64::from(std::process::id()) << 32))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(role), Some(name)) = (args.first(), args.get(1)) else {
        eprintln!("usage: shmio-qtool produce|consume NAME [options]");
        std::process::exit(2);
    };
    let code = match role.as_str() {
        "produce" => produce(name, &args),
        "consume" => consume(name, &args),
        "scribble" => scribble(name, &args),
        _ => 2,
    };
    std::process::exit(code);
}

/// How long reserve/send calls waited (`--stall-report`).
#[derive(Default)]
struct Stalls {
    n: u64,
    max_ns: u64,
    max_at_ns: u64,
    over: [u64; 3],
}

impl Stalls {
    fn add(&mut self, start_ns: u64) {
        let now = monotonic_ns();
        let took = now.saturating_sub(start_ns);
        self.n += 1;
        if took > self.max_ns {
            self.max_ns = took;
            self.max_at_ns = now;
        }
        for (i, limit) in [1_000_000, 10_000_000, 100_000_000].into_iter().enumerate() {
            if took > limit {
                self.over[i] += 1;
            }
        }
    }
}

fn produce(name: &str, args: &[String]) -> i32 {
    let size: u32 = arg(args, "--size").unwrap_or(64);
    let policy = match arg::<String>(args, "--policy").as_deref() {
        Some("bp") => Policy::BackPressure,
        _ => Policy::Overwrite,
    };
    let opts = QueueOptions::new()
        .slots(arg(args, "--slots").unwrap_or(64))
        .slot_size(size)
        .policy(policy);
    let res = if flag(args, "--open") {
        Producer::open(name)
    } else {
        Producer::create(name, &opts)
    };
    let mut p = match res {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot open {name}: {e}");
            return 2;
        }
    };
    if let Some(us) = arg::<u64>(args, "--spin-us") {
        p.set_spin(Duration::from_micros(us));
    }
    let out = std::io::stdout();
    writeln!(out.lock(), "ready {}", p.next_seq()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let until_eof = flag(args, "--until-eof");
    if until_eof {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            stop.store(true, Ordering::SeqCst);
        });
    }
    if let Some(n) = arg::<usize>(args, "--wait-consumers") {
        while p.stats().live_consumers() < n {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let count: u64 = arg(args, "--count").unwrap_or(if until_eof { u64::MAX } else { 0 });
    let interval = Duration::from_micros(arg(args, "--interval-us").unwrap_or(0));
    let timeout = arg::<u64>(args, "--timeout-ms").map(Duration::from_millis);
    let text = flag(args, "--text");
    let copy = flag(args, "--copy");
    let size = size as usize;
    let min_size = arg::<usize>(args, "--min-size").unwrap_or(size).min(size);
    let burst: u64 = arg(args, "--burst").unwrap_or(0);
    let pause_us: u64 = arg(args, "--pause-us").unwrap_or(0);
    let hold_reserve_us: u64 = arg(args, "--hold-reserve-us").unwrap_or(0);
    let report = flag(args, "--stall-report");
    let mut rng = Rng::new(seed(args));
    let mut stalls = Stalls::default();
    let mut rec = vec![0u8; size];
    let mut burst_left = rng.range(1, burst);
    let mut sent = 0;
    let mut failed = None;
    while sent < count && !stop.load(Ordering::Relaxed) {
        let len = rng.range(min_size as u64, size as u64) as usize;
        let t0 = if report { monotonic_ns() } else { 0 };
        let res = if copy && !text {
            fill_record(&mut rec[..len], p.next_seq());
            let r = p.send_for(&rec[..len], timeout);
            if report {
                stalls.add(t0);
            }
            r.map_err(|e| format!("send: {e}"))
        } else {
            let mut r = match p.reserve_for(timeout) {
                Ok(r) => r,
                Err(e) => {
                    if report {
                        stalls.add(t0);
                    }
                    failed = Some(format!("reserve: {e}"));
                    break;
                }
            };
            if report {
                stalls.add(t0);
            }
            let seq = r.seq();
            let len = if text {
                let mut rec = [0u8; 80];
                let s = format!("write Data : {seq}");
                rec[..s.len()].copy_from_slice(s.as_bytes());
                r.buf()[..80].copy_from_slice(&rec);
                80
            } else if hold_reserve_us > 0 && rng.one_in(4) {
                // Hold the reservation open with half a record in the slot.
                fill_record(&mut rec[..len], seq);
                let half = len / 2;
                r.buf()[..half].copy_from_slice(&rec[..half]);
                r.buf()[half..len].fill(0xEE);
                std::thread::sleep(Duration::from_micros(rng.range(1, hold_reserve_us)));
                r.buf()[half..len].copy_from_slice(&rec[half..len]);
                len
            } else {
                fill_record(&mut r.buf()[..len], seq);
                len
            };
            r.commit(len).map_err(|e| format!("commit: {e}"))
        };
        if let Err(e) = res {
            failed = Some(e);
            break;
        }
        sent += 1;
        if !interval.is_zero() {
            std::thread::sleep(interval);
        }
        if burst > 0 {
            burst_left -= 1;
            if burst_left == 0 {
                burst_left = rng.range(1, burst);
                let us = rng.range(0, pause_us);
                if us > 0 {
                    std::thread::sleep(Duration::from_micros(us));
                }
            }
        }
    }
    if report {
        writeln!(
            out.lock(),
            "stalls n={} max_us={} over1ms={} over10ms={} over100ms={} max_at_ns={}",
            stalls.n,
            stalls.max_ns / 1000,
            stalls.over[0],
            stalls.over[1],
            stalls.over[2],
            stalls.max_at_ns
        )
        .unwrap();
    }
    if let Some(e) = failed {
        writeln!(out.lock(), "failed {e}").unwrap();
        out.lock().flush().unwrap();
        eprintln!("{e}");
        return 1;
    }
    writeln!(out.lock(), "sent {sent}").unwrap();
    out.lock().flush().unwrap();
    if flag(args, "--die-mid-record") {
        // Start the next record, write half of it, and die without committing.
        let mut r = p.reserve_for(timeout).expect("reserve");
        let half = size / 2;
        r.buf()[..half].fill(0xEE);
        // SAFETY: raising SIGKILL on ourselves; nothing runs after it.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    if flag(args, "--final-reserve") {
        // Open one more reservation, half written, and wait to be killed with it open.
        let mut r = p.reserve_for(timeout).expect("reserve");
        let seq = r.seq();
        fill_record(&mut rec, seq);
        let half = size / 2;
        r.buf()[..half].copy_from_slice(&rec[..half]);
        r.buf()[half..size].fill(0xEE);
        writeln!(out.lock(), "holding {seq}").unwrap();
        out.lock().flush().unwrap();
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    if flag(args, "--hold") {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    0
}

/// What a `--quiet` consumer checks as it goes, for its end line.
struct Track {
    first: Option<u64>,
    last: Option<u64>,
    dup: u64,
    order: u64,
    gaps: u64,
    torn: u64,
    t_last_ns: u64,
}

impl Track {
    fn saw(&mut self, seq: u64) {
        match self.last {
            Some(l) if seq == l => self.dup += 1,
            Some(l) if seq < l => self.order += 1,
            Some(l) => self.gaps += seq - l - 1,
            None => self.first = Some(seq),
        }
        self.last = Some(self.last.map_or(seq, |l| l.max(seq)));
        self.t_last_ns = monotonic_ns();
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn consume(name: &str, args: &[String]) -> i32 {
    let start = match arg::<String>(args, "--from").as_deref() {
        None | Some("newest") => Start::Newest,
        Some("oldest") => Start::Oldest,
        Some(s) => Start::Sequence(s.parse().expect("--from newest|oldest|SEQ")),
    };
    let mut c = match Consumer::open(name, start) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot open {name}: {e}");
            return 2;
        }
    };
    if let Some(us) = arg::<u64>(args, "--spin-us") {
        c.set_spin(Duration::from_micros(us));
    }
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let opened = c.position();
    writeln!(out, "opened {opened}").unwrap();
    out.flush().unwrap();
    if flag(args, "--hold") {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let count: u64 = arg(args, "--count").unwrap_or(u64::MAX);
    let slow = Duration::from_micros(arg(args, "--slow-us").unwrap_or(0));
    let timeout = arg::<u64>(args, "--timeout-ms").map(Duration::from_millis);
    let zero_copy = flag(args, "--zero-copy");
    let text = flag(args, "--text");
    let survive = flag(args, "--survive");
    let flush_each = flag(args, "--flush-each");
    let quiet = flag(args, "--quiet");
    let hold_read_us: u64 = arg(args, "--hold-read-us").unwrap_or(0);
    let mut rng = Rng::new(seed(args));
    let mut reported_gone = false;
    let mut buf = vec![0u8; c.info().slot_size as usize];
    let mut track = Track {
        first: None,
        last: None,
        dup: 0,
        order: 0,
        gaps: 0,
        torn: 0,
        t_last_ns: 0,
    };
    let mut received = 0u64;
    let mut status = "done";
    let mut code = 0;
    let mut t_end_ns = 0;
    let after_dead_ms: u64 = arg(args, "--after-dead-ms").unwrap_or(0);
    let mut timeout = timeout;
    // Records received in the second look after `ProducerDead` (`--after-dead-ms`).
    let mut after_dead: Option<u64> = None;
    let mut t_last_at_dead = 0;
    let poll_fd = if flag(args, "--poll") {
        match c.fd() {
            Ok(fd) => Some(fd),
            Err(e) => {
                eprintln!("fd: {e}");
                return 1;
            }
        }
    } else {
        None
    };
    let (mut polls, mut empty, mut just_woke) = (0u64, 0u64, false);
    while received < count {
        // (sequence number, what its pattern says, the bytes when --text wants them)
        let res = if let Some(fd) = poll_fd {
            match c.recv_seq_for(&mut buf, Some(Duration::ZERO)) {
                Err(Error::WouldBlock) => {
                    if just_woke {
                        empty += 1;
                    }
                    match wait_readable(fd, timeout) {
                        Ok(true) => {
                            polls += 1;
                            just_woke = true;
                            continue;
                        }
                        Ok(false) => Err(Error::Timeout),
                        Err(e) => {
                            writeln!(out, "error poll: {e}").unwrap();
                            status = "error";
                            code = 1;
                            break;
                        }
                    }
                }
                r => {
                    just_woke = false;
                    r.map(|(seq, n)| {
                        let data = if text { buf[..n].to_vec() } else { Vec::new() };
                        (seq, check_record(&buf[..n]), data)
                    })
                }
            }
        } else if zero_copy {
            match c.read_for(timeout) {
                Ok(g) => {
                    let seq = g.seq();
                    // In place where the queue keeps the slot stable; an overwrite queue's
                    // producer may rewrite it meanwhile, so its record is checked on a copy.
                    let (verdict, data) = match g.data() {
                        Ok(d) => (check_record(d), if text { d.to_vec() } else { Vec::new() }),
                        Err(_) => {
                            let copy = g.bytes().to_vec();
                            (check_record(&copy), if text { copy } else { Vec::new() })
                        }
                    };
                    if hold_read_us > 0 {
                        std::thread::sleep(Duration::from_micros(rng.range(0, hold_read_us)));
                    }
                    match g.release() {
                        Ok(()) => Ok((seq, verdict, data)),
                        Err(Error::Overrun) => continue,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        } else {
            c.recv_seq_for(&mut buf, timeout).map(|(seq, n)| {
                let data = if text { buf[..n].to_vec() } else { Vec::new() };
                (seq, check_record(&buf[..n]), data)
            })
        };
        match res {
            Ok((seq, verdict, data)) => {
                track.saw(seq);
                if text {
                    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                    writeln!(out, "text {seq} {}", String::from_utf8_lossy(&data[..end])).unwrap();
                } else if verdict != Some(seq) {
                    track.torn += 1;
                    if !quiet {
                        writeln!(out, "bad {seq} {verdict:?}").unwrap();
                        status = "bad";
                        code = 1;
                        break;
                    }
                } else if !quiet {
                    writeln!(out, "rec {seq}").unwrap();
                }
                received += 1;
                if flush_each {
                    out.flush().unwrap();
                }
                if let Some(n) = after_dead.as_mut() {
                    *n += 1;
                }
                if !slow.is_zero() {
                    std::thread::sleep(slow);
                }
            }
            Err(Error::ProducerDead) if survive => {
                if !reported_gone {
                    writeln!(out, "gone dead").unwrap();
                    out.flush().unwrap();
                    reported_gone = true;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(Error::ProducerDead | Error::WouldBlock) if after_dead.is_some() => break,
            Err(Error::ProducerDead) if after_dead_ms > 0 => {
                // The documented limit: a record committed at the very instant of the death
                // may become visible just after `ProducerDead`; look once more, later.
                t_end_ns = monotonic_ns();
                (status, code) = ("dead", 3);
                t_last_at_dead = track.t_last_ns;
                std::thread::sleep(Duration::from_millis(after_dead_ms));
                timeout = Some(Duration::ZERO);
                after_dead = Some(0);
            }
            Err(e) => {
                t_end_ns = monotonic_ns();
                (status, code) = match e {
                    Error::ProducerDead => ("dead", 3),
                    Error::Closed => ("closed", 0),
                    Error::Timeout => ("timeout", 4),
                    Error::Corrupt(_) => ("corrupt", 1),
                    _ => ("error", 1),
                };
                if code == 1 {
                    writeln!(out, "error {e}").unwrap();
                }
                break;
            }
        }
    }
    if poll_fd.is_some() {
        writeln!(out, "polls {polls} empty {empty}").unwrap();
    }
    if t_end_ns == 0 {
        t_end_ns = monotonic_ns();
    }
    if after_dead.is_some() {
        // The last record before the death was reported, not one found in the second look.
        track.t_last_ns = t_last_at_dead;
    }
    writeln!(
        out,
        "end {status} received={received} lost={} start={opened} first={} last={} dup={} \
         order={} gaps={} torn={} t_last_ns={} t_end_ns={t_end_ns} after_dead={}",
        c.lost(),
        opt(track.first),
        opt(track.last),
        track.dup,
        track.order,
        track.gaps,
        track.torn,
        track.t_last_ns,
        after_dead.unwrap_or(0),
    )
    .unwrap();
    out.flush().unwrap();
    code
}

/// Waits with `poll(2)` until `fd` is readable (true) or `timeout` passes (false).
fn wait_readable(fd: RawFd, timeout: Option<Duration>) -> std::io::Result<bool> {
    let ms = timeout.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as i32);
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: `p` is one live, writable pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r >= 0 {
            return Ok(r > 0);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `scribble PATH SEED MS`: random bytes into the live header, consumer slots and slot headers.
fn scribble(path: &str, args: &[String]) -> i32 {
    use std::os::unix::fs::FileExt;
    let num = |i: usize| -> u64 {
        args.get(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("usage: shmio-qtool scribble PATH SEED MS"))
    };
    let (seed, ms) = (num(2), num(3));
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cannot open {path}: {e}");
            return 2;
        }
    };
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let word = |off: u64, len: usize| -> u64 {
        let mut b = [0u8; 8];
        let _ = f.read_exact_at(&mut b[..len], off);
        u64::from_le_bytes(b)
    };
    // Config: slot_count @20, slot_stride @28, consumers_offset @40, slots_offset @48.
    let (slots, stride) = (word(20, 4), word(28, 4));
    let (consumers, base) = (word(40, 8), word(48, 8));
    let mut rng = Rng::new(seed);
    let pause = Duration::from_micros(*rng.pick(&[0, 10, 100]));
    let until = std::time::Instant::now() + Duration::from_millis(ms);
    let mut n = 0u64;
    while std::time::Instant::now() < until {
        let off = match rng.range(0, 2) {
            0 => rng.range(0, 639),
            1 => consumers.saturating_add(rng.range(0, 4 * 128 - 1)),
            _ => base
                .saturating_add(rng.range(0, slots.max(1) - 1).saturating_mul(stride))
                .saturating_add(rng.range(0, 15)),
        };
        let len = rng.range(1, 8);
        if off.saturating_add(len) > size {
            continue;
        }
        let bytes = rng.next_u64().to_le_bytes();
        if f.write_all_at(&bytes[..len as usize], off).is_ok() {
            n += 1;
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    println!("done {n}");
    0
}
