//! RT-signal queue overflow, run in its own process because `RLIMIT_SIGPENDING` is lowered:
//!
//! ```text
//! shmio-poll-overflow rtsig|rtsig-onefd [NFDS] [SIGPENDING]
//! ```
//!
//! Registers NFDS (default 1,000) socket ends, makes them all readable at once (phase A), takes
//! every event, then writes three more bytes to every socket without reading (phase B) and
//! takes every event again. Prints `key=value` lines: `sigq_0`/`sigq_a`/`sigq_b` (the
//! queued-signal count of /proc/self/status `SigQ`, which counts every process of this user,
//! before and right after each burst of writes), `seen_a`/`seen_b`
//! (distinct fds reported), `overflows_a`/`overflows_b`, and the poller's counters.

use std::collections::HashSet;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use shmio::poll::{Backend, Events, Interest, Poller};

fn set_limit(res: libc::__rlimit_resource_t, cur: u64, max: Option<u64>) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a live rlimit.
    let rc = unsafe { libc::getrlimit(res, &mut r) };
    assert_eq!(rc, 0);
    r.rlim_cur = cur.min(r.rlim_max);
    if let Some(m) = max {
        r.rlim_max = m;
    }
    // SAFETY: `r` is a live rlimit.
    let rc = unsafe { libc::setrlimit(res, &r) };
    assert_eq!(rc, 0, "setrlimit");
}

/// Queued signals of this user, from /proc/self/status `SigQ: queued/limit`.
fn sigq() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("SigQ:")).unwrap();
    let v = line["SigQ:".len()..].trim();
    v.split('/').next().unwrap().parse().unwrap()
}

fn collect(p: &mut Poller, n: usize) -> usize {
    let mut ev = Events::with_capacity(256);
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < n && Instant::now() < deadline {
        p.wait(&mut ev, Some(Duration::from_millis(200))).unwrap();
        for e in &ev {
            assert!(e.readable, "{e:?}");
            seen.insert(e.token);
        }
    }
    seen.len()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let backend = Backend::from_name(args.get(1).map_or("rtsig", |s| s)).expect("backend name");
    let n: usize = args.get(2).map_or(1000, |s| s.parse().unwrap());
    let limit: u64 = args.get(3).map_or(32, |s| s.parse().unwrap());
    // Two per socket pair, and one more per registration: the RT-signal backends keep a
    // duplicate of every registered fd (core/src/poll/selector/rtsig.rs, "What belongs to the open
    // file").
    set_limit(libc::RLIMIT_NOFILE, 3 * n as u64 + 256, None);
    // The limit counts the queued signals of every process of this user: if others hold
    // many, leave room for ours (the printed `limit` is what was set).
    let base = sigq();
    let limit = if base > limit / 2 {
        base + limit
    } else {
        limit
    };
    set_limit(libc::RLIMIT_SIGPENDING, limit, Some(limit));
    println!("limit={limit}");

    let mut p = Poller::new(backend).unwrap();
    let pairs: Vec<(UnixStream, UnixStream)> = (0..n)
        .map(|_| {
            let (a, b) = UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            (a, b)
        })
        .collect();
    for (i, (a, _)) in pairs.iter().enumerate() {
        p.register(a.as_raw_fd(), i as u64, Interest::READABLE)
            .unwrap();
    }
    let mut ev = Events::with_capacity(256);
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0);

    println!("sigq_0={}", sigq());
    // Phase A: every socket readable at once.
    for (_, b) in &pairs {
        (&*b).write_all(b"a").unwrap();
    }
    println!("sigq_a={}", sigq());
    println!("seen_a={}", collect(&mut p, n));
    let sa = p.stats();
    println!("overflows_a={}", sa.overflows);

    // Phase B: three more writes per socket, nothing read.
    for (_, b) in &pairs {
        for _ in 0..3 {
            (&*b).write_all(b"b").unwrap();
        }
    }
    println!("sigq_b={}", sigq());

    println!("seen_b={}", collect(&mut p, n));
    let s = p.stats();
    println!("overflows_b={}", s.overflows);
    // Signals this process took in phase B: counted by the poller, not shared with anyone.
    println!("signals_b={}", s.signals - sa.signals);
    println!("signals={}", s.signals);
    println!("stale_signals={}", s.stale_signals);
    println!("max_signals_per_fd={}", s.max_signals_per_fd);
    println!("waits={}", s.waits);
    println!("syscalls={}", s.syscalls);
    println!("events={}", s.events);
}
