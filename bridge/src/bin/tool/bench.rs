//! `shmio-bridge-tool bench [--what queue|region|all] [--count64 N] [--count64k N] [--passes N]
//! [--pings N]`: region replication (see `region_bench`), and the queue bridge's rate
//! across two network-namespace hosts, beside Zenoh's own publish/subscribe rate and a plain
//! TCP stream between the same namespaces, for 64 B and 64 KiB records, in one run (one run of
//! each: on a shared machine, run it more than once before quoting a figure). Needs root.
//!
//! - bridge: a producer on A (back-pressure queue) sends N records; `queue-out` on A,
//!   `queue-in` on B; a consumer on B receives them. Timed on B from the first record to the
//!   last.
//! - zenoh: one put per record (congestion control Block) from A, a subscriber on B counting.
//! - tcp: the records written through a 256 KiB buffered writer on A, read on B.

use std::path::PathBuf;
use std::time::Duration;

use shmio_bridge::netns::{Hosts, Proc};

use crate::roles::arg;

pub(crate) const T: Duration = Duration::from_secs(120);

fn secs(line: &str) -> f64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("secs="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

pub(crate) struct Bench {
    pub(crate) hosts: Hosts,
    pub(crate) tool: PathBuf,
    pub(crate) bridge: PathBuf,
}

impl Bench {
    pub(crate) fn start<'a>(
        &self,
        on_b: bool,
        prog: &PathBuf,
        args: impl IntoIterator<Item = &'a str>,
    ) -> Proc {
        let h = if on_b { &self.hosts.b } else { &self.hosts.a };
        self.hosts.start(h, prog, args)
    }

    /// Records per second through the bridge.
    fn bridge(&self, size: usize, count: u64) -> Result<f64, String> {
        let (s, n) = (size.to_string(), count.to_string());
        let slots = if size > 4096 { "64" } else { "1024" };
        let q = format!("bench{size}");
        let mut producer = self.start(
            false,
            &self.tool,
            [
                "produce",
                &q,
                "--count",
                &n,
                "--size",
                &s,
                "--slots",
                slots,
                "--wait-consumers",
                "1",
                "--seq-only",
            ],
        );
        producer.line("ready", T)?;
        let ep = "tcp/198.18.0.1:7447";
        let mut out = self.start(
            false,
            &self.bridge,
            ["queue-out", "--queue", &q, "--listen", ep],
        );
        out.line("ready", T)?;
        let mut inb = self.start(
            true,
            &self.bridge,
            [
                "queue-in",
                "--queue",
                &q,
                "--connect",
                ep,
                "--wait-consumers",
                "1",
            ],
        );
        inb.line("ready", T)?;
        let mut check = self.start(true, &self.tool, ["check", &q, "--count", &n, "--seq-only"]);
        let end = check.line("end", T)?;
        if !end.starts_with(&format!("end done received={count} dup=0 order=0 gaps=0")) {
            return Err(format!("bridge run went wrong: {end}"));
        }
        out.term();
        inb.term();
        let _ = (out.wait(T), inb.wait(T), producer.wait(T));
        Ok(count as f64 / secs(&end))
    }

    /// Messages per second, one Zenoh put each.
    pub(crate) fn zenoh(&self, size: usize, count: u64) -> Result<f64, String> {
        let (s, n) = (size.to_string(), count.to_string());
        let ep = "tcp/198.18.0.2:7448";
        let mut sub = self.start(true, &self.tool, ["zsub", "--count", &n, "--listen", ep]);
        sub.line("ready", T)?;
        let _publisher = self.start(false, &self.tool, ["zpub", "--size", &s, "--connect", ep]);
        let rate = sub.line("rate", T)?;
        Ok(count as f64 / secs(&rate))
    }

    /// Records per second on a plain TCP stream.
    pub(crate) fn tcp(&self, size: usize, count: u64) -> Result<f64, String> {
        let (s, n) = (size.to_string(), count.to_string());
        let mut recv = self.start(
            true,
            &self.tool,
            [
                "tcp-recv",
                "--size",
                &s,
                "--count",
                &n,
                "--listen-on",
                "198.18.0.2:7449",
            ],
        );
        recv.line("ready", T)?;
        let _send = self.start(
            false,
            &self.tool,
            ["tcp-send", "--size", &s, "--to", "198.18.0.2:7449"],
        );
        let rate = recv.line("rate", T)?;
        Ok(count as f64 / secs(&rate))
    }
}

pub fn main(args: &[String]) -> i32 {
    let hosts = match Hosts::create() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("SKIPPED: network namespaces cannot be created here ({e})");
            return 0;
        }
    };
    let exe = std::env::current_exe().expect("current_exe");
    let bench = Bench {
        hosts,
        bridge: exe.with_file_name("shmio-bridge"),
        tool: exe,
    };
    let what: String = arg(args, "--what").unwrap_or_else(|| "all".into());
    if what != "region" && !queue_table(&bench, args) {
        return 1;
    }
    if what != "queue"
        && let Err(e) = crate::region_bench::table(&bench, args)
    {
        eprintln!("bench: {e}");
        return 1;
    }
    0
}

/// The queue bridge's table; false if a run went wrong.
fn queue_table(bench: &Bench, args: &[String]) -> bool {
    let runs = [
        (64usize, arg(args, "--count64").unwrap_or(1_000_000u64)),
        (65536, arg(args, "--count64k").unwrap_or(20_000)),
    ];
    println!("queue bridge across two network namespaces (veth), records per second:");
    println!(
        "{:>7} {:>12} {:>10} {:>12} {:>12} {:>9} {:>9}",
        "size", "bridge", "MB/s", "zenoh raw", "tcp", "/zenoh", "/tcp"
    );
    for (size, count) in runs {
        let r = (|| {
            Ok::<_, String>((
                bench.bridge(size, count)?,
                bench.zenoh(size, count)?,
                bench.tcp(size, count)?,
            ))
        })();
        match r {
            Ok((b, z, t)) => println!(
                "{size:>7} {b:>12.0} {:>10.1} {z:>12.0} {t:>12.0} {:>8.2}x {:>8.2}x",
                b * size as f64 / 1e6,
                b / z,
                b / t
            ),
            Err(e) => {
                eprintln!("bench: {e}");
                return false;
            }
        }
    }
    true
}
