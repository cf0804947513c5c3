//! What a run prints: one line (or JSON object) per figure, kept for the ratios and targets.

use std::collections::HashMap;

use crate::gates::Row;
use crate::throughput::Throughput;

pub fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// The best of `v` (the highest, or the lowest when `lower` is better), its median, and its
/// spread: (max - min) / median.
pub fn best_median_spread(v: &[f64], lower: bool) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    let median = pct(&mut s, 0.5);
    let (min, max) = (s[0], s[s.len() - 1]);
    let best = if lower { min } else { max };
    let spread = if median > 0.0 {
        (max - min) / median
    } else {
        0.0
    };
    (best, median, spread)
}

/// The figures of this run, by (system, pattern, size): records/s for throughput patterns,
/// p50 nanoseconds for round trips, GB/s for memcpy.
pub type Figures = HashMap<(String, &'static str, usize), f64>;

pub struct Out {
    json: bool,
    figures: Figures,
    rows: Vec<Row>,
}

impl Out {
    pub fn new(json: bool) -> Out {
        Out {
            json,
            figures: HashMap::new(),
            rows: Vec::new(),
        }
    }

    /// Whether the run prints JSON lines (no headings).
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// The copy ceilings of `size`-byte records: memcpy, and shmio's byte-wise atomic copy.
    pub fn ceilings(&mut self, size: usize, gbps: f64, racy: f64) {
        self.figures.insert(("memcpy".into(), "1", size), gbps);
        self.figures.insert(("racy-copy".into(), "1", size), racy);
        if self.json {
            println!(
                "{{\"system\":\"memcpy\",\"pattern\":\"1\",\"size\":{size},\"gbps\":{gbps:.2}}}"
            );
            println!(
                "{{\"system\":\"racy-copy\",\"pattern\":\"1\",\"size\":{size},\"gbps\":{racy:.2}}}"
            );
        } else {
            println!(
                "  {:<20} {:<5} {:>14} {gbps:>8.3} GB/s (single-core memcpy, the ceiling)",
                "memcpy", "", ""
            );
            println!(
                "  {:<20} {:<5} {:>14} {racy:>8.3} GB/s ({:.2}x memcpy: the byte-wise atomic \
                 copy of racing memory)",
                "racy-copy",
                "",
                "",
                racy / gbps
            );
        }
    }

    pub fn throughput(
        &mut self,
        system: &str,
        pattern: &'static str,
        size: usize,
        runs: &[Throughput],
    ) {
        // Compare what arrives: a system that laps its consumers is credited only with the
        // records the slowest of them received.
        let got: Vec<f64> = runs.iter().map(|r| r.rate * r.delivered).collect();
        let (rate, median, spread) = best_median_spread(&got, false);
        let at = got.iter().position(|&g| g == rate).unwrap_or(0);
        let sent = runs[at].rate;
        let delivered = runs.iter().map(|r| r.delivered).fold(1.0, f64::min);
        self.keep(system, pattern, size, (rate, median, spread), delivered);
        let gbps = rate * size as f64 / 1e9;
        if self.json {
            println!(
                "{{\"system\":\"{system}\",\"pattern\":\"{pattern}\",\"size\":{size},\"records_per_s\":{rate:.0},\"median_per_s\":{median:.0},\"spread\":{spread:.4},\"repeats\":{},\"sent_per_s\":{sent:.0},\"gbps\":{gbps:.3},\"delivered\":{delivered:.4},\"depth\":{}}}",
                runs.len(),
                crate::systems::capacity(size)
            );
            return;
        }
        let vs = |other: &str| {
            self.figures
                .get(&(other.to_string(), pattern, size))
                .filter(|_| other != system)
                .map_or(String::new(), |b| format!("{:>7.1}x {other}", rate / b))
        };
        // Systems that may lap a consumer show their send rate beside what arrived, always.
        let lossy = crate::systems::Sys::parse(system).is_some_and(|s| !s.lossless());
        let lost = if delivered < 1.0 || lossy {
            format!(
                "  (sent {sent:.0}/s, the slowest consumer got {:.1}%)",
                runs[at].delivered * 100.0
            )
        } else {
            String::new()
        };
        println!(
            "  {system:<20} {pattern:<5} {rate:>12.0}/s {gbps:>8.3} GB/s  median {median:>10.0}/s \
             spread {:>3.0}%{}{}{}{lost}",
            spread * 100.0,
            vs("minimal-ring"),
            vs("pipe"),
            vs("iceoryx2")
        );
    }

    /// Round trips: `runs` holds each repeat's trips (nanoseconds); the best repeat is the one
    /// with the lowest p50, and its percentiles are printed.
    pub fn latency(
        &mut self,
        system: &str,
        pattern: &'static str,
        size: usize,
        runs: &mut [Vec<f64>],
    ) {
        let p50s: Vec<f64> = runs.iter_mut().map(|v| pct(v, 0.5)).collect();
        let (p50, median, spread) = best_median_spread(&p50s, true);
        let at = p50s.iter().position(|&g| g == p50).unwrap_or(0);
        let repeats = runs.len();
        let v = &mut runs[at];
        let (p99, p999) = (pct(v, 0.99), pct(v, 0.999));
        self.keep(system, pattern, size, (p50, median, spread), 1.0);
        if self.json {
            println!(
                "{{\"system\":\"{system}\",\"pattern\":\"{pattern}\",\"size\":{size},\"p50_ns\":{p50:.0},\"p99_ns\":{p99:.0},\"p999_ns\":{p999:.0},\"median_p50_ns\":{median:.0},\"spread\":{spread:.4},\"repeats\":{},\"trips\":{}}}",
                repeats,
                v.len()
            );
            return;
        }
        let floor = floor(pattern);
        let ratio = self
            .figures
            .get(&(floor.to_string(), pattern, size))
            .filter(|_| system != floor)
            .map_or(String::new(), |f| format!("  ({:.2}x {floor})", p50 / f));
        println!(
            "  {system:<20} p50 {p50:>9.0}  p99 {p99:>9.0}  p99.9 {p999:>9.0}  median p50 \
             {median:>7.0} spread {:>3.0}%{ratio}",
            spread * 100.0
        );
    }

    /// Keeps a case's best figure for the ratios and targets, and its row for the gates.
    fn keep(
        &mut self,
        system: &str,
        pattern: &'static str,
        size: usize,
        (best, _median, spread): (f64, f64, f64),
        delivered: f64,
    ) {
        self.figures.insert((system.into(), pattern, size), best);
        self.rows.push(Row {
            system: system.into(),
            pattern: pattern.into(),
            size,
            best,
            spread,
            delivered,
        });
    }

    /// Every case's figures, for the sanity gates.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    pub fn get(&self, system: &str, pattern: &'static str, size: usize) -> Option<f64> {
        self.figures
            .get(&(system.to_string(), pattern, size))
            .copied()
    }
}

/// The floor a round-trip pattern is measured against: a word bounced between two processes,
/// by spinning (`rtt-spin`) or through a raw futex (`rtt-block`).
pub fn floor(pattern: &str) -> &'static str {
    if pattern == "rtt-spin" {
        "cacheline-pingpong"
    } else {
        "futex-pingpong"
    }
}

pub fn machine() -> String {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or(String::new(), |s| s.trim().to_string());
    format!(
        "Linux {}, {} CPUs ({cpu})",
        r.trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}
