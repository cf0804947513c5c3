//! The ceiling for small records: a true minimal single-producer single-consumer ring in
//! shared memory, with nothing a queue could leave out.
//!
//! - one stamp per slot, as shmio's slots have: the producer writes the record, then the slot's
//!   stamp (its sequence number + 1) with release; the consumer waits for the stamp it expects
//!   with acquire, so no head index is shared and a record moves only its own slot's lines;
//! - the consumer publishes its tail once every [`TAIL_BATCH`] records (fewer when the ring is
//!   shorter), and the producer reads it only when the ring looks full;
//! - the slot stride is shmio's for the same record size ([`stride`]).
//!
//! Waits spin (with the same yield after a short spin as every poller of the benchmark, so
//! that 1 -> 4 runs with more processes than cores still make progress).

use std::sync::atomic::Ordering;

use crate::peers::{Backoff, Rx, Shm, Tx};
use crate::systems::seq_of;

/// How often the consumer publishes its tail (records).
pub const TAIL_BATCH: u64 = 64;
/// The slot header: the stamp (8 bytes) and 8 bytes spare, as shmio's 16-byte slot header.
const HEADER: usize = 16;
/// The tail lives alone in the first 128 bytes; the slots follow.
const SLOTS_AT: usize = 128;

/// shmio's slot stride for `size`-byte records: its 16-byte slot header and the payload,
/// rounded up to 64 bytes (`Layout::new` in core/src/queue/layout.rs): 64 B records take
/// 128-byte slots.
pub fn stride(size: usize) -> usize {
    (HEADER + size).div_ceil(64) * 64
}

pub struct Ring {
    shm: Shm,
    size: usize,
    stride: usize,
    slots: u64,
    batch: u64,
    /// Records the consumer reads before it next publishes its tail.
    unpublished: u64,
    /// The next record to write (producer) or read (consumer).
    local: u64,
    /// Its slot's offset in the mapping (kept, not computed: a division per record would
    /// cost more than the rest of a hand-over).
    at: usize,
    /// The producer's last look at the consumer's tail.
    tail: u64,
}

impl Ring {
    pub fn len(size: usize, slots: usize) -> usize {
        SLOTS_AT + slots * stride(size)
    }

    /// Opens (the producer: creates) a ring of `slots` records of `size` bytes at `path`.
    pub fn open(path: &str, size: usize, slots: usize, create: bool) -> Ring {
        let slots = slots.max(2);
        Ring {
            shm: Shm::open(path, Ring::len(size, slots), create),
            size,
            stride: stride(size),
            slots: slots as u64,
            // Publishing the tail less often than once a ring would stall the producer.
            batch: TAIL_BATCH.min(slots as u64 / 2),
            unpublished: 0,
            local: 0,
            at: SLOTS_AT,
            tail: 0,
        }
    }

    /// Moves on to the next record and its slot.
    fn advance(&mut self) {
        self.local += 1;
        self.at += self.stride;
        if self.at == SLOTS_AT + self.slots as usize * self.stride {
            self.at = SLOTS_AT;
        }
    }
}

impl Tx for Ring {
    fn send(&mut self, rec: &[u8]) {
        let mut b = Backoff::default();
        while self.local >= self.tail + self.slots {
            self.tail = self.shm.atomic(0).load(Ordering::Acquire);
            if self.local >= self.tail + self.slots {
                b.snooze();
            }
        }
        let off = self.at;
        // SAFETY: the payload is inside the mapping (`Ring::len`), and the consumer is done
        // with this slot (its tail, read with acquire, is past the record it held last).
        unsafe {
            std::ptr::copy_nonoverlapping(
                rec.as_ptr(),
                self.shm.bytes(off + HEADER, self.size),
                self.size,
            )
        };
        self.advance();
        self.shm.atomic(off).store(self.local, Ordering::Release);
    }
}

impl Rx for Ring {
    fn recv(&mut self, buf: &mut [u8]) -> u64 {
        let off = self.at;
        let stamp = self.shm.atomic(off);
        let mut b = Backoff::default();
        while stamp.load(Ordering::Acquire) != self.local + 1 {
            b.snooze();
        }
        // SAFETY: the payload is inside the mapping, and published: its stamp, read with
        // acquire, says the producer wrote it; it is not rewritten before our tail passes it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.shm.bytes(off + HEADER, self.size),
                buf.as_mut_ptr(),
                self.size,
            )
        };
        self.advance();
        self.unpublished += 1;
        if self.unpublished == self.batch {
            self.unpublished = 0;
            self.shm.atomic(0).store(self.local, Ordering::Release);
        }
        seq_of(buf)
    }
}
