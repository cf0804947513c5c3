//! `shmio-bench`: shmio's queue against what a user would pick instead, in the same run.
//!
//! Every system moves the same records between separate processes:
//! - throughput, 1 producer to 1 consumer and to 4 consumers (broadcast: shmio and iceoryx2
//!   deliver every record to every subscriber natively; peers without broadcast send to each
//!   consumer in turn), as records/s and GB/s;
//! - round-trip latency with an echoing peer (p50, p99, p99.9), once with both sides spinning
//!   (kernel transports polled non-blocking) and once with both sides blocking (every wait
//!   sleeps in the kernel: shmio with its spin set to zero, iceoryx2 with its listener).
//!
//! The limits are measured alongside: a minimal single-producer single-consumer ring (the
//! ceiling for small records), a cache-line ping-pong (the floor for spinning round trips), a
//! raw futex ping-pong (the floor for blocking round trips) and single-core memcpy bandwidth
//! (the ceiling for large records). A closing section checks the targets of the benchmark
//! issue from the figures of this run.
//!
//! ```text
//! shmio-bench [--quick] [--json] [--sizes 8,64,1024,65536] [--systems a,b,...]
//!             [--patterns 1to1,1to4,rtt-spin,rtt-block] [--trips N] [--count N]
//! ```

mod iox;
mod peers;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmio::queue::{Consumer, Policy, Producer, QueueOptions, Start};

use peers::{
    FCNTL_SLOTS, Fcntl, MqRx, MqTx, Ring, Rx, Shm, ShmioRx, ShmioTx, StreamRx, StreamTx, Tx,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sys {
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

const ALL: [Sys; 9] = [
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
    fn name(self) -> &'static str {
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
    fn parse(s: &str) -> Option<Sys> {
        ALL.iter().copied().find(|x| x.name() == s)
    }
    fn is_shmio(self) -> bool {
        matches!(self, Sys::ShmioBp | Sys::ShmioBpZc | Sys::ShmioOw)
    }
    /// Every record reaches every consumer (overwrite mode and the fcntl design may lap a
    /// slow consumer).
    fn lossless(self) -> bool {
        !matches!(self, Sys::ShmioOw | Sys::Fcntl)
    }
    /// One channel read by every consumer (rather than one channel per consumer).
    fn broadcast(self) -> bool {
        self.is_shmio() || self == Sys::Iceoryx2
    }
    /// The mode a throughput run uses: shared-memory systems poll (shmio's own bounded spin,
    /// then sleep); kernel transports block in the kernel, as their users' code does.
    fn throughput_mode(self) -> Mode {
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
    fn name(self) -> &'static str {
        match self {
            Mode::Spin => "spin",
            Mode::Block => "block",
        }
    }
    fn parse(s: &str) -> Mode {
        if s == "block" {
            Mode::Block
        } else {
            Mode::Spin
        }
    }
}

/// Records each channel buffers, the same for every system that lets us choose (shmio,
/// iceoryx2, the minimal ring): 1024 small records; for large ones about 1 MiB (16 of 64 KiB),
/// so that the ring stays in a core's L2 cache as iceoryx2's recycled samples do.
fn capacity(size: usize) -> usize {
    if size <= 4096 {
        1024
    } else {
        ((1 << 20) / size).max(4)
    }
}

pub fn seq_of(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(a)
}

// ---------------------------------------------------------------------------------------------
// Channels: a name (for named objects) or an inherited descriptor (streams).

fn chan_path(base: &str, k: usize) -> String {
    format!("/dev/shm/{base}-{k}")
}

/// Producer side of channel `k` of `sys`; for streams, also the descriptor the child inherits.
/// `alive` is how many channels of this system exist at once (message queues share a per-user
/// memory limit).
fn make_tx(
    sys: Sys,
    base: &str,
    k: usize,
    size: usize,
    mode: Mode,
    alive: usize,
) -> (Box<dyn Tx>, Option<OwnedFd>) {
    match sys {
        Sys::ShmioBp | Sys::ShmioBpZc | Sys::ShmioOw => {
            let policy = if sys == Sys::ShmioOw {
                Policy::Overwrite
            } else {
                Policy::BackPressure
            };
            let opts = QueueOptions::new()
                .slots(capacity(size) as u32)
                .slot_size(size as u32)
                .policy(policy);
            let p = Producer::create(&format!("{base}-{k}"), &opts).unwrap();
            (Box::new(ShmioTx::new(p, sys == Sys::ShmioBpZc, mode)), None)
        }
        Sys::Iceoryx2 => (
            Box::new(iox::tx(&iox::name(base, k), size, capacity(size), mode)),
            None,
        ),
        Sys::Pipe | Sys::Uds => {
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for two descriptors.
            let r = unsafe {
                if sys == Sys::Pipe {
                    libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC)
                } else {
                    libc::socketpair(
                        libc::AF_UNIX,
                        libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                        0,
                        fds.as_mut_ptr(),
                    )
                }
            };
            assert_eq!(r, 0);
            // SAFETY: fresh descriptors owned by nobody else.
            let (rd, wr) = unsafe {
                (
                    OwnedFd::from_raw_fd(fds[0]),
                    std::fs::File::from_raw_fd(fds[1]),
                )
            };
            (Box::new(StreamTx(wr)), Some(rd))
        }
        Sys::Mq => {
            let name = std::ffi::CString::new(format!("/{base}-{k}")).unwrap();
            // SAFETY: mq_attr is plain data; all-zero is a valid value to fill in.
            let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
            attr.mq_maxmsg = mq_depth(size, alive);
            attr.mq_msgsize = size as _;
            created_mq(&name, true);
            // SAFETY: a valid name and attribute struct.
            let q = unsafe {
                libc::mq_open(name.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o600, &attr)
            };
            assert!(q >= 0, "mq_open: {}", std::io::Error::last_os_error());
            (Box::new(MqTx(q)), None)
        }
        Sys::Fcntl => {
            let path = chan_path(base, k);
            let shm = Shm::open(&path, FCNTL_SLOTS as usize * (size + 8), true);
            let lock = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(format!("{path}.lock"))
                .unwrap();
            let f = Fcntl {
                shm,
                lock,
                i: 0,
                slots: FCNTL_SLOTS,
                size,
            };
            f.lock(0, libc::F_WRLCK);
            (Box::new(f), None)
        }
        Sys::Ring => {
            let slots = capacity(size);
            let shm = Shm::open(&chan_path(base, k), Ring::len(size, slots), true);
            (Box::new(Ring::new(shm, size, slots)), None)
        }
    }
}

/// Consumer side of channel `k`.
fn make_rx(sys: Sys, base: &str, k: usize, size: usize, fd: RawFd, mode: Mode) -> Box<dyn Rx> {
    match sys {
        Sys::ShmioBp | Sys::ShmioBpZc | Sys::ShmioOw => Box::new(ShmioRx::new(
            Consumer::open(&format!("{base}-{k}"), Start::Oldest).unwrap(),
            sys == Sys::ShmioBpZc,
            mode,
        )),
        Sys::Iceoryx2 => Box::new(iox::rx(&iox::name(base, k), capacity(size), mode)),
        // SAFETY: the parent passed us this inherited descriptor, owned by nobody else here.
        Sys::Pipe | Sys::Uds => Box::new(StreamRx::new(
            unsafe { std::fs::File::from_raw_fd(fd) },
            mode,
        )),
        Sys::Mq => {
            let name = std::ffi::CString::new(format!("/{base}-{k}")).unwrap();
            let flags = if mode == Mode::Spin {
                libc::O_RDONLY | libc::O_NONBLOCK
            } else {
                libc::O_RDONLY
            };
            // SAFETY: a valid name.
            let q = unsafe { libc::mq_open(name.as_ptr(), flags) };
            assert!(q >= 0, "mq_open: {}", std::io::Error::last_os_error());
            Box::new(MqRx(q))
        }
        Sys::Fcntl => {
            let path = chan_path(base, k);
            let shm = Shm::open(&path, FCNTL_SLOTS as usize * (size + 8), false);
            let lock = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("{path}.lock"))
                .unwrap();
            Box::new(Fcntl {
                shm,
                lock,
                i: 0,
                slots: FCNTL_SLOTS,
                size,
            })
        }
        Sys::Ring => {
            let slots = capacity(size);
            Box::new(Ring::new(
                Shm::open(&chan_path(base, k), Ring::len(size, slots), false),
                size,
                slots,
            ))
        }
    }
}

fn cleanup(sys: Sys, base: &str, k: usize) {
    match sys {
        Sys::ShmioBp | Sys::ShmioBpZc | Sys::ShmioOw => {
            let _ = shmio::queue::unlink(&format!("{base}-{k}"));
        }
        Sys::Mq => {
            let name = std::ffi::CString::new(format!("/{base}-{k}")).unwrap();
            // SAFETY: a valid name.
            unsafe { libc::mq_unlink(name.as_ptr()) };
            created_mq(&name, false);
        }
        Sys::Fcntl => {
            let _ = std::fs::remove_file(chan_path(base, k));
            let _ = std::fs::remove_file(format!("{}.lock", chan_path(base, k)));
        }
        Sys::Ring => {
            let _ = std::fs::remove_file(chan_path(base, k));
        }
        // iceoryx2 removes a service when its last port goes.
        Sys::Iceoryx2 | Sys::Pipe | Sys::Uds => {}
    }
}

/// Messages per POSIX queue: 10 (fs.mqueue.msg_max's default), fewer when `alive` queues of
/// `size`-byte messages would exceed RLIMIT_MSGQUEUE (800 KiB per user by default, which we
/// may not be allowed to raise): four queues of 64 KiB records get 2 messages each.
fn mq_depth(size: usize, alive: usize) -> libc::c_long {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid, writable rlimit struct.
    let limit = if unsafe { libc::getrlimit(libc::RLIMIT_MSGQUEUE, &mut lim) } == 0 {
        lim.rlim_cur as usize
    } else {
        800 << 10
    };
    // Each message costs its size plus the kernel's bookkeeping (well under 1 KiB).
    let fit = limit / alive.max(1) / (size + 1024);
    fit.clamp(1, 10) as libc::c_long
}

/// Message queues outlive their processes until unlinked (and count against the user's
/// RLIMIT_MSGQUEUE): the ones this process created are unlinked by a panic hook too.
static MQS: std::sync::Mutex<Vec<std::ffi::CString>> = std::sync::Mutex::new(Vec::new());

fn created_mq(name: &std::ffi::CStr, add: bool) {
    let mut v = MQS.lock().unwrap_or_else(|e| e.into_inner());
    v.retain(|n| n.as_c_str() != name);
    if add {
        v.push(name.to_owned());
    }
}

fn unlink_mqs_on_panic() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(v) = MQS.try_lock() {
            for n in v.iter() {
                // SAFETY: a valid NUL-terminated name.
                unsafe { libc::mq_unlink(n.as_ptr()) };
            }
        }
        prev(info);
    }));
}

/// A connected pair of Unix stream sockets: (ours, the child's).
fn socketpair() -> (std::fs::File, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0);
    // SAFETY: fresh descriptors owned by nobody else.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            OwnedFd::from_raw_fd(fds[1]),
        )
    }
}

fn spawn_child(args: &[String], inherit: Option<&OwnedFd>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(args).stdout(Stdio::piped()).stdin(Stdio::null());
    if let Some(fd) = inherit {
        let raw = fd.as_raw_fd();
        use std::os::unix::process::CommandExt;
        // SAFETY: between fork and exec we only clear FD_CLOEXEC on one descriptor.
        unsafe {
            cmd.pre_exec(move || {
                libc::fcntl(raw, libc::F_SETFD, 0);
                Ok(())
            });
        }
    }
    cmd.spawn().unwrap()
}

fn wait_ready(c: &mut Child) {
    let mut b = [0u8; 1];
    c.stdout.as_mut().unwrap().read_exact(&mut b).unwrap();
}

/// Whether `sys` can carry `size`-byte records here (POSIX message queues are limited by
/// `fs.mqueue.msgsize_max`, which root may raise).
fn supported(sys: Sys, size: usize) -> bool {
    if sys != Sys::Mq {
        return true;
    }
    let path = "/proc/sys/fs/mqueue/msgsize_max";
    let max: usize = std::fs::read_to_string(path)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(8192);
    max >= size || std::fs::write(path, size.to_string()).is_ok()
}

/// The ceiling for large records: single-core memcpy of `size`-byte records into a 4 MiB ring
/// of destinations (cache-resident, as a consumer's buffer would be).
fn memcpy_gbps(size: usize) -> f64 {
    copy_gbps(size, |src, dst| dst.copy_from_slice(src))
}

/// The same loop through shmio's byte-wise atomic copy (`shmio::racy`), which every read of
/// memory another process may be writing goes through (`recv` in overwrite mode, region
/// reads): its cost against `memcpy_gbps` is what soundness costs.
fn racy_copy_gbps(size: usize) -> f64 {
    copy_gbps(size, |src, dst| {
        // SAFETY: `src` is valid for its length and not written during the copy.
        let view = unsafe { shmio::racy::RacyBytes::from_raw_parts(src.as_ptr(), src.len()) };
        view.copy_to(dst);
    })
}

/// GB/s of `copy` moving `size`-byte records into a 4 MiB ring of destinations.
fn copy_gbps(size: usize, copy: impl Fn(&[u8], &mut [u8])) -> f64 {
    let src = vec![7u8; size];
    let mut dst = vec![0u8; (4 << 20).max(size)];
    let slots = dst.len() / size;
    let n = ((1u64 << 31) / size as u64).max(1000);
    let t = Instant::now();
    for i in 0..n {
        let off = (i as usize % slots) * size;
        copy(&src, &mut dst[off..off + size]);
        std::hint::black_box(&mut dst);
    }
    n as f64 * size as f64 / t.elapsed().as_secs_f64() / 1e9
}

// ---------------------------------------------------------------------------------------------
// Runs

/// Throughput of `count` records of `size` bytes to each of `consumers` consumer processes:
/// records/s as seen by each consumer (the producer's rate), from the first send to the last
/// consumer's exit.
fn throughput(sys: Sys, size: usize, consumers: usize, count: u64) -> Throughput {
    let base = format!("sb{}{}", std::process::id(), sys.name());
    let mode = sys.throughput_mode();
    let channels = if sys.broadcast() { 1 } else { consumers };
    let mut txs = Vec::new();
    let mut fds = Vec::new();
    for k in 0..channels {
        cleanup(sys, &base, k);
        let (tx, fd) = make_tx(sys, &base, k, size, mode, channels);
        txs.push(tx);
        fds.push(fd);
    }
    // Broadcast consumers all read channel 0; the others get a channel (and stream) each.
    let mut children = Vec::new();
    for k in 0..consumers {
        let ch = if sys.broadcast() { 0 } else { k };
        let fd = fds.get_mut(k).and_then(Option::take);
        let raw = fd.as_ref().map_or(-1, |f| f.as_raw_fd());
        let args: Vec<String> = vec![
            "--child-rx".into(),
            sys.name().into(),
            base.clone(),
            ch.to_string(),
            size.to_string(),
            count.to_string(),
            raw.to_string(),
            mode.name().into(),
        ];
        let mut c = spawn_child(&args, fd.as_ref());
        drop(fd);
        wait_ready(&mut c);
        children.push(c);
    }
    let mut rec = vec![0u8; size];
    let t = Instant::now();
    for i in 0..count {
        let n = size.min(8);
        rec[..n].copy_from_slice(&(i + 1).to_le_bytes()[..n]);
        for tx in txs.iter_mut() {
            tx.send(&rec);
        }
    }
    // Done sending: close our ends (the fcntl design's producer holds the next slot's lock
    // until then, which a lagging consumer may be waiting for).
    drop(txs);
    let mut delivered = count;
    for c in children.iter_mut() {
        let st = c.wait().unwrap();
        assert!(st.success(), "{} consumer failed", sys.name());
    }
    let secs = t.elapsed().as_secs_f64();
    for c in children.iter_mut() {
        let mut got = String::new();
        c.stdout.as_mut().unwrap().read_to_string(&mut got).unwrap();
        delivered = delivered.min(got.trim().parse().expect("consumer's count"));
    }
    for k in 0..channels {
        cleanup(sys, &base, k);
    }
    Throughput {
        rate: count as f64 / secs,
        delivered: delivered as f64 / count as f64,
    }
}

/// A throughput run's result: records/s sent to each consumer, and the share of them the
/// slowest consumer received (1.0 unless the system drops records for a lagging consumer).
/// Reports and ratios use the product: records/s received by the slowest consumer.
struct Throughput {
    rate: f64,
    delivered: f64,
}

fn child_rx(args: &[String]) {
    let sys = Sys::parse(&args[0]).unwrap();
    let (base, k, size, count, fd): (&str, usize, usize, u64, RawFd) = (
        &args[1],
        args[2].parse().unwrap(),
        args[3].parse().unwrap(),
        args[4].parse().unwrap(),
        args[5].parse().unwrap(),
    );
    let mode = Mode::parse(&args[6]);
    let mut rx = make_rx(sys, base, k, size, fd, mode);
    std::io::stdout().write_all(b"r").unwrap();
    std::io::stdout().flush().unwrap();
    let mut buf = vec![0u8; size];
    let last = if size >= 8 { count } else { u64::MAX };
    let mut got = 0u64;
    loop {
        let seq = rx.recv(&mut buf);
        got += 1;
        // The benchmark checks what it measures: lossless systems deliver every record, once,
        // in order.
        if sys.lossless() && size >= 8 {
            assert_eq!(seq, got, "{}: record out of order or lost", sys.name());
        }
        // Overwrite mode may skip records: stop at the last one.
        if seq == last || got == count {
            break;
        }
    }
    // Tell the parent how many records arrived.
    print!("{got}");
    std::io::stdout().flush().unwrap();
}

/// Round trips: the parent sends, the child echoes on a second channel. Nanoseconds each.
fn latency(sys: Sys, size: usize, trips: u64, mode: Mode) -> Vec<f64> {
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
    let raw = fd.as_ref().map_or(-1, |f| f.as_raw_fd());
    let args: Vec<String> = vec![
        "--child-echo".into(),
        sys.name().into(),
        base.clone(),
        size.to_string(),
        trips.to_string(),
        raw.to_string(),
        mode.name().into(),
    ];
    let mut c = spawn_child(&args, fd.as_ref());
    drop(fd);
    wait_ready(&mut c);
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

fn child_echo(args: &[String]) {
    let sys = Sys::parse(&args[0]).unwrap();
    let (base, size, trips, fd): (&str, usize, u64, RawFd) = (
        &args[1],
        args[2].parse().unwrap(),
        args[3].parse().unwrap(),
        args[4].parse().unwrap(),
    );
    let mode = Mode::parse(&args[5]);
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
    std::io::stdout().write_all(b"r").unwrap();
    std::io::stdout().flush().unwrap();
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
fn pingpong(trips: u64, mode: Mode) -> Vec<f64> {
    let path = format!("/dev/shm/shmio-bench-pp-{}", std::process::id());
    let shm = Shm::open(&path, 4096, true);
    let mut c = spawn_child(
        &[
            "--child-pingpong".into(),
            path.clone(),
            trips.to_string(),
            mode.name().into(),
        ],
        None,
    );
    wait_ready(&mut c);
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

fn child_pingpong(args: &[String]) {
    let shm = Shm::open(&args[0], 4096, false);
    let trips: u64 = args[1].parse().unwrap();
    let mode = Mode::parse(&args[2]);
    std::io::stdout().write_all(b"r").unwrap();
    std::io::stdout().flush().unwrap();
    let w = shm.atomic32(0);
    for i in 0..trips as u32 {
        wait_word(w, i.wrapping_mul(2).wrapping_add(1), mode);
        hand_over(w, i.wrapping_mul(2).wrapping_add(2), mode);
    }
}

fn hand_over(w: &AtomicU32, v: u32, mode: Mode) {
    w.store(v, Ordering::Release);
    if mode == Mode::Block {
        futex(w, libc::FUTEX_WAKE, 1);
    }
}

fn wait_word(w: &AtomicU32, want: u32, mode: Mode) {
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
fn futex(w: &AtomicU32, op: i32, val: u32) -> i64 {
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

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// The figures of this run, by (system, pattern, size): records/s for throughput patterns,
/// p50 nanoseconds for round trips, GB/s for memcpy.
type Figures = HashMap<(String, &'static str, usize), f64>;

struct Out {
    json: bool,
    figures: Figures,
}

impl Out {
    fn throughput(&mut self, system: &str, pattern: &'static str, size: usize, r: &Throughput) {
        // Compare what arrives: a system that laps its consumers is credited only with the
        // records the slowest of them received.
        let (sent, delivered) = (r.rate, r.delivered);
        let rate = sent * delivered;
        self.figures.insert((system.into(), pattern, size), rate);
        let gbps = rate * size as f64 / 1e9;
        if self.json {
            println!(
                "{{\"system\":\"{system}\",\"pattern\":\"{pattern}\",\"size\":{size},\"records_per_s\":{rate:.0},\"sent_per_s\":{sent:.0},\"gbps\":{gbps:.3},\"delivered\":{delivered:.4}}}"
            );
            return;
        }
        let vs = |other: &str| {
            self.figures
                .get(&(other.to_string(), pattern, size))
                .filter(|_| other != system)
                .map_or(String::new(), |b| format!("{:>7.1}x {other}", rate / b))
        };
        let lost = if delivered < 1.0 {
            format!(
                "  (sent {sent:.0}/s, the slowest consumer got {:.1}%)",
                delivered * 100.0
            )
        } else {
            String::new()
        };
        println!(
            "  {system:<20} {pattern:<5} {rate:>12.0}/s {gbps:>8.3} GB/s {}{}{lost}",
            vs("pipe"),
            vs("iceoryx2")
        );
    }

    fn latency(&mut self, system: &str, pattern: &'static str, size: usize, v: &mut [f64]) {
        let (p50, p99, p999) = (pct(v, 0.5), pct(v, 0.99), pct(v, 0.999));
        self.figures.insert((system.into(), pattern, size), p50);
        if self.json {
            println!(
                "{{\"system\":\"{system}\",\"pattern\":\"{pattern}\",\"size\":{size},\"p50_ns\":{p50:.0},\"p99_ns\":{p99:.0},\"p999_ns\":{p999:.0},\"trips\":{}}}",
                v.len()
            );
            return;
        }
        let floor = if pattern == "rtt-spin" {
            "cacheline-pingpong"
        } else {
            "futex-pingpong"
        };
        let ratio = self
            .figures
            .get(&(floor.to_string(), pattern, size))
            .filter(|_| system != floor)
            .map_or(String::new(), |f| format!("  ({:.2}x {floor})", p50 / f));
        println!("  {system:<20} p50 {p50:>9.0}  p99 {p99:>9.0}  p99.9 {p999:>9.0}{ratio}");
    }

    fn get(&self, system: &str, pattern: &'static str, size: usize) -> Option<f64> {
        self.figures
            .get(&(system.to_string(), pattern, size))
            .copied()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--child-rx") => return child_rx(&args[1..]),
        Some("--child-echo") => return child_echo(&args[1..]),
        Some("--child-pingpong") => return child_pingpong(&args[1..]),
        Some("--help") | Some("-h") => {
            println!(
                "shmio-bench [--quick] [--json] [--sizes 8,64,1024,65536] [--systems a,b,...] \
                 [--patterns 1to1,1to4,rtt-spin,rtt-block] [--trips N] [--count N]\n\
                 --quick: 64 B and 64 KiB, fewer records and trips (under a minute)\n\
                 --count: records per throughput run; --trips: round trips per latency run\n\
                 systems: {}",
                ALL.map(Sys::name).join(", ")
            );
            return;
        }
        _ => {}
    }
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" | "--json" => {}
            "--sizes" | "--systems" | "--patterns" | "--trips" | "--count" => {
                if it.next().is_none() {
                    eprintln!("shmio-bench: {a} needs a value (see --help)");
                    std::process::exit(2);
                }
            }
            other => {
                eprintln!("shmio-bench: unknown argument {other:?} (see --help)");
                std::process::exit(2);
            }
        }
    }
    raise_mq_limit();
    unlink_mqs_on_panic();
    let quick = args.iter().any(|a| a == "--quick");
    let json = args.iter().any(|a| a == "--json");
    let opt = |f: &str| {
        args.iter()
            .position(|a| a == f)
            .and_then(|i| args.get(i + 1))
    };
    let sizes: Vec<usize> = opt("--sizes").map_or_else(
        || {
            if quick {
                vec![64, 65536]
            } else {
                vec![8, 64, 1024, 65536]
            }
        },
        |s| s.split(',').map(|x| x.parse().expect("--sizes")).collect(),
    );
    let systems: Vec<Sys> = opt("--systems").map_or(ALL.to_vec(), |s| {
        s.split(',')
            .map(|x| {
                Sys::parse(x).unwrap_or_else(|| {
                    eprintln!("shmio-bench: unknown system {x:?} (see --help)");
                    std::process::exit(2)
                })
            })
            .collect()
    });
    let patterns: Vec<String> = opt("--patterns").map_or_else(
        || {
            ["1to1", "1to4", "rtt-spin", "rtt-block"]
                .map(String::from)
                .to_vec()
        },
        |s| s.split(',').map(String::from).collect(),
    );
    let want = |p: &str| patterns.iter().any(|x| x == p);
    let budget = if quick { 0.03 } else { 0.5 }; // GB moved per throughput run
    let trips: u64 = opt("--trips").map_or(if quick { 10_000 } else { 100_000 }, |t| {
        t.parse().expect("--trips")
    });
    let mut out = Out {
        json,
        figures: HashMap::new(),
    };
    if !json {
        println!(
            "# shmio-bench{} — {}",
            if quick { " --quick" } else { "" },
            machine()
        );
    }
    for &size in &sizes {
        let count = ((budget * 1e9 / size as f64) as u64).clamp(20_000, 5_000_000);
        let count = if quick { count.min(500_000) } else { count };
        let count = opt("--count").map_or(count, |c| c.parse().expect("--count"));
        if !json {
            println!(
                "\n## {size} B records: throughput, {count} records to each consumer, \
                 {} buffered per channel",
                capacity(size)
            );
        }
        let gbps = memcpy_gbps(size);
        out.figures.insert(("memcpy".into(), "1", size), gbps);
        let racy = racy_copy_gbps(size);
        out.figures.insert(("racy-copy".into(), "1", size), racy);
        if json {
            println!(
                "{{\"system\":\"memcpy\",\"pattern\":\"1\",\"size\":{size},\"gbps\":{gbps:.2}}}"
            );
            println!(
                "{{\"system\":\"racy-copy\",\"pattern\":\"1\",\"size\":{size},\"gbps\":{racy:.2}}}"
            );
        } else {
            println!(
                "  {:<20} {:<5} {:>14} {gbps:>8.3} GB/s (single-core memcpy, the ceiling)",
                "memcpy", "", ""
            );
            println!(
                "  {:<20} {:<5} {:>14} {racy:>8.3} GB/s ({:.2}x memcpy: the byte-wise atomic \
                 copy of racing memory)",
                "racy-copy",
                "",
                "",
                racy / gbps
            );
        }
        // Peers first, so that shmio's lines can show the ratios.
        let mut order = systems.clone();
        order.sort_by_key(|s| match s {
            Sys::Pipe => 0,
            Sys::Iceoryx2 => 1,
            _ => 2,
        });
        for &sys in &order {
            if !supported(sys, size) {
                if !json {
                    println!(
                        "  {:<20} skipped: records of {size} B exceed fs.mqueue.msgsize_max",
                        sys.name()
                    );
                }
                continue;
            }
            if sys == Sys::Fcntl && size > 1024 && quick {
                continue;
            }
            for (consumers, pattern) in [(1usize, "1to1"), (4, "1to4")] {
                if !want(pattern) {
                    continue;
                }
                let n = if sys == Sys::Fcntl {
                    count.min(20_000)
                } else {
                    count
                };
                let r = throughput(sys, size, consumers, n);
                out.throughput(sys.name(), pattern, size, &r);
            }
        }
        for (mode, pattern) in [(Mode::Spin, "rtt-spin"), (Mode::Block, "rtt-block")] {
            if !want(pattern) {
                continue;
            }
            if !json {
                println!(
                    "\n## {size} B records: round trip (ns), {trips} trips, both sides {}",
                    if mode == Mode::Spin {
                        "spinning (kernel transports polled non-blocking)"
                    } else {
                        "blocking (every wait sleeps in the kernel)"
                    }
                );
            }
            let floor = if mode == Mode::Spin {
                "cacheline-pingpong"
            } else {
                "futex-pingpong"
            };
            let mut pp = pingpong(trips, mode);
            out.latency(floor, pattern, size, &mut pp);
            for &sys in &order {
                // The fcntl design has no request/response form (its producer always holds
                // the next slot's lock); the minimal ring cannot block.
                if sys == Sys::Fcntl
                    || (sys == Sys::Ring && mode == Mode::Block)
                    || !supported(sys, size)
                {
                    continue;
                }
                let mut v = latency(sys, size, trips, mode);
                out.latency(sys.name(), pattern, size, &mut v);
            }
        }
    }
    if !json {
        targets(&out, &sizes);
    }
}

/// Message queues of 64 KiB records to four consumers need more than the default 800 KiB of
/// RLIMIT_MSGQUEUE; raise it as far as we may (children inherit it). Without the privilege,
/// `make_tx` shortens the queues instead.
fn raise_mq_limit() {
    let want = libc::rlimit {
        rlim_cur: 1 << 30,
        rlim_max: 1 << 30,
    };
    // SAFETY: a valid rlimit struct; failure (not root) leaves the limit as it was.
    if unsafe { libc::setrlimit(libc::RLIMIT_MSGQUEUE, &want) } != 0 {
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid, writable rlimit struct.
        if unsafe { libc::getrlimit(libc::RLIMIT_MSGQUEUE, &mut cur) } == 0 {
            cur.rlim_cur = cur.rlim_max;
            // SAFETY: a valid rlimit struct.
            unsafe { libc::setrlimit(libc::RLIMIT_MSGQUEUE, &cur) };
        }
    }
}

/// Checks the benchmark issue's targets against this run's figures.
fn targets(out: &Out, sizes: &[usize]) {
    println!("\n## Targets (this run)");
    let line = |what: String, ratio: Option<f64>, goal: f64, at_most: bool| match ratio {
        Some(r) => {
            let met = if at_most { r <= goal } else { r >= goal };
            let op = if at_most { "<=" } else { ">=" };
            println!(
                "  [{}] {what}: {r:.2}x (goal {op} {goal}x)",
                if met { "met" } else { "MISSED" }
            );
        }
        None => println!("  [n/a] {what}: not measured in this run"),
    };
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    let bp64 = out.get("shmio-bp", "1to1", 64);
    for (peer, goal) in [
        ("iceoryx2", 5.0),
        ("pipe", 10.0),
        ("fcntl-lock-shm", 100.0),
        ("minimal-ring", 0.8),
    ] {
        line(
            format!("64 B 1->1 throughput, shmio-bp vs {peer}"),
            ratio(bp64, out.get(peer, "1to1", 64)),
            goal,
            false,
        );
    }
    line(
        "64 B round trip p50, spinning: shmio-bp vs cache-line ping-pong".into(),
        ratio(
            out.get("shmio-bp", "rtt-spin", 64),
            out.get("cacheline-pingpong", "rtt-spin", 64),
        ),
        2.0,
        true,
    );
    line(
        "64 B round trip p50, blocking: shmio-bp vs raw futex ping-pong".into(),
        ratio(
            out.get("shmio-bp", "rtt-block", 64),
            out.get("futex-pingpong", "rtt-block", 64),
        ),
        1.2,
        true,
    );
    line(
        "64 KiB 1->1 zero-copy bandwidth vs single-core memcpy".into(),
        ratio(
            out.get("shmio-bp-zerocopy", "1to1", 65536)
                .map(|r| r * 65536.0 / 1e9),
            out.get("memcpy", "1", 65536),
        ),
        0.5,
        false,
    );
    // Ahead of iceoryx2 everywhere: the better of shmio's back-pressure calls (iceoryx2 also
    // reads in place), at every size and pattern measured.
    for &size in sizes {
        for pattern in ["1to1", "1to4"] {
            let best = ["shmio-bp", "shmio-bp-zerocopy"]
                .iter()
                .filter_map(|s| out.get(s, pattern, size))
                .reduce(f64::max);
            line(
                format!("{size} B {pattern} throughput, shmio vs iceoryx2"),
                ratio(best, out.get("iceoryx2", pattern, size)),
                1.0,
                false,
            );
        }
        for pattern in ["rtt-spin", "rtt-block"] {
            let best = ["shmio-bp", "shmio-bp-zerocopy"]
                .iter()
                .filter_map(|s| out.get(s, pattern, size))
                .reduce(f64::min);
            line(
                format!("{size} B {pattern} p50, shmio vs iceoryx2 (lower is better)"),
                ratio(best, out.get("iceoryx2", pattern, size)),
                1.0,
                true,
            );
        }
    }
}

fn machine() -> String {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or(String::new(), |s| s.trim().to_string());
    format!(
        "Linux {}, {} CPUs ({cpu})",
        r.trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}
