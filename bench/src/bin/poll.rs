//! The pipe-chain dispatch benchmark (libevent's `test/bench.c`): N socket pairs, A of them
//! active; each read event reads the byte(s) and writes one byte to the next pair, so A
//! tokens circulate around the ring. Every shmio backend against a hand-written raw epoll
//! loop, in the same run; prints ns per event and system calls per event.
//!
//! ```text
//! shmio-poll-bench [EVENTS_PER_RUN] [--reps K]
//!     EVENTS_PER_RUN: default 20,000 for A=1, 100,000 for A=100; at N > 5,000 a tenth
//!                     (at least 1,000, or all of a smaller EVENTS_PER_RUN), for every backend
//!     --reps K:       runs of every cell (default 5)
//! ```
//!
//! Every cell is the best of the same K runs, interleaved (round r runs every backend once),
//! with its spread, (max - min) / median: no backend gets fewer samples than another. (The O(N)
//! backends once ran a single sample at N > 5,000, and one unlucky sample of `poll` at 9,900
//! fds printed 4.7 ms per event where it measures 0.7-1.3 ms.) At N > 5,000 every backend runs
//! fewer events per run instead, which keeps `poll`'s runs there (about 1 ms per event at
//! A = 1) to seconds.
//!
//! A program, not a test: nothing here is asserted.

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use shmio::poll::{Backend, Events, Interest, Poller};

fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a live rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    assert_eq!(rc, 0);
    // Root may raise the hard limit too (N = 10,000 needs 20,000+ fds); else use the hard one.
    let want = libc::rlimit {
        rlim_cur: r.rlim_max.max(65_536),
        rlim_max: r.rlim_max.max(65_536),
    };
    // SAFETY: `want` is a live rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
        return want.rlim_cur;
    }
    r.rlim_cur = r.rlim_max;
    // SAFETY: `r` is a live rlimit.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
    assert_eq!(rc, 0);
    r.rlim_cur
}

fn read_all(fd: RawFd) -> usize {
    let mut buf = [0u8; 64];
    let mut total = 0;
    loop {
        // SAFETY: a live, writable buffer.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            return total;
        }
        total += r as usize;
    }
}

fn write1(fd: RawFd) {
    // SAFETY: a live one-byte buffer.
    let r = unsafe { libc::write(fd, b"e".as_ptr().cast(), 1) };
    assert_eq!(r, 1);
}

struct Ring {
    pairs: Vec<(UnixStream, UnixStream)>,
}

impl Ring {
    fn new(n: usize) -> Ring {
        let pairs = (0..n)
            .map(|_| {
                let (a, b) = UnixStream::pair().unwrap();
                a.set_nonblocking(true).unwrap();
                b.set_nonblocking(true).unwrap();
                (a, b)
            })
            .collect();
        Ring { pairs }
    }
    fn start(&self, active: usize) {
        let n = self.pairs.len();
        for k in 0..active {
            write1(self.pairs[k * n / active].1.as_raw_fd());
        }
    }
    /// One event on pair `i`: take its bytes, pass each on.
    fn fire(&self, i: usize) -> usize {
        let got = read_all(self.pairs[i].0.as_raw_fd());
        let next = self.pairs[(i + 1) % self.pairs.len()].1.as_raw_fd();
        for _ in 0..got {
            write1(next);
        }
        got
    }
}

/// Runs `events` hops on `backend`; returns (ns per event, syscalls per event).
fn run_shmio(backend: Backend, n: usize, active: usize, events: usize) -> (f64, f64) {
    let ring = Ring::new(n);
    let mut p = Poller::new(backend).unwrap();
    for (i, (a, _)) in ring.pairs.iter().enumerate() {
        p.register(a.as_raw_fd(), i as u64, Interest::READABLE)
            .unwrap();
    }
    let mut ev = Events::with_capacity(256);
    p.wait(&mut ev, Some(Duration::ZERO)).unwrap();
    let s0 = p.stats();
    ring.start(active);
    let t0 = Instant::now();
    let mut done = 0;
    while done < events {
        p.wait(&mut ev, Some(Duration::from_secs(5))).unwrap();
        assert!(!ev.is_empty(), "{backend:?}: stalled");
        for e in &ev {
            done += ring.fire(e.token as usize);
        }
    }
    let dt = t0.elapsed();
    let s = p.stats();
    // The ring's own read/write calls: 2 or so per hop; count only the poller's.
    let sys = (s.syscalls - s0.syscalls) as f64 / done as f64;
    (dt.as_nanos() as f64 / done as f64, sys)
}

/// The same loop on a hand-written epoll (level-triggered), no shmio in between.
fn run_raw_epoll(n: usize, active: usize, events: usize) -> (f64, f64) {
    let ring = Ring::new(n);
    // SAFETY: plain syscall.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0);
    for (i, (a, _)) in ring.pairs.iter().enumerate() {
        let mut e = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: a live epoll_event.
        let rc = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, a.as_raw_fd(), &mut e) };
        assert_eq!(rc, 0);
    }
    let mut buf = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    ring.start(active);
    let t0 = Instant::now();
    let (mut done, mut waits) = (0, 0u64);
    while done < events {
        // SAFETY: `buf` holds 256 events.
        let k = unsafe { libc::epoll_wait(ep, buf.as_mut_ptr(), 256, 5000) };
        waits += 1;
        assert!(k > 0, "raw epoll stalled");
        for e in &buf[..k as usize] {
            done += ring.fire(e.u64 as usize);
        }
    }
    let dt = t0.elapsed();
    // SAFETY: our own epoll fd, closed once.
    unsafe { libc::close(ep) };
    (
        dt.as_nanos() as f64 / done as f64,
        waits as f64 / done as f64,
    )
}

/// Runs of every cell unless `--reps` says otherwise.
const REPS: usize = 5;

/// Rings larger than this run a tenth of the events per run, every backend alike.
const LARGE_N: usize = 5000;

/// Events per run at `n` pairs: `events`, or at N > [`LARGE_N`] a tenth of it (at least 1,000,
/// or all of a smaller `events`).
fn events_at(n: usize, events: usize) -> usize {
    if n > LARGE_N {
        (events / 10).max(events.min(1000))
    } else {
        events
    }
}

/// A cell's runs: the best (fewest ns per event) with its syscalls per event, and the spread
/// of the ns, (max - min) / median. `None`: the cell did not run.
fn summary(runs: &[(f64, f64)]) -> Option<((f64, f64), f64)> {
    let best = *runs.iter().min_by(|x, y| x.0.total_cmp(&y.0))?;
    let mut ns: Vec<f64> = runs.iter().map(|r| r.0).collect();
    ns.sort_by(f64::total_cmp);
    let median = ns[ns.len() / 2];
    let spread = if median > 0.0 {
        (ns[ns.len() - 1] - ns[0]) / median
    } else {
        0.0
    };
    Some((best, spread))
}

/// One cell as printed: `ns (syscalls) spread%`, or why it did not run.
fn cell(runs: &[(f64, f64)]) -> String {
    match summary(runs) {
        Some(((ns, sys), spread)) => format!("{ns:>7.0} ({sys:.2}) {:>3.0}%", spread * 100.0),
        // select: an fd above 1023; rtsig: RLIMIT_NOFILE too low for 3 per pair.
        None => format!("{:>19}", "n/a (fds)"),
    }
}

/// The command line: EVENTS_PER_RUN and `--reps K`; exits with status 2 on anything else.
fn args() -> (Option<usize>, usize) {
    let usage = || -> ! {
        eprintln!("usage: shmio-poll-bench [EVENTS_PER_RUN] [--reps K]  (K >= 1, default {REPS})");
        std::process::exit(2)
    };
    let (mut events, mut reps) = (None, REPS);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--reps" {
            reps = it
                .next()
                .and_then(|k| k.parse().ok())
                .filter(|&k| k > 0)
                .unwrap_or_else(|| usage());
        } else if let (None, Ok(e)) = (events, a.parse::<usize>()) {
            events = Some(e);
        } else {
            usage();
        }
    }
    (events, reps)
}

fn main() {
    let (arg, reps) = args();
    let nofile = raise_nofile();
    println!(
        "pipe-chain dispatch: ns per event (poller syscalls per event) and the spread, (max - \
         min) / median, of every cell's {reps} runs, best of {reps}, interleaved; at N > \
         {LARGE_N} a tenth of the events per run, for every backend"
    );
    println!(
        "{:>6} {:>4} | {:>19} | {:>19} {:>19} {:>19} {:>19} {:>19} {:>19} | {:>9}",
        "N",
        "A",
        "raw epoll",
        "select",
        "poll",
        "epoll",
        "epoll-et",
        "rtsig",
        "rtsig-onefd",
        "epoll/raw"
    );
    for n in [100usize, 1000, 10_000] {
        // With a hard RLIMIT_NOFILE of 20,000, "10,000" becomes 9,900 pairs (printed as is).
        let n = n.min((nofile as usize).saturating_sub(200) / 2);
        for a in [1usize, 100] {
            let events = events_at(n, arg.unwrap_or(if a == 1 { 20_000 } else { 100_000 }));
            let mut raw = Vec::new();
            let mut res: [Vec<(f64, f64)>; 6] = Default::default();
            for _ in 0..reps {
                raw.push(run_raw_epoll(n, a, events));
                for (k, b) in Backend::ALL.into_iter().enumerate() {
                    if b == Backend::Select && 2 * n + 16 > 1024 {
                        continue;
                    }
                    // The RT-signal backends hold a duplicate of every registered fd: a third
                    // descriptor per pair.
                    let rt = matches!(b, Backend::RtSig | Backend::RtSigOneFd);
                    if rt && 3 * n + 200 > nofile as usize {
                        continue;
                    }
                    res[k].push(run_shmio(b, n, a, events));
                }
            }
            let mut row = format!("{n:>6} {a:>4} | {} |", cell(&raw));
            for r in &res {
                row += &format!(" {}", cell(r));
            }
            // shmio's epoll against the raw loop, best against best.
            let ratio = summary(&res[2])
                .zip(summary(&raw))
                .map_or(f64::NAN, |((e, _), (r, _))| e.0 / r.0);
            row += &format!(" | {ratio:>9.2}");
            println!("{row}");
        }
    }
}
