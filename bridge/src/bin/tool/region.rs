//! The region processes of the tests and the benchmark: the note's `memsync` pass as a writer
//! on the primary's host, a checking reader and a state probe on a replica's.
//!
//! A block (1 KiB by default) is written whole by one consistent write: its pass and index,
//! a checksum, then a pattern derived from both. A reader that finds a block whose checksum
//! does not match saw a write half applied.

use std::time::{Duration, Instant};

use shmio::region::{Error, Region, RegionOptions};
use shmio_tests::monotonic_ns;

use crate::roles::{arg, flag, say};

/// FNV-1a, 64 bits.
pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Fills `block` for `pass` and `index`.
pub fn fill_block(block: &mut [u8], pass: u32, index: u32) {
    let id = (u64::from(pass) << 32) | u64::from(index);
    block[..8].copy_from_slice(&id.to_le_bytes());
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for b in block[16..].iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let sum = fnv(&block[16..]) ^ id;
    block[8..16].copy_from_slice(&sum.to_le_bytes());
}

/// Whether `block` is all zeros (never written), whole (`Some(true)`) or not (`Some(false)`).
fn block_ok(block: &[u8]) -> Option<bool> {
    if block.iter().all(|&b| b == 0) {
        return None;
    }
    let id = u64::from_le_bytes(block[..8].try_into().expect("8 bytes"));
    let sum = u64::from_le_bytes(block[8..16].try_into().expect("8 bytes"));
    Some(sum == fnv(&block[16..]) ^ id)
}

fn open(name: &str) -> Option<Region> {
    let t0 = Instant::now();
    loop {
        match Region::open(name, &RegionOptions::new()) {
            Ok(r) => return Some(r),
            Err(Error::NotFound(_)) if t0.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => {
                eprintln!("cannot open {name}: {e}");
                return None;
            }
        }
    }
}

/// `region-write NAME [--size N] [--block N] [--chunk N] [--passes N] [--first-pass N]
/// [--blocks N] [--pause-us N] [--fast] [--claim] [--open] [--go-file PATH]
/// [--then hold|exit]`: creates the region
/// (or opens it with `--open`), then writes `passes` passes of blocks (numbered from
/// `first-pass`, so that another run writes other bytes; the first `blocks` only), each block by one consistent write. `--fast` (the benchmark):
/// blocks of one byte value per pass and their index, no pattern or checksum to compute. Prints `ready`, then
/// `done passes=N writes=N version=V hash=H secs=S`.
pub fn write(args: &[String]) -> i32 {
    let Some(name) = args.first() else { return 2 };
    let size: u64 = arg(args, "--size").unwrap_or(4 << 20);
    let bs: usize = arg(args, "--block").unwrap_or(1024);
    let passes: u32 = arg(args, "--passes").unwrap_or(1);
    let first: u32 = arg(args, "--first-pass").unwrap_or(1);
    let pause = Duration::from_micros(arg(args, "--pause-us").unwrap_or(0));
    let opts = RegionOptions::new().chunk_size(arg(args, "--chunk").unwrap_or(4096));
    let r = if flag(args, "--open") {
        open(name)
    } else {
        Region::create(name, size, &opts)
            .map_err(|e| eprintln!("cannot create {name}: {e}"))
            .ok()
    };
    let Some(r) = r else { return 2 };
    let _claim = if flag(args, "--claim") {
        match r.claim_writer() {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("claim: {e}");
                return 2;
            }
        }
    } else {
        None
    };
    say("ready");
    if let Some(go) = arg::<String>(args, "--go-file") {
        while !std::path::Path::new(&go).exists() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let blocks = (r.len() / bs).min(arg(args, "--blocks").unwrap_or(usize::MAX));
    let mut block = vec![0u8; bs];
    let t0 = Instant::now();
    let mut writes = 0u64;
    let fast = flag(args, "--fast");
    for pass in first..first + passes {
        if fast {
            block.fill(pass as u8);
        }
        for i in 0..blocks {
            if fast {
                block[..4].copy_from_slice(&(i as u32).to_le_bytes());
            } else {
                fill_block(&mut block, pass, i as u32);
            }
            if let Err(e) = r.write((i * bs) as u64, &block) {
                eprintln!("write: {e}");
                return 1;
            }
            writes += 1;
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    say(&format!(
        "done passes={passes} writes={writes} version={} hash={} secs={secs:.6}",
        r.version(),
        hash(&r)
    ));
    if arg::<String>(args, "--then").as_deref() == Some("hold") {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    0
}

fn hash(r: &Region) -> u64 {
    let mut data = vec![0u8; r.len()];
    match r.read(0, &mut data) {
        Ok(_) => fnv(&data),
        Err(e) => {
            eprintln!("read: {e}");
            0
        }
    }
}

/// `region-read NAME [--block N] [--stop-file PATH] [--seconds S]`: reads every block, one
/// consistent read each, round and round, until the stop file appears (or `seconds` pass);
/// prints `end reads=N whole=N zero=N bad=N torn=N`. Exits 1 if any block was not whole.
pub fn read(args: &[String]) -> i32 {
    let Some(name) = args.first() else { return 2 };
    let Some(r) = open(name) else { return 2 };
    let bs: usize = arg(args, "--block").unwrap_or(1024);
    let stop = arg::<String>(args, "--stop-file");
    let limit = Duration::from_secs_f64(arg(args, "--seconds").unwrap_or(120.0));
    let (mut reads, mut whole, mut zero, mut bad, mut torn) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut block = vec![0u8; bs];
    let blocks = r.len() / bs;
    let t0 = Instant::now();
    say("ready");
    'outer: loop {
        for i in 0..blocks {
            match r.read((i * bs) as u64, &mut block) {
                Ok(_) => match block_ok(&block) {
                    None => zero += 1,
                    Some(true) => whole += 1,
                    Some(false) => bad += 1,
                },
                Err(Error::Torn { .. }) => torn += 1,
                Err(e) => {
                    eprintln!("read: {e}");
                    return 1;
                }
            }
            reads += 1;
            if reads % 256 == 0
                && (t0.elapsed() > limit
                    || stop
                        .as_deref()
                        .is_some_and(|s| std::path::Path::new(s).exists()))
            {
                break 'outer;
            }
        }
    }
    say(&format!(
        "end reads={reads} whole={whole} zero={zero} bad={bad} torn={torn}"
    ));
    i32::from(bad != 0)
}

/// `region-state NAME [--until COND] [--timeout-ms N]`: polls the region every 2 ms until
/// COND holds (`hash=H`, `applied=N`, `primary_alive=0|1`, `writer_alive=0|1`, `stale_ms>N`,
/// `fresh`),
/// then prints `state t_ns=T hash=H version=V applied=N seen=N lag=N heard_ms=N
/// stale_ms=N primary_alive=0|1 writer_alive=0|1|-1 catching_up=0|1 replica=0|1 torn=0|1`
/// and exits 0; 1 on timeout (with the last state). No COND: print once.
pub fn state(args: &[String]) -> i32 {
    let Some(name) = args.first() else { return 2 };
    let Some(r) = open(name) else { return 2 };
    let until = arg::<String>(args, "--until");
    let timeout = Duration::from_millis(arg(args, "--timeout-ms").unwrap_or(30_000));
    let t0 = Instant::now();
    loop {
        let (line, met) = probe(&r, until.as_deref());
        if met || until.is_none() || t0.elapsed() > timeout {
            say(&line);
            return i32::from(!met && until.is_some());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn probe(r: &Region, until: Option<&str>) -> (String, bool) {
    let ms = |d: Option<Duration>| d.map_or(-1, |d| d.as_millis() as i64);
    let st = r.replica();
    let needs_hash = until.is_none_or(|u| u.starts_with("hash="));
    let h = if needs_hash { hash(r) } else { 0 };
    let t = monotonic_ns();
    let (applied, seen, lag, heard, stale, alive, writer, catching) = match &st {
        Some(s) => (
            s.applied,
            s.seen,
            s.lag(),
            ms(s.heard),
            ms(s.staleness),
            i32::from(s.primary_alive),
            s.writer_alive.map_or(-1, i32::from),
            i32::from(s.catching_up),
        ),
        None => (0, 0, 0, -1, -1, 0, -1, 0),
    };
    let torn = r.torn().ok().flatten().is_some();
    let line = format!(
        "state t_ns={t} hash={h} version={} applied={applied} seen={seen} lag={lag} \
         heard_ms={heard} stale_ms={stale} primary_alive={alive} writer_alive={writer} \
         catching_up={catching} replica={} torn={}",
        r.version(),
        i32::from(st.is_some()),
        i32::from(torn)
    );
    let met = match until {
        None => true,
        Some(u) => {
            if let Some(v) = u.strip_prefix("hash=") {
                v.parse() == Ok(h)
            } else if let Some(v) = u.strip_prefix("primary_alive=") {
                v.parse() == Ok(alive)
            } else if let Some(v) = u.strip_prefix("writer_alive=") {
                v.parse() == Ok(writer)
            } else if let Some(v) = u.strip_prefix("applied=") {
                v.parse() == Ok(applied)
            } else if let Some(v) = u.strip_prefix("stale_ms>") {
                v.parse::<i64>().is_ok_and(|n| stale > n)
            } else {
                u == "fresh" && r.check_fresh(Duration::from_millis(500)).is_ok()
            }
        }
    };
    (line, met)
}

/// Percentiles of `v` (sorted here), in microseconds: p50, p99, max.
pub fn percentiles_us(v: &mut [u64]) -> (f64, f64, f64) {
    v.sort_unstable();
    let at = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    let us = |x: Option<u64>| x.map_or(f64::NAN, |n| n as f64 / 1e3);
    (us(at(0.5)), us(at(0.99)), us(v.last().copied()))
}

/// `region-ping NAME --count N [--interval-us U] [--go-file PATH]`: creates a 4 MiB region,
/// then writes 1 KiB blocks, block k holding `k + 1` and the time of the write
/// (`CLOCK_MONOTONIC`, one clock for every namespace of the machine), one consistent write
/// each, `interval` apart. N is at most 4,096 (one block each).
pub fn ping(args: &[String]) -> i32 {
    let Some(name) = args.first() else { return 2 };
    let count: usize = arg::<usize>(args, "--count").unwrap_or(1000).min(4096);
    let pause = Duration::from_micros(arg(args, "--interval-us").unwrap_or(2000));
    let r = match Region::create(name, 4 << 20, &RegionOptions::new()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot create {name}: {e}");
            return 2;
        }
    };
    say("ready");
    if let Some(go) = arg::<String>(args, "--go-file") {
        while !std::path::Path::new(&go).exists() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let mut block = [0u8; 1024];
    for k in 0..count {
        block[..8].copy_from_slice(&(k as u64 + 1).to_le_bytes());
        block[8..16].copy_from_slice(&monotonic_ns().to_le_bytes());
        if let Err(e) = r.write(k as u64 * 1024, &block) {
            eprintln!("write: {e}");
            return 1;
        }
        std::thread::sleep(pause);
    }
    say(&format!("done count={count}"));
    0
}

/// `region-pong NAME --count N`: on the replica, waits for each block of `region-ping` in turn
/// (`wait_changed`, then a consistent read) and prints `latency count=N p50_us=.. p99_us=..
/// max_us=..`, from the write on the primary to the read here.
pub fn pong(args: &[String]) -> i32 {
    let Some(name) = args.first() else { return 2 };
    let count: usize = arg::<usize>(args, "--count").unwrap_or(1000).min(4096);
    let Some(r) = open(name) else { return 2 };
    say("ready");
    let mut lat = Vec::with_capacity(count);
    let mut seen = r.version();
    let mut block = [0u8; 16];
    let deadline = Instant::now() + Duration::from_secs(120);
    for k in 0..count {
        loop {
            if let Err(e) = r.read(k as u64 * 1024, &mut block) {
                eprintln!("read: {e}");
                return 1;
            }
            let now = monotonic_ns();
            if u64::from_le_bytes(block[..8].try_into().expect("8")) == k as u64 + 1 {
                let t = u64::from_le_bytes(block[8..16].try_into().expect("8"));
                lat.push(now.saturating_sub(t));
                break;
            }
            if Instant::now() > deadline {
                eprintln!("block {k} never arrived");
                return 1;
            }
            match r.wait_changed(seen, Some(Duration::from_millis(100))) {
                Ok(v) => seen = v,
                Err(Error::Timeout) => {}
                Err(e) => {
                    eprintln!("wait_changed: {e}");
                    return 1;
                }
            }
        }
    }
    let (p50, p99, max) = percentiles_us(&mut lat);
    say(&format!(
        "latency count={count} p50_us={p50:.1} p99_us={p99:.1} max_us={max:.1}"
    ));
    0
}
