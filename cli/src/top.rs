//! `shmio top`: the rate and lags of every queue, refreshed.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::CliError;
use crate::ls::table;
use crate::objects::{self, Kind};
use crate::stat::CLEAR;

/// One queue's sample: its head and when it was read.
type Sample = (u64, Instant);

fn frame(dir: &Option<PathBuf>, last: &mut HashMap<String, Sample>) -> Result<String, CliError> {
    let mut rows = Vec::new();
    let mut seen = HashMap::new();
    for o in objects::scan(dir.clone())? {
        if o.kind != Kind::Queue || !o.readable() {
            continue;
        }
        let Ok(s) = shmio::queue::inspect(&o.path) else {
            continue;
        };
        let now = Instant::now();
        let rate = last.get(&o.path).map(|&(head, t)| {
            let dt = now.duration_since(t).as_secs_f64();
            // A head that moved back (the queue was recreated) restarts the rate.
            s.head.saturating_sub(head) as f64 / dt.max(1e-9)
        });
        seen.insert(o.path.clone(), (s.head, now));
        let max_lag = s.consumers.iter().map(|c| c.lag).max();
        let lost: u64 = s.consumers.iter().map(|c| c.lost).sum();
        rows.push([
            o.name.clone(),
            objects::policy(s.info.policy).into(),
            s.head.to_string(),
            rate.map_or_else(|| "-".into(), |r| format!("{r:.0}")),
            objects::producer(s.producer).0.into(),
            s.consumers.len().to_string(),
            max_lag.map_or_else(|| "-".into(), |l| l.to_string()),
            lost.to_string(),
        ]);
    }
    *last = seen;
    Ok(table(
        [
            "QUEUE",
            "POLICY",
            "HEAD",
            "RECORDS/S",
            "PRODUCER",
            "CONSUMERS",
            "MAX LAG",
            "LOST",
        ],
        &rows,
    ))
}

pub fn run(dir: Option<PathBuf>, interval: u64, count: Option<u64>) -> Result<(), CliError> {
    let tty = std::io::stdout().is_terminal();
    let interval = Duration::from_millis(interval.max(1));
    let mut last = HashMap::new();
    // A first sample, so the first report already shows rates.
    frame(&dir, &mut last)?;
    let mut n = 0u64;
    loop {
        std::thread::sleep(interval);
        let f = frame(&dir, &mut last)?;
        if tty {
            print!("{CLEAR}");
        } else if n > 0 {
            println!();
        }
        print!("{f}");
        n += 1;
        if count.is_some_and(|c| n >= c) {
            return Ok(());
        }
    }
}
