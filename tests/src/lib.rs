//! Helpers shared by the end-to-end tests and their tools: the record formats `shmio-qtool`
//! and `shmio-rtool` write and check, the consumer's end line, the file layouts seen from
//! outside ([`layout`]), one clock and one seeded random number generator.

pub mod end_line;
pub mod layout;

pub use end_line::EndLine;

/// Fills `buf` with record `seq`: the sequence number, then a pattern derived from it, so a
/// reader can tell a whole record from a torn or foreign one.
pub fn fill_record(buf: &mut [u8], seq: u64) {
    let head = seq.to_le_bytes();
    let n = buf.len().min(8);
    buf[..n].copy_from_slice(&head[..n]);
    for (i, b) in buf.iter_mut().enumerate().skip(8) {
        *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
}

/// The sequence number a record claims, if its pattern is intact.
pub fn check_record(buf: &[u8]) -> Option<u64> {
    if buf.len() < 8 {
        return None;
    }
    let seq = u64::from_le_bytes(buf[..8].try_into().ok()?);
    let ok = buf
        .iter()
        .enumerate()
        .skip(8)
        .all(|(i, b)| *b == (seq as u8).wrapping_mul(31).wrapping_add(i as u8));
    ok.then_some(seq)
}

/// Size of the region records `shmio-rtool` writes and checks.
pub const REC: usize = 1024;

fn slot_sum(words: &[u8]) -> u64 {
    words
        .chunks_exact(8)
        .fold(0x9E37_79B9_7F4A_7C15u64, |h, w| {
            (h ^ u64::from_le_bytes(w.try_into().unwrap_or([0; 8]))).wrapping_mul(0x0100_0000_01B3)
        })
}

/// Fills a region record: writer id, sequence number, a pattern derived from both, and a
/// checksum of all that in the last 8 bytes, so that a mix of two records is detected.
pub fn fill_slot_record(buf: &mut [u8], writer: u64, seq: u64) {
    let n = buf.len();
    buf[..8].copy_from_slice(&(writer + 1).to_le_bytes());
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
    let mut x = (writer << 48) ^ seq;
    for w in buf[16..n - 8].chunks_exact_mut(8) {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        w.copy_from_slice(&x.to_le_bytes());
    }
    let sum = slot_sum(&buf[..n - 8]);
    buf[n - 8..].copy_from_slice(&sum.to_le_bytes());
}

/// Checks a region record: `Some(Some(writer))` if whole, `Some(None)` if never written (all
/// zero), `None` if torn or foreign.
pub fn check_slot_record(buf: &[u8]) -> Option<Option<u64>> {
    let n = buf.len();
    if buf.iter().all(|&b| b == 0) {
        return Some(None);
    }
    let sum = u64::from_le_bytes(buf[n - 8..].try_into().ok()?);
    if sum != slot_sum(&buf[..n - 8]) {
        return None;
    }
    let writer = u64::from_le_bytes(buf[..8].try_into().ok()?).checked_sub(1)?;
    Some(Some(writer))
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process on the machine, so a time
/// taken in one process (say, just before a kill(2)) compares with one taken in another.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_MONOTONIC)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A small deterministic random number generator (SplitMix64) for the stress tools and the
/// fuzzer: the same seed gives the same run, so a failing cycle or case can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// Uniform in `lo..=hi` (`lo` if `hi < lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo;
        if span == u64::MAX {
            return self.next_u64();
        }
        lo + self.next_u64() % (span + 1)
    }

    /// Uniform in `0..n` (0 when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability 1/n.
    pub fn one_in(&mut self, n: u64) -> bool {
        n <= 1 || self.next_u64().is_multiple_of(n)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The SplitMix64 finaliser.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
