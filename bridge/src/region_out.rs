//! The primary's side (`region-out`): publishes each change of a local region as a versioned
//! delta, answers snapshot queries, and holds a liveliness token while it runs.
//!
//! The bridge sleeps in `wait_changed`; when the version moves it reads every chunk changed
//! since the last version it published ([`Region::read_changes`], consistent: no write is
//! half in it) and publishes them as one delta `(base, version]`. Writes that land while it
//! publishes are in the next delta: deltas coalesce when the writer is faster than the
//! network, and the writer never waits for the bridge. With nothing to send it publishes a
//! heartbeat every [`RegionOutOptions::heartbeat`], which tells replicas the primary's version
//! and its writer's state and lets them notice a lost delta while idle.
//!
//! Snapshot queries are answered on a thread of their own, in pieces of at most
//! [`RegionOutOptions::piece`] bytes, each read consistently at its own version.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use shmio::region::track::Changes;
use shmio::region::{Error as RError, Region, RegionOptions};
use zenoh::Wait;
use zenoh::qos::CongestionControl;
use zenoh::query::Query as ZQuery;

use crate::config::NetOptions;
use crate::region_wire::{JUMP, Kind, LAST, Msg, Query, WRITER_ALIVE, WRITER_KNOWN};
use crate::{Error, Result, Stop};

/// What `region-out` does.
#[derive(Debug, Clone)]
pub struct RegionOutOptions {
    /// The local region (a name in `SHMIO_DIR`, or a path); also the name it is published
    /// under unless [`name`](Self::name) is set.
    pub region: String,
    /// The name the region is published under.
    pub name: Option<String>,
    /// Largest delta in bytes; more changed than this goes out as a jump (replicas fetch a
    /// snapshot).
    pub max_delta: usize,
    /// Largest snapshot piece in bytes.
    pub piece: usize,
    /// A heartbeat after this long without a delta.
    pub heartbeat: Duration,
    /// Largest message of a delta in bytes of data: a larger delta goes as several.
    pub part: usize,
}

impl RegionOutOptions {
    /// `region`, deltas of at most 64 MiB in messages of 60 KiB, snapshot pieces of 60 KiB
    /// (each fits one Zenoh batch, so Zenoh never fragments them: faster, and the only kind
    /// of message its low-latency transport carries), a heartbeat every 100 ms.
    pub fn new(region: &str) -> RegionOutOptions {
        RegionOutOptions {
            region: region.into(),
            name: None,
            max_delta: 64 << 20,
            piece: 60 << 10,
            heartbeat: Duration::from_millis(100),
            part: 60 << 10,
        }
    }
}

/// What `region-out` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionOutStats {
    /// Deltas published (heartbeats not counted).
    pub deltas: u64,
    /// Bytes of data they carried.
    pub delta_bytes: u64,
    /// Heartbeats published.
    pub heartbeats: u64,
    /// Deltas published as jumps (too large for one message).
    pub jumps: u64,
    /// Snapshot queries answered.
    pub queries: u64,
    /// Bytes of data the answers carried.
    pub snapshot_bytes: u64,
}

fn rerr(e: RError) -> Error {
    Error::Region(e)
}

/// Opens the region, waiting for it to exist (until `stop`).
pub(crate) fn open_region(name: &str, stop: &Stop) -> Result<Option<Region>> {
    loop {
        match Region::open(name, &RegionOptions::new()) {
            Ok(r) => return Ok(Some(r)),
            Err(RError::NotFound(_)) if !stop.is_set() => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(RError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(rerr(e)),
        }
    }
}

fn writer_flags(r: &Region) -> u8 {
    match r.writer() {
        Some(w) if w.alive => WRITER_KNOWN | WRITER_ALIVE,
        Some(_) => WRITER_KNOWN,
        None => 0,
    }
}

/// A message of `kind` carrying `c` (read from `r`).
fn message<'a>(r: &Region, kind: Kind, base: u64, flags: u8, c: &'a Changes) -> Msg<'a> {
    Msg {
        kind,
        incarnation: c.incarnation(),
        version: c.version(),
        base,
        size: r.len() as u64,
        chunk: r.chunk_size() as u32,
        flags: flags | writer_flags(r),
        torn: c.torn(),
        part: 0,
        parts: 1,
        ranges: c.ranges().to_vec(),
        data: c.data(),
    }
}

/// Publishes the changes of the local region `opts.region` until `stop` is set. Waits for the
/// region to exist. `ready` is called once the bridge is reachable (queryable and liveliness
/// token declared).
pub fn run(
    net: &NetOptions,
    opts: &RegionOutOptions,
    stop: &Stop,
    ready: &dyn Fn(),
) -> Result<RegionOutStats> {
    let Some(region) = open_region(&opts.region, stop)? else {
        return Ok(RegionOutStats::default());
    };
    if region.is_replica() {
        return Err(Error::Config(format!(
            "{} is a replica: promote it before publishing it",
            opts.region
        )));
    }
    let region = Arc::new(region);
    let name = opts.name.as_deref().unwrap_or(&opts.region);
    let session = net.open()?;
    let publisher = session
        .declare_publisher(net.key(name, "delta"))
        .congestion_control(CongestionControl::Block)
        // Sent at once, not held up to a millisecond for a fuller batch: a delta carries
        // every change since the last one already.
        .express(true)
        .wait()
        .map_err(Error::zenoh)?;
    let (qtx, qrx) = mpsc::channel::<ZQuery>();
    let _queryable = session
        .declare_queryable(net.key(name, "snapshot"))
        .callback(move |q| {
            let _ = qtx.send(q);
        })
        .wait()
        .map_err(Error::zenoh)?;
    let r = Arc::clone(&region);
    let piece = opts.piece;
    let answers = std::thread::spawn(move || {
        let (mut n, mut bytes) = (0u64, 0u64);
        while let Ok(q) = qrx.recv() {
            n += 1;
            bytes += answer(&r, &q, piece);
        }
        (n, bytes)
    });
    let _token = session
        .liveliness()
        .declare_token(net.key(name, "primary"))
        .wait()
        .map_err(Error::zenoh)?;
    ready();

    let mut stats = RegionOutStats::default();
    let mut c = Changes::new();
    let mut last = region.version();
    let put = |m: &Msg<'_>| publisher.put(m.encode()).wait().map_err(Error::zenoh);
    // The first message is a heartbeat: replicas behind it catch up from what they hold.
    region
        .read_changes(Some(u64::MAX), 0..0, 0, &mut c)
        .map_err(rerr)?;
    last = last.max(c.version());
    while !stop.is_set() {
        let changed = match region.wait_changed(last, Some(opts.heartbeat)) {
            Ok(_) => true,
            Err(RError::Timeout | RError::Interrupted) => false,
            Err(e) => return Err(rerr(e)),
        };
        if changed {
            region
                .read_changes(Some(last), 0..u64::MAX, opts.max_delta, &mut c)
                .map_err(rerr)?;
            if c.next().is_some() {
                // Too much for one message: the version, and no bytes; replicas fetch them.
                put(&Msg {
                    ranges: Vec::new(),
                    data: &[],
                    ..message(&region, Kind::Delta, last, JUMP, &c)
                })?;
                stats.jumps += 1;
            } else {
                for m in parts(message(&region, Kind::Delta, last, 0, &c), opts.part) {
                    put(&m)?;
                }
                stats.deltas += 1;
                stats.delta_bytes += c.data().len() as u64;
            }
            last = c.version();
        } else {
            region
                .read_changes(Some(u64::MAX), 0..0, 0, &mut c)
                .map_err(rerr)?;
            // `read_changes` with nothing to read still reports the version; a change since
            // `last` is the next delta's, so the heartbeat says `last`.
            let hb = Msg {
                version: last,
                ..message(&region, Kind::Delta, last, 0, &c)
            };
            put(&hb)?;
            stats.heartbeats += 1;
        }
    }
    drop(_queryable);
    if let Ok((n, bytes)) = answers.join() {
        stats.queries = n;
        stats.snapshot_bytes = bytes;
    }
    Ok(stats)
}

/// `m` as messages of at most about `part` bytes of data each (whole chunks; at least one
/// chunk per message), numbered: Zenoh carries a message larger than its 64 KiB transport
/// batch in fragments, far more slowly than as many messages of its own.
fn parts(m: Msg<'_>, part: usize) -> Vec<Msg<'_>> {
    let chunk = u64::from(m.chunk).max(1);
    let part = (part as u64 / chunk).max(1) * chunk;
    // Per message: its ranges, and where its bytes start in `m.data` and how many.
    type Cut = (Vec<(u64, u64)>, usize, usize);
    let mut cut: Vec<Cut> = Vec::new();
    let (mut ranges, mut start, mut len) = (Vec::new(), 0usize, 0u64);
    for &(off, rlen) in &m.ranges {
        let mut at = off;
        while at < off + rlen {
            let take = (off + rlen - at).min(part - len);
            ranges.push((at, take));
            (at, len) = (at + take, len + take);
            if len == part {
                cut.push((std::mem::take(&mut ranges), start, len as usize));
                start += len as usize;
                len = 0;
            }
        }
    }
    if len != 0 || cut.is_empty() {
        cut.push((ranges, start, len as usize));
    }
    let n = cut.len() as u32;
    cut.into_iter()
        .enumerate()
        .map(|(i, (ranges, at, len))| Msg {
            part: i as u32,
            parts: n,
            ranges,
            data: &m.data[at..at + len],
            ..m.clone()
        })
        .collect()
}

/// Answers one snapshot query in pieces; returns the bytes sent.
fn answer(r: &Region, q: &ZQuery, piece: usize) -> u64 {
    let Some(query) = q.payload().and_then(|p| Query::decode(&p.to_bytes()).ok()) else {
        let _ = q.reply_err("bad snapshot query").wait();
        return 0;
    };
    let (mut c, mut from, mut sent) = (Changes::new(), query.from, 0u64);
    loop {
        if let Err(e) = r.read_changes(query.since, from..query.to, piece, &mut c) {
            let _ = q.reply_err(format!("snapshot: {e}")).wait();
            return sent;
        }
        let last = c.next().is_none();
        let m = message(r, Kind::Piece, 0, if last { LAST } else { 0 }, &c);
        if q.reply(q.key_expr().clone(), m.encode()).wait().is_err() {
            return sent;
        }
        sent += c.data().len() as u64;
        match c.next() {
            Some(n) => from = n,
            None => return sent,
        }
    }
}
