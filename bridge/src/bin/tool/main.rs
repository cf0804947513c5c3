//! `shmio-bridge-tool`: the processes the bridge's tests and benchmark run on each "host".
//!
//! ```text
//! shmio-bridge-tool produce QUEUE [--count N] [--size N] [--slots N] [--policy bp|overwrite]
//!                                 [--wait-consumers N] [--open] [--then hold|die|close]
//! shmio-bridge-tool check QUEUE [--count N] [--timeout-ms N] [--slow-us N]
//! shmio-bridge-tool zpub|zsub|tcp-send|tcp-recv ...   (the benchmark's baselines)
//! shmio-bridge-tool router --listen ENDPOINT          (a Zenoh router, as zenohd)
//! shmio-bridge-tool region-write|region-read|region-state|region-ping|region-pong NAME ...
//! shmio-bridge-tool tcp-echo|tcp-ping|zlat-pub|zlat-sub ...  (TCP round trips and Zenoh's
//!                                                      one-way latency, for the benchmark)
//! shmio-bridge-tool bench [--seconds S]               (needs root: makes its own hosts)
//! ```
//! Records are those of `shmio-qtool` (`shmio_tests::fill_record`): the sequence number the
//! producer gave them, then a pattern derived from it. `check` verifies each record's pattern
//! and that the sequence numbers it carries rise by one (the local queue's own numbers may
//! differ after losses), and ends with
//! `end STATUS received=N dup=N order=N gaps=N torn=N first=S last=S t_end_ns=T`.

mod bench;
mod region;
mod region_bench;
mod roles;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("produce") => roles::produce(&args[1..]),
        Some("check") => roles::check(&args[1..]),
        Some("zpub") => roles::zpub(&args[1..]),
        Some("zsub") => roles::zsub(&args[1..]),
        Some("tcp-send") => roles::tcp_send(&args[1..]),
        Some("tcp-recv") => roles::tcp_recv(&args[1..]),
        Some("router") => roles::router(&args[1..]),
        Some("region-write") => region::write(&args[1..]),
        Some("region-read") => region::read(&args[1..]),
        Some("region-state") => region::state(&args[1..]),
        Some("region-ping") => region::ping(&args[1..]),
        Some("region-pong") => region::pong(&args[1..]),
        Some("tcp-echo") => roles::tcp_echo(&args[1..]),
        Some("zlat-pub") => roles::zlat_pub(&args[1..]),
        Some("zlat-sub") => roles::zlat_sub(&args[1..]),
        Some("tcp-ping") => roles::tcp_ping(&args[1..]),
        Some("bench") => bench::main(&args[1..]),
        _ => {
            eprintln!(
                "usage: shmio-bridge-tool produce|check|zpub|zsub|tcp-send|tcp-recv|router|bench|\
                 region-write|region-read|region-state|region-ping|region-pong|tcp-echo|tcp-ping|zlat-pub|zlat-sub ..."
            );
            2
        }
    };
    std::process::exit(code);
}
