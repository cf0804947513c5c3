//! The processes of the tests and the benchmark (see `main.rs`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use shmio::queue::{Consumer, Error, Policy, Producer, QueueOptions, Start};
use shmio_bridge::config::NetOptions;
use shmio_tests::{EndLine, check_record, fill_record, monotonic_ns};
use zenoh::Wait;
use zenoh::qos::CongestionControl;

pub fn arg<T: std::str::FromStr>(args: &[String], flag: &str) -> Option<T> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("bad value for {flag}")))
}

pub fn flag(args: &[String], flag: &str) -> bool {
    args.iter().any(|a| a == flag)
}

pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A record for `seq`: the full pattern, or (`--seq-only`, for the benchmark) the sequence
/// number in a constant buffer.
fn fill(buf: &mut [u8], seq: u64, seq_only: bool) {
    if seq_only {
        buf[..8].copy_from_slice(&seq.to_le_bytes());
    } else {
        fill_record(buf, seq);
    }
}

pub fn produce(args: &[String]) -> i32 {
    let Some(name) = args.first() else { return 2 };
    let size: usize = arg(args, "--size").unwrap_or(64);
    let policy = match arg::<String>(args, "--policy").as_deref() {
        Some("overwrite") => Policy::Overwrite,
        _ => Policy::BackPressure,
    };
    let opts = QueueOptions::new()
        .slots(arg(args, "--slots").unwrap_or(1024))
        .slot_size(size as u32)
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
    say(&format!("ready {}", p.next_seq()));
    if let Some(n) = arg::<usize>(args, "--wait-consumers")
        && let Err(e) = p.wait_consumers(n, None)
    {
        eprintln!("wait_consumers: {e}");
        return 1;
    }
    if let Some(go) = arg::<String>(args, "--go-file") {
        while !std::path::Path::new(&go).exists() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let count: u64 = arg(args, "--count").unwrap_or(0);
    let seq_only = flag(args, "--seq-only");
    let mut buf = vec![0u8; size.max(8)];
    let t0 = Instant::now();
    for _ in 0..count {
        fill(&mut buf, p.next_seq(), seq_only);
        if let Err(e) = p.send(&buf[..size]) {
            say(&format!("failed {e}"));
            return 1;
        }
    }
    say(&format!(
        "sent {count} next={} secs={:.6}",
        p.next_seq(),
        t0.elapsed().as_secs_f64()
    ));
    match arg::<String>(args, "--then").as_deref() {
        Some("hold") => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        Some("die") => {
            // SAFETY: raising SIGKILL on ourselves; nothing runs after it.
            unsafe { libc::raise(libc::SIGKILL) };
            1
        }
        _ => 0,
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn open_when_there(name: &str, deadline: Instant) -> Result<Consumer, Error> {
    loop {
        match Consumer::open(name, Start::Oldest) {
            Err(Error::NotFound(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            r => return r,
        }
    }
}

pub fn check(args: &[String]) -> i32 {
    let Some(name) = args.first() else { return 2 };
    let timeout = Duration::from_millis(arg(args, "--timeout-ms").unwrap_or(30_000));
    let mut c = match open_when_there(name, Instant::now() + timeout) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot open {name}: {e}");
            return 2;
        }
    };
    say(&format!("opened {}", c.position()));
    let count: u64 = arg(args, "--count").unwrap_or(u64::MAX);
    let slow = Duration::from_micros(arg(args, "--slow-us").unwrap_or(0));
    let (follow, seq_only) = (flag(args, "--follow"), flag(args, "--seq-only"));
    let mut buf = vec![0u8; c.info().slot_size as usize];
    let (mut track, mut received, mut torn) = (EndLine::default(), 0u64, 0u64);
    let (mut t_first, mut t_last) = (None, Instant::now());
    let (status, code) = loop {
        if received == count {
            break ("done", 0);
        }
        match c.recv_for(&mut buf, Some(timeout)) {
            Ok(n) => {
                let seq = if seq_only && n >= 8 {
                    buf[..8].try_into().ok().map(u64::from_le_bytes)
                } else {
                    check_record(&buf[..n])
                };
                match seq {
                    Some(s) => track.saw(s),
                    None => torn += 1,
                }
                received += 1;
                t_last = Instant::now();
                t_first.get_or_insert(t_last);
                if !slow.is_zero() {
                    std::thread::sleep(slow);
                }
            }
            Err(e @ (Error::ProducerDead | Error::Closed)) if follow => {
                let what = if matches!(e, Error::ProducerDead) {
                    "dead"
                } else {
                    "closed"
                };
                say(&format!(
                    "gone {what} received={received} t_ns={}",
                    monotonic_ns()
                ));
                if let Err(e) = c.wait_producer(Some(timeout)) {
                    say(&format!("no new producer: {e}"));
                    break ("timeout", 4);
                }
                say("back");
            }
            Err(Error::ProducerDead) => break ("dead", 3),
            Err(Error::Closed) => break ("closed", 0),
            Err(Error::Timeout) => break ("timeout", 4),
            Err(e) => {
                say(&format!("error {e}"));
                break ("error", 1);
            }
        }
    };
    let secs = t_first.map_or(0.0, |t| (t_last - t).as_secs_f64());
    say(&format!(
        "end {status} received={received} dup={} order={} gaps={} torn={torn} first={} last={} \
         lost={} secs={secs:.6} t_end_ns={}",
        track.dup,
        track.order,
        track.gaps,
        opt(track.first),
        opt(track.last),
        c.lost(),
        monotonic_ns()
    ));
    code
}

fn net_of(args: &[String]) -> NetOptions {
    let all = |f: &str| -> Vec<String> {
        args.windows(2)
            .filter(|w| w[0] == f)
            .map(|w| w[1].clone())
            .collect()
    };
    NetOptions {
        listen: all("--listen"),
        connect: all("--connect"),
        low_latency: flag(args, "--low-latency"),
        ..NetOptions::default()
    }
}

/// Zenoh's own rate: one put per `--size` bytes, as fast as they go, until killed.
pub fn zpub(args: &[String]) -> i32 {
    let size: usize = arg(args, "--size").unwrap_or(64);
    let session = net_of(args).open().expect("zenoh session");
    let publisher = session
        .declare_publisher("shmio/bench/raw")
        .congestion_control(CongestionControl::Block)
        .wait()
        .expect("publisher");
    let data = zenoh::bytes::ZBytes::from(vec![7u8; size]);
    say("ready");
    loop {
        if publisher.put(data.clone()).wait().is_err() {
            return 1;
        }
    }
}

/// Counts `--count` messages on the raw key and prints their rate, timed from the first.
pub fn zsub(args: &[String]) -> i32 {
    let count: u64 = arg(args, "--count").unwrap_or(100_000);
    let session = net_of(args).open().expect("zenoh session");
    let (tx, rx) = std::sync::mpsc::channel();
    let mut seen = 0u64;
    let mut t0 = None;
    let _sub = session
        .declare_subscriber("shmio/bench/raw")
        .callback_mut(move |_| {
            let now = Instant::now();
            let t = *t0.get_or_insert(now);
            seen += 1;
            if seen == count {
                let _ = tx.send((now - t).as_secs_f64());
            }
        })
        .wait()
        .expect("subscriber");
    say("ready");
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(secs) => {
            say(&format!("rate count={count} secs={secs:.6}"));
            0
        }
        Err(_) => 4,
    }
}

/// Connects to `to`, retrying for 10 s while nobody listens yet.
fn connect(to: &str) -> Option<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(to) {
            Ok(s) => return Some(s),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                eprintln!("connect {to}: {e}");
                return None;
            }
        }
    }
}

/// A plain TCP stream: `--size`-byte records through a buffered writer, until killed.
pub fn tcp_send(args: &[String]) -> i32 {
    let size: usize = arg(args, "--size").unwrap_or(64);
    let to: String = arg(args, "--to").expect("--to ADDR:PORT");
    let Some(stream) = connect(&to) else {
        return 2;
    };
    let mut w = std::io::BufWriter::with_capacity(256 << 10, stream);
    let rec = vec![7u8; size];
    loop {
        if w.write_all(&rec).is_err() {
            return 0;
        }
    }
}

/// Receives `--count` records of `--size` bytes and prints their rate, timed from the first.
pub fn tcp_recv(args: &[String]) -> i32 {
    let size: u64 = arg(args, "--size").unwrap_or(64);
    let count: u64 = arg(args, "--count").unwrap_or(100_000);
    let on: String = arg(args, "--listen-on").expect("--listen-on ADDR:PORT");
    let l = TcpListener::bind(&on).expect("bind");
    say("ready");
    let (mut s, _) = l.accept().expect("accept");
    let mut buf = vec![0u8; 256 << 10];
    let (mut got, want) = (0u64, size * count);
    let mut t0 = None;
    while got < want {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return 1,
            Ok(n) => {
                t0.get_or_insert_with(Instant::now);
                got += n as u64;
            }
        }
    }
    let secs = t0.map_or(0.0, |t| t.elapsed().as_secs_f64());
    say(&format!("rate count={count} secs={secs:.6}"));
    0
}

/// A Zenoh router (what `zenohd` runs, without plugins), scouting off, until killed.
pub fn router(args: &[String]) -> i32 {
    let mut config = net_of(args).zenoh_config().expect("config");
    config
        .insert_json5("mode", "\"router\"")
        .expect("router mode");
    let _session = zenoh::open(config).wait().expect("zenoh router");
    say("ready");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// `tcp-echo --listen-on ADDR:PORT [--size N]`: sends back every `size`-byte message, until
/// the peer closes.
pub fn tcp_echo(args: &[String]) -> i32 {
    let size: usize = arg(args, "--size").unwrap_or(1024);
    let on: String = arg(args, "--listen-on").expect("--listen-on ADDR:PORT");
    let l = TcpListener::bind(&on).expect("bind");
    say("ready");
    let (mut s, _) = l.accept().expect("accept");
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; size];
    while s.read_exact(&mut buf).is_ok() {
        if s.write_all(&buf).is_err() {
            break;
        }
    }
    0
}

/// `tcp-ping --to ADDR:PORT [--size N] [--count N] [--interval-us U]`: round trips of
/// `size`-byte messages through `tcp-echo`, `interval` apart; prints `rtt count=N p50_us=..
/// p99_us=.. max_us=..`.
pub fn tcp_ping(args: &[String]) -> i32 {
    let size: usize = arg(args, "--size").unwrap_or(1024);
    let count: usize = arg(args, "--count").unwrap_or(1000);
    let pause = Duration::from_micros(arg(args, "--interval-us").unwrap_or(2000));
    let to: String = arg(args, "--to").expect("--to ADDR:PORT");
    let Some(mut s) = connect(&to) else {
        return 2;
    };
    let _ = s.set_nodelay(true);
    let mut buf = vec![7u8; size];
    let mut rtt = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        if s.write_all(&buf).is_err() || s.read_exact(&mut buf).is_err() {
            return 1;
        }
        rtt.push(t.elapsed().as_nanos() as u64);
        std::thread::sleep(pause);
    }
    let (p50, p99, max) = crate::region::percentiles_us(&mut rtt);
    say(&format!(
        "rtt count={count} p50_us={p50:.1} p99_us={p99:.1} max_us={max:.1}"
    ));
    0
}

/// `zlat-pub --count N [--interval-us U] [--connect|--listen E]`: one 1 KiB put (express, its
/// send time inside) every `interval`, after a second for the subscriber to be seen.
pub fn zlat_pub(args: &[String]) -> i32 {
    let count: usize = arg(args, "--count").unwrap_or(1000);
    let pause = Duration::from_micros(arg(args, "--interval-us").unwrap_or(2000));
    let session = net_of(args).open().expect("zenoh session");
    let publisher = session
        .declare_publisher("shmio/bench/lat")
        .congestion_control(CongestionControl::Block)
        .express(true)
        .wait()
        .expect("publisher");
    say("ready");
    std::thread::sleep(Duration::from_secs(1));
    let mut msg = vec![0u8; 1024];
    for k in 0..count {
        msg[..8].copy_from_slice(&(k as u64).to_le_bytes());
        msg[8..16].copy_from_slice(&monotonic_ns().to_le_bytes());
        if publisher.put(msg.clone()).wait().is_err() {
            return 1;
        }
        std::thread::sleep(pause);
    }
    0
}

/// `zlat-sub --count N [--listen|--connect E]`: prints `latency count=N p50_us=.. p99_us=..
/// max_us=..` of `zlat-pub`'s puts, from the put to the subscriber's callback.
pub fn zlat_sub(args: &[String]) -> i32 {
    let count: usize = arg(args, "--count").unwrap_or(1000);
    let session = net_of(args).open().expect("zenoh session");
    let (tx, rx) = std::sync::mpsc::channel();
    let _sub = session
        .declare_subscriber("shmio/bench/lat")
        .callback(move |s| {
            let now = monotonic_ns();
            let b = s.payload().to_bytes();
            let t = u64::from_le_bytes(b[8..16].try_into().expect("8"));
            let _ = tx.send(now.saturating_sub(t));
        })
        .wait()
        .expect("subscriber");
    say("ready");
    let mut lat = Vec::with_capacity(count);
    while lat.len() < count {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => lat.push(l),
            Err(_) => return 4,
        }
    }
    let (p50, p99, max) = crate::region::percentiles_us(&mut lat);
    say(&format!(
        "latency count={count} p50_us={p50:.1} p99_us={p99:.1} max_us={max:.1}"
    ));
    0
}
