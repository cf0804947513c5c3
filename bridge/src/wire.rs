//! The messages a queue bridge exchanges, and their byte layout (little endian).
//!
//! Every message starts with the same 16 bytes: magic `b"SB"`, version, kind, the sending
//! bridge's run id (random, new each time `queue-out` starts) and the upstream producer's
//! generation. Records are numbered twice: by the upstream queue's own sequence number (`seq`,
//! which tells the upstream losses apart) and by their position in the run's stream (`pos`,
//! dense, which tells a loss between the bridges apart and is what credit is counted in).

use std::time::Duration;

use shmio::queue::{Consumer, Policy, QueueInfo};

use crate::{Error, Result};

const MAGIC: [u8; 2] = *b"SB";
const VERSION: u8 = 1;
const COMMON: usize = 16;
/// Bytes a record adds to a batch beside its payload: its sequence number and length.
pub const RECORD_OVERHEAD: usize = 12;
/// Bytes a batch starts with.
pub const BATCH_HEADER: usize = COMMON + 12;

const KIND_HEADER: u8 = 1;
const KIND_BATCH: u8 = 2;
const KIND_END: u8 = 3;
const KIND_CREDIT: u8 = 4;

/// A queue's fixed geometry, as it travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Overwrite or back-pressure.
    pub policy: Policy,
    /// Slots in the ring.
    pub slot_count: u32,
    /// Largest record.
    pub slot_size: u32,
    /// Most consumers at once.
    pub max_consumers: u32,
}

impl From<&QueueInfo> for Geometry {
    fn from(i: &QueueInfo) -> Self {
        Geometry {
            policy: i.policy,
            slot_count: i.slot_count,
            slot_size: i.slot_size,
            max_consumers: i.max_consumers,
        }
    }
}

/// The upstream producer generation's state, as the sending bridge sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The generation is open: its producer lives, or it left records the bridge has not sent
    /// yet.
    Alive,
    /// The producer died without closing.
    Dead,
    /// The producer closed the queue (or none ever held it).
    Closed,
}

/// Where a stream stands: sent as the header of each producer generation, and as the reply of
/// the bridge's queryable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The sending bridge's run.
    pub run: u64,
    /// The upstream producer generation.
    pub generation: u32,
    /// The upstream queue's geometry.
    pub geometry: Geometry,
    /// The upstream producer's state.
    pub state: State,
    /// The position the next record of the stream gets.
    pub next_pos: u64,
}

/// The end of a producer generation: every record of it was sent before this message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    /// The sending bridge's run.
    pub run: u64,
    /// The generation that ended.
    pub generation: u32,
    /// [`State::Dead`] or [`State::Closed`].
    pub state: State,
    /// The position the next record of the stream gets.
    pub next_pos: u64,
}

/// A receiving bridge's grant: the sender may send records with positions below `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credit {
    /// The run the grant is for.
    pub run: u64,
    /// Positions below this may be sent.
    pub limit: u64,
}

/// One decoded message.
#[derive(Debug)]
pub enum Message<'a> {
    /// A generation's header.
    Header(Header),
    /// Records.
    Batch(Batch<'a>),
    /// A generation's end.
    End(End),
    /// A grant of credit.
    Credit(Credit),
}

/// A batch of records, as received.
#[derive(Debug)]
pub struct Batch<'a> {
    /// The sending bridge's run.
    pub run: u64,
    /// The upstream producer generation of every record in it.
    pub generation: u32,
    /// The position of its first record.
    pub first_pos: u64,
    /// How many records it holds.
    pub count: u32,
    body: &'a [u8],
}

impl<'a> Batch<'a> {
    /// The records: (upstream sequence number, payload). A malformed record ends the
    /// iteration with an error.
    pub fn records(&self) -> impl Iterator<Item = Result<(u64, &'a [u8])>> + 'a {
        let mut r = Reader(self.body);
        let mut left = self.count;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let rec = (|| {
                let seq = r.u64()?;
                let len = r.u32()? as usize;
                Ok((seq, r.bytes(len)?))
            })();
            if rec.is_err() {
                left = 0;
            }
            Some(rec)
        })
    }
}

fn common(out: &mut Vec<u8>, kind: u8, run: u64, generation: u32) {
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&run.to_le_bytes());
    out.extend_from_slice(&generation.to_le_bytes());
}

fn policy_byte(p: Policy) -> u8 {
    match p {
        Policy::Overwrite => 0,
        Policy::BackPressure => 1,
    }
}

fn state_byte(s: State) -> u8 {
    match s {
        State::Alive => 0,
        State::Dead => 1,
        State::Closed => 2,
    }
}

impl Header {
    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(COMMON + 24);
        common(&mut out, KIND_HEADER, self.run, self.generation);
        out.push(policy_byte(self.geometry.policy));
        out.push(state_byte(self.state));
        out.extend_from_slice(&self.geometry.slot_count.to_le_bytes());
        out.extend_from_slice(&self.geometry.slot_size.to_le_bytes());
        out.extend_from_slice(&self.geometry.max_consumers.to_le_bytes());
        out.extend_from_slice(&self.next_pos.to_le_bytes());
        out
    }
}

impl End {
    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(COMMON + 9);
        common(&mut out, KIND_END, self.run, self.generation);
        out.push(state_byte(self.state));
        out.extend_from_slice(&self.next_pos.to_le_bytes());
        out
    }
}

impl Credit {
    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(COMMON + 8);
        common(&mut out, KIND_CREDIT, self.run, 0);
        out.extend_from_slice(&self.limit.to_le_bytes());
        out
    }
}

/// Builds a batch in place: [`begin`](Self::begin), then [`recv`](Self::recv) (or
/// [`push`](Self::push)) per record, then [`finish`](Self::finish).
#[derive(Debug, Default)]
pub struct BatchWriter {
    buf: Vec<u8>,
    count: u32,
}

impl BatchWriter {
    /// Starts a new batch (the previous one's bytes are dropped).
    pub fn begin(&mut self, run: u64, generation: u32, first_pos: u64) {
        self.buf.clear();
        common(&mut self.buf, KIND_BATCH, run, generation);
        self.buf.extend_from_slice(&first_pos.to_le_bytes());
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        self.count = 0;
    }

    /// Records in the batch.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The batch's size in bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// No record yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Receives the next record of `c` (waiting at most `timeout`) straight into the batch;
    /// returns its sequence number. `max` is the queue's slot size. On an error the batch is
    /// unchanged.
    pub fn recv(
        &mut self,
        c: &mut Consumer,
        max: usize,
        timeout: Option<Duration>,
    ) -> shmio::queue::Result<u64> {
        self.buf.reserve(RECORD_OVERHEAD + max);
        let at = self.buf.len();
        let spare = &mut self.buf.spare_capacity_mut()[..RECORD_OVERHEAD + max];
        let (seq, len) = c.recv_uninit_for(&mut spare[RECORD_OVERHEAD..], timeout)?;
        let mut head = [0u8; RECORD_OVERHEAD];
        head[..8].copy_from_slice(&seq.to_le_bytes());
        head[8..].copy_from_slice(&(len as u32).to_le_bytes());
        for (d, s) in spare.iter_mut().zip(head) {
            d.write(s);
        }
        // SAFETY: the capacity was reserved above; the record's header bytes were written
        // just now and its `len <= max` payload bytes by `recv_uninit_for`, whose success
        // guarantees they are initialised.
        unsafe { self.buf.set_len(at + RECORD_OVERHEAD + len) };
        self.count += 1;
        Ok(seq)
    }

    /// Appends one record.
    pub fn push(&mut self, seq: u64, data: &[u8]) {
        self.buf.extend_from_slice(&seq.to_le_bytes());
        self.buf
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(data);
        self.count += 1;
    }

    /// The finished batch's bytes, handed over (the writer starts empty again).
    pub fn finish(&mut self) -> Vec<u8> {
        let n = self.count.to_le_bytes();
        self.buf[COMMON + 8..COMMON + 12].copy_from_slice(&n);
        self.count = 0;
        std::mem::take(&mut self.buf)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::Protocol(format!(
                "message cut short: {n} bytes wanted, {} left",
                self.0.len()
            )));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.bytes(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.bytes(8)?.try_into().unwrap_or_default(),
        ))
    }
    fn policy(&mut self) -> Result<Policy> {
        match self.u8()? {
            0 => Ok(Policy::Overwrite),
            1 => Ok(Policy::BackPressure),
            p => Err(Error::Protocol(format!("unknown policy {p}"))),
        }
    }
    fn state(&mut self) -> Result<State> {
        match self.u8()? {
            0 => Ok(State::Alive),
            1 => Ok(State::Dead),
            2 => Ok(State::Closed),
            s => Err(Error::Protocol(format!("unknown producer state {s}"))),
        }
    }
}

/// Decodes one message.
pub fn decode(bytes: &[u8]) -> Result<Message<'_>> {
    let mut r = Reader(bytes);
    let (magic, version, kind) = (r.bytes(2)?, r.u8()?, r.u8()?);
    if magic != MAGIC || version != VERSION {
        return Err(Error::Protocol(format!(
            "not a shmio bridge message of version {VERSION} (magic {magic:02x?}, version {version})"
        )));
    }
    let (run, generation) = (r.u64()?, r.u32()?);
    Ok(match kind {
        KIND_HEADER => {
            let (policy, state) = (r.policy()?, r.state()?);
            let geometry = Geometry {
                policy,
                slot_count: r.u32()?,
                slot_size: r.u32()?,
                max_consumers: r.u32()?,
            };
            Message::Header(Header {
                run,
                generation,
                geometry,
                state,
                next_pos: r.u64()?,
            })
        }
        KIND_BATCH => Message::Batch(Batch {
            run,
            generation,
            first_pos: r.u64()?,
            count: r.u32()?,
            body: r.0,
        }),
        KIND_END => Message::End(End {
            run,
            generation,
            state: r.state()?,
            next_pos: r.u64()?,
        }),
        KIND_CREDIT => Message::Credit(Credit {
            run,
            limit: r.u64()?,
        }),
        k => return Err(Error::Protocol(format!("unknown message kind {k}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let geometry = Geometry {
            policy: Policy::BackPressure,
            slot_count: 64,
            slot_size: 100,
            max_consumers: 8,
        };
        let h = Header {
            run: 7,
            generation: 2,
            geometry,
            state: State::Alive,
            next_pos: 99,
        };
        assert!(matches!(decode(&h.encode()).unwrap(), Message::Header(x) if x == h));
        let e = End {
            run: 7,
            generation: 2,
            state: State::Dead,
            next_pos: 5,
        };
        assert!(matches!(decode(&e.encode()).unwrap(), Message::End(x) if x == e));
        let c = Credit { run: 7, limit: 12 };
        assert!(matches!(decode(&c.encode()).unwrap(), Message::Credit(x) if x == c));

        let mut w = BatchWriter::default();
        w.begin(7, 2, 40);
        w.push(10, b"abc");
        w.push(12, b"xy");
        w.push(13, b"");
        let bytes = w.finish();
        let Message::Batch(b) = decode(&bytes).unwrap() else {
            panic!("not a batch")
        };
        assert_eq!((b.run, b.generation, b.first_pos, b.count), (7, 2, 40, 3));
        let recs: Vec<_> = b.records().map(|r| r.unwrap()).collect();
        assert_eq!(
            recs,
            vec![(10, &b"abc"[..]), (12, &b"xy"[..]), (13, &b""[..])]
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert!(decode(b"").is_err());
        assert!(decode(b"XX\x01\x01").is_err());
        let mut w = BatchWriter::default();
        w.begin(1, 1, 0);
        w.push(0, b"hello");
        let mut bytes = w.finish();
        bytes.truncate(bytes.len() - 2);
        let Message::Batch(b) = decode(&bytes).unwrap() else {
            panic!("not a batch")
        };
        let recs: Vec<_> = b.records().collect();
        assert_eq!(recs.len(), 1);
        assert!(recs[0].is_err());
    }
}
