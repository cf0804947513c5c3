//! `shmio stat`: one queue's or region's state, once or every `--watch` milliseconds.

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::{Value, json};
use shmio::queue::{RoleState, Roles};
use shmio::region::{LockState, RegionStats};

use crate::error::CliError;
use crate::ls::table;
use crate::objects::{self, Kind, Object, human};

/// The ANSI sequence that clears the screen and homes the cursor.
pub const CLEAR: &str = "\x1b[H\x1b[2J";

fn queue_report(o: &Object, r: &Roles) -> (String, Value) {
    let s = &r.stats;
    let mut rows = Vec::new();
    let mut consumers = Vec::new();
    for c in &r.consumers {
        let joined = s.consumers.iter().find(|j| j.index == c.index);
        let state = match (c.state, joined) {
            (RoleState::Alive, Some(_)) => "alive",
            (RoleState::Alive, None) => "joining",
            _ => "dead",
        };
        let field = |f: fn(&shmio::queue::ConsumerStats) -> u64| joined.map(f);
        let cell = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| v.to_string());
        rows.push([
            c.index.to_string(),
            c.pid.to_string(),
            cell(field(|j| j.position)),
            cell(field(|j| j.lag)),
            cell(field(|j| j.lost)),
            cell(field(|j| j.received)),
            state.into(),
        ]);
        consumers.push(json!({
            "index": c.index,
            "pid": c.pid,
            "position": field(|j| j.position),
            "lag": field(|j| j.lag),
            "lost": field(|j| j.lost),
            "received": field(|j| j.received),
            "state": state,
        }));
    }
    let live = s.consumers.len();
    let dead = r
        .consumers
        .iter()
        .filter(|c| c.state == RoleState::Dead)
        .count();
    let mut text = format!(
        "queue {} (layout v{})\n  geometry   {}\n  producer   {}\n  head       {}\n  \
         oldest     {}\n  consumers  {live} live, {dead} dead\n",
        o.path,
        o.version,
        objects::geometry_text(s),
        objects::producer_text(r.producer, s.producer_generation),
        s.head,
        s.oldest,
    );
    if !rows.is_empty() {
        for l in table(
            [
                "INDEX", "PID", "POSITION", "LAG", "LOST", "RECEIVED", "STATE",
            ],
            &rows,
        )
        .lines()
        {
            text.push_str(&format!("  {l}\n"));
        }
    }
    let mut j = objects::queue_json(o, s);
    let (state, pid) = objects::producer(r.producer);
    j["producer"]["state"] = state.into();
    j["producer"]["pid"] = pid.into();
    j["created_unix_ns"] = r.created_unix_ns.into();
    j["consumers"] = consumers.into();
    (text, j)
}

fn region_report(o: &Object, r: &RegionStats) -> (String, Value) {
    let range = |(off, len): (u64, u64)| format!("offset {off}, {len} bytes");
    let write = if r.write_in_progress {
        format!("in progress (or its writer died): {}", range(r.pending))
    } else {
        "none in progress".into()
    };
    let (lock, lock_json) = match r.lock {
        LockState::Free => ("free".to_string(), json!({ "state": "free" })),
        LockState::Held { tid, alive } => (
            format!(
                "held by keeper thread {tid} ({})",
                if alive { "alive" } else { "no live handle" }
            ),
            json!({ "state": "held", "tid": tid, "alive": alive }),
        ),
        LockState::OwnerDied => (
            "free, its last holder died holding it (the next locker repairs)".into(),
            json!({ "state": "owner-died" }),
        ),
    };
    let text = format!(
        "region {} (layout v{})\n  size       {} B ({}), change tracking per {} B\n  \
         version    {}\n  write      {write}\n  torn       {} ({} writes found torn since \
         creation)\n  lock       {lock}\n  writer     {}\n  replica    {}\n",
        o.path,
        o.version,
        r.size,
        human(r.size),
        r.chunk_size,
        r.version,
        r.torn.map_or_else(|| "none".into(), range),
        r.torn_writes,
        objects::writer_text(r),
        if r.replica { "yes" } else { "no" },
    );
    let mut j = objects::region_json(o, r);
    j["write_in_progress"] = r.write_in_progress.into();
    j["pending"] = json!({ "offset": r.pending.0, "len": r.pending.1 });
    j["torn"] = r
        .torn
        .map(|(offset, len)| json!({ "offset": offset, "len": len }))
        .into();
    j["torn_writes"] = r.torn_writes.into();
    j["lock"] = lock_json;
    j["replica"] = r.replica.into();
    j["created_unix_ns"] = r.created_unix_ns.into();
    (text, j)
}

/// The report on `o`: text and JSON.
fn report(o: &Object) -> Result<(String, Value), CliError> {
    if !o.readable() {
        return Err(CliError::new(
            crate::error::ERROR,
            format!("{}: a {} of {}", o.path, o.kind.as_str(), o.version_note()),
        ));
    }
    Ok(match o.kind {
        Kind::Queue => queue_report(o, &shmio::queue::survey(&o.path)?),
        Kind::Region => region_report(o, &shmio::region::inspect(&o.path)?),
    })
}

pub fn run(name: &str, json: bool, watch: Option<u64>, count: Option<u64>) -> Result<(), CliError> {
    let o = objects::locate(name)?;
    let tty = std::io::stdout().is_terminal();
    let mut n = 0u64;
    loop {
        let (text, j) = report(&o)?;
        if watch.is_some() && tty && !json {
            print!("{CLEAR}");
        }
        if json {
            // One document per report: pretty once, one line per report when watching.
            if watch.is_some() {
                println!("{j}");
            } else {
                println!("{}", serde_json::to_string_pretty(&j).expect("JSON"));
            }
        } else {
            print!("{text}");
        }
        n += 1;
        let Some(ms) = watch else { return Ok(()) };
        if count.is_some_and(|c| n >= c) {
            return Ok(());
        }
        if !tty && !json {
            println!();
        }
        std::thread::sleep(Duration::from_millis(ms));
    }
}
