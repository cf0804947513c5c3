//! `shmio-quickbench`: one quick throughput figure for the README's main command.
//!
//! 64-byte records, one producer process to one consumer process, through a shmio queue
//! (back-pressure, so nothing is lost and the comparison is fair) and through a pipe (default
//! 64 KiB buffer, one write(2) per record, the reader draining up to 64 KiB per read(2)), in
//! the same run. Prints records/s for both and the ratio. The full benchmark against every
//! peer is a separate program.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shmio::queue::{Consumer, Policy, Producer, QueueOptions, Start};

const SIZE: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--child-shmio") => child_shmio(&args[2], args[3].parse().unwrap()),
        Some("--child-pipe") => child_pipe(args[2].parse().unwrap()),
        _ => {
            let count: u64 = args
                .iter()
                .position(|a| a == "--count")
                .and_then(|i| args.get(i + 1))
                .map_or(2_000_000, |v| v.parse().expect("--count N"));
            let rounds = 3;
            let mut best_shm = f64::MAX;
            let mut best_pipe = f64::MAX;
            for _ in 0..rounds {
                best_shm = best_shm.min(run_shmio(count).as_secs_f64());
                best_pipe = best_pipe.min(run_pipe(count).as_secs_f64());
            }
            let shm_rate = count as f64 / best_shm;
            let pipe_rate = count as f64 / best_pipe;
            println!(
                "throughput, {SIZE} B records, 1 producer -> 1 consumer process (best of {rounds}):"
            );
            println!(
                "  shmio queue (back-pressure): {:>12.0} records/s  ({:.2} GB/s)",
                shm_rate,
                shm_rate * SIZE as f64 / 1e9
            );
            println!(
                "  pipe (64 KiB buffer):        {:>12.0} records/s  ({:.2} GB/s)",
                pipe_rate,
                pipe_rate * SIZE as f64 / 1e9
            );
            println!("  ratio shmio/pipe: {:.1}x", shm_rate / pipe_rate);
        }
    }
}

fn run_shmio(count: u64) -> Duration {
    let name = format!("shmio-quickbench-{}", std::process::id());
    let _ = shmio::queue::unlink(&name);
    let opts = QueueOptions::new()
        .slots(4096)
        .slot_size(SIZE as u32)
        .policy(Policy::BackPressure);
    let mut p = Producer::create(&name, &opts).expect("create queue");
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--child-shmio", &name, &count.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the consumer to attach.
    let mut ready = [0u8; 1];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut ready)
        .unwrap();
    let rec = [7u8; SIZE];
    let t = Instant::now();
    for _ in 0..count {
        p.send(&rec).unwrap();
    }
    child.wait().unwrap();
    let took = t.elapsed();
    drop(p);
    let _ = shmio::queue::unlink(&name);
    took
}

fn child_shmio(name: &str, count: u64) {
    let mut c = Consumer::open(name, Start::Oldest).expect("open queue");
    std::io::stdout().write_all(b"r").unwrap();
    std::io::stdout().flush().unwrap();
    let mut buf = [0u8; SIZE];
    for _ in 0..count {
        c.recv(&mut buf).unwrap();
    }
}

fn run_pipe(count: u64) -> Duration {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--child-pipe", &count.to_string()])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = child.stdin.take().unwrap();
    let rec = [7u8; SIZE];
    let t = Instant::now();
    for _ in 0..count {
        w.write_all(&rec).unwrap();
    }
    drop(w);
    child.wait().unwrap();
    t.elapsed()
}

fn child_pipe(count: u64) {
    let mut r = std::io::stdin().lock();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = count * SIZE as u64;
    while left > 0 {
        let n = r.read(&mut buf).unwrap();
        assert!(n > 0, "pipe closed early");
        left -= n as u64;
    }
}
