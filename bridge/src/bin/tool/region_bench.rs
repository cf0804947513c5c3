//! Region replication across the two hosts of `bench`, beside Zenoh's raw publish/subscribe
//! and TCP between the same namespaces, in one run:
//!
//! - latency: `region-ping` on A writes a 1 KiB block (its write time inside) every 2 ms;
//!   `region-pong` on B waits for each in turn on the replica (`wait_changed`, then a
//!   consistent read): p50 and p99 from the write on A to the read on B, beside the round
//!   trip of a 1 KiB message over TCP (`tcp-ping` to `tcp-echo`, Nagle off) at the same pace;
//! - throughput: `region-write` on A writes passes of the 4 MiB region in 1 KiB consistent
//!   writes, as fast as it can; timed from the start of the writing to the replica holding
//!   the last version (`region-state --until applied=V` on B); beside Zenoh moving the same
//!   bytes as one put per 1 KiB write, and as 64 KiB puts, and a TCP stream.

use crate::bench::{Bench, T};
use crate::roles::arg;

const EP: &str = "tcp/198.18.0.1:7450";

fn field_f(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

impl Bench {
    /// `region-out` for `name` on A and `region-in` on B, both ready.
    fn region_bridges(
        &self,
        name: &str,
        low: bool,
    ) -> Result<[shmio_bridge::netns::Proc; 2], String> {
        let ll: &[&str] = if low { &["--low-latency"] } else { &[] };
        let out_args = ["region-out", "--region", name, "--listen", EP];
        let mut out = self.start(false, &self.bridge, out_args.iter().chain(ll).copied());
        out.line("ready", T)?;
        let in_args = ["region-in", "--region", name, "--connect", EP];
        let mut inb = self.start(true, &self.bridge, in_args.iter().chain(ll).copied());
        inb.line("ready", T)?;
        Ok([out, inb])
    }

    fn wait_state(&self, name: &str, until: &str) -> Result<String, String> {
        let mut p = self.start(
            true,
            &self.tool,
            [
                "region-state",
                name,
                "--until",
                until,
                "--timeout-ms",
                "60000",
            ],
        );
        let line = p.line("state", T)?;
        match p.wait(T)?.code() {
            Some(0) => Ok(line),
            _ => Err(format!("{until} never held on B: {line}")),
        }
    }

    /// p50 and p99 in microseconds of a 1 KiB write on A becoming readable on B.
    fn region_latency(&self, count: usize, low: bool) -> Result<(f64, f64), String> {
        let name = if low { "bench-lat-low" } else { "bench-lat" };
        let go = self.hosts.a.shm_dir.join(format!("{name}.go"));
        let n = count.to_string();
        let mut ping = self.start(
            false,
            &self.tool,
            [
                "region-ping",
                name,
                "--count",
                &n,
                "--go-file",
                go.to_str().unwrap(),
            ],
        );
        ping.line("ready", T)?;
        let mut bridges = self.region_bridges(name, low)?;
        self.wait_state(name, "fresh")?;
        let mut pong = self.start(true, &self.tool, ["region-pong", name, "--count", &n]);
        pong.line("ready", T)?;
        std::fs::write(&go, b"").map_err(|e| e.to_string())?;
        let lat = pong.line("latency", T)?;
        for b in &mut bridges {
            b.term();
        }
        Ok((field_f(&lat, "p50_us"), field_f(&lat, "p99_us")))
    }

    /// p50 and p99 in microseconds of a 1 KiB TCP round trip between the hosts.
    fn tcp_rtt(&self, count: usize) -> Result<(f64, f64), String> {
        let mut echo = self.start(
            true,
            &self.tool,
            [
                "tcp-echo",
                "--listen-on",
                "198.18.0.2:7451",
                "--size",
                "1024",
            ],
        );
        echo.line("ready", T)?;
        let n = count.to_string();
        let mut ping = self.start(
            false,
            &self.tool,
            ["tcp-ping", "--to", "198.18.0.2:7451", "--count", &n],
        );
        let rtt = ping.line("rtt", T)?;
        Ok((field_f(&rtt, "p50_us"), field_f(&rtt, "p99_us")))
    }

    /// p50 and p99 in microseconds of a 1 KiB Zenoh put on A reaching a subscriber on B.
    fn zenoh_latency(&self, count: usize, low: bool) -> Result<(f64, f64), String> {
        let n = count.to_string();
        let ep = if low {
            "tcp/198.18.0.2:7453"
        } else {
            "tcp/198.18.0.2:7452"
        };
        let ll: &[&str] = if low { &["--low-latency"] } else { &[] };
        let sub_args = ["zlat-sub", "--count", &n, "--listen", ep];
        let mut sub = self.start(true, &self.tool, sub_args.iter().chain(ll).copied());
        sub.line("ready", T)?;
        let pub_args = ["zlat-pub", "--count", &n, "--connect", ep];
        let _publisher = self.start(false, &self.tool, pub_args.iter().chain(ll).copied());
        let lat = sub.line("latency", T)?;
        Ok((field_f(&lat, "p50_us"), field_f(&lat, "p99_us")))
    }

    /// MB/s of 4 MiB passes of 1 KiB writes on A until B holds the last version, and the
    /// bytes of data A's bridge sent (less than written when deltas coalesce).
    fn region_throughput(&self, passes: u32, mib: u64) -> Result<(f64, u64), String> {
        let name = format!("bench-tp-{passes}x{mib}");
        let go = self.hosts.a.shm_dir.join(format!("{name}.go"));
        let (p, size) = (passes.to_string(), (mib << 20).to_string());
        let mut w = self.start(
            false,
            &self.tool,
            [
                "region-write",
                &name,
                "--passes",
                &p,
                "--size",
                &size,
                "--fast",
                "--go-file",
                go.to_str().unwrap(),
            ],
        );
        w.line("ready", T)?;
        let mut bridges = self.region_bridges(&name, false)?;
        self.wait_state(&name, "fresh")?;
        let version = u64::from(passes) * mib * 1024;
        let mut state = self.start(
            true,
            &self.tool,
            [
                "region-state",
                &name,
                "--until",
                &format!("applied={version}"),
                "--timeout-ms",
                "60000",
            ],
        );
        let t0 = shmio_tests::monotonic_ns();
        std::fs::write(&go, b"").map_err(|e| e.to_string())?;
        let line = state.line("state", T)?;
        let t1 = shmio_bridge::netns::field(&line, "t_ns").ok_or("no t_ns")?;
        w.line("done", T)?;
        for b in &mut bridges {
            b.term();
        }
        let end = bridges[0].line("end", T)?;
        let sent = shmio_bridge::netns::field(&end, "delta_bytes").ok_or("no delta_bytes")?;
        let secs = (t1.saturating_sub(t0)) as f64 / 1e9;
        Ok(((u64::from(passes) * (mib << 20)) as f64 / secs / 1e6, sent))
    }
}

/// Runs and prints the region table.
pub fn table(bench: &Bench, args: &[String]) -> Result<(), String> {
    let pings: usize = arg(args, "--pings").unwrap_or(1000);
    let passes: u32 = arg(args, "--passes").unwrap_or(16);
    let (r50, r99) = bench.tcp_rtt(pings)?;
    println!("region replication across two network namespaces (veth):");
    println!(
        "  latency, 1 KiB write on A to read on B ({pings} writes, 2 ms apart), against a 1 KiB \
         TCP round trip (p50 {r50:.0} us, p99 {r99:.0} us; target <= 2x) and Zenoh's own one-way \
         latency (an express put to a subscriber):"
    );
    for low in [false, true] {
        let (l50, l99) = bench.region_latency(pings, low)?;
        let (z50, z99) = bench.zenoh_latency(pings, low)?;
        println!(
            "    {:<24} replication p50 {l50:>5.0} us p99 {l99:>6.0} us ({:.2}x / {:.2}x RTT)  \
             zenoh raw p50 {z50:>5.0} us p99 {z99:>6.0} us (replication {:.2}x / {:.2}x)",
            if low {
                "zenoh low-latency mode:"
            } else {
                "zenoh default transport:"
            },
            l50 / r50,
            l99 / r99,
            l50 / z50,
            l99 / z99
        );
    }
    let (mbs, sent) = bench.region_throughput(passes, 4)?;
    let mib = u64::from(passes) * 4;
    let (once, once_sent) = bench.region_throughput(1, mib)?;
    let bytes = mib * 1024;
    let z1k = bench.zenoh(1024, bytes)? * 1024.0 / 1e6;
    let z64k = bench.zenoh(65536, bytes / 64)? * 65536.0 / 1e6;
    let tcp = bench.tcp(65536, bytes / 64)? * 65536.0 / 1e6;
    println!(
        "  throughput of {mib} MiB in 1 KiB consistent writes, until B holds the last version \
         (zenoh raw for the same bytes: one put per 1 KiB {z1k:.0} MB/s, 64 KiB puts {z64k:.0} \
         MB/s; TCP stream {tcp:.0} MB/s):"
    );
    for (what, rate, sent) in [
        (format!("{passes} passes of a 4 MiB region"), mbs, sent),
        (format!("1 pass of a {mib} MiB region"), once, once_sent),
    ] {
        println!(
            "    {what:<26} {rate:>6.0} MB/s ({:.2}x zenoh 1 KiB, target >= 0.8x; {:.2}x 64 KiB; \
             {:.2}x TCP); A's bridge sent {:.1} MiB (a chunk rewritten before it went out \
             goes once)",
            rate / z1k,
            rate / z64k,
            rate / tcp,
            sent as f64 / 1048576.0
        );
    }
    Ok(())
}
