//! The region's sequence lock ([`crate::region::seqlock`]) under a racing reader.

use crate::sync::{AtomicU32, AtomicU64, Ordering};
use ::loom::sync::Arc;
use ::loom::thread;

/// Two consistent writes of a two-word value while a reader makes two attempts: every
/// accepted read is one write's value (both words equal), never a mix, and versions seen
/// by accepted reads never go backwards; after the writer, a read succeeds with the last.
#[test]
fn region_seqlock_never_accepts_a_mix_of_two_writes() {
    use crate::region::seqlock;
    ::loom::model(|| {
        let seq = Arc::new(AtomicU32::new(0));
        let data = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let w = {
            let (seq, data) = (Arc::clone(&seq), Arc::clone(&data));
            thread::spawn(move || {
                for v in 1..=2u64 {
                    // `Region::write_inner`, the writer lock held (one writer here).
                    let start = seqlock::begin_write(&seq);
                    data[0].store(v, Ordering::Relaxed);
                    data[1].store(v, Ordering::Relaxed);
                    seqlock::end_write(&seq, start);
                }
            })
        };
        // `Region::read_inner`, without the spin or the lock fallback.
        let read = || -> Option<[u64; 2]> {
            let s1 = seqlock::read_begin(&seq)?;
            let got = [
                data[0].load(Ordering::Relaxed),
                data[1].load(Ordering::Relaxed),
            ];
            seqlock::read_valid(&seq, s1).then_some(got)
        };
        let mut last = 0;
        for _ in 0..2 {
            if let Some([a, b]) = read() {
                assert_eq!(a, b, "a read mixing two writes was accepted");
                assert!(a >= last, "an accepted read went back in time");
                last = a;
            }
        }
        w.join().unwrap();
        assert_eq!(read(), Some([2, 2]));
    });
}
