//! `shmio-bridge-tool`: the processes the bridge's tests and benchmark run on each "host".
//!
//! ```text
//! shmio-bridge-tool produce QUEUE [--count N] [--size N] [--slots N] [--policy bp|overwrite]
//!                                 [--wait-consumers N] [--open] [--then hold|die|close]
//! shmio-bridge-tool check QUEUE [--count N] [--timeout-ms N] [--slow-us N]
//! shmio-bridge-tool zpub|zsub|tcp-send|tcp-recv ...   (the benchmark's baselines)
//! shmio-bridge-tool router --listen ENDPOINT          (a Zenoh router, as zenohd)
//! shmio-bridge-tool bench [--seconds S]               (needs root: makes its own hosts)
//! ```
//! Records are those of `shmio-qtool` (`shmio_tests::fill_record`): the sequence number the
//! producer gave them, then a pattern derived from it. `check` verifies each record's pattern
//! and that the sequence numbers it carries rise by one (the local queue's own numbers may
//! differ after losses), and ends with
//! `end STATUS received=N dup=N order=N gaps=N torn=N first=S last=S t_end_ns=T`.

mod bench;
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
        Some("bench") => bench::main(&args[1..]),
        _ => {
            eprintln!(
                "usage: shmio-bridge-tool produce|check|zpub|zsub|tcp-send|tcp-recv|router|bench ..."
            );
            2
        }
    };
    std::process::exit(code);
}
