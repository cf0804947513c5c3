//! Property test of every poller backend against epoll as the oracle.
//!
//! A seeded xorshift generator drives random sequences over a few pipes and socket pairs:
//! write a byte, drain, register, deregister, modify (new token), and wait with a random event
//! capacity (timeout 0; the test is single-threaded, so readiness only changes with its own
//! operations, and an RT signal is queued before `write` returns). A level-triggered epoll
//! over the same fds, waited with room for all of them, gives the ready set at each wait.
//!
//! Every backend must, at every wait:
//! - report only registered fds that are ready, with their current token, each at most once;
//! - level-triggered and level-like ones (`select`, `poll`, `epoll`, `rtsig-onefd`): report
//!   `min(capacity, ready)` events;
//! - never starve or go deaf: a level-like backend reports an fd that stays ready within
//!   `registered + 1` waits; an edge-triggered one (`epoll-et`, `rtsig`) reports an fd that got
//!   new data (or was registered/modified while ready) within as many waits, unless the fd was
//!   drained first.
//!
//! `cargo test` runs a fixed seed, a few seconds in all. `scripts/poll_property.sh N` runs N
//! cases from a random seed (printed); `SHMIO_POLL_PROP_SEED` and `SHMIO_POLL_PROP_CASES` set
//! them. A failure prints the seed of the failing case and its operations: rerun with that
//! seed and `SHMIO_POLL_PROP_CASES=1` to replay it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use shmio::poll::{Backend, Events, Interest, Poller};

const DEFAULT_SEED: u64 = 0x5eed_0017_d00d_f00d;
const DEFAULT_CASES: u64 = 400;
const STEPS: usize = 60;

/// xorshift64*, seeded through splitmix64 (a zero seed is fine).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// One watched fd: its read end (registered) and the end the test writes to.
struct Chan {
    read: OwnedFd,
    write: OwnedFd,
}

fn pipe() -> Chan {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a live array of two ints.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 returned two fresh descriptors we now own.
    unsafe {
        Chan {
            read: OwnedFd::from_raw_fd(fds[0]),
            write: OwnedFd::from_raw_fd(fds[1]),
        }
    }
}

fn socketpair() -> Chan {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    Chan {
        read: a.into(),
        write: b.into(),
    }
}

fn write_byte(fd: RawFd) {
    // SAFETY: a live one-byte buffer.
    let n = unsafe { libc::write(fd, b"p".as_ptr().cast(), 1) };
    assert_eq!(n, 1, "write: {}", std::io::Error::last_os_error());
}

fn drain(fd: RawFd) {
    let mut buf = [0u8; 512];
    // SAFETY: a live, writable buffer; the fd is non-blocking.
    while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// What the model knows of one fd.
#[derive(Default, Clone, Copy)]
struct Model {
    registered: bool,
    token: u64,
    /// Bytes written and not drained.
    bytes: u32,
    /// Edge-triggered: readiness happened that the backend has not reported yet.
    owed: bool,
    /// Consecutive waits since the fd was owed (edge) or ready (level) without a report.
    missed: usize,
}

fn run_case(b: Backend, seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let n = 2 + rng.below(5) as usize;
    let chans: Vec<Chan> = (0..n)
        .map(|i| if i % 2 == 0 { pipe() } else { socketpair() })
        .collect();
    let mut p = Poller::new(b).map_err(|e| format!("new: {e}"))?;
    let mut oracle = Poller::new(Backend::Epoll).unwrap();
    let mut models = vec![Model::default(); n];
    let mut log = String::new();
    let mut serial = 0u64;
    let mut oracle_events = Events::with_capacity(n);
    let mut events = Events::with_capacity(1);
    let edge = b.is_edge_triggered();
    let result = (|| -> Result<(), String> {
        for step in 0..STEPS {
            let i = rng.below(n as u64) as usize;
            let fd = chans[i].read.as_raw_fd();
            let m = &mut models[i];
            match rng.below(10) {
                0..=2 => {
                    let _ = write!(log, " w{i}");
                    write_byte(chans[i].write.as_raw_fd());
                    m.bytes += 1;
                    if m.registered {
                        m.owed = true;
                    }
                }
                3 => {
                    let _ = write!(log, " d{i}");
                    drain(fd);
                    m.bytes = 0;
                    m.owed = false;
                    m.missed = 0;
                }
                4 => {
                    serial += 1;
                    let token = (i as u64) << 32 | serial;
                    if m.registered {
                        let _ = write!(log, " u{i}");
                        p.deregister(fd).map_err(|e| format!("deregister: {e}"))?;
                        oracle.deregister(fd).unwrap();
                        *m = Model {
                            bytes: m.bytes,
                            ..Model::default()
                        };
                    } else {
                        let _ = write!(log, " r{i}");
                        p.register(fd, token, Interest::READABLE)
                            .map_err(|e| format!("register: {e}"))?;
                        oracle.register(fd, token, Interest::READABLE).unwrap();
                        *m = Model {
                            registered: true,
                            token,
                            bytes: m.bytes,
                            owed: m.bytes > 0,
                            missed: 0,
                        };
                    }
                }
                5 if m.registered => {
                    let _ = write!(log, " m{i}");
                    serial += 1;
                    let token = (i as u64) << 32 | serial;
                    p.modify(fd, token, Interest::READABLE)
                        .map_err(|e| format!("modify: {e}"))?;
                    oracle.modify(fd, token, Interest::READABLE).unwrap();
                    m.token = token;
                    m.owed = m.bytes > 0;
                    m.missed = 0;
                }
                _ => {
                    let cap = 1 + rng.below(n as u64) as usize;
                    let _ = write!(log, " W{cap}");
                    if events.capacity() != cap {
                        events = Events::with_capacity(cap);
                    }
                    oracle
                        .wait(&mut oracle_events, Some(Duration::ZERO))
                        .unwrap();
                    let ready: HashMap<u64, usize> = oracle_events
                        .iter()
                        .map(|e| {
                            let i = (e.token >> 32) as usize;
                            (e.token, i)
                        })
                        .collect();
                    // The oracle agrees with the model.
                    for (i, m) in models.iter().enumerate() {
                        let want = m.registered && m.bytes > 0;
                        if ready.contains_key(&m.token) != want
                            || (!m.registered && ready.values().any(|&j| j == i))
                        {
                            return Err(format!(
                                "step {step}: epoll disagrees with the model on fd #{i}"
                            ));
                        }
                    }
                    p.wait(&mut events, Some(Duration::ZERO))
                        .map_err(|e| format!("wait: {e}"))?;
                    let got: Vec<u64> = events.iter().map(|e| e.token).collect();
                    let _ = write!(log, "={got:?}");
                    let mut seen = Vec::new();
                    for e in events.iter() {
                        let Some(&i) = ready.get(&e.token) else {
                            return Err(format!(
                                "step {step}: token {:#x} reported but not ready (or stale)",
                                e.token
                            ));
                        };
                        if seen.contains(&i) {
                            return Err(format!("step {step}: fd #{i} reported twice"));
                        }
                        if !e.readable {
                            return Err(format!(
                                "step {step}: fd #{i} reported not readable: {e:?}"
                            ));
                        }
                        seen.push(i);
                    }
                    if !edge && got.len() != cap.min(ready.len()) {
                        return Err(format!(
                            "step {step}: {} events for {} ready fds and capacity {cap}",
                            got.len(),
                            ready.len()
                        ));
                    }
                    let registered = models.iter().filter(|m| m.registered).count();
                    for (i, m) in models.iter_mut().enumerate() {
                        if seen.contains(&i) {
                            m.owed = false;
                            m.missed = 0;
                            continue;
                        }
                        let waiting = if edge {
                            m.owed
                        } else {
                            m.registered && m.bytes > 0
                        };
                        if waiting {
                            m.missed += 1;
                            if m.missed > registered + 1 {
                                return Err(format!(
                                    "step {step}: fd #{i} ready but unreported for {} waits (deaf or starved)",
                                    m.missed
                                ));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    })();
    // The poller first (RT backends take O_ASYNC off), then the fds.
    drop(p);
    drop(chans);
    result.map_err(|e| format!("{e}\n  ops:{log}"))
}

fn property(b: Backend) {
    let seed = env_u64("SHMIO_POLL_PROP_SEED").unwrap_or(DEFAULT_SEED);
    let cases = env_u64("SHMIO_POLL_PROP_CASES").unwrap_or(DEFAULT_CASES);
    for k in 0..cases {
        let s = seed.wrapping_add(k);
        if let Err(e) = run_case(b, s) {
            panic!(
                "{b:?}: case {k} failed; replay with SHMIO_POLL_PROP_SEED={s:#x} SHMIO_POLL_PROP_CASES=1\n  {e}"
            );
        }
    }
    eprintln!("{b:?}: {cases} cases from seed {seed:#x} passed");
}

#[test]
fn select_matches_epoll() {
    property(Backend::Select)
}

#[test]
fn poll_matches_epoll() {
    property(Backend::Poll)
}

#[test]
fn epoll_matches_epoll() {
    property(Backend::Epoll)
}

#[test]
fn epoll_et_matches_epoll() {
    property(Backend::EpollEdge)
}

#[test]
fn rtsig_matches_epoll() {
    property(Backend::RtSig)
}

#[test]
fn rtsig_onefd_matches_epoll() {
    property(Backend::RtSigOneFd)
}

/// The reproduction, kept as a plain test: two ready fds, capacity 1, two waits, both
/// drained, new data on the first must be reported.
#[test]
fn rtsig_onefd_reports_new_data_on_an_fd_carried_beyond_capacity() {
    let a = pipe();
    let b = pipe();
    let mut p = Poller::new(Backend::RtSigOneFd).unwrap();
    let mut ev = Events::with_capacity(1);
    p.register(a.read.as_raw_fd(), 1, Interest::READABLE)
        .unwrap();
    p.register(b.read.as_raw_fd(), 2, Interest::READABLE)
        .unwrap();
    write_byte(a.write.as_raw_fd());
    write_byte(b.write.as_raw_fd());
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 1);
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 1);
    drain(a.read.as_raw_fd());
    drain(b.read.as_raw_fd());
    assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0);
    for t in [1u64, 2] {
        let ch = if t == 1 { &a } else { &b };
        write_byte(ch.write.as_raw_fd());
        let n = p.wait(&mut ev, Some(Duration::from_secs(2))).unwrap();
        assert_eq!(
            n, 1,
            "new data on fd token {t} not reported: the fd went deaf"
        );
        assert_eq!(ev.as_slice()[0].token, t);
        drain(ch.read.as_raw_fd());
        assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0);
    }
    drop(p);
}
