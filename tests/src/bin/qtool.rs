//! `shmio-qtool`: a producer or consumer process driven by the end-to-end tests.
//!
//! ```text
//! shmio-qtool produce NAME [--create|--open] [--slots N] [--size N] [--policy overwrite|bp]
//!                          [--count N] [--interval-us N] [--wait-consumers N] [--hold]
//!                          [--text] [--die-mid-record] [--timeout-ms N]
//! shmio-qtool consume NAME [--from newest|oldest|SEQ] [--count N] [--slow-us N]
//!                          [--zero-copy] [--text] [--timeout-ms N] [--hold] [--survive]
//!                          [--poll] [--flush-each]
//! ```
//! Producer prints `ready` once it holds the queue, `sent N` at the end. Consumer prints
//! `opened POS`, `rec SEQ` per record (`text ...` with --text), and a final
//! `end STATUS received=N lost=M`. Exit codes as the C consumer: 0 done or closed, 3 producer
//! dead, 2 cannot open, 4 timeout, 1 other. With `--survive` a consumer that finds the producer
//! dead prints `gone dead` once and keeps trying, for a new producer to take over.
//! With `--poll` a consumer never blocks in the queue: it waits with `poll(2)` on
//! `Consumer::fd()` (`--timeout-ms` bounds each poll) and then calls `try_recv` until
//! `WouldBlock`; it prints `polls N empty M` before the end line (M: wake-ups after which the
//! first `try_recv` found nothing). `--flush-each` flushes stdout after every record line
//! (by default it is flushed only after `opened`, `gone dead` and at the end).

use std::io::Write;
use std::os::fd::RawFd;
use std::time::Duration;

use shmio::queue::{Consumer, Error, Policy, Producer, QueueOptions, Start};
use shmio_tests::{check_record, fill_record};

fn arg<T: std::str::FromStr>(args: &[String], flag: &str) -> Option<T> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("bad value for {flag}")))
}

fn flag(args: &[String], flag: &str) -> bool {
    args.iter().any(|a| a == flag)
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
        _ => 2,
    };
    std::process::exit(code);
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
    let out = std::io::stdout();
    writeln!(out.lock(), "ready {}", p.next_seq()).unwrap();
    if let Some(n) = arg::<usize>(args, "--wait-consumers") {
        while p.stats().live_consumers() < n {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let count: u64 = arg(args, "--count").unwrap_or(0);
    let interval = Duration::from_micros(arg(args, "--interval-us").unwrap_or(0));
    let timeout = arg::<u64>(args, "--timeout-ms").map(Duration::from_millis);
    let text = flag(args, "--text");
    let size = size as usize;
    let mut sent = 0;
    for _ in 0..count {
        let res = {
            let mut r = match p.reserve_for(timeout) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("reserve: {e}");
                    return 1;
                }
            };
            let seq = r.seq();
            let len = if text {
                let mut rec = [0u8; 80];
                let s = format!("write Data : {seq}");
                rec[..s.len()].copy_from_slice(s.as_bytes());
                r.buf()[..80].copy_from_slice(&rec);
                80
            } else {
                fill_record(&mut r.buf()[..size], seq);
                size
            };
            r.commit(len)
        };
        if let Err(e) = res {
            eprintln!("commit: {e}");
            return 1;
        }
        sent += 1;
        if !interval.is_zero() {
            std::thread::sleep(interval);
        }
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
    if flag(args, "--hold") {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    0
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
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    writeln!(out, "opened {}", c.position()).unwrap();
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
    let mut reported_gone = false;
    let mut buf = vec![0u8; c.info().slot_size as usize];
    let mut received = 0u64;
    let mut status = "done";
    let mut code = 0;
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
                    r.map(|(seq, n)| (seq, buf[..n].to_vec()))
                }
            }
        } else if zero_copy {
            match c.read_for(timeout) {
                Ok(g) => {
                    let seq = g.seq();
                    let data = g.data().to_vec();
                    match g.release() {
                        Ok(()) => Ok((seq, data)),
                        Err(Error::Overrun) => continue,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        } else {
            c.recv_seq_for(&mut buf, timeout)
                .map(|(seq, n)| (seq, buf[..n].to_vec()))
        };
        match res {
            Ok((seq, data)) => {
                if text {
                    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                    writeln!(out, "text {seq} {}", String::from_utf8_lossy(&data[..end])).unwrap();
                } else {
                    match check_record(&data) {
                        Some(s) if s == seq => writeln!(out, "rec {seq}").unwrap(),
                        other => {
                            writeln!(out, "bad {seq} {other:?}").unwrap();
                            status = "bad";
                            code = 1;
                            break;
                        }
                    }
                }
                received += 1;
                if flush_each {
                    out.flush().unwrap();
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
            Err(Error::ProducerDead) => {
                status = "dead";
                code = 3;
                break;
            }
            Err(Error::Closed) => {
                status = "closed";
                break;
            }
            Err(Error::Timeout) => {
                status = "timeout";
                code = 4;
                break;
            }
            Err(e) => {
                writeln!(out, "error {e}").unwrap();
                status = "error";
                code = 1;
                break;
            }
        }
    }
    if poll_fd.is_some() {
        writeln!(out, "polls {polls} empty {empty}").unwrap();
    }
    writeln!(out, "end {status} received={received} lost={}", c.lost()).unwrap();
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
