//! The command line: `--help`, the check of the arguments, and the settings of a run.

use crate::systems::{ALL, DEPTH_HONOURED, Sys, round_depth};

/// Prints `--help`.
pub fn usage() {
    println!(
        "shmio-bench [--quick] [--json] [--sizes 8,64,1024,65536] [--systems a,b,...] \
         [--patterns 1to1,1to4,rtt-spin,rtt-block] [--trips N] [--count N] [--repeat K] \
         [--depth N] [--deep D,D,... | --deep none] [--load | --no-load] [--pin | --no-pin] \
         [--no-gates]\n\
         --quick: 64 B and 64 KiB, fewer records and trips\n\
         --count: records per throughput run; --trips: round trips per latency run\n\
         --repeat: runs of each case (best, median, spread; default 3 quick, 5 full)\n\
         --depth N: records each channel buffers, rounded up to a power of two (default: \
         1024 up to 4 KiB records, 1 MiB's worth of larger ones, at least 4); honoured by {}\n\
         --deep D,...: also 64 KiB records 1->1 and 1->4 with D buffered records each, shmio \
         against iceoryx2 (default in a full run: 16,256,1024; in --quick: none)\n\
         --load: also shmio's overwrite and back-pressure queues at 64 B and 1 KiB beside one \
         CPU-bound process (default in a full run; --no-load turns it off)\n\
         --pin (default with 2+ CPUs): producer and children on fixed CPUs; --no-pin\n\
         --no-gates: do not fail on the sanity gates (smoke runs too short to measure)\n\
         --gates-from FILE: only check the sanity gates on a --json run's lines\n\
         systems: {}",
        DEPTH_HONOURED,
        ALL.map(Sys::name).join(", ")
    );
}

/// Exits with status 2 on an unknown argument or an option without its value.
pub fn check(args: &[String]) {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" | "--json" | "--pin" | "--no-pin" | "--no-gates" | "--load" | "--no-load" => {
            }
            "--sizes" | "--systems" | "--patterns" | "--trips" | "--count" | "--repeat"
            | "--depth" | "--deep" => {
                let Some(v) = it.next() else {
                    eprintln!("shmio-bench: {a} needs a value (see --help)");
                    std::process::exit(2);
                };
                if a == "--depth" && !v.parse::<usize>().is_ok_and(|d| (1..=1 << 24).contains(&d)) {
                    eprintln!("shmio-bench: --depth takes 1 ..= 16777216 records, not {v:?}");
                    std::process::exit(2);
                }
                if a == "--deep"
                    && v != "none"
                    && !v
                        .split(',')
                        .all(|d| d.parse::<usize>().is_ok_and(|d| (1..=1 << 16).contains(&d)))
                {
                    eprintln!(
                        "shmio-bench: --deep takes depths of 1 ..= 65536 records (D,D,...) or \
                         none, not {v:?}"
                    );
                    std::process::exit(2);
                }
            }
            other => {
                eprintln!("shmio-bench: unknown argument {other:?} (see --help)");
                std::process::exit(2);
            }
        }
    }
}

/// What to run, from checked arguments.
pub struct Settings<'a> {
    pub quick: bool,
    pub json: bool,
    pub sizes: Vec<usize>,
    pub systems: Vec<Sys>,
    patterns: Vec<String>,
    /// GB moved per throughput run (unless `--count` says how many records).
    pub budget: f64,
    pub trips: u64,
    /// Runs of each case.
    pub repeat: usize,
    /// Producer and children on fixed CPUs (`--no-pin` turns it off).
    pub pin: bool,
    /// Whether the sanity gates fail the run.
    pub gates: bool,
    /// `--depth`, rounded up to a power of two (`None`: each system's default).
    pub depth: Option<usize>,
    /// `--deep`: the depths of the deep-queue section, rounded up to powers of two.
    pub deep: Vec<usize>,
    /// `--load`: whether the overwrite-under-load section runs.
    pub load: bool,
    count: Option<&'a String>,
}

impl<'a> Settings<'a> {
    pub fn parse(args: &'a [String]) -> Settings<'a> {
        let quick = args.iter().any(|a| a == "--quick");
        let json = args.iter().any(|a| a == "--json");
        let opt = |f: &str| {
            args.iter()
                .position(|a| a == f)
                .and_then(|i| args.get(i + 1))
        };
        let sizes: Vec<usize> = opt("--sizes").map_or_else(
            || {
                if quick {
                    vec![64, 65536]
                } else {
                    vec![8, 64, 1024, 65536]
                }
            },
            |s| s.split(',').map(|x| x.parse().expect("--sizes")).collect(),
        );
        let systems: Vec<Sys> = opt("--systems").map_or(ALL.to_vec(), |s| {
            s.split(',')
                .map(|x| {
                    Sys::parse(x).unwrap_or_else(|| {
                        eprintln!("shmio-bench: unknown system {x:?} (see --help)");
                        std::process::exit(2)
                    })
                })
                .collect()
        });
        let patterns: Vec<String> = opt("--patterns").map_or_else(
            || {
                ["1to1", "1to4", "rtt-spin", "rtt-block"]
                    .map(String::from)
                    .to_vec()
            },
            |s| s.split(',').map(String::from).collect(),
        );
        let trips: u64 = opt("--trips").map_or(if quick { 10_000 } else { 100_000 }, |t| {
            t.parse().expect("--trips")
        });
        let repeat: usize = opt("--repeat").map_or(if quick { 3 } else { 5 }, |k| {
            k.parse::<usize>().expect("--repeat").max(1)
        });
        Settings {
            repeat,
            pin: !args.iter().any(|a| a == "--no-pin"),
            gates: !args.iter().any(|a| a == "--no-gates"),
            depth: opt("--depth").map(|d| round_depth(d.parse().expect("--depth"))),
            deep: match opt("--deep").map(String::as_str) {
                Some("none") => Vec::new(),
                Some(v) => v
                    .split(',')
                    .map(|d| round_depth(d.parse().expect("--deep")))
                    .collect(),
                None if quick => Vec::new(),
                None => vec![16, 256, 1024],
            },
            load: if quick {
                args.iter().any(|a| a == "--load")
            } else {
                !args.iter().any(|a| a == "--no-load")
            },
            quick,
            json,
            sizes,
            systems,
            patterns,
            budget: if quick { 0.03 } else { 0.5 },
            trips,
            count: opt("--count"),
        }
    }

    /// Whether `pattern` is to run.
    pub fn want(&self, pattern: &str) -> bool {
        self.patterns.iter().any(|x| x == pattern)
    }

    /// Records per throughput run of `size`-byte records: `--count`, or what the budget moves
    /// (within bounds).
    pub fn count(&self, size: usize) -> u64 {
        let count = ((self.budget * 1e9 / size as f64) as u64).clamp(20_000, 5_000_000);
        let count = if self.quick {
            count.min(500_000)
        } else {
            count
        };
        self.count.map_or(count, |c| c.parse().expect("--count"))
    }
}
