//! `shmio-qtool produce`: a producer, and the records it writes.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shmio::queue::{Policy, Producer, QueueOptions};
use shmio_tests::{Rng, fill_record, monotonic_ns};

use crate::{arg, flag, opened, seed, spin};

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

pub fn produce(name: &str, args: &[String]) -> i32 {
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
    let Some(mut p) = opened(name, res) else {
        return 2;
    };
    if let Some(d) = spin(args) {
        p.set_spin(d);
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
