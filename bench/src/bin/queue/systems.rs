//! The systems compared, how their waits wait, and what every one of them shares: the
//! records each channel buffers (`--depth`) and the sequence number a record carries.

use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sys {
    ShmioBp,
    ShmioBpZc,
    ShmioOw,
    Iceoryx2,
    Pipe,
    Uds,
    Mq,
    Fcntl,
    Ring,
}

pub const ALL: [Sys; 9] = [
    Sys::ShmioBp,
    Sys::ShmioBpZc,
    Sys::ShmioOw,
    Sys::Iceoryx2,
    Sys::Pipe,
    Sys::Uds,
    Sys::Mq,
    Sys::Fcntl,
    Sys::Ring,
];

impl Sys {
    pub fn name(self) -> &'static str {
        match self {
            Sys::ShmioBp => "shmio-bp",
            Sys::ShmioBpZc => "shmio-bp-zerocopy",
            Sys::ShmioOw => "shmio-overwrite",
            Sys::Iceoryx2 => "iceoryx2",
            Sys::Pipe => "pipe",
            Sys::Uds => "unix-stream",
            Sys::Mq => "posix-mq",
            Sys::Fcntl => "fcntl-lock-shm",
            Sys::Ring => "minimal-ring",
        }
    }
    pub fn parse(s: &str) -> Option<Sys> {
        ALL.iter().copied().find(|x| x.name() == s)
    }
    pub fn is_shmio(self) -> bool {
        matches!(self, Sys::ShmioBp | Sys::ShmioBpZc | Sys::ShmioOw)
    }
    /// Every record reaches every consumer (overwrite mode and the fcntl design may lap a
    /// slow consumer).
    pub fn lossless(self) -> bool {
        !matches!(self, Sys::ShmioOw | Sys::Fcntl)
    }
    /// One channel read by every consumer (rather than one channel per consumer).
    pub fn broadcast(self) -> bool {
        self.is_shmio() || self == Sys::Iceoryx2
    }
    /// The mode a throughput run uses: shared-memory systems poll (shmio's own bounded spin,
    /// then sleep); kernel transports block in the kernel, as their users' code does.
    pub fn throughput_mode(self) -> Mode {
        match self {
            Sys::Pipe | Sys::Uds | Sys::Mq | Sys::Fcntl => Mode::Block,
            _ => Mode::Spin,
        }
    }
}

/// How waits wait: spinning (polling, non-blocking) or sleeping in the kernel at once.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Spin,
    Block,
}
impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Spin => "spin",
            Mode::Block => "block",
        }
    }
    pub fn parse(s: &str) -> Mode {
        if s == "block" {
            Mode::Block
        } else {
            Mode::Spin
        }
    }
}

/// `--depth`: the records every channel buffers (0: not given, each system's default).
static DEPTH: AtomicUsize = AtomicUsize::new(0);

/// Sets `--depth` for this process (the parent from its arguments, a child from the parent's).
pub fn set_depth(depth: Option<usize>) {
    DEPTH.store(depth.unwrap_or(0), Ordering::Relaxed);
}

/// `--depth`, if given.
pub fn depth() -> Option<usize> {
    Some(DEPTH.load(Ordering::Relaxed)).filter(|&d| d > 0)
}

/// `--depth N` as the run uses it: rounded up to a power of two (shmio's slot counts are), at
/// least 2, so that every system that honours it buffers the same number of records.
pub fn round_depth(n: usize) -> usize {
    n.max(2).next_power_of_two()
}

/// Records each channel buffers, the same for every system that lets us choose (shmio,
/// iceoryx2, the minimal ring): `--depth`, or by default 1024 small records and for large
/// ones about 1 MiB (16 of 64 KiB), so that the ring stays in a core's L2 cache as iceoryx2's
/// recycled samples do.
pub fn capacity(size: usize) -> usize {
    depth().unwrap_or(if size <= 4096 {
        1024
    } else {
        ((1 << 20) / size).max(4)
    })
}

/// The systems that buffer `--depth` records, and how (for `--help` and the run's header).
pub const DEPTH_HONOURED: &str = "shmio (slots), minimal-ring (slots), iceoryx2 (each \
     subscriber's buffer; history stays 0), fcntl-lock-shm (slots; default 64), posix-mq \
     (mq_maxmsg, at most fs.mqueue.msg_max unless privileged, and RLIMIT_MSGQUEUE; default \
     10), pipe (F_SETPIPE_SZ to N records' bytes, at most fs.pipe-max-size unless \
     privileged; default 64 KiB); unix-stream keeps its default socket buffers";

pub fn seq_of(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(a)
}
