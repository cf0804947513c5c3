//! What a run prints: one line (or JSON object) per figure, kept for the ratios and targets.

use std::collections::HashMap;

use crate::throughput::Throughput;

pub fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// The figures of this run, by (system, pattern, size): records/s for throughput patterns,
/// p50 nanoseconds for round trips, GB/s for memcpy.
pub type Figures = HashMap<(String, &'static str, usize), f64>;

pub struct Out {
    json: bool,
    figures: Figures,
}

impl Out {
    pub fn new(json: bool) -> Out {
        Out {
            json,
            figures: HashMap::new(),
        }
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

    pub fn throughput(&mut self, system: &str, pattern: &'static str, size: usize, r: &Throughput) {
        // Compare what arrives: a system that laps its consumers is credited only with the
        // records the slowest of them received.
        let (sent, delivered) = (r.rate, r.delivered);
        let rate = sent * delivered;
        self.figures.insert((system.into(), pattern, size), rate);
        let gbps = rate * size as f64 / 1e9;
        if self.json {
            println!(
                "{{\"system\":\"{system}\",\"pattern\":\"{pattern}\",\"size\":{size},\"records_per_s\":{rate:.0},\"sent_per_s\":{sent:.0},\"gbps\":{gbps:.3},\"delivered\":{delivered:.4}}}"
            );
            return;
        }
        let vs = |other: &str| {
            self.figures
                .get(&(other.to_string(), pattern, size))
                .filter(|_| other != system)
                .map_or(String::new(), |b| format!("{:>7.1}x {other}", rate / b))
        };
        let lost = if delivered < 1.0 {
            format!(
                "  (sent {sent:.0}/s, the slowest consumer got {:.1}%)",
                delivered * 100.0
            )
        } else {
            String::new()
        };
        println!(
            "  {system:<20} {pattern:<5} {rate:>12.0}/s {gbps:>8.3} GB/s {}{}{lost}",
            vs("pipe"),
            vs("iceoryx2")
        );
    }

    pub fn latency(&mut self, system: &str, pattern: &'static str, size: usize, v: &mut [f64]) {
        let (p50, p99, p999) = (pct(v, 0.5), pct(v, 0.99), pct(v, 0.999));
        self.figures.insert((system.into(), pattern, size), p50);
        if self.json {
            println!(
                "{{\"system\":\"{system}\",\"pattern\":\"{pattern}\",\"size\":{size},\"p50_ns\":{p50:.0},\"p99_ns\":{p99:.0},\"p999_ns\":{p999:.0},\"trips\":{}}}",
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
        println!("  {system:<20} p50 {p50:>9.0}  p99 {p99:>9.0}  p99.9 {p999:>9.0}{ratio}");
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
