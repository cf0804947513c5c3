//! `shmio-qtool scribble`: the hostile peer of the kill suite's `--hostile` rounds.

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use shmio_tests::Rng;
use shmio_tests::layout::queue;

/// `scribble PATH SEED MS`: random bytes into the live header, consumer slots and slot headers.
pub fn scribble(path: &str, args: &[String]) -> i32 {
    let num = |i: usize| -> u64 {
        args.get(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("usage: shmio-qtool scribble PATH SEED MS"))
    };
    let (seed, ms) = (num(2), num(3));
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cannot open {path}: {e}");
            return 2;
        }
    };
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let word = |off: u64, len: usize| -> u64 {
        let mut b = [0u8; 8];
        let _ = f.read_exact_at(&mut b[..len], off);
        u64::from_le_bytes(b)
    };
    let (slots, stride) = (word(queue::SLOT_COUNT, 4), word(queue::SLOT_STRIDE, 4));
    let (consumers, base) = (
        word(queue::CONSUMERS_OFFSET, 8),
        word(queue::SLOTS_OFFSET, 8),
    );
    let mut rng = Rng::new(seed);
    let pause = Duration::from_micros(*rng.pick(&[0, 10, 100]));
    let until = Instant::now() + Duration::from_millis(ms);
    let mut n = 0u64;
    while Instant::now() < until {
        let off = match rng.range(0, 2) {
            0 => rng.range(0, queue::HEADER_LEN - 1),
            1 => consumers.saturating_add(rng.range(0, 4 * queue::CONSUMER_STRIDE - 1)),
            _ => base
                .saturating_add(rng.range(0, slots.max(1) - 1).saturating_mul(stride))
                .saturating_add(rng.range(0, queue::SLOT_HEADER - 1)),
        };
        let len = rng.range(1, 8);
        if off.saturating_add(len) > size {
            continue;
        }
        let bytes = rng.next_u64().to_le_bytes();
        if f.write_all_at(&bytes[..len as usize], off).is_ok() {
            n += 1;
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    println!("done {n}");
    0
}
