//! `shmio tail`: print a queue's records as they arrive, through a read-only observer that
//! never joins the queue (see `shmio::queue::Observer`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use shmio::queue::{Observer, Start};

use crate::Format;
use crate::error::CliError;
use crate::objects::{self, Kind};

/// The bytes before any trailing NUL bytes.
fn trim_nul(rec: &[u8]) -> &[u8] {
    let end = rec.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &rec[..end]
}

/// A record as `format` prints it.
fn render(format: Format, rec: &[u8], len: usize) -> String {
    match format {
        Format::Len => len.to_string(),
        Format::Hex => rec.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        }),
        // Without the NUL padding that C writers leave after a string.
        Format::Text => String::from_utf8_lossy(trim_nul(rec))
            .chars()
            .map(|c| {
                if c == '\0' {
                    "\\0".to_string()
                } else if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    }
}

pub fn run(
    name: &str,
    format: Format,
    count: Option<u64>,
    oldest: bool,
    seq: bool,
) -> Result<(), CliError> {
    let o = objects::locate(name)?;
    if o.kind != Kind::Queue {
        return Err(CliError::new(
            crate::error::ERROR,
            format!("{} is a {}, not a queue", o.path, o.kind.as_str()),
        ));
    }
    let start = if oldest { Start::Oldest } else { Start::Newest };
    let mut obs = Observer::open(&o.path, start)?;
    let mut buf = vec![0u8; obs.slot_size()];
    let stdout = std::io::stdout();
    let mut printed = 0u64;
    while count.is_none_or(|c| printed < c) {
        let Some(r) = obs.next_timeout(&mut buf, Some(Duration::from_millis(200)))? else {
            continue;
        };
        if r.lost_before > 0 {
            eprintln!(
                "shmio tail: lost {} records before record {} (the producer lapped this reader)",
                r.lost_before, r.seq
            );
        }
        let text = render(format, &buf[..r.len.min(buf.len())], r.len);
        let mut out = stdout.lock();
        let res = if seq {
            writeln!(out, "{} {text}", r.seq)
        } else {
            writeln!(out, "{text}")
        };
        if res.and_then(|()| out.flush()).is_err() {
            // The reader went away (a closed pipe): done.
            return Ok(());
        }
        printed += 1;
    }
    eprintln!(
        "shmio tail: {} records received, {} lost",
        obs.received(),
        obs.lost()
    );
    Ok(())
}
