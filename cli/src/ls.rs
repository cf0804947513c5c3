//! `shmio ls`: every shmio object in a directory.

use std::path::PathBuf;

use serde_json::{Value, json};
use shmio::queue::RoleState;

use crate::error::CliError;
use crate::objects::{self, Kind, Object, human};

/// One listed object: its JSON description and its table row.
struct Listed {
    json: Value,
    row: [String; 6],
}

fn describe(o: &Object) -> Listed {
    let base = |geometry: String, producer: String, consumers: String, extra: Value| {
        let mut json = json!({
            "kind": o.kind.as_str(),
            "name": o.name,
            "path": o.path,
            "layout_version": o.version,
            "disk_bytes": o.disk,
        });
        if let (Value::Object(m), Value::Object(e)) = (&mut json, extra) {
            m.extend(e);
        }
        Listed {
            json,
            row: [
                o.kind.as_str().into(),
                o.name.clone(),
                geometry,
                producer,
                consumers,
                human(o.disk),
            ],
        }
    };
    let unreadable = |e: String| {
        base(
            format!("(unreadable: {e})"),
            "-".into(),
            "-".into(),
            json!({ "error": e }),
        )
    };
    if !o.readable() {
        let note = o.version_note();
        return base(
            format!("({note})"),
            "-".into(),
            "-".into(),
            json!({ "error": note }),
        );
    }
    match o.kind {
        Kind::Queue => match shmio::queue::survey(&o.path) {
            Ok(r) => {
                let dead = r
                    .consumers
                    .iter()
                    .filter(|c| c.state == RoleState::Dead)
                    .count();
                let mut json = objects::queue_json(o, &r.stats);
                // The producer as checked against its liveness lock.
                let (state, pid) = objects::producer(r.producer);
                json["producer"]["state"] = state.into();
                json["producer"]["pid"] = pid.into();
                json["consumers"] = r.stats.consumers.len().into();
                json["dead_consumers"] = dead.into();
                let consumers = if dead > 0 {
                    format!("{} live, {dead} dead", r.stats.consumers.len())
                } else {
                    r.stats.consumers.len().to_string()
                };
                Listed {
                    json,
                    row: [
                        "queue".into(),
                        o.name.clone(),
                        objects::geometry_text(&r.stats),
                        objects::producer_text(r.producer, r.stats.producer_generation),
                        consumers,
                        human(o.disk),
                    ],
                }
            }
            Err(e) => unreadable(e.to_string()),
        },
        Kind::Region => match shmio::region::inspect(&o.path) {
            Ok(r) => Listed {
                json: objects::region_json(o, &r),
                row: [
                    "region".into(),
                    o.name.clone(),
                    format!("{} ({} B), version {}", human(r.size), r.size, r.version),
                    format!("writer {}", objects::writer_text(&r)),
                    "-".into(),
                    human(o.disk),
                ],
            },
            Err(e) => unreadable(e.to_string()),
        },
    }
}

/// Prints rows as a table with a header, columns padded to their widest cell.
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut width = header.map(str::len);
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

pub fn run(dir: Option<PathBuf>, json: bool) -> Result<(), CliError> {
    let listed: Vec<Listed> = objects::scan(dir)?.iter().map(describe).collect();
    if json {
        let all: Vec<&Value> = listed.iter().map(|l| &l.json).collect();
        println!("{}", serde_json::to_string_pretty(&all).expect("JSON"));
        return Ok(());
    }
    let rows: Vec<[String; 6]> = listed.into_iter().map(|l| l.row).collect();
    print!(
        "{}",
        table(
            ["KIND", "NAME", "GEOMETRY", "PRODUCER", "CONSUMERS", "DISK"],
            &rows
        )
    );
    Ok(())
}
