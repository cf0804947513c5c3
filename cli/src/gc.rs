//! `shmio rm` and `shmio gc`: removing shmio objects, and only those.

use std::path::PathBuf;

use shmio::queue::{ProducerStatus, RoleState, Roles};

use crate::error::CliError;
use crate::objects::{self, Kind};

/// Removes each named object; every failure is reported, the worst status returned.
pub fn rm(names: &[String]) -> Result<(), CliError> {
    let mut status = 0u8;
    for name in names {
        let res = objects::locate(name).and_then(|o| {
            match o.kind {
                Kind::Queue => shmio::queue::unlink(&o.path)?,
                Kind::Region => shmio::region::unlink(&o.path)?,
            }
            println!("removed {} {}", o.kind.as_str(), o.path);
            Ok(())
        });
        if let Err(e) = res {
            eprintln!("shmio: {}", e.message);
            status = status.max(e.code);
        }
    }
    if status == 0 {
        Ok(())
    } else {
        Err(CliError::quiet(status))
    }
}

/// Why a queue is garbage, or `None` if it is kept (see `shmio gc --help`).
fn verdict(r: &Roles, all_idle: bool) -> Option<String> {
    let alive = |s: RoleState| s == RoleState::Alive;
    if matches!(r.producer, ProducerStatus::Alive { .. })
        || r.consumers.iter().any(|c| alive(c.state))
    {
        return None;
    }
    let dead_consumers = r
        .consumers
        .iter()
        .filter(|c| c.state == RoleState::Dead)
        .count();
    match r.producer {
        ProducerStatus::Dead { pid } => Some(format!(
            "its producer (pid {pid}) died, {dead_consumers} dead consumers, none alive"
        )),
        _ if dead_consumers > 0 => Some(format!(
            "no producer, {dead_consumers} dead consumers, none alive"
        )),
        _ if all_idle => Some("idle: no producer, no consumer".into()),
        _ => None,
    }
}

pub fn gc(dir: Option<PathBuf>, dry_run: bool, all_idle: bool) -> Result<(), CliError> {
    let mut status = 0u8;
    let mut regions = 0;
    for o in objects::scan(dir)? {
        if o.kind == Kind::Region {
            regions += 1;
            continue;
        }
        if !o.readable() {
            println!("kept {}: {}", o.path, o.version_note());
            continue;
        }
        let roles = match shmio::queue::survey(&o.path) {
            Ok(r) => r,
            Err(e) => {
                println!("kept {}: {e}", o.path);
                continue;
            }
        };
        let Some(why) = verdict(&roles, all_idle) else {
            continue;
        };
        if dry_run {
            println!("would remove queue {} ({why})", o.path);
            continue;
        }
        match shmio::queue::unlink(&o.path) {
            Ok(()) => println!("removed queue {} ({why})", o.path),
            Err(e) => {
                let e = CliError::from(e);
                eprintln!("shmio: {}", e.message);
                status = status.max(e.code);
            }
        }
    }
    if regions > 0 {
        println!(
            "left {regions} regions alone: a process that only reads a region leaves no trace \
             in it, so shmio cannot tell whether one is unused (remove them with shmio rm)"
        );
    }
    if status == 0 {
        Ok(())
    } else {
        Err(CliError::quiet(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shmio::queue::SlotRole;

    fn roles(producer: ProducerStatus, consumers: &[RoleState]) -> Roles {
        let q = format!("shmio-cli-unit-gc-{}", std::process::id());
        let tx = shmio::queue::Producer::create(&q, &shmio::queue::QueueOptions::new()).unwrap();
        let stats = tx.stats();
        drop(tx);
        shmio::queue::unlink(&q).unwrap();
        Roles {
            stats,
            producer,
            consumers: consumers
                .iter()
                .enumerate()
                .map(|(i, &state)| SlotRole {
                    index: i as u32,
                    pid: 1,
                    state,
                })
                .collect(),
            created_unix_ns: 0,
        }
    }

    #[test]
    fn the_rule() {
        use RoleState::{Alive, Dead};
        let dead = ProducerStatus::Dead { pid: 7 };
        let alive = ProducerStatus::Alive { pid: 7 };
        let none = ProducerStatus::None;
        assert!(verdict(&roles(dead, &[]), false).is_some());
        assert!(verdict(&roles(dead, &[Dead]), false).is_some());
        assert!(verdict(&roles(dead, &[Dead, Alive]), false).is_none());
        assert!(verdict(&roles(alive, &[Dead]), true).is_none());
        assert!(verdict(&roles(none, &[Dead]), false).is_some());
        assert!(verdict(&roles(none, &[]), false).is_none());
        assert!(verdict(&roles(none, &[]), true).is_some());
    }
}
