//! Throughput runs: one producer to one or four consumer processes, and the copy ceilings.

use std::fmt::Display;
use std::io::{Read, Write};
use std::os::fd::RawFd;
use std::time::Instant;

use crate::channels::{child_depth, cleanup, make_rx, make_tx, say_ready, spawn_peer};
use crate::systems::{Mode, Sys};

/// The ceiling for large records: single-core memcpy of `size`-byte records into a 4 MiB ring
/// of destinations (cache-resident, as a consumer's buffer would be).
pub fn memcpy_gbps(size: usize) -> f64 {
    copy_gbps(size, |src, dst| dst.copy_from_slice(src))
}

/// The same loop through shmio's byte-wise atomic copy (`shmio::racy`), which every read of
/// memory another process may be writing goes through (`recv` in overwrite mode, region
/// reads): its cost against `memcpy_gbps` is what soundness costs.
pub fn racy_copy_gbps(size: usize) -> f64 {
    copy_gbps(size, |src, dst| {
        // SAFETY: `src` is valid for its length and not written during the copy.
        let view = unsafe { shmio::racy::RacyBytes::from_raw_parts(src.as_ptr(), src.len()) };
        view.copy_to(dst);
    })
}

/// GB/s of `copy` moving `size`-byte records into a 4 MiB ring of destinations.
pub fn copy_gbps(size: usize, copy: impl Fn(&[u8], &mut [u8])) -> f64 {
    let src = vec![7u8; size];
    let mut dst = vec![0u8; (4 << 20).max(size)];
    let slots = dst.len() / size;
    let n = ((1u64 << 31) / size as u64).max(1000);
    let t = Instant::now();
    for i in 0..n {
        let off = (i as usize % slots) * size;
        copy(&src, &mut dst[off..off + size]);
        std::hint::black_box(&mut dst);
    }
    n as f64 * size as f64 / t.elapsed().as_secs_f64() / 1e9
}

/// Throughput of `count` records of `size` bytes to each of `consumers` consumer processes:
/// records/s as seen by each consumer (the producer's rate), from the first send to the last
/// consumer's exit.
pub fn throughput(
    sys: Sys,
    size: usize,
    consumers: usize,
    count: u64,
    pattern: &str,
) -> Throughput {
    crate::pin::new_case();
    let base = format!("sb{}{}", std::process::id(), sys.name());
    let mode = sys.throughput_mode();
    let channels = if sys.broadcast() { 1 } else { consumers };
    let mut txs = Vec::new();
    let mut fds = Vec::new();
    for k in 0..channels {
        cleanup(sys, &base, k);
        let (tx, fd) = make_tx(sys, &base, k, size, mode, channels);
        txs.push(tx);
        fds.push(fd);
    }
    // Broadcast consumers all read channel 0; the others get a channel (and stream) each.
    let mut children = Vec::new();
    for k in 0..consumers {
        let ch = if sys.broadcast() { 0 } else { k };
        let fd = fds.get_mut(k).and_then(Option::take);
        let args: [&dyn Display; 3] = [&ch, &size, &count];
        children.push(spawn_peer("--child-rx", sys, &base, &args, fd, mode));
    }
    let mut rec = vec![0u8; size];
    let t = Instant::now();
    for i in 0..count {
        let n = size.min(8);
        rec[..n].copy_from_slice(&(i + 1).to_le_bytes()[..n]);
        for tx in txs.iter_mut() {
            tx.send(&rec);
        }
    }
    // Done sending: close our ends (the fcntl design's producer holds the next slot's lock
    // until then, which a lagging consumer may be waiting for).
    drop(txs);
    let mut delivered = count;
    for c in children.iter_mut() {
        let st = c.wait().unwrap();
        assert!(
            st.success(),
            "{} {pattern} {size} B: a consumer failed (a lossless system lost or reordered \
             records: see its message above)",
            sys.name()
        );
    }
    let secs = t.elapsed().as_secs_f64();
    for c in children.iter_mut() {
        let mut got = String::new();
        c.stdout.as_mut().unwrap().read_to_string(&mut got).unwrap();
        delivered = delivered.min(got.trim().parse().expect("consumer's count"));
    }
    for k in 0..channels {
        cleanup(sys, &base, k);
    }
    Throughput {
        rate: count as f64 / secs,
        delivered: delivered as f64 / count as f64,
    }
}

/// A throughput run's result: records/s sent to each consumer, and the share of them the
/// slowest consumer received (1.0 unless the system drops records for a lagging consumer).
/// Reports and ratios use the product: records/s received by the slowest consumer.
pub struct Throughput {
    pub rate: f64,
    pub delivered: f64,
}

pub fn child_rx(args: &[String]) {
    let sys = Sys::parse(&args[0]).unwrap();
    let (base, k, size, count, fd): (&str, usize, usize, u64, RawFd) = (
        &args[1],
        args[2].parse().unwrap(),
        args[3].parse().unwrap(),
        args[4].parse().unwrap(),
        args[5].parse().unwrap(),
    );
    let mode = Mode::parse(&args[6]);
    child_depth(args);
    let mut rx = make_rx(sys, base, k, size, fd, mode);
    say_ready();
    let mut buf = vec![0u8; size];
    let last = if size >= 8 { count } else { u64::MAX };
    let mut got = 0u64;
    loop {
        let seq = rx.recv(&mut buf);
        got += 1;
        // The benchmark checks what it measures: lossless systems deliver every record, once,
        // in order.
        if sys.lossless() && size >= 8 {
            assert_eq!(seq, got, "{}: record out of order or lost", sys.name());
        }
        // Overwrite mode may skip records: stop at the last one.
        if seq == last || got == count {
            break;
        }
    }
    // Tell the parent how many records arrived.
    print!("{got}");
    std::io::stdout().flush().unwrap();
}
