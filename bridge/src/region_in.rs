//! A replica's side (`region-in`): applies the primary's deltas to a local region of the same
//! geometry, catches up through the snapshot queryable, and keeps the replication state in the
//! region's header for local readers (`shmio::region::Region::replica`).
//!
//! A delta `(base, version]` is applied when the replica holds every change up to `base` or
//! later (one write section; readers see all of it or none), and the replica then holds every
//! change up to `version`. Otherwise something was missed (the replica joined late, the link
//! dropped, a bridge restarted, the primary's bridge sent a jump): the bridge asks the
//! snapshot queryable for the chunks changed after what it holds, applies the pieces (each
//! chunk only if newer than the replica's copy), and goes on with the deltas that arrived
//! meanwhile. A restarted replica bridge starts from what the region's header says was
//! applied, so neither a restart of either bridge nor a dropped link costs a full copy; a
//! full copy is taken only for a region that never replicated this primary (or a primary
//! recreated under the same name).

use std::ops::Range;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use shmio::region::replica::{Delta, PrimaryNews};
use shmio::region::{Error as RError, Region, RegionOptions};
use zenoh::Wait;
use zenoh::query::ConsolidationMode;
use zenoh::sample::SampleKind;

use crate::config::NetOptions;
use crate::region_wire::{self, JUMP, Kind, LAST, Msg, Query};
use crate::{Error, Result, Stop};

/// What `region-in` does.
#[derive(Debug, Clone)]
pub struct RegionInOptions {
    /// The local region (created with the primary's geometry if missing).
    pub region: String,
    /// The name the primary publishes under (default: the local region's).
    pub name: Option<String>,
    /// How long a snapshot query may take.
    pub query_timeout: Duration,
    /// How long a snapshot query may go without a reply before it is given up (a query sent
    /// while a link was coming back can go unanswered; the next delta or heartbeat, which
    /// shows the gap again, asks anew). The replica's thread waits no longer than this on a
    /// silent primary.
    pub reply_idle: Duration,
}

impl RegionInOptions {
    /// `region`, snapshot queries of at most 60 s, given up after 3 s without a reply.
    pub fn new(region: &str) -> RegionInOptions {
        RegionInOptions {
            region: region.into(),
            name: None,
            query_timeout: Duration::from_secs(60),
            reply_idle: Duration::from_secs(3),
        }
    }
}

/// What `region-in` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionInStats {
    /// Deltas applied (heartbeats not counted).
    pub deltas: u64,
    /// Bytes they wrote.
    pub delta_bytes: u64,
    /// Messages already held (older than what was applied).
    pub stale: u64,
    /// Messages that could not be read.
    pub bad: u64,
    /// Snapshot fetches (catch-ups, full copies and repairs).
    pub catchups: u64,
    /// Of them, full copies (every chunk).
    pub full_copies: u64,
    /// Bytes the fetches received.
    pub catchup_bytes: u64,
    /// Fetches given up after [`RegionInOptions::reply_idle`] without a reply.
    pub stalled: u64,
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

struct Replica {
    session: zenoh::Session,
    snapshot_key: String,
    region: Region,
    source: u64,
    applied: u64,
    /// The newest piece version of the last catch-up: until `applied` reaches it, the data may
    /// mix versions.
    target: u64,
    timeout: Duration,
    reply_idle: Duration,
    stats: RegionInStats,
    /// The parts of a delta received so far, until its last.
    assembly: Option<Assembly>,
}

/// A delta sent as several messages, being put together.
struct Assembly {
    version: u64,
    next: u32,
    ranges: Vec<(u64, u64)>,
    data: Vec<u8>,
}

/// Applies the changes of the primary published as `opts.name` (or the region's name) to the
/// local region `opts.region` until `stop` is set. `ready` is called once the subscriptions
/// are declared.
pub fn run(
    net: &NetOptions,
    opts: &RegionInOptions,
    stop: &Stop,
    ready: &dyn Fn(),
) -> Result<RegionInStats> {
    let name = opts.name.as_deref().unwrap_or(&opts.region);
    let session = net.open()?;
    let alive = Arc::new(AtomicU8::new(UNKNOWN));
    let shared: Arc<Shared> = Arc::default();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let (sh, a) = (Arc::clone(&shared), Arc::clone(&alive));
    let _sub = session
        .declare_subscriber(net.key(name, "delta"))
        .callback(move |s| {
            let bytes = s.payload().to_bytes();
            // The fast path, on Zenoh's thread: a delta that follows what is held is applied
            // here, one thread hop less. Anything else (and anything behind a message still
            // queued, to keep the order) goes to the bridge's thread.
            if let Ok(mut st) = sh.state.try_lock()
                && sh.queued.load(Ordering::Acquire) == 0
                && let Some(r) = st.rep.as_mut()
                && let Ok(m) = region_wire::decode(&bytes)
                && r.follows(&m)
            {
                if let Err(e) = r.on_part(&m, a.load(Ordering::Relaxed) != DOWN) {
                    st.error = Some(e);
                }
                return;
            }
            sh.queued.fetch_add(1, Ordering::AcqRel);
            let _ = tx.send(bytes.into_owned());
        })
        .wait()
        .map_err(Error::zenoh)?;
    let a = Arc::clone(&alive);
    let _live = session
        .liveliness()
        .declare_subscriber(net.key(name, "primary"))
        .history(true)
        .callback(move |s| {
            a.store(
                if s.kind() == SampleKind::Put {
                    UP
                } else {
                    DOWN
                },
                Ordering::Relaxed,
            );
        })
        .wait()
        .map_err(Error::zenoh)?;
    ready();

    while !stop.is_set() {
        let got = rx.recv_timeout(Duration::from_millis(100));
        let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = st.error.take() {
            return Err(e);
        }
        let bytes = match got {
            Ok(b) => b,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(r) = &st.rep {
                    r.region
                        .note_primary_alive(alive.load(Ordering::Relaxed) == UP);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let res = handle(
            &mut st,
            &bytes,
            &session,
            net.key(name, "snapshot"),
            opts,
            &alive,
        );
        shared.queued.fetch_sub(1, Ordering::AcqRel);
        res?;
    }
    let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    Ok(st.rep.take().map(|r| r.stats).unwrap_or_default())
}

/// What the subscriber's callback and the bridge's thread share.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Messages sent to the bridge's thread and not handled yet.
    queued: AtomicUsize,
}

#[derive(Default)]
struct State {
    rep: Option<Replica>,
    /// An error of the fast path, for the bridge's thread to return.
    error: Option<Error>,
}

/// The bridge's thread: one message that the fast path left.
fn handle(
    st: &mut State,
    bytes: &[u8],
    session: &zenoh::Session,
    snapshot_key: String,
    opts: &RegionInOptions,
    alive: &AtomicU8,
) -> Result<()> {
    let msg = match region_wire::decode(bytes) {
        Ok(m) if m.kind == Kind::Delta => m,
        _ => {
            if let Some(r) = st.rep.as_mut() {
                r.stats.bad += 1;
            }
            return Ok(());
        }
    };
    if st.rep.as_ref().is_none_or(|r| r.source != msg.incarnation) {
        // A first message, or a primary recreated (another incarnation, perhaps another size).
        let region = match st.rep.take() {
            Some(r) => r.region,
            None => open_or_create(&opts.region, &msg)?,
        };
        same_geometry(&region, &msg)?;
        st.rep = Some(Replica::start(
            session.clone(),
            snapshot_key,
            region,
            &msg,
            (opts.query_timeout, opts.reply_idle),
        )?);
    }
    let r = st.rep.as_mut().expect("set above");
    r.on_part(&msg, alive.load(Ordering::Relaxed) != DOWN)
}

/// Opens the local region, or creates it with the primary's geometry; either way it must have
/// that geometry.
fn open_or_create(name: &str, m: &Msg<'_>) -> Result<Region> {
    let opts = RegionOptions::new().chunk_size(u64::from(m.chunk));
    let r = match Region::open(name, &opts) {
        Err(RError::NotFound(_)) => match Region::create(name, m.size, &opts) {
            Err(RError::AlreadyExists(_)) => Region::open(name, &opts),
            other => other,
        },
        other => other,
    }
    .map_err(Error::Region)?;
    same_geometry(&r, m)?;
    Ok(r)
}

/// [`Error::Geometry`] unless the local region has the primary's size and chunk.
fn same_geometry(r: &Region, m: &Msg<'_>) -> Result<()> {
    if r.len() as u64 != m.size || r.chunk_size() != u64::from(m.chunk) {
        return Err(Error::Geometry(format!(
            "the local region {} has {} bytes in chunks of {}, the primary {} in chunks of {}",
            r.path().display(),
            r.len(),
            r.chunk_size(),
            m.size,
            m.chunk
        )));
    }
    Ok(())
}

impl Replica {
    /// Makes `region` a replica of the primary that sent `m`: goes on from what it applied if
    /// it replicated that primary before; repairs what a bridge that died mid-apply left.
    fn start(
        session: zenoh::Session,
        snapshot_key: String,
        region: Region,
        m: &Msg<'_>,
        (timeout, reply_idle): (Duration, Duration),
    ) -> Result<Replica> {
        let st = region
            .become_replica(m.incarnation)
            .map_err(Error::Region)?;
        let mut r = Replica {
            session,
            snapshot_key,
            region,
            source: m.incarnation,
            applied: st.applied,
            target: 0,
            timeout,
            reply_idle,
            stats: RegionInStats::default(),
            assembly: None,
        };
        // A previous bridge died mid-apply: those chunks' generations are 0, so a fetch of
        // their range takes them all again.
        if st.applied == 0 {
            // Nothing of this primary held: what the region holds may be anything.
            r.fetch(None, 0..u64::MAX)?;
        } else if let Some((off, len)) = r.region.torn().map_err(Error::Region)? {
            r.fetch(None, off..off + len)?;
        }
        Ok(r)
    }

    /// Whether `m` is a delta of this primary that [`Replica::on_delta`] applies without a
    /// fetch (or finds already held).
    fn follows(&self, m: &Msg<'_>) -> bool {
        m.kind == Kind::Delta
            && m.incarnation == self.source
            && (m.version <= self.applied || (m.base <= self.applied && m.flags & JUMP == 0))
    }

    /// A message of a delta: the delta is handled once its last part is in. A part out of
    /// order (one was lost) drops the delta; the next one then shows the gap.
    fn on_part(&mut self, m: &Msg<'_>, alive: bool) -> Result<()> {
        if m.parts == 1 {
            return self.on_delta(m, alive);
        }
        match self.assembly.as_mut() {
            _ if m.part == 0 => {
                self.assembly = Some(Assembly {
                    version: m.version,
                    next: 1,
                    ranges: m.ranges.clone(),
                    data: m.data.to_vec(),
                });
                return Ok(());
            }
            Some(a) if a.version == m.version && a.next == m.part => {
                a.next += 1;
                a.ranges.extend_from_slice(&m.ranges);
                a.data.extend_from_slice(m.data);
            }
            _ => {
                self.assembly = None;
                self.stats.bad += 1;
                return Ok(());
            }
        }
        if m.part + 1 < m.parts {
            return Ok(());
        }
        let a = self.assembly.take().expect("matched above");
        let whole = Msg {
            ranges: a.ranges,
            data: &a.data,
            part: 0,
            parts: 1,
            ..m.clone()
        };
        self.on_delta(&whole, alive)
    }

    /// A delta (or heartbeat) from the primary, which is `alive` as far as its liveliness
    /// token tells.
    fn on_delta(&mut self, m: &Msg<'_>, alive: bool) -> Result<()> {
        if m.version <= self.applied {
            self.stats.stale += 1;
        } else if m.base <= self.applied && m.flags & JUMP == 0 {
            self.apply(m, Some(m.version))?;
            self.stats.deltas += 1;
            self.stats.delta_bytes += m.data.len() as u64;
        } else {
            // Something was missed: fetch what changed after what is held. A replica that
            // holds nothing of this primary (applied 0) takes every chunk.
            let since = (self.applied != 0).then_some(self.applied);
            self.fetch(since, 0..u64::MAX)?;
        }
        self.region.note_primary(&PrimaryNews {
            version: m.version,
            alive,
            writer_alive: m.writer_alive(),
            catching_up: self.applied < self.target,
        });
        Ok(())
    }

    fn apply(&mut self, m: &Msg<'_>, applied: Option<u64>) -> Result<()> {
        self.region
            .apply(&Delta {
                source: m.incarnation,
                version: m.version,
                ranges: &m.ranges,
                data: m.data,
                torn: m.torn,
                applied,
            })
            .map_err(Error::Region)?;
        if let Some(v) = applied {
            self.applied = self.applied.max(v);
        }
        Ok(())
    }

    /// Fetches the chunks changed after `since` (all if `None`) that hold a byte of `range`,
    /// through the snapshot queryable, and applies them. For the whole region, the replica
    /// then holds every change up to the oldest piece's version. An answer cut short (the
    /// primary's bridge went away) leaves things as they were; the next delta tries again.
    fn fetch(&mut self, since: Option<u64>, range: Range<u64>) -> Result<()> {
        self.stats.catchups += 1;
        if since.is_none() && range == (0..u64::MAX) {
            self.stats.full_copies += 1;
        }
        let whole = range.start == 0 && range.end >= self.region.len() as u64;
        self.region.note_primary(&PrimaryNews {
            version: self.applied,
            alive: true,
            writer_alive: None,
            catching_up: true,
        });
        let q = Query {
            since,
            from: range.start,
            to: range.end,
        };
        let replies = self
            .session
            .get(&self.snapshot_key)
            .payload(q.encode())
            .consolidation(ConsolidationMode::None)
            .timeout(self.timeout)
            .wait()
            .map_err(Error::zenoh)?;
        let (mut oldest, mut newest) = (u64::MAX, 0u64);
        loop {
            let reply = match replies.recv_timeout(self.reply_idle) {
                Ok(Some(reply)) => reply,
                // Silent: give up (dropping the receiver ends the query); what was applied
                // stays, and the next message that shows the gap asks again.
                Ok(None) => {
                    self.stats.stalled += 1;
                    return Ok(());
                }
                // Every reply is in (or the query timed out).
                Err(_) => return Ok(()),
            };
            let Ok(sample) = reply.result() else { continue };
            let bytes = sample.payload().to_bytes();
            let Ok(m) = region_wire::decode(&bytes) else {
                self.stats.bad += 1;
                continue;
            };
            if m.kind != Kind::Piece || m.incarnation != self.source {
                continue;
            }
            oldest = oldest.min(m.version);
            newest = newest.max(m.version);
            let last = m.flags & LAST != 0;
            self.apply(&m, (last && whole).then_some(oldest))?;
            self.stats.catchup_bytes += m.data.len() as u64;
            if last {
                self.target = self.target.max(newest);
                return Ok(());
            }
        }
    }
}
