//! The messages of region replication, and their byte layout (little endian).
//!
//! ```text
//! every message   magic "SR", version 1, kind, the primary's incarnation (u64), version (u64)
//! delta (1)       base (u64): the replica must hold every change up to `base` to apply it;
//!                 geometry: data size (u64), chunk (u32); flags (u8, 3 bytes pad);
//!                 torn offset, length (u64, u64; length 0: none); part, parts (u32, u32: a
//!                 delta larger than a Zenoh batch goes as several messages, applied together
//!                 once the last arrives); ranges (u32), then per
//!                 range offset, length (u64, u64), then the ranges' bytes
//! piece (2)       a part of a snapshot: the same fields (base unused), flag LAST on the last
//! query           what a replica asks the snapshot queryable: since (u8 flag + u64), from,
//!                 to (u64, u64): the chunks changed after `since` (all if the flag is 0) that
//!                 hold a byte of from..to
//! ```
//! A delta with no ranges and `base == version` is a heartbeat: nothing changed up to
//! `version`. Flag JUMP on a delta: more changed than one message carries (the primary's
//! bridge fell behind a fast writer); replicas fetch the changes as a snapshot.

use crate::{Error, Result};

const MAGIC: [u8; 2] = *b"SR";
const VERSION: u8 = 2;
const COMMON: usize = 20;
const FIXED: usize = COMMON + 8 + 8 + 4 + 4 + 16 + 8 + 4;
/// Bytes a message adds per range.
pub const RANGE_OVERHEAD: usize = 16;

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Changes from `base` to `version`, published to every replica.
    Delta,
    /// A part of a snapshot, the reply to a query.
    Piece,
}

/// Flag: the primary region's writer claim is known (see `shmio::region::Region::writer`).
pub const WRITER_KNOWN: u8 = 1;
/// Flag: the claimed writer lives.
pub const WRITER_ALIVE: u8 = 2;
/// Flag (delta): changes were left out; fetch a snapshot from `base`.
pub const JUMP: u8 = 4;
/// Flag (piece): the snapshot's last piece.
pub const LAST: u8 = 8;

/// A delta or a snapshot piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg<'a> {
    /// Delta or piece.
    pub kind: Kind,
    /// The primary's incarnation.
    pub incarnation: u64,
    /// The primary version the bytes belong to.
    pub version: u64,
    /// Delta: the version the changes start after.
    pub base: u64,
    /// The primary region's data size.
    pub size: u64,
    /// Its change-tracking chunk.
    pub chunk: u32,
    /// [`WRITER_KNOWN`], [`WRITER_ALIVE`], [`JUMP`], [`LAST`].
    pub flags: u8,
    /// The primary's torn range.
    pub torn: Option<(u64, u64)>,
    /// This message's part of the delta, from 0.
    pub part: u32,
    /// The delta's parts (at least 1).
    pub parts: u32,
    /// The changed ranges.
    pub ranges: Vec<(u64, u64)>,
    /// Their bytes.
    pub data: &'a [u8],
}

impl Msg<'_> {
    /// The claimed writer's liveness, if the primary region has one.
    pub fn writer_alive(&self) -> Option<bool> {
        (self.flags & WRITER_KNOWN != 0).then_some(self.flags & WRITER_ALIVE != 0)
    }

    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b =
            Vec::with_capacity(FIXED + self.ranges.len() * RANGE_OVERHEAD + self.data.len());
        b.extend_from_slice(&MAGIC);
        b.push(VERSION);
        b.push(match self.kind {
            Kind::Delta => 1,
            Kind::Piece => 2,
        });
        for v in [self.incarnation, self.version, self.base, self.size] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.chunk.to_le_bytes());
        b.extend_from_slice(&[self.flags, 0, 0, 0]);
        let (toff, tlen) = self.torn.unwrap_or((0, 0));
        b.extend_from_slice(&toff.to_le_bytes());
        b.extend_from_slice(&tlen.to_le_bytes());
        b.extend_from_slice(&self.part.to_le_bytes());
        b.extend_from_slice(&self.parts.to_le_bytes());
        b.extend_from_slice(&(self.ranges.len() as u32).to_le_bytes());
        for &(off, len) in &self.ranges {
            b.extend_from_slice(&off.to_le_bytes());
            b.extend_from_slice(&len.to_le_bytes());
        }
        b.extend_from_slice(self.data);
        b
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Reads a message. Everything is checked that can be without the region: lengths, counts,
/// that the ranges' lengths sum to the data's (the replica's `apply` checks them against
/// the region).
pub fn decode(b: &[u8]) -> Result<Msg<'_>> {
    let bad = |m: &str| Err(Error::Protocol(format!("region message: {m}")));
    if b.len() < FIXED || b[..2] != MAGIC {
        return bad("too short or not one");
    }
    if b[2] != VERSION {
        return bad(&format!("version {}, this bridge speaks {VERSION}", b[2]));
    }
    let kind = match b[3] {
        1 => Kind::Delta,
        2 => Kind::Piece,
        k => return bad(&format!("unknown kind {k}")),
    };
    let n = u32_at(b, FIXED - 4) as usize;
    let Some(ranges_end) = n
        .checked_mul(RANGE_OVERHEAD)
        .and_then(|r| r.checked_add(FIXED))
        .filter(|&e| e <= b.len())
    else {
        return bad(&format!("{n} ranges do not fit in {} bytes", b.len()));
    };
    let mut ranges = Vec::with_capacity(n);
    let mut total = 0u64;
    for i in 0..n {
        let at = FIXED + i * RANGE_OVERHEAD;
        let (off, len) = (u64_at(b, at), u64_at(b, at + 8));
        total = total.saturating_add(len);
        ranges.push((off, len));
    }
    let data = &b[ranges_end..];
    if total != data.len() as u64 {
        return bad(&format!(
            "ranges of {total} bytes with {} bytes of data",
            data.len()
        ));
    }
    let tlen = u64_at(b, 52);
    let (part, parts) = (u32_at(b, 60), u32_at(b, 64));
    if parts == 0 || part >= parts {
        return bad(&format!("part {part} of {parts}"));
    }
    Ok(Msg {
        kind,
        incarnation: u64_at(b, 4),
        version: u64_at(b, 12),
        base: u64_at(b, 20),
        size: u64_at(b, 28),
        chunk: u32_at(b, 36),
        flags: b[40],
        torn: (tlen != 0).then(|| (u64_at(b, 44), tlen)),
        part,
        parts,
        ranges,
        data,
    })
}

/// What a replica asks the snapshot queryable for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// Chunks changed after this version; `None`: every chunk.
    pub since: Option<u64>,
    /// Only chunks holding a byte of `from..to`.
    pub from: u64,
    /// See `from`.
    pub to: u64,
}

impl Query {
    /// The query's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(25);
        b.push(u8::from(self.since.is_some()));
        for v in [self.since.unwrap_or(0), self.from, self.to] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// Reads a query.
    pub fn decode(b: &[u8]) -> Result<Query> {
        if b.len() != 25 || b[0] > 1 {
            return Err(Error::Protocol(format!(
                "snapshot query of {} bytes",
                b.len()
            )));
        }
        Ok(Query {
            since: (b[0] == 1).then(|| u64_at(b, 1)),
            from: u64_at(b, 9),
            to: u64_at(b, 17),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_bad_ones_are_refused() {
        let data = [7u8; 8192];
        let m = Msg {
            kind: Kind::Delta,
            incarnation: 0xabc,
            version: 42,
            base: 40,
            size: 1 << 20,
            chunk: 4096,
            flags: WRITER_KNOWN | WRITER_ALIVE,
            torn: Some((100, 50)),
            part: 1,
            parts: 3,
            ranges: vec![(0, 4096), (8192, 4096)],
            data: &data,
        };
        let b = m.encode();
        assert_eq!(decode(&b).unwrap(), m);
        assert_eq!(decode(&b).unwrap().writer_alive(), Some(true));
        // Truncated anywhere: an error, never a panic.
        for cut in 0..b.len() {
            assert!(decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut many = b.clone();
        many[FIXED - 4..FIXED].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&many).is_err());
        let mut long = b.clone();
        long[FIXED + 8..FIXED + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&long).is_err());
        let q = Query {
            since: Some(9),
            from: 1,
            to: u64::MAX,
        };
        assert_eq!(Query::decode(&q.encode()).unwrap(), q);
        assert!(Query::decode(&[2; 25]).is_err() && Query::decode(&[0; 3]).is_err());
    }
}
