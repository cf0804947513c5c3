//! The queue and region files (layout version 2) as the test tools see them from outside:
//! `#[repr(C)]` mirrors of the library's header lines, and the file offsets derived from them
//! that the kill suite reads and scribbles, `shmio-qtool scribble` aims at and the fuzzer
//! mutates. Each tool checks this map against files the library made (the kill suite at
//! start-up, the fuzzer on every template), so a layout change fails loudly instead of making
//! them poke the wrong words.

use std::mem::offset_of;

/// One group of fields written by the same party, alone on its 128-byte line.
#[repr(C, align(128))]
pub struct Line<T>(pub T);

/// The first 16 bytes of every shmio file.
#[repr(C)]
pub struct Prefix {
    pub magic: u64,
    pub layout_version: u32,
    pub header_size: u32,
}

/// A field's place in the file: (offset, width in bytes), for a fuzzer to pick.
pub type Field = (u64, u8);

const fn at(offset: usize) -> u64 {
    offset as u64
}

/// Bits of the robust futex words (owner words, the region's lock word).
pub const FUTEX_WAITERS: u32 = 0x8000_0000;
pub const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
pub const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

/// The queue file: the header, `max_consumers` consumer slots at `consumers_offset`, then
/// `slot_count` slots (a [`queue::SlotHeader`] and the payload) of `slot_stride` bytes at
/// `slots_offset`.
pub mod queue {
    use super::{Field, Line, Prefix, at, offset_of};

    #[repr(C)]
    pub struct Config {
        pub prefix: Prefix,
        pub policy: u32,
        pub slot_count: u32,
        pub slot_size: u32,
        pub slot_stride: u32,
        pub max_consumers: u32,
        pub consumer_stride: u32,
        pub consumers_offset: u64,
        pub slots_offset: u64,
        pub total_size: u64,
        pub created_unix_ns: u64,
    }

    #[repr(C)]
    pub struct ProducerLine {
        pub head: u64,
        pub notify: u32,
    }

    #[repr(C)]
    pub struct OwnerLine {
        /// The producer's robust owner word.
        pub owner: u32,
        pub pid: u32,
        pub generation: u32,
    }

    #[repr(C)]
    pub struct SpaceLine {
        pub space_notify: u32,
        /// A back-pressure producer asleep for space.
        pub producer_waiting: u32,
        pub consumers_epoch: u32,
        pub consumers_hwm: u32,
    }

    #[repr(C)]
    pub struct Header {
        pub config: Line<Config>,
        pub prod: Line<ProducerLine>,
        /// Consumers announced asleep (low u32) and the count's epoch (high u32).
        pub waiters: Line<u64>,
        pub owner: Line<OwnerLine>,
        pub space: Line<SpaceLine>,
    }

    #[repr(C, align(128))]
    pub struct ConsumerSlot {
        pub owner: u32,
        pub pid: u32,
        pub death: u32,
        pub joined: u32,
        /// `sleep[0]`: the reading thread counted asleep (`SLEEP_COUNTED` with the count's
        /// epoch), 0 otherwise.
        pub sleep: [u32; 2],
        pub cursor: u64,
        pub lost: u64,
        pub received: u64,
    }

    #[repr(C)]
    pub struct SlotHeader {
        /// `2 * seq + 1` while record `seq` is written, `2 * seq + 2` once committed.
        pub stamp: u64,
        pub len: u32,
        pub reserved: u32,
    }

    pub const MAGIC: u64 = at(offset_of!(Header, config.0.prefix.magic));
    pub const LAYOUT_VERSION: u64 = at(offset_of!(Header, config.0.prefix.layout_version));
    pub const HEADER_SIZE: u64 = at(offset_of!(Header, config.0.prefix.header_size));
    pub const POLICY: u64 = at(offset_of!(Header, config.0.policy));
    pub const SLOT_COUNT: u64 = at(offset_of!(Header, config.0.slot_count));
    pub const SLOT_SIZE: u64 = at(offset_of!(Header, config.0.slot_size));
    pub const SLOT_STRIDE: u64 = at(offset_of!(Header, config.0.slot_stride));
    pub const MAX_CONSUMERS: u64 = at(offset_of!(Header, config.0.max_consumers));
    pub const CONSUMER_STRIDE_FIELD: u64 = at(offset_of!(Header, config.0.consumer_stride));
    pub const CONSUMERS_OFFSET: u64 = at(offset_of!(Header, config.0.consumers_offset));
    pub const SLOTS_OFFSET: u64 = at(offset_of!(Header, config.0.slots_offset));
    pub const TOTAL_SIZE: u64 = at(offset_of!(Header, config.0.total_size));
    pub const CREATED: u64 = at(offset_of!(Header, config.0.created_unix_ns));
    pub const HEAD: u64 = at(offset_of!(Header, prod.0.head));
    pub const NOTIFY: u64 = at(offset_of!(Header, prod.0.notify));
    pub const WAITERS: u64 = at(offset_of!(Header, waiters));
    pub const OWNER: u64 = at(offset_of!(Header, owner.0.owner));
    pub const PRODUCER_PID: u64 = at(offset_of!(Header, owner.0.pid));
    pub const GENERATION: u64 = at(offset_of!(Header, owner.0.generation));
    pub const SPACE_NOTIFY: u64 = at(offset_of!(Header, space.0.space_notify));
    pub const PRODUCER_WAITING: u64 = at(offset_of!(Header, space.0.producer_waiting));
    pub const CONSUMERS_EPOCH: u64 = at(offset_of!(Header, space.0.consumers_epoch));
    pub const CONSUMERS_HWM: u64 = at(offset_of!(Header, space.0.consumers_hwm));
    /// The header's size: where the consumer slots start.
    pub const HEADER_LEN: u64 = size_of::<Header>() as u64;

    /// Bytes per consumer slot, and the fields within one.
    pub const CONSUMER_STRIDE: u64 = size_of::<ConsumerSlot>() as u64;
    pub const C_OWNER: u64 = at(offset_of!(ConsumerSlot, owner));
    pub const C_PID: u64 = at(offset_of!(ConsumerSlot, pid));
    pub const C_DEATH: u64 = at(offset_of!(ConsumerSlot, death));
    pub const C_JOINED: u64 = at(offset_of!(ConsumerSlot, joined));
    pub const C_SLEEP: u64 = at(offset_of!(ConsumerSlot, sleep));
    pub const C_CURSOR: u64 = at(offset_of!(ConsumerSlot, cursor));
    pub const C_LOST: u64 = at(offset_of!(ConsumerSlot, lost));
    pub const C_RECEIVED: u64 = at(offset_of!(ConsumerSlot, received));

    /// The slot header's size, and its fields.
    pub const SLOT_HEADER: u64 = size_of::<SlotHeader>() as u64;
    pub const S_STAMP: u64 = at(offset_of!(SlotHeader, stamp));
    pub const S_LEN: u64 = at(offset_of!(SlotHeader, len));

    /// The configuration fields (read once at open).
    pub const CONFIG_FIELDS: &[Field] = &[
        (MAGIC, 8),
        (LAYOUT_VERSION, 4),
        (HEADER_SIZE, 4),
        (POLICY, 4),
        (SLOT_COUNT, 4),
        (SLOT_SIZE, 4),
        (SLOT_STRIDE, 4),
        (MAX_CONSUMERS, 4),
        (CONSUMER_STRIDE_FIELD, 4),
        (CONSUMERS_OFFSET, 8),
        (SLOTS_OFFSET, 8),
        (TOTAL_SIZE, 8),
        (CREATED, 8),
    ];

    /// The header fields the peers write while the queue lives; the sleeper count also as its
    /// two halves.
    pub const LIVE_FIELDS: &[Field] = &[
        (HEAD, 8),
        (NOTIFY, 4),
        (WAITERS, 8),
        (WAITERS, 4),
        (WAITERS + 4, 4),
        (OWNER, 4),
        (PRODUCER_PID, 4),
        (GENERATION, 4),
        (SPACE_NOTIFY, 4),
        (PRODUCER_WAITING, 4),
        (CONSUMERS_EPOCH, 4),
        (CONSUMERS_HWM, 4),
    ];

    /// Consumer slot fields, relative to the slot.
    pub const CONSUMER_FIELDS: &[Field] = &[
        (C_OWNER, 4),
        (C_PID, 4),
        (C_DEATH, 4),
        (C_JOINED, 4),
        (C_SLEEP, 4),
        (C_SLEEP + 4, 4),
        (C_CURSOR, 8),
        (C_LOST, 8),
        (C_RECEIVED, 8),
    ];
}

/// The region file: the header, then the data at [`region::DATA`].
pub mod region {
    use super::{Field, Line, Prefix, at, offset_of};

    #[repr(C)]
    pub struct Config {
        pub prefix: Prefix,
        pub data_offset: u64,
        pub data_size: u64,
        pub chunk_shift: u32,
        pub reserved: u32,
        pub created_unix_ns: u64,
        pub table_offset: u64,
        pub incarnation: u64,
    }

    /// Replication state (written by a replica's bridge).
    #[repr(C)]
    pub struct ReplicaLine {
        pub role: u32,
        pub flags: u32,
        pub source: u64,
        pub applied: u64,
        pub seen: u64,
        pub heard_unix_ns: u64,
        pub synced_unix_ns: u64,
    }

    /// The sequence lock and the bookkeeping of torn writes.
    #[repr(C)]
    pub struct SeqLine {
        pub seq: u32,
        pub pad: u32,
        pub version: u64,
        pub pending_off: u64,
        pub pending_len: u64,
        pub torn_off: u64,
        pub torn_len: u64,
        pub torn_writes: u64,
    }

    #[repr(C)]
    pub struct Header {
        pub config: Line<Config>,
        /// The writer lock's robust futex word.
        pub lock: Line<u32>,
        pub seq: Line<SeqLine>,
        /// Waiters asleep on `seq`.
        pub notify: Line<u32>,
        pub replica: Line<ReplicaLine>,
        /// The claimed writer's pid and claim count.
        pub writer: Line<[u32; 2]>,
    }

    pub const MAGIC: u64 = at(offset_of!(Header, config.0.prefix.magic));
    pub const LAYOUT_VERSION: u64 = at(offset_of!(Header, config.0.prefix.layout_version));
    pub const HEADER_SIZE: u64 = at(offset_of!(Header, config.0.prefix.header_size));
    pub const DATA_OFFSET: u64 = at(offset_of!(Header, config.0.data_offset));
    pub const DATA_SIZE: u64 = at(offset_of!(Header, config.0.data_size));
    pub const CHUNK_SHIFT: u64 = at(offset_of!(Header, config.0.chunk_shift));
    pub const RESERVED: u64 = at(offset_of!(Header, config.0.reserved));
    pub const CREATED: u64 = at(offset_of!(Header, config.0.created_unix_ns));
    pub const TABLE_OFFSET: u64 = at(offset_of!(Header, config.0.table_offset));
    pub const INCARNATION: u64 = at(offset_of!(Header, config.0.incarnation));
    pub const ROLE: u64 = at(offset_of!(Header, replica.0.role));
    pub const FLAGS: u64 = at(offset_of!(Header, replica.0.flags));
    pub const SOURCE: u64 = at(offset_of!(Header, replica.0.source));
    pub const APPLIED: u64 = at(offset_of!(Header, replica.0.applied));
    pub const SEEN: u64 = at(offset_of!(Header, replica.0.seen));
    pub const HEARD: u64 = at(offset_of!(Header, replica.0.heard_unix_ns));
    pub const SYNCED: u64 = at(offset_of!(Header, replica.0.synced_unix_ns));
    pub const WRITER_PID: u64 = at(offset_of!(Header, writer));
    pub const WRITER_CLAIMS: u64 = WRITER_PID + 4;
    pub const LOCK: u64 = at(offset_of!(Header, lock));
    pub const SEQ: u64 = at(offset_of!(Header, seq.0.seq));
    pub const PAD: u64 = at(offset_of!(Header, seq.0.pad));
    pub const VERSION: u64 = at(offset_of!(Header, seq.0.version));
    pub const PENDING_OFF: u64 = at(offset_of!(Header, seq.0.pending_off));
    pub const PENDING_LEN: u64 = at(offset_of!(Header, seq.0.pending_len));
    pub const TORN_OFF: u64 = at(offset_of!(Header, seq.0.torn_off));
    pub const TORN_LEN: u64 = at(offset_of!(Header, seq.0.torn_len));
    pub const TORN_WRITES: u64 = at(offset_of!(Header, seq.0.torn_writes));
    pub const WAITERS: u64 = at(offset_of!(Header, notify));
    /// The header's size.
    pub const HEADER_LEN: u64 = size_of::<Header>() as u64;
    /// Where the data starts (the header rounded up to a page).
    pub const DATA: u64 = 4096;

    /// The configuration fields (read once at open).
    pub const CONFIG_FIELDS: &[Field] = &[
        (MAGIC, 8),
        (LAYOUT_VERSION, 4),
        (HEADER_SIZE, 4),
        (DATA_OFFSET, 8),
        (DATA_SIZE, 8),
        (CHUNK_SHIFT, 4),
        (TABLE_OFFSET, 8),
    ];

    /// The other header fields.
    pub const LIVE_FIELDS: &[Field] = &[
        (RESERVED, 4),
        (CREATED, 8),
        (INCARNATION, 8),
        (ROLE, 4),
        (FLAGS, 4),
        (SOURCE, 8),
        (APPLIED, 8),
        (SEEN, 8),
        (HEARD, 8),
        (SYNCED, 8),
        (WRITER_PID, 4),
        (WRITER_CLAIMS, 4),
        (LOCK, 4),
        (SEQ, 4),
        (PAD, 4),
        (VERSION, 8),
        (PENDING_OFF, 8),
        (PENDING_LEN, 8),
        (TORN_OFF, 8),
        (TORN_LEN, 8),
        (TORN_WRITES, 8),
        (WAITERS, 4),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_those_of_layout_versions_2_and_3() {
        assert_eq!(
            (queue::SLOT_COUNT, queue::CONSUMERS_OFFSET, queue::HEAD),
            (20, 40, 128)
        );
        assert_eq!((queue::WAITERS, queue::OWNER), (256, 384));
        assert_eq!((queue::PRODUCER_WAITING, queue::CONSUMERS_HWM), (516, 524));
        assert_eq!((queue::HEADER_LEN, queue::CONSUMER_STRIDE), (640, 128));
        assert_eq!(
            (queue::C_SLEEP, queue::C_CURSOR, queue::SLOT_HEADER),
            (16, 24, 16)
        );
        assert_eq!(
            (region::LOCK, region::SEQ, region::VERSION),
            (128, 256, 264)
        );
        assert_eq!((region::TORN_WRITES, region::WAITERS), (304, 384));
        assert_eq!(
            (
                region::CHUNK_SHIFT,
                region::TABLE_OFFSET,
                region::INCARNATION
            ),
            (32, 48, 56)
        );
        assert_eq!(
            (region::ROLE, region::APPLIED, region::WRITER_PID),
            (512, 528, 640)
        );
        assert_eq!(region::HEADER_LEN, 768);
    }
}
