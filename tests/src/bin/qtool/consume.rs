//! `shmio-qtool consume`: a consumer that checks every record and ends with an [`EndLine`].

use std::io::Write;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use shmio::queue::{Consumer, Error, Resume, Start};
use shmio_tests::{EndLine, Rng, check_record, monotonic_ns};

use crate::{arg, flag, opened, seed, spin};

pub fn consume(name: &str, args: &[String]) -> i32 {
    let start = match arg::<String>(args, "--from").as_deref() {
        None | Some("newest") => Start::Newest,
        Some("oldest") => Start::Oldest,
        Some(s) => Start::Sequence(s.parse().expect("--from newest|oldest|SEQ")),
    };
    let Some(mut c) = opened(name, Consumer::open(name, start)) else {
        return 2;
    };
    if let Some(d) = spin(args) {
        c.set_spin(d);
    }
    match arg::<String>(args, "--resume").as_deref() {
        None => {}
        Some("near-oldest") => c.set_resume(Resume::NearOldest),
        Some("half-ring") => c.set_resume(Resume::HalfRing),
        Some("newest") => c.set_resume(Resume::Newest),
        Some("oldest") => c.set_resume(Resume::Oldest),
        Some(n) => c.set_resume(Resume::Behind(
            n.parse()
                .expect("--resume near-oldest|half-ring|newest|oldest|N"),
        )),
    }
    let work = Duration::from_nanos(arg(args, "--work-ns").unwrap_or(0));
    // The longest `try_recv` (`--poll`) in time and in CPU time, and the process's CPU time at
    // the start.
    let (mut max_try_ns, mut max_try_cpu_ns) = (0u64, 0u64);
    let cpu_at_start = cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID);
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
    // What a `--quiet` consumer checks as it goes, for its end line.
    let mut track = EndLine {
        start: opened,
        ..EndLine::default()
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
            let (t, cpu) = (Instant::now(), cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID));
            let r = c.recv_seq_for(&mut buf, Some(Duration::ZERO));
            max_try_cpu_ns = max_try_cpu_ns.max(cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID) - cpu);
            max_try_ns = max_try_ns.max(t.elapsed().as_nanos() as u64);
            match r {
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
                if !work.is_zero() {
                    let t = Instant::now();
                    while t.elapsed() < work {
                        std::hint::spin_loop();
                    }
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
        let cpu = cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID) - cpu_at_start;
        writeln!(
            out,
            "try max_ns {max_try_ns} max_cpu_ns {max_try_cpu_ns} cpu_ns {cpu}"
        )
        .unwrap();
    }
    if t_end_ns == 0 {
        t_end_ns = monotonic_ns();
    }
    if after_dead.is_some() {
        // The last record before the death was reported, not one found in the second look.
        track.t_last_ns = t_last_at_dead;
    }
    track.status = status.to_string();
    track.received = received;
    track.lost = c.lost();
    track.t_end_ns = t_end_ns;
    track.after_dead = after_dead.unwrap_or(0);
    writeln!(out, "{track}").unwrap();
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

/// CPU time by `clock` (this process's or this thread's), in ns.
fn cpu_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, writable timespec; the clock exists on Linux.
    let r = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(r, 0, "clock_gettime({clock})");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
