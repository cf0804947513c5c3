//! Helpers shared by the end-to-end tests: the record format `shmio-qtool` writes and checks.

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
