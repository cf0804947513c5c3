//! The sanity gates: a run whose figures cannot be true fails, naming the case.
//!
//! - a floor inverted: the minimal ring (the ceiling of 1 -> 1 throughput for every system
//!   that copies each record out, as the ring does) measuring fewer records/s than such a
//!   system, or the cache-line ping-pong (the floor of spinning round trips) a longer p50
//!   than any system's spinning round trip (but the minimal ring's: two one-way lines may
//!   bounce as fast as one shared word), in either case by more than the spread of the two
//!   cases compared (at least [`MIN_TOLERANCE`]);
//! - a lossless system (every one but shmio's overwrite mode and the fcntl design) delivering
//!   fewer records than were sent.
//!
//! Zero-copy readers (shmio-bp-zerocopy, iceoryx2) are not bounded by the ring at every size:
//! they touch only the first bytes of a large record where the ring copies all of it out.
//! The ring does not bound 1 -> 4 either: it writes each record once per consumer where
//! shmio and iceoryx2 broadcast it once.

/// The least tolerance of a comparison (a run with one repeat has no spread; timer and
/// scheduling noise on a shared VM moves a p50 of a few hundred ns by a fifth).
pub const MIN_TOLERANCE: f64 = 0.25;

/// One case's figures over its repeats: records/s (throughput) or p50 ns (round trips).
#[derive(Clone, Debug)]
pub struct Row {
    pub system: String,
    pub pattern: String,
    pub size: usize,
    pub best: f64,
    /// (max - min) / median over the repeats.
    pub spread: f64,
    /// The share of records the slowest consumer received, in the worst repeat (1 for round
    /// trips).
    pub delivered: f64,
}

/// The limits measured beside the systems.
fn is_floor(system: &str) -> bool {
    matches!(
        system,
        "minimal-ring" | "cacheline-pingpong" | "futex-pingpong"
    )
}

/// Systems that copy every record out of the channel into the consumer's buffer.
fn copies_out(system: &str) -> bool {
    !is_floor(system) && !matches!(system, "shmio-bp-zerocopy" | "iceoryx2")
}

fn lossy(system: &str) -> bool {
    matches!(system, "shmio-overwrite" | "fcntl-lock-shm")
}

/// Every failed gate of `rows`, one sentence each naming the case.
pub fn check(rows: &[Row]) -> Vec<String> {
    let mut fails = Vec::new();
    let find = |system: &str, pattern: &str, size: usize| {
        rows.iter()
            .find(|r| r.system == system && r.pattern == pattern && r.size == size)
    };
    for r in rows {
        let tol = |floor: &Row| r.spread.max(floor.spread).max(MIN_TOLERANCE);
        if r.pattern == "1to1"
            && copies_out(&r.system)
            && let Some(ring) = find("minimal-ring", "1to1", r.size)
            && ring.best * (1.0 + tol(ring)) < r.best
        {
            fails.push(format!(
                "{} 1to1 {} B: the minimal ring (the ceiling) measured {:.0}/s, below {}'s \
                 {:.0}/s by more than the spread ({:.0}%)",
                r.system,
                r.size,
                ring.best,
                r.system,
                r.best,
                tol(ring) * 100.0
            ));
        }
        if r.pattern == "rtt-spin"
            && !is_floor(&r.system)
            && let Some(pp) = find("cacheline-pingpong", "rtt-spin", r.size)
            && pp.best > r.best * (1.0 + tol(pp))
        {
            fails.push(format!(
                "{} rtt-spin {} B: the cache-line ping-pong (the floor) measured p50 {:.0} ns, \
                 above {}'s {:.0} ns by more than the spread ({:.0}%)",
                r.system,
                r.size,
                pp.best,
                r.system,
                r.best,
                tol(pp) * 100.0
            ));
        }
        if r.pattern.starts_with("1to") && !lossy(&r.system) && r.delivered < 1.0 {
            fails.push(format!(
                "{} {} {} B: a lossless system delivered {:.4}% of the records sent",
                r.system,
                r.pattern,
                r.size,
                r.delivered * 100.0
            ));
        }
    }
    fails
}

/// Pulls `"key":value` out of one flat JSON line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"'))
}

/// The rows of a `--json` run's output (throughput and round-trip lines; others skipped).
pub fn parse(text: &str) -> Vec<Row> {
    let num = |l: &str, k: &str| field(l, k).and_then(|v| v.parse::<f64>().ok());
    text.lines()
        .filter_map(|l| {
            let best = num(l, "records_per_s").or_else(|| num(l, "p50_ns"))?;
            Some(Row {
                system: field(l, "system")?.to_string(),
                pattern: field(l, "pattern")?.to_string(),
                size: num(l, "size")? as usize,
                best,
                spread: num(l, "spread").unwrap_or(0.0),
                delivered: num(l, "delivered").unwrap_or(1.0),
            })
        })
        .collect()
}

/// Prints every failed gate to stderr and exits with status 1 if any failed.
pub fn enforce(rows: &[Row]) {
    let fails = check(rows);
    if fails.is_empty() {
        return;
    }
    for f in &fails {
        eprintln!("shmio-bench: sanity gate failed: {f}");
    }
    std::process::exit(1);
}

/// `--gates-from FILE`: checks the gates on a `--json` run's saved output.
pub fn gates_from(path: &str) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        eprintln!("shmio-bench: {path}: {e}");
        std::process::exit(2)
    });
    let rows = parse(&text);
    enforce(&rows);
    println!("sanity gates passed ({} cases)", rows.len());
}
