//! Finding shmio objects: recognising a file by its magic, listing a directory, resolving a
//! name; and the descriptions (text and JSON) that several subcommands share.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use shmio::queue::{Policy, ProducerStatus, QueueStats};

use crate::error::{self, CliError};

/// What a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Queue,
    Region,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Queue => "queue",
            Kind::Region => "region",
        }
    }

    /// The layout version this build reads.
    pub fn current_version(self) -> u32 {
        match self {
            Kind::Queue => shmio::queue::LAYOUT_VERSION,
            Kind::Region => shmio::region::LAYOUT_VERSION,
        }
    }
}

/// A shmio file found on disk.
#[derive(Debug, Clone)]
pub struct Object {
    pub kind: Kind,
    /// The file name.
    pub name: String,
    /// A path that shmio's name resolution takes as a path (absolute).
    pub path: String,
    /// The layout version its header states.
    pub version: u32,
    /// Bytes it occupies (`st_blocks * 512`).
    pub disk: u64,
}

impl Object {
    /// Whether this build can read it.
    pub fn readable(&self) -> bool {
        self.version == self.kind.current_version()
    }

    /// Why it cannot be read, for objects of another layout version.
    pub fn version_note(&self) -> String {
        format!(
            "layout version {}; this build reads version {}",
            self.version,
            self.kind.current_version()
        )
    }
}

/// Reads the 16-byte prefix of the regular file at `path` without following a symbolic link
/// or blocking on a FIFO: `Ok(None)` if it is not a shmio file.
fn sniff(path: &Path) -> std::io::Result<Option<(Kind, u32, u64)>> {
    let mut f = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.file_type().is_file() {
        return Ok(None);
    }
    let mut head = [0u8; 16];
    if f.read_exact(&mut head).is_err() {
        return Ok(None);
    }
    let magic = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    let version = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
    let kind = if magic == shmio::queue::MAGIC {
        Kind::Queue
    } else if magic == shmio::region::MAGIC {
        Kind::Region
    } else {
        return Ok(None);
    };
    Ok(Some((kind, version, meta.blocks() * 512)))
}

fn object(path: &Path) -> std::io::Result<Option<Object>> {
    let Some((kind, version, disk)) = sniff(path)? else {
        return Ok(None);
    };
    let Some(p) = path.to_str() else {
        return Ok(None);
    };
    Ok(Some(Object {
        kind,
        name: path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        path: p.to_owned(),
        version,
        disk,
    }))
}

/// The directory bare names live in: `$SHMIO_DIR`, or `/dev/shm`.
pub fn default_dir() -> PathBuf {
    shmio::queue::queue_dir()
}

/// Every shmio object in `dir` (or the default directory), sorted by name. Files that are not
/// shmio objects, or that cannot be read, are skipped.
pub fn scan(dir: Option<PathBuf>) -> Result<Vec<Object>, CliError> {
    let dir = dir.unwrap_or_else(default_dir);
    let dir = std::path::absolute(&dir).map_err(|e| CliError::io(dir.display(), &e))?;
    let entries = std::fs::read_dir(&dir).map_err(|e| CliError::io(dir.display(), &e))?;
    let mut found: Vec<Object> = entries
        .filter_map(Result::ok)
        .filter_map(|e| object(&e.path()).ok().flatten())
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The shmio object `name` (a bare name or a path): not found, unreadable, or not a shmio
/// object is an error.
pub fn locate(name: &str) -> Result<Object, CliError> {
    let path = shmio::queue::resolve(name)?;
    let path = std::path::absolute(&path).map_err(|e| CliError::io(path.display(), &e))?;
    match object(&path) {
        Ok(Some(o)) => Ok(o),
        Ok(None) => Err(CliError::new(
            error::ERROR,
            format!("{} is not a shmio queue or region", path.display()),
        )),
        Err(e) => Err(CliError::io(path.display(), &e)),
    }
}

/// `n` bytes in the largest binary unit (the library's own formatting).
pub use shmio::human_bytes as human;

pub fn policy(p: Policy) -> &'static str {
    match p {
        Policy::Overwrite => "overwrite",
        Policy::BackPressure => "back-pressure",
    }
}

/// `(state, pid)` of the producer role.
pub fn producer(p: ProducerStatus) -> (&'static str, Option<u32>) {
    match p {
        ProducerStatus::None => ("none", None),
        ProducerStatus::Alive { pid } => ("alive", Some(pid)),
        ProducerStatus::Dead { pid } => ("dead", Some(pid)),
    }
}

/// "alive pid 12 gen 1", "dead pid 12 gen 2", "none gen 1".
pub fn producer_text(p: ProducerStatus, generation: u32) -> String {
    match producer(p) {
        (state, Some(pid)) => format!("{state} pid {pid} gen {generation}"),
        (state, None) => format!("{state} gen {generation}"),
    }
}

/// The geometry of a queue in one phrase.
pub fn geometry_text(s: &QueueStats) -> String {
    format!(
        "{} x {} B, {}, {} consumers max",
        s.info.slot_count,
        s.info.slot_size,
        policy(s.info.policy),
        s.info.max_consumers
    )
}

/// The JSON fields every description of a queue has.
pub fn queue_json(o: &Object, s: &QueueStats) -> Value {
    let (state, pid) = producer(s.producer);
    json!({
        "kind": "queue",
        "name": o.name,
        "path": o.path,
        "layout_version": o.version,
        "slots": s.info.slot_count,
        "slot_size": s.info.slot_size,
        "policy": policy(s.info.policy),
        "max_consumers": s.info.max_consumers,
        "producer": { "state": state, "pid": pid, "generation": s.producer_generation },
        "head": s.head,
        "oldest": s.oldest,
        "disk_bytes": o.disk,
    })
}

/// The JSON fields every description of a region has.
pub fn region_json(o: &Object, r: &shmio::region::RegionStats) -> Value {
    json!({
        "kind": "region",
        "name": o.name,
        "path": o.path,
        "layout_version": o.version,
        "size": r.size,
        "chunk_size": r.chunk_size,
        "version": r.version,
        "writer": r.writer.map(|w| json!({
            "state": if w.alive { "alive" } else { "dead" },
            "pid": w.pid,
        })),
        "disk_bytes": o.disk,
    })
}

/// "claimed by pid 5 (alive)", "none claimed".
pub fn writer_text(r: &shmio::region::RegionStats) -> String {
    match r.writer {
        Some(w) => format!("pid {} ({})", w.pid, if w.alive { "alive" } else { "dead" }),
        None => "none claimed".into(),
    }
}
