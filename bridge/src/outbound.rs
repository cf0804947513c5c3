//! Host A's side (`queue-out`): a consumer of the local queue that publishes its records.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use shmio::queue::{Consumer, Error as QError, Policy, Start};
use zenoh::Wait;
use zenoh::qos::CongestionControl;
use zenoh::sample::SampleKind;

use crate::config::NetOptions;
use crate::wire::{self, BatchWriter, End, Geometry, Header, Message, State};
use crate::{Error, Result, Stop};

/// The default largest batch: with Zenoh's own framing it still fits one Zenoh transport
/// batch (64 KiB), so a batch of small records is never fragmented.
pub const MAX_BATCH: usize = 60 * 1024;

/// What `queue-out` does.
#[derive(Debug, Clone)]
pub struct OutOptions {
    /// The local queue (a name in `SHMIO_DIR`, or a path); also the stream's name unless
    /// [`stream`](Self::stream) is set.
    pub queue: String,
    /// The name the stream is published under (default: the queue's).
    pub stream: Option<String>,
    /// Where the bridge's consumer starts in the local queue.
    pub start: Start,
    /// Largest batch in bytes (records are batched while the local queue has more to read).
    pub max_batch: usize,
}

impl OutOptions {
    /// `queue`, read from the oldest record held, batches of at most [`MAX_BATCH`] bytes.
    pub fn new(queue: &str) -> OutOptions {
        OutOptions {
            queue: queue.into(),
            stream: None,
            start: Start::Oldest,
            max_batch: MAX_BATCH,
        }
    }
}

/// What `queue-out` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutStats {
    /// Records published.
    pub records: u64,
    /// Zenoh messages they went in.
    pub batches: u64,
    /// Records the bridge's consumer lost to overwriting on this host (overwrite mode).
    pub lost_here: u64,
    /// Producer generations followed.
    pub generations: u64,
    /// Times the bridge waited for a receiver's credit.
    pub credit_waits: u64,
}

/// The receivers' grants, updated by Zenoh's callbacks.
#[derive(Default)]
struct Credits {
    /// Receivers whose liveliness token is up, by id, with the limit they granted (0: none
    /// yet).
    limits: HashMap<String, u64>,
}

impl Credits {
    /// Positions below this may be sent to every receiver (0 with no receiver).
    fn limit(&self) -> u64 {
        self.limits.values().copied().min().unwrap_or(0)
    }
}

type Shared = Arc<(Mutex<Credits>, Condvar)>;

fn last_segment(key: &str) -> String {
    key.rsplit('/').next().unwrap_or_default().to_string()
}

fn open_consumer(opts: &OutOptions, stop: &Stop) -> Result<Option<Consumer>> {
    loop {
        match Consumer::open(&opts.queue, opts.start) {
            Ok(c) => return Ok(Some(c)),
            Err(QError::NotFound(_)) if !stop.is_set() => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(QError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

fn generation(c: &Consumer) -> u32 {
    c.stats().producer_generation
}

/// Consumes the local queue `opts.queue` and publishes its records until `stop` is set.
/// Waits for the queue to exist. `ready` is called once the bridge is reachable (its
/// queryable and liveliness token declared).
pub fn run(net: &NetOptions, opts: &OutOptions, stop: &Stop, ready: &dyn Fn()) -> Result<OutStats> {
    let Some(mut consumer) = open_consumer(opts, stop)? else {
        return Ok(OutStats::default());
    };
    let name = opts.stream.as_deref().unwrap_or(&opts.queue);
    let session = net.open()?;
    let run = crate::random_u64();
    let geometry = Geometry::from(&consumer.info());
    let slot = geometry.slot_size as usize;
    let bp = geometry.policy == Policy::BackPressure;
    // Open until this bridge has drained the generation, whatever its producer's state: the
    // records a dead producer committed still go out, then the end.
    let header = Arc::new(Mutex::new(Header {
        run,
        generation: generation(&consumer),
        geometry,
        state: State::Alive,
        next_pos: 0,
    }));
    let credits: Shared = Arc::default();

    let publisher = session
        .declare_publisher(net.key(name, "stream"))
        .congestion_control(if bp {
            CongestionControl::Block
        } else {
            CongestionControl::Drop
        })
        .wait()
        .map_err(Error::zenoh)?;
    let info_key = net.key(name, "info");
    let h = Arc::clone(&header);
    let _queryable = session
        .declare_queryable(&info_key)
        .callback(move |q| {
            let bytes = h.lock().map(|h| h.encode()).unwrap_or_default();
            let _ = q.reply(q.key_expr().clone(), bytes).wait();
        })
        .wait()
        .map_err(Error::zenoh)?;
    let c = Arc::clone(&credits);
    let _credit_sub = session
        .declare_subscriber(net.key(name, "credit/*"))
        .callback(move |s| {
            let Ok(Message::Credit(g)) = wire::decode(&s.payload().to_bytes()) else {
                return;
            };
            if g.run != run {
                return;
            }
            let (lock, cv) = &*c;
            let mut cr = lock.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(l) = cr.limits.get_mut(&last_segment(s.key_expr().as_str())) {
                *l = (*l).max(g.limit);
                cv.notify_all();
            }
        })
        .wait()
        .map_err(Error::zenoh)?;
    let c = Arc::clone(&credits);
    let _receivers = session
        .liveliness()
        .declare_subscriber(net.key(name, "in/*"))
        .history(true)
        .callback(move |s| {
            let (lock, cv) = &*c;
            let mut cr = lock.lock().unwrap_or_else(|e| e.into_inner());
            let id = last_segment(s.key_expr().as_str());
            match s.kind() {
                SampleKind::Put => {
                    cr.limits.entry(id).or_insert(0);
                }
                SampleKind::Delete => {
                    cr.limits.remove(&id);
                }
            }
            cv.notify_all();
        })
        .wait()
        .map_err(Error::zenoh)?;
    let _token = session
        .liveliness()
        .declare_token(net.key(name, "out"))
        .wait()
        .map_err(Error::zenoh)?;
    ready();

    let mut out = Sender {
        publisher,
        header,
        credits,
        stats: OutStats::default(),
        pos: 0,
        bp,
    };
    out.stats.generations = 1;
    out.send_header()?;
    let mut batch = BatchWriter::default();
    let poll = Some(Duration::from_millis(100));
    while !stop.is_set() {
        let generation = out.header().generation;
        batch.begin(run, generation, out.pos);
        let mut ended = None;
        loop {
            let queued = out.pos + u64::from(batch.count());
            let room = batch.len() + wire::RECORD_OVERHEAD + slot <= opts.max_batch;
            if !batch.is_empty() && (!room || !out.has_credit(queued)) {
                break;
            }
            if batch.is_empty() && !out.wait_credit(queued, stop) {
                break;
            }
            let timeout = if batch.is_empty() {
                poll
            } else {
                Some(Duration::ZERO)
            };
            match batch.recv(&mut consumer, slot, timeout) {
                Ok(_) => continue,
                Err(QError::WouldBlock | QError::Timeout) => {}
                Err(QError::ProducerDead) => ended = Some(State::Dead),
                Err(QError::Closed) => ended = Some(State::Closed),
                Err(e) => return Err(e.into()),
            }
            break;
        }
        if !batch.is_empty() {
            out.pos += u64::from(batch.count());
            out.stats.records += u64::from(batch.count());
            out.stats.batches += 1;
            // The queryable's answer moves first: a receiver told the new position skips
            // this batch if it gets it; one told the old position is already subscribed.
            out.lock_header().next_pos = out.pos;
            out.put(batch.finish())?;
        }
        out.stats.lost_here = consumer.lost();
        if let Some(state) = ended {
            out.end_generation(&mut consumer, state, stop)?;
        }
    }
    Ok(out.stats)
}

struct Sender<'a> {
    publisher: zenoh::pubsub::Publisher<'a>,
    header: Arc<Mutex<Header>>,
    credits: Shared,
    stats: OutStats,
    /// The position of the next record.
    pos: u64,
    bp: bool,
}

impl Sender<'_> {
    fn lock_header(&self) -> std::sync::MutexGuard<'_, Header> {
        self.header.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn header(&self) -> Header {
        *self.lock_header()
    }

    fn put(&self, bytes: Vec<u8>) -> Result<()> {
        self.publisher.put(bytes).wait().map_err(Error::zenoh)
    }

    fn send_header(&self) -> Result<()> {
        let h = {
            let mut h = self.lock_header();
            h.next_pos = self.pos;
            *h
        };
        self.put(h.encode())
    }

    /// Whether record position `pos` may be sent now.
    fn has_credit(&self, pos: u64) -> bool {
        !self.bp
            || pos
                < self
                    .credits
                    .0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .limit()
    }

    /// Waits until position `pos` may be sent; false if `stop` was set first.
    fn wait_credit(&mut self, pos: u64, stop: &Stop) -> bool {
        if self.has_credit(pos) {
            return true;
        }
        self.stats.credit_waits += 1;
        let (lock, cv) = &*self.credits;
        let mut cr = lock.lock().unwrap_or_else(|e| e.into_inner());
        while pos >= cr.limit() {
            if stop.is_set() {
                return false;
            }
            cr = cv
                .wait_timeout(cr, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// The producer died or closed: says so, waits for a new one, announces its generation.
    fn end_generation(&mut self, c: &mut Consumer, state: State, stop: &Stop) -> Result<()> {
        let end = {
            let mut h = self.lock_header();
            h.state = state;
            h.next_pos = self.pos;
            End {
                run: h.run,
                generation: h.generation,
                state,
                next_pos: self.pos,
            }
        };
        self.put(end.encode())?;
        loop {
            if stop.is_set() {
                return Ok(());
            }
            match c.wait_producer(Some(Duration::from_millis(100))) {
                Ok(()) => break,
                Err(QError::Timeout) => {}
                Err(e) => return Err(e.into()),
            }
        }
        {
            let mut h = self.lock_header();
            h.generation = generation(c);
            h.state = State::Alive;
        }
        self.stats.generations += 1;
        self.send_header()
    }
}
