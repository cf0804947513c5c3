//! `shmio-bench`: shmio's queue against what a user would pick instead, in the same run.
//!
//! Every system moves the same records between separate processes: throughput (1 producer to 1
//! and to 4 consumers; peers without broadcast send to each consumer in turn) and round-trip
//! latency with an echoing peer. The limits are measured alongside: a minimal single-producer
//! single-consumer ring (the ceiling for small records), a cache-line ping-pong (the floor for
//! round trips) and single-core memcpy bandwidth (the ceiling for large records).
//!
//! ```text
//! shmio-bench [--quick] [--json] [--sizes 8,64,1024,65536] [--systems a,b,...]
//! ```
//!
//! Not yet here (see the benchmark issue): iceoryx2, blocking-latency figures with the waiter
//! forced to sleep, zero-copy latency.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmio::queue::{Consumer, Policy, Producer, QueueOptions, Start};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sys {
    ShmioBp,
    ShmioBpZc,
    ShmioOw,
    Pipe,
    Uds,
    Mq,
    Fcntl,
    Ring,
}

const ALL: [Sys; 8] = [
    Sys::ShmioBp,
    Sys::ShmioBpZc,
    Sys::ShmioOw,
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
}

// ---------------------------------------------------------------------------------------------
// Endpoints

trait Tx {
    fn send(&mut self, rec: &[u8]);
}
trait Rx {
    /// Receives one record into `buf`; returns its sequence number (first 8 bytes, or a count).
    fn recv(&mut self, buf: &mut [u8]) -> u64;
}

struct ShmioTx {
    p: Producer,
    zero_copy: bool,
}
impl Tx for ShmioTx {
    fn send(&mut self, rec: &[u8]) {
        if self.zero_copy {
            let mut r = self.p.reserve().unwrap();
            r.buf()[..rec.len()].copy_from_slice(rec);
            r.commit(rec.len()).unwrap();
        } else {
            self.p.send(rec).unwrap();
        }
    }
}
struct ShmioRx {
    c: Consumer,
    zero_copy: bool,
}
impl Rx for ShmioRx {
    fn recv(&mut self, buf: &mut [u8]) -> u64 {
        if self.zero_copy {
            let g = self.c.read().unwrap();
            // Touch the record in place (its header) rather than copying it.
            let d = g.data();
            let seq = u64::from_le_bytes(d[..8.min(d.len())].try_into().unwrap_or([0; 8]));
            let _ = g.release();
            seq
        } else {
            let n = self.c.recv(buf).unwrap();
            seq_of(&buf[..n])
        }
    }
}

/// A byte stream (pipe or Unix stream socket) carrying fixed-size records.
struct StreamTx(std::fs::File);
impl Tx for StreamTx {
    fn send(&mut self, rec: &[u8]) {
        self.0.write_all(rec).unwrap();
    }
}
struct StreamRx(std::fs::File);
impl Rx for StreamRx {
    fn recv(&mut self, buf: &mut [u8]) -> u64 {
        self.0.read_exact(buf).unwrap();
        seq_of(buf)
    }
}

struct MqTx(libc::mqd_t);
impl Tx for MqTx {
    fn send(&mut self, rec: &[u8]) {
        // SAFETY: a valid queue descriptor and a live buffer of `rec.len()` bytes.
        let r = unsafe { libc::mq_send(self.0, rec.as_ptr().cast(), rec.len(), 0) };
        assert_eq!(r, 0, "mq_send: {}", std::io::Error::last_os_error());
    }
}
struct MqRx(libc::mqd_t);
impl Rx for MqRx {
    fn recv(&mut self, buf: &mut [u8]) -> u64 {
        // SAFETY: a valid queue descriptor and a writable buffer of `buf.len()` bytes, which is
        // the queue's message size.
        let n = unsafe {
            libc::mq_receive(
                self.0,
                buf.as_mut_ptr().cast(),
                buf.len(),
                std::ptr::null_mut(),
            )
        };
        assert!(n >= 0, "mq_receive: {}", std::io::Error::last_os_error());
        seq_of(&buf[..n as usize])
    }
}

/// A shared mapping of a file, for the fcntl design and the minimal ring.
struct Shm {
    ptr: *mut u8,
    len: usize,
}
impl Shm {
    fn open(path: &str, len: usize, create: bool) -> Shm {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)
            .unwrap();
        if create {
            f.set_len(len as u64).unwrap();
        }
        // SAFETY: a fresh shared mapping of a file of at least `len` bytes.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        Shm {
            ptr: ptr.cast(),
            len,
        }
    }
    fn atomic(&self, off: usize) -> &AtomicU64 {
        assert!(off + 8 <= self.len && off.is_multiple_of(8));
        // SAFETY: in bounds and aligned (checked above); the mapping lives as long as `self`.
        unsafe { &*(self.ptr.add(off) as *const AtomicU64) }
    }
    fn bytes(&self, off: usize, len: usize) -> *mut u8 {
        assert!(off + len <= self.len);
        // SAFETY: in bounds (checked above).
        unsafe { self.ptr.add(off) }
    }
}

/// The note's design: records in shared memory, one fcntl byte-range lock per slot. The
/// producer holds the lock of the slot it writes and takes the next slot's lock before it
/// releases the current one; a consumer takes a slot's lock (waiting while the producer holds
/// it) to read it.
struct Fcntl {
    shm: Shm,
    lock: std::fs::File,
    i: u64,
    slots: u64,
    size: usize,
}
const FCNTL_SLOTS: u64 = 64;
impl Fcntl {
    fn lock(&self, i: u64, kind: i32) {
        let fl = libc::flock {
            l_type: kind as i16,
            l_whence: libc::SEEK_SET as i16,
            l_start: (i % self.slots) as i64,
            l_len: 1,
            l_pid: 0,
        };
        let cmd = if kind == libc::F_UNLCK {
            libc::F_SETLK
        } else {
            libc::F_SETLKW
        };
        // SAFETY: a valid descriptor and a live flock struct.
        let r = unsafe { libc::fcntl(self.lock.as_raw_fd(), cmd, &fl) };
        assert_eq!(r, 0, "fcntl: {}", std::io::Error::last_os_error());
    }
    fn slot(&self, i: u64) -> usize {
        (i % self.slots) as usize * (self.size + 8)
    }
}
impl Tx for Fcntl {
    fn send(&mut self, rec: &[u8]) {
        let off = self.slot(self.i);
        // SAFETY: the slot is inside the mapping and ours while we hold its lock.
        unsafe {
            std::ptr::copy_nonoverlapping(
                rec.as_ptr(),
                self.shm.bytes(off + 8, rec.len()),
                rec.len(),
            )
        };
        self.shm.atomic(off).store(self.i + 1, Ordering::Release);
        self.lock(self.i + 1, libc::F_WRLCK);
        self.lock(self.i, libc::F_UNLCK);
        self.i += 1;
    }
}
impl Rx for Fcntl {
    fn recv(&mut self, buf: &mut [u8]) -> u64 {
        loop {
            self.lock(self.i, libc::F_RDLCK);
            let off = self.slot(self.i);
            let stamp = self.shm.atomic(off).load(Ordering::Acquire);
            if stamp == self.i + 1 {
                // SAFETY: the slot is inside the mapping; the producer does not hold its lock.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        self.shm.bytes(off + 8, buf.len()),
                        buf.as_mut_ptr(),
                        buf.len(),
                    )
                };
                self.lock(self.i, libc::F_UNLCK);
                self.i += 1;
                return seq_of(buf);
            }
            self.lock(self.i, libc::F_UNLCK);
            if stamp > self.i + 1 {
                // Lapped by the producer: that record is lost, go on.
                self.i += 1;
                continue;
            }
            // Got the lock before the producer took it: let it go and try again.
            std::thread::yield_now();
        }
    }
}

/// The ceiling for small records: a single-producer single-consumer ring with no features, the
/// head and tail on separate cache lines, 128-byte-aligned slots, spinning.
struct Ring {
    shm: Shm,
    size: usize,
    stride: usize,
    local: u64,
    cached: u64,
}
const RING_SLOTS: u64 = 1024;
impl Ring {
    fn len(size: usize) -> usize {
        256 + RING_SLOTS as usize * size.div_ceil(128).max(1) * 128
    }
    fn new(shm: Shm, size: usize) -> Ring {
        Ring {
            shm,
            size,
            stride: size.div_ceil(128).max(1) * 128,
            local: 0,
            cached: 0,
        }
    }
}
impl Tx for Ring {
    fn send(&mut self, rec: &[u8]) {
        while self.local >= self.cached + RING_SLOTS {
            self.cached = self.shm.atomic(128).load(Ordering::Acquire);
            std::hint::spin_loop();
        }
        let off = 256 + (self.local % RING_SLOTS) as usize * self.stride;
        // SAFETY: the slot is inside the mapping and free (the tail is past it).
        unsafe {
            std::ptr::copy_nonoverlapping(rec.as_ptr(), self.shm.bytes(off, self.size), self.size)
        };
        self.local += 1;
        self.shm.atomic(0).store(self.local, Ordering::Release);
    }
}
impl Rx for Ring {
    fn recv(&mut self, buf: &mut [u8]) -> u64 {
        while self.local >= self.cached {
            self.cached = self.shm.atomic(0).load(Ordering::Acquire);
            std::hint::spin_loop();
        }
        let off = 256 + (self.local % RING_SLOTS) as usize * self.stride;
        // SAFETY: the slot is inside the mapping and published (the head is past it).
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.shm.bytes(off, self.size),
                buf.as_mut_ptr(),
                self.size,
            )
        };
        self.local += 1;
        self.shm.atomic(128).store(self.local, Ordering::Release);
        seq_of(buf)
    }
}

fn seq_of(b: &[u8]) -> u64 {
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
fn make_tx(sys: Sys, base: &str, k: usize, size: usize) -> (Box<dyn Tx>, Option<OwnedFd>) {
    match sys {
        Sys::ShmioBp | Sys::ShmioBpZc | Sys::ShmioOw => {
            let policy = if sys == Sys::ShmioOw {
                Policy::Overwrite
            } else {
                Policy::BackPressure
            };
            let opts = QueueOptions::new()
                .slots(1024)
                .slot_size(size as u32)
                .policy(policy);
            let p = Producer::create(&format!("{base}-{k}"), &opts).unwrap();
            (
                Box::new(ShmioTx {
                    p,
                    zero_copy: sys == Sys::ShmioBpZc,
                }),
                None,
            )
        }
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
            attr.mq_maxmsg = 10;
            attr.mq_msgsize = size as _;
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
            let shm = Shm::open(&chan_path(base, k), Ring::len(size), true);
            (Box::new(Ring::new(shm, size)), None)
        }
    }
}

/// Consumer side, in the child.
fn make_rx(sys: Sys, base: &str, k: usize, size: usize, fd: RawFd) -> Box<dyn Rx> {
    match sys {
        Sys::ShmioBp | Sys::ShmioBpZc | Sys::ShmioOw => Box::new(ShmioRx {
            c: Consumer::open(&format!("{base}-{k}"), Start::Oldest).unwrap(),
            zero_copy: sys == Sys::ShmioBpZc,
        }),
        // SAFETY: the parent passed us this inherited descriptor, owned by nobody else here.
        Sys::Pipe | Sys::Uds => Box::new(StreamRx(unsafe { std::fs::File::from_raw_fd(fd) })),
        Sys::Mq => {
            let name = std::ffi::CString::new(format!("/{base}-{k}")).unwrap();
            // SAFETY: a valid name.
            let q = unsafe { libc::mq_open(name.as_ptr(), libc::O_RDONLY) };
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
        Sys::Ring => Box::new(Ring::new(
            Shm::open(&chan_path(base, k), Ring::len(size), false),
            size,
        )),
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
        }
        Sys::Fcntl => {
            let _ = std::fs::remove_file(chan_path(base, k));
            let _ = std::fs::remove_file(format!("{}.lock", chan_path(base, k)));
        }
        Sys::Ring => {
            let _ = std::fs::remove_file(chan_path(base, k));
        }
        Sys::Pipe | Sys::Uds => {}
    }
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

// ---------------------------------------------------------------------------------------------
// Runs

struct Throughput {
    secs: f64,
    count: u64,
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

fn throughput(sys: Sys, size: usize, consumers: usize, count: u64) -> Throughput {
    let base = format!("shmio-bench-{}-{}", std::process::id(), sys.name());
    let mut txs = Vec::new();
    let mut children = Vec::new();
    for k in 0..consumers {
        cleanup(sys, &base, k);
        let (tx, fd) = make_tx(sys, &base, k, size);
        let raw = fd.as_ref().map_or(-1, |f| f.as_raw_fd());
        let args: Vec<String> = vec![
            "--child-rx".into(),
            sys.name().into(),
            base.clone(),
            k.to_string(),
            size.to_string(),
            count.to_string(),
            raw.to_string(),
        ];
        let mut c = spawn_child(&args, fd.as_ref());
        drop(fd);
        wait_ready(&mut c);
        txs.push(tx);
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
    for c in children.iter_mut() {
        let st = c.wait().unwrap();
        assert!(st.success(), "{} consumer failed", sys.name());
    }
    let secs = t.elapsed().as_secs_f64();
    drop(txs);
    for k in 0..consumers {
        cleanup(sys, &base, k);
    }
    Throughput { secs, count }
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
    let mut rx = make_rx(sys, base, k, size, fd);
    std::io::stdout().write_all(b"r").unwrap();
    std::io::stdout().flush().unwrap();
    let mut buf = vec![0u8; size];
    let last = if size >= 8 { count } else { u64::MAX };
    let mut got = 0u64;
    loop {
        let seq = rx.recv(&mut buf);
        got += 1;
        // Overwrite mode may skip records: stop at the last one.
        if seq == last || got == count {
            break;
        }
    }
}

/// Round trips: the parent sends, the child echoes on a second channel.
fn latency(sys: Sys, size: usize, trips: u64) -> Vec<f64> {
    let base = format!("shmio-bench-lat-{}-{}", std::process::id(), sys.name());
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
            let (tx, fd) = make_tx(sys, &base, 0, size);
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
    ];
    let mut c = spawn_child(&args, fd.as_ref());
    drop(fd);
    wait_ready(&mut c);
    // The child created the return channel before it said ready; streams come back on stdout.
    let mut pong: Box<dyn Rx> = match sys {
        Sys::Uds => Box::new(StreamRx(parent_end.unwrap())),
        Sys::Pipe => {
            let out = c.stdout.take().unwrap();
            // SAFETY: we own the child's stdout pipe from here on.
            Box::new(StreamRx(unsafe {
                std::fs::File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(out))
            }))
        }
        _ => make_rx_parent(sys, &base, size),
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

/// The parent's side of the return channel (channel 1, created by the child).
fn make_rx_parent(sys: Sys, base: &str, size: usize) -> Box<dyn Rx> {
    make_rx(sys, base, 1, size, -1)
}

fn child_echo(args: &[String]) {
    let sys = Sys::parse(&args[0]).unwrap();
    let (base, size, trips, fd): (&str, usize, u64, RawFd) = (
        &args[1],
        args[2].parse().unwrap(),
        args[3].parse().unwrap(),
        args[4].parse().unwrap(),
    );
    let mut rx = make_rx(sys, base, 0, size, fd);
    let mut tx: Box<dyn Tx> = match sys {
        // SAFETY: our stdout is a pipe to the parent, used only for the echo from here on.
        Sys::Pipe => Box::new(StreamTx(unsafe { std::fs::File::from_raw_fd(1) })),
        // SAFETY: a duplicate of the inherited bidirectional socket, owned by nobody else.
        Sys::Uds => Box::new(StreamTx(unsafe {
            std::fs::File::from_raw_fd(libc::dup(fd))
        })),
        _ => make_tx(sys, base, 1, size).0,
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

/// The floor for a round trip: two processes bouncing one cache line.
fn pingpong(trips: u64) -> Vec<f64> {
    let path = format!("/dev/shm/shmio-bench-pp-{}", std::process::id());
    let shm = Shm::open(&path, 4096, true);
    let mut c = spawn_child(
        &["--child-pingpong".into(), path.clone(), trips.to_string()],
        None,
    );
    wait_ready(&mut c);
    let w = shm.atomic(0);
    let mut rtts = Vec::with_capacity(trips as usize);
    for i in 0..trips {
        let t = Instant::now();
        w.store(2 * i + 1, Ordering::Release);
        while w.load(Ordering::Acquire) != 2 * i + 2 {
            std::hint::spin_loop();
        }
        rtts.push(t.elapsed().as_nanos() as f64);
    }
    c.wait().unwrap();
    let _ = std::fs::remove_file(&path);
    rtts
}

fn child_pingpong(args: &[String]) {
    let shm = Shm::open(&args[0], 4096, false);
    let trips: u64 = args[1].parse().unwrap();
    std::io::stdout().write_all(b"r").unwrap();
    std::io::stdout().flush().unwrap();
    let w = shm.atomic(0);
    for i in 0..trips {
        while w.load(Ordering::Acquire) != 2 * i + 1 {
            std::hint::spin_loop();
        }
        w.store(2 * i + 2, Ordering::Release);
    }
}

/// The ceiling for large records: single-core memcpy of `size`-byte records into a 4 MiB ring
/// of destinations (cache-resident, as a consumer's buffer would be).
fn memcpy_gbps(size: usize) -> f64 {
    let src = vec![7u8; size];
    let mut dst = vec![0u8; (4 << 20).max(size)];
    let slots = dst.len() / size;
    let n = ((1u64 << 31) / size as u64).max(1000);
    let t = Instant::now();
    for i in 0..n {
        let off = (i as usize % slots) * size;
        dst[off..off + size].copy_from_slice(&src);
        std::hint::black_box(&mut dst);
    }
    n as f64 * size as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--child-rx") => return child_rx(&args[1..]),
        Some("--child-echo") => return child_echo(&args[1..]),
        Some("--child-pingpong") => return child_pingpong(&args[1..]),
        _ => {}
    }
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
        |s| s.split(',').map(|x| x.parse().unwrap()).collect(),
    );
    let systems: Vec<Sys> = opt("--systems").map_or(ALL.to_vec(), |s| {
        s.split(',')
            .map(|x| Sys::parse(x).unwrap_or_else(|| panic!("unknown system {x}")))
            .collect()
    });
    let budget = if quick { 0.05 } else { 0.5 }; // GB moved per throughput run
    let trips: u64 = if quick { 20_000 } else { 100_000 };

    let emit = |system: &str, pattern: &str, size: usize, fields: String, text: String| {
        if json {
            println!(
                "{{\"system\":\"{system}\",\"pattern\":\"{pattern}\",\"size\":{size},{fields}}}"
            );
        } else {
            println!("{text}");
        }
    };
    if !json {
        println!(
            "# shmio-bench{} — {} ",
            if quick { " --quick" } else { "" },
            uname()
        );
    }
    for &size in &sizes {
        let count = ((budget * 1e9 / size as f64) as u64).clamp(20_000, 5_000_000);
        let count = if quick { count.min(500_000) } else { count };
        if !json {
            println!(
                "\n## {size} B records: throughput (records/s, GB/s), {count} records per consumer"
            );
        }
        let gbps = memcpy_gbps(size);
        emit(
            "memcpy",
            "1",
            size,
            format!("\"gbps\":{gbps:.2}"),
            format!(
                "  {:<20} {:>14} {:>8.2} GB/s (single-core memcpy ceiling)",
                "memcpy", "", gbps
            ),
        );
        let mut base_rate = None;
        for &sys in &systems {
            if (sys == Sys::Fcntl && size > 1024 && quick) || !supported(sys, size) {
                if !json && !supported(sys, size) {
                    println!(
                        "  {:<20} skipped: records of {size} B exceed fs.mqueue.msgsize_max",
                        sys.name()
                    );
                }
                continue;
            }
            for &consumers in &[1usize, 4] {
                let n = if sys == Sys::Fcntl {
                    count.min(50_000)
                } else {
                    count
                };
                let r = throughput(sys, size, consumers, n);
                let rate = r.count as f64 / r.secs;
                let pattern = if consumers == 1 { "1to1" } else { "1to4" };
                if sys == Sys::Pipe && consumers == 1 {
                    base_rate = Some(rate);
                }
                let vs_pipe =
                    base_rate.map_or(String::new(), |b| format!("{:>7.1}x pipe", rate / b));
                emit(
                    sys.name(),
                    pattern,
                    size,
                    format!(
                        "\"records_per_s\":{rate:.0},\"gbps\":{:.3}",
                        rate * size as f64 / 1e9
                    ),
                    format!(
                        "  {:<20} {:<5} {:>12.0}/s {:>8.3} GB/s {vs_pipe}",
                        sys.name(),
                        pattern,
                        rate,
                        rate * size as f64 / 1e9
                    ),
                );
            }
        }
        if !json {
            println!(
                "\n## {size} B records: round trip (ns), {trips} trips, spinning where the system can"
            );
        }
        let mut pp = pingpong(trips);
        let floor = pct(&mut pp, 0.5);
        emit(
            "cacheline-pingpong",
            "rtt",
            size,
            format!("\"p50_ns\":{floor:.0},\"p99_ns\":{:.0}", pct(&mut pp, 0.99)),
            format!(
                "  {:<20} p50 {:>8.0}  p99 {:>8.0}  p99.9 {:>8.0}",
                "cacheline-pingpong",
                floor,
                pct(&mut pp, 0.99),
                pct(&mut pp, 0.999)
            ),
        );
        for &sys in &systems {
            if sys == Sys::Fcntl || sys == Sys::ShmioBpZc || !supported(sys, size) {
                continue;
            }
            let mut v = latency(sys, size, trips);
            let (p50, p99, p999) = (pct(&mut v, 0.5), pct(&mut v, 0.99), pct(&mut v, 0.999));
            emit(
                sys.name(),
                "rtt",
                size,
                format!("\"p50_ns\":{p50:.0},\"p99_ns\":{p99:.0},\"p999_ns\":{p999:.0}"),
                format!(
                    "  {:<20} p50 {:>8.0}  p99 {:>8.0}  p99.9 {:>8.0}  ({:.1}x ping-pong)",
                    sys.name(),
                    p50,
                    p99,
                    p999,
                    p50 / floor
                ),
            );
        }
    }
}

fn uname() -> String {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "Linux {}, {} CPUs",
        r.trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}
