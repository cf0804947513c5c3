//! Host B's side (`queue-in`): produces the records of a stream into a local queue.
//!
//! [`run_once`] follows one upstream producer generation: it waits for the upstream bridge,
//! creates the local queue with the upstream geometry (or takes it over), produces every
//! record, and returns how the generation ended. The caller decides what the end means for
//! the local producer: `shmio-bridge queue-in` runs each call in a worker process and ends a
//! [`Ending::Dead`] worker with SIGKILL, so that the local consumers see `ProducerDead` (the
//! core API has no other way to leave a producer dead), and a [`Ending::Closed`] one normally
//! (they see `Closed`); it then starts the next worker, which takes the queue over when the
//! upstream has a producer again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmio::queue::{Error as QError, Policy, Producer, QueueInfo, QueueOptions};
use zenoh::bytes::ZBytes;
use zenoh::qos::CongestionControl;
use zenoh::sample::SampleKind;
use zenoh::{Session, Wait};

use crate::config::NetOptions;
use crate::wire::{self, Batch, Credit, Geometry, Header, Message, State};
use crate::{Error, Result, Stop};

/// What `queue-in` does.
#[derive(Debug, Clone)]
pub struct InOptions {
    /// The stream's name (the upstream queue's, or its `--stream`).
    pub stream: String,
    /// The local queue (default: the stream's name), a name in `SHMIO_DIR` or a path.
    pub local: Option<String>,
    /// Consumers the local queue must have before the first record is produced.
    pub wait_consumers: usize,
    /// Credit window in records (back-pressure queues); `None`: from the geometry.
    pub window: Option<u64>,
    /// Mode of a queue file this bridge creates.
    pub mode: u32,
    /// The run and position the previous worker stopped at (to count what it lost).
    pub resume: Option<(u64, u64)>,
}

impl InOptions {
    /// Stream `stream` into a local queue of the same name.
    pub fn new(stream: &str) -> InOptions {
        InOptions {
            stream: stream.into(),
            local: None,
            wait_consumers: 0,
            window: None,
            mode: 0o600,
            resume: None,
        }
    }
}

/// How a generation of the upstream producer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The upstream producer closed the queue.
    Closed,
    /// The upstream producer died, or its bridge, or the link (the reason says which).
    Dead(String),
    /// `stop` was set.
    Stopped,
}

/// What `queue-in` did: records are counted by the stream position and the upstream sequence
/// number they carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InStats {
    /// The upstream bridge's run.
    pub run: u64,
    /// The upstream producer generation followed.
    pub generation: u32,
    /// Records produced into the local queue.
    pub produced: u64,
    /// Records lost upstream: gaps in the upstream sequence numbers (overwrite mode).
    pub lost_upstream: u64,
    /// Records lost between the bridges: gaps in the stream positions (Zenoh dropped them,
    /// this bridge's buffer was full, or a previous worker lost them).
    pub lost_between: u64,
    /// Records received twice, skipped.
    pub duplicates: u64,
    /// Records of the stream from before this bridge joined it, skipped.
    pub before_join: u64,
    /// The next stream position expected (for the next worker's `resume`).
    pub next_pos: u64,
}

enum Live {
    Up,
    Down,
}

/// Bytes a receiver buffers before it drops messages (counted as lost between the bridges).
const MAX_BUFFER: usize = 64 << 20;

struct Inputs {
    data: mpsc::Receiver<ZBytes>,
    buffered: Arc<AtomicUsize>,
    live: mpsc::Receiver<Live>,
}

fn subscribe(session: &Session, net: &NetOptions, name: &str) -> Result<Inputs> {
    let (data_tx, data) = mpsc::channel::<ZBytes>();
    let buffered = Arc::new(AtomicUsize::new(0));
    let b = Arc::clone(&buffered);
    session
        .declare_subscriber(net.key(name, "stream"))
        .callback(move |s| {
            let p = s.payload().clone();
            // Past the bound the message is dropped: its records show as a gap.
            if b.fetch_add(p.len(), Ordering::Relaxed) + p.len() > MAX_BUFFER {
                b.fetch_sub(p.len(), Ordering::Relaxed);
                return;
            }
            let _ = data_tx.send(p);
        })
        .background()
        .wait()
        .map_err(Error::zenoh)?;
    let (live_tx, live) = mpsc::channel();
    session
        .liveliness()
        .declare_subscriber(net.key(name, "out"))
        .history(true)
        .callback(move |s| {
            let _ = live_tx.send(match s.kind() {
                SampleKind::Put => Live::Up,
                SampleKind::Delete => Live::Down,
            });
        })
        .background()
        .wait()
        .map_err(Error::zenoh)?;
    Ok(Inputs {
        data,
        buffered,
        live,
    })
}

/// Asks the upstream bridge where its stream stands.
fn query(session: &Session, key: &str) -> Option<Header> {
    let replies = session
        .get(key)
        .timeout(Duration::from_millis(500))
        .wait()
        .ok()?;
    while let Ok(reply) = replies.recv() {
        if let Ok(sample) = reply.result()
            && let Ok(Message::Header(h)) = wire::decode(&sample.payload().to_bytes())
        {
            return Some(h);
        }
    }
    None
}

fn options_of(g: &Geometry, mode: u32) -> QueueOptions {
    QueueOptions::new()
        .slots(g.slot_count)
        .slot_size(g.slot_size)
        .policy(g.policy)
        .max_consumers(g.max_consumers)
        .mode(mode)
}

/// Creates the local queue with geometry `g`, or takes over the one there if it has `g`.
fn local_producer(name: &str, g: &Geometry, mode: u32) -> Result<Producer> {
    let p = match Producer::create(name, &options_of(g, mode)) {
        Err(QError::AlreadyExists(_)) => Producer::open(name)?,
        r => r?,
    };
    let have = Geometry::from(&p.info());
    if have != *g {
        return Err(Error::Geometry(format!(
            "local queue {name} has {have:?}, the upstream queue {g:?}"
        )));
    }
    Ok(p)
}

/// The default credit window for geometry `g`: four rings' worth of records, at most 16 MiB.
pub fn default_window(g: &Geometry) -> u64 {
    let by_bytes = (16u64 << 20) / (u64::from(g.slot_size) + wire::RECORD_OVERHEAD as u64);
    (u64::from(g.slot_count) * 4).max(4096).min(by_bytes).max(8)
}

/// How [`run_once`] ended.
#[derive(Debug)]
pub struct Outcome {
    /// How the upstream generation ended.
    pub ending: Ending,
    /// What was done.
    pub stats: InStats,
    /// The local producer, still holding the queue (`None` if it never did): dropping it
    /// closes the queue (its consumers drain and see `Closed`); a process that ends without
    /// dropping it leaves it dead (they drain and see `ProducerDead`).
    pub producer: Option<Producer>,
}

fn outcome(ending: Ending, stats: &InStats, producer: Option<Producer>) -> Result<Outcome> {
    Ok(Outcome {
        ending,
        stats: stats.clone(),
        producer,
    })
}

/// Follows one upstream producer generation of `opts.stream` into the local queue (see the
/// module's documentation). `ready` is called with the local queue's geometry once it exists
/// with this bridge as its producer.
pub fn run_once(
    net: &NetOptions,
    opts: &InOptions,
    stop: &Stop,
    ready: &dyn Fn(&QueueInfo),
) -> Result<Outcome> {
    let name = opts.stream.as_str();
    let session = net.open()?;
    let inputs = subscribe(&session, net, name)?;
    let id = session.zid().to_string();
    let credit = session
        .declare_publisher(net.key(name, &format!("credit/{id}")))
        .congestion_control(CongestionControl::Block)
        .wait()
        .map_err(Error::zenoh)?;
    let _token = session
        .liveliness()
        .declare_token(net.key(name, &format!("in/{id}")))
        .wait()
        .map_err(Error::zenoh)?;
    let info_key = net.key(name, "info");
    let header = loop {
        if stop.is_set() {
            return outcome(Ending::Stopped, &InStats::default(), None);
        }
        match query(&session, &info_key) {
            Some(h) if h.state == State::Alive => break h,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let local = opts.local.as_deref().unwrap_or(name);
    let mut producer = local_producer(local, &header.geometry, opts.mode)?;
    ready(&producer.info());
    let mut rx = Receiver {
        stats: InStats {
            run: header.run,
            generation: header.generation,
            next_pos: header.next_pos,
            ..InStats::default()
        },
        start: header.next_pos,
        last_seq: None,
        window: opts
            .window
            .unwrap_or_else(|| default_window(&header.geometry))
            .max(1),
        granted: 0,
        since_grant: 0,
        granted_at: Instant::now(),
        credit,
        bp: header.geometry.policy == Policy::BackPressure,
    };
    if let Some((run, pos)) = opts.resume
        && run == header.run
    {
        rx.stats.lost_between += header.next_pos.saturating_sub(pos);
    }
    let poll = Some(Duration::from_millis(100));
    loop {
        match producer.wait_consumers(opts.wait_consumers, poll) {
            Ok(n) if n >= opts.wait_consumers => break,
            Ok(_) | Err(QError::Timeout) => {}
            Err(e) => return Err(e.into()),
        }
        if stop.is_set() {
            return outcome(Ending::Stopped, &rx.stats, Some(producer));
        }
    }
    rx.grant()?;
    loop {
        let bytes = match inputs.data.recv_timeout(Duration::from_millis(50)) {
            Ok(b) => b,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                rx.grant()?;
                if stop.is_set() {
                    return outcome(Ending::Stopped, &rx.stats, Some(producer));
                }
                if inputs.live.try_iter().any(|l| matches!(l, Live::Down)) {
                    // Everything the upstream sent before its session ended was queued first.
                    while let Ok(b) = inputs.data.try_recv() {
                        if let Some(end) = rx.handle(&mut producer, &inputs, &b)? {
                            return outcome(end, &rx.stats, Some(producer));
                        }
                    }
                    let reason = "the upstream bridge is gone (it exited, or the link was \
                                  silent for the lease)";
                    return outcome(Ending::Dead(reason.into()), &rx.stats, Some(producer));
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Zenoh("the session's subscriber ended".into()));
            }
        };
        if let Some(end) = rx.handle(&mut producer, &inputs, &bytes)? {
            return outcome(end, &rx.stats, Some(producer));
        }
        if inputs.buffered.load(Ordering::Relaxed) == 0 {
            // Nothing more queued: grant what was produced, however little.
            rx.grant()?;
        }
    }
}

struct Receiver<'a> {
    stats: InStats,
    /// The first position this bridge produces.
    start: u64,
    last_seq: Option<u64>,
    window: u64,
    granted: u64,
    since_grant: u64,
    granted_at: Instant,
    credit: zenoh::pubsub::Publisher<'a>,
    bp: bool,
}

impl Receiver<'_> {
    /// Grants credit up to the next position plus the window, if that moved or the last
    /// grant is half a second old (a grant is a plain publication: one could be missed).
    fn grant(&mut self) -> Result<()> {
        let limit = self.stats.next_pos + self.window;
        if limit == self.granted && self.granted_at.elapsed() < Duration::from_millis(500) {
            return Ok(());
        }
        let c = Credit {
            run: self.stats.run,
            limit,
        };
        self.credit.put(c.encode()).wait().map_err(Error::zenoh)?;
        self.granted = limit;
        self.since_grant = 0;
        self.granted_at = Instant::now();
        Ok(())
    }

    /// Handles one message; `Some` when it ends the generation.
    fn handle(
        &mut self,
        producer: &mut Producer,
        inputs: &Inputs,
        bytes: &ZBytes,
    ) -> Result<Option<Ending>> {
        inputs.buffered.fetch_sub(bytes.len(), Ordering::Relaxed);
        let bytes = bytes.to_bytes();
        let msg = wire::decode(&bytes)?;
        let (run, generation) = match &msg {
            Message::Header(h) => (h.run, h.generation),
            Message::Batch(b) => (b.run, b.generation),
            Message::End(e) => (e.run, e.generation),
            Message::Credit(_) => return Ok(None),
        };
        if run != self.stats.run {
            return Ok(Some(Ending::Dead("the upstream bridge restarted".into())));
        }
        if generation < self.stats.generation {
            return Ok(None);
        }
        if generation > self.stats.generation {
            // A take-over upstream whose end this bridge did not see.
            return Ok(Some(Ending::Dead(format!(
                "the upstream producer changed (generation {} to {generation})",
                self.stats.generation
            ))));
        }
        match msg {
            Message::Batch(b) => self.produce(producer, &b).map(|()| None),
            Message::End(e) => {
                // The stream's last batches may have been dropped on the way (an overwrite
                // stream is published without blocking): the end says how far it went.
                if e.next_pos > self.stats.next_pos {
                    self.stats.lost_between += e.next_pos - self.stats.next_pos;
                    self.stats.next_pos = e.next_pos;
                }
                Ok(Some(if e.state == State::Closed {
                    Ending::Closed
                } else {
                    Ending::Dead("the upstream producer died".into())
                }))
            }
            _ => Ok(None),
        }
    }

    fn produce(&mut self, producer: &mut Producer, b: &Batch<'_>) -> Result<()> {
        for (i, rec) in b.records().enumerate() {
            let (seq, data) = rec?;
            let pos = b.first_pos + i as u64;
            if pos < self.start {
                self.stats.before_join += 1;
                continue;
            }
            if pos < self.stats.next_pos {
                self.stats.duplicates += 1;
                continue;
            }
            let between = pos - self.stats.next_pos;
            self.stats.lost_between += between;
            if let Some(last) = self.last_seq
                && seq > last + 1
            {
                // The records lost between the bridges carried sequence numbers of this gap
                // too: only the rest were lost on A's ring.
                self.stats.lost_upstream += (seq - last - 1).saturating_sub(between);
            }
            producer.send(data)?;
            self.last_seq = Some(seq);
            self.stats.next_pos = pos + 1;
            self.stats.produced += 1;
            self.since_grant += 1;
            if self.bp && self.since_grant >= self.window / 4 {
                self.grant()?;
            }
        }
        Ok(())
    }
}
