//! Round trips: a record to an echoing peer and back, and the floors (a word bounced by
//! spinning or through a raw futex).

use std::fmt::Display;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::channels::{
    child_depth, cleanup, make_rx, make_tx, say_ready, socketpair, spawn_peer, spawn_ready,
};
use crate::peers::{Rx, Shm, StreamRx, StreamTx, Tx};
use crate::systems::{Mode, Sys};

/// Round trips: the parent sends, the child echoes on a second channel. Nanoseconds each.
pub fn latency(sys: Sys, size: usize, trips: u64, mode: Mode) -> Vec<f64> {
    crate::pin::new_case();
    let base = format!("sl{}{}", std::process::id(), sys.name());
    for k in 0..2 {
        cleanup(sys, &base, k);
    }
    let (mut ping, fd, parent_end): (Box<dyn Tx>, Option<OwnedFd>, Option<std::fs::File>) =
        if sys == Sys::Uds {
            let (mine, theirs) = socketpair();
            (
                Box::new(StreamTx(mine.try_clone().unwrap())),
                Some(theirs),
                Some(mine),
            )
        } else {
            let (tx, fd) = make_tx(sys, &base, 0, size, mode, 2);
            (tx, fd, None)
        };
    let args: [&dyn Display; 2] = [&size, &trips];
    let mut c = spawn_peer("--child-echo", sys, &base, &args, fd, mode);
    // The child created the return channel before it said ready; streams come back on stdout.
    let mut pong: Box<dyn Rx> = match sys {
        Sys::Uds => Box::new(StreamRx::new(parent_end.unwrap(), mode)),
        Sys::Pipe => {
            let out = c.stdout.take().unwrap();
            // SAFETY: we own the child's stdout pipe from here on.
            let f = unsafe { std::fs::File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(out)) };
            Box::new(StreamRx::new(f, mode))
        }
        _ => make_rx(sys, &base, 1, size, -1, mode),
    };
    let mut rec = vec![0u8; size];
    let mut back = vec![0u8; size];
    let mut rtts = Vec::with_capacity(trips as usize);
    for i in 0..trips {
        let n = size.min(8);
        rec[..n].copy_from_slice(&(i + 1).to_le_bytes()[..n]);
        let t = Instant::now();
        ping.send(&rec);
        pong.recv(&mut back);
        rtts.push(t.elapsed().as_nanos() as f64);
    }
    c.wait().unwrap();
    drop(ping);
    for k in 0..2 {
        cleanup(sys, &base, k);
    }
    rtts
}

pub fn child_echo(args: &[String]) {
    let sys = Sys::parse(&args[0]).unwrap();
    let (base, size, trips, fd): (&str, usize, u64, RawFd) = (
        &args[1],
        args[2].parse().unwrap(),
        args[3].parse().unwrap(),
        args[4].parse().unwrap(),
    );
    let mode = Mode::parse(&args[5]);
    child_depth(args);
    let mut rx = make_rx(sys, base, 0, size, fd, mode);
    let mut tx: Box<dyn Tx> = match sys {
        // SAFETY: our stdout is a pipe to the parent, used only for the echo from here on.
        Sys::Pipe => Box::new(StreamTx(unsafe { std::fs::File::from_raw_fd(1) })),
        // SAFETY: a duplicate of the inherited bidirectional socket, owned by nobody else.
        Sys::Uds => Box::new(StreamTx(unsafe {
            std::fs::File::from_raw_fd(libc::dup(fd))
        })),
        _ => make_tx(sys, base, 1, size, mode, 2).0,
    };
    say_ready();
    let mut buf = vec![0u8; size];
    for _ in 0..trips {
        rx.recv(&mut buf);
        tx.send(&buf);
    }
    // Let the parent read the last echo before the channel goes.
    std::thread::sleep(Duration::from_millis(50));
}

/// The floors for a round trip: two processes bouncing one word, spinning on it (a cache-line
/// ping-pong) or sleeping on it (a raw futex ping-pong: every wait a `FUTEX_WAIT`, every
/// hand-over a `FUTEX_WAKE`).
pub fn pingpong(trips: u64, mode: Mode) -> Vec<f64> {
    crate::pin::new_case();
    let path = format!("/dev/shm/shmio-bench-pp-{}", std::process::id());
    let shm = Shm::open(&path, 4096, true);
    let args: [&dyn Display; 4] = [&"--child-pingpong", &path, &trips, &mode.name()];
    let mut c = spawn_ready(&args, None);
    let w = shm.atomic32(0);
    let mut rtts = Vec::with_capacity(trips as usize);
    for i in 0..trips as u32 {
        let t = Instant::now();
        hand_over(w, i.wrapping_mul(2).wrapping_add(1), mode);
        wait_word(w, i.wrapping_mul(2).wrapping_add(2), mode);
        rtts.push(t.elapsed().as_nanos() as f64);
    }
    c.wait().unwrap();
    let _ = std::fs::remove_file(&path);
    rtts
}

pub fn child_pingpong(args: &[String]) {
    let shm = Shm::open(&args[0], 4096, false);
    let trips: u64 = args[1].parse().unwrap();
    let mode = Mode::parse(&args[2]);
    say_ready();
    let w = shm.atomic32(0);
    for i in 0..trips as u32 {
        wait_word(w, i.wrapping_mul(2).wrapping_add(1), mode);
        hand_over(w, i.wrapping_mul(2).wrapping_add(2), mode);
    }
}

pub fn hand_over(w: &AtomicU32, v: u32, mode: Mode) {
    w.store(v, Ordering::Release);
    if mode == Mode::Block {
        futex(w, libc::FUTEX_WAKE, 1);
    }
}

pub fn wait_word(w: &AtomicU32, want: u32, mode: Mode) {
    loop {
        let cur = w.load(Ordering::Acquire);
        if cur == want {
            return;
        }
        match mode {
            Mode::Spin => std::hint::spin_loop(),
            Mode::Block => {
                futex(w, libc::FUTEX_WAIT, cur);
            }
        }
    }
}

/// `futex(2)` on a shared (not process-private) word, no timeout.
pub fn futex(w: &AtomicU32, op: i32, val: u32) -> i64 {
    // SAFETY: `w` is an aligned 32-bit word in a live shared mapping; no timeout pointer.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            w.as_ptr(),
            op,
            val,
            std::ptr::null::<libc::timespec>(),
        )
    }
}
