//! The systems' endpoints: shmio, the kernel transports, the note's fcntl design and the
//! minimal ring. Each moves whole fixed-size records whose first 8 bytes carry a sequence
//! number.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use shmio::queue::{Consumer, Producer};

use crate::systems::{Mode, seq_of};

pub trait Tx {
    fn send(&mut self, rec: &[u8]);
}
pub trait Rx {
    /// Receives one record into `buf` (or reads it in place); returns its sequence number.
    fn recv(&mut self, buf: &mut [u8]) -> u64;
}

/// shmio's producer: `send` copies the record in; the zero-copy variant writes it into the
/// reserved slot (one copy either way: the producer has to produce the bytes somewhere).
pub struct ShmioTx {
    pub p: Producer,
    pub zero_copy: bool,
}
impl ShmioTx {
    pub fn new(mut p: Producer, zero_copy: bool, mode: Mode) -> ShmioTx {
        if mode == Mode::Block {
            p.set_spin(Duration::ZERO);
        }
        ShmioTx { p, zero_copy }
    }
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

/// shmio's consumer: `recv` copies the record out; the zero-copy variant reads it in place.
pub struct ShmioRx {
    pub c: Consumer,
    pub zero_copy: bool,
}
impl ShmioRx {
    pub fn new(mut c: Consumer, zero_copy: bool, mode: Mode) -> ShmioRx {
        if mode == Mode::Block {
            c.set_spin(Duration::ZERO);
        }
        ShmioRx { c, zero_copy }
    }
}
impl Rx for ShmioRx {
    fn recv(&mut self, buf: &mut [u8]) -> u64 {
        if self.zero_copy {
            let g = self.c.read().unwrap();
            // A back-pressure queue (shmio-bp-zerocopy): the slot is borrowed in place.
            let seq = seq_of(
                g.data()
                    .expect("zero-copy reads run on back-pressure queues"),
            );
            let _ = g.release();
            seq
        } else {
            let n = self.c.recv(buf).unwrap();
            seq_of(&buf[..n])
        }
    }
}

/// Sets or clears `O_NONBLOCK` on a descriptor.
pub fn set_nonblocking(fd: i32, on: bool) {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we hold; no memory is passed.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        assert!(fl >= 0);
        let fl = if on {
            fl | libc::O_NONBLOCK
        } else {
            fl & !libc::O_NONBLOCK
        };
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, fl), 0);
    }
}

/// A byte stream (pipe or Unix stream socket) carrying fixed-size records.
pub struct StreamTx(pub std::fs::File);
impl Tx for StreamTx {
    fn send(&mut self, rec: &[u8]) {
        let (mut at, mut b) = (0, Backoff::default());
        while at < rec.len() {
            match self.0.write(&rec[at..]) {
                Ok(n) => at += n,
                // A socket shared with a spinning reader is non-blocking for both directions.
                Err(e) if e.kind() == ErrorKind::WouldBlock => b.snooze(),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("write: {e}"),
            }
        }
    }
}

/// The reading end; in spin mode it is non-blocking and polled in a loop (what a latency-minded
/// user of a kernel transport does).
pub struct StreamRx(pub std::fs::File);
impl StreamRx {
    pub fn new(f: std::fs::File, mode: Mode) -> StreamRx {
        set_nonblocking(f.as_raw_fd(), mode == Mode::Spin);
        StreamRx(f)
    }
}
impl Rx for StreamRx {
    fn recv(&mut self, buf: &mut [u8]) -> u64 {
        let (mut at, mut b) = (0, Backoff::default());
        while at < buf.len() {
            match self.0.read(&mut buf[at..]) {
                Ok(0) => panic!("stream closed early"),
                Ok(n) => at += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => b.snooze(),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        seq_of(buf)
    }
}

pub struct MqTx(pub libc::mqd_t);
impl Tx for MqTx {
    fn send(&mut self, rec: &[u8]) {
        // SAFETY: a valid queue descriptor and a live buffer of `rec.len()` bytes.
        let r = unsafe { libc::mq_send(self.0, rec.as_ptr().cast(), rec.len(), 0) };
        assert_eq!(r, 0, "mq_send: {}", std::io::Error::last_os_error());
    }
}
impl Drop for MqTx {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once. (Unclosed queues count against
        // RLIMIT_MSGQUEUE even after they are unlinked.)
        unsafe { libc::mq_close(self.0) };
    }
}
/// A message queue reader; opened with `O_NONBLOCK` and polled in spin mode.
pub struct MqRx(pub libc::mqd_t);
impl Drop for MqRx {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::mq_close(self.0) };
    }
}
impl Rx for MqRx {
    fn recv(&mut self, buf: &mut [u8]) -> u64 {
        let mut b = Backoff::default();
        loop {
            // SAFETY: a valid queue descriptor and a writable buffer of `buf.len()` bytes,
            // which is the queue's message size.
            let n = unsafe {
                libc::mq_receive(
                    self.0,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    std::ptr::null_mut(),
                )
            };
            if n >= 0 {
                return seq_of(&buf[..n as usize]);
            }
            let e = std::io::Error::last_os_error();
            match e.kind() {
                ErrorKind::WouldBlock => b.snooze(),
                ErrorKind::Interrupted => {}
                _ => panic!("mq_receive: {e}"),
            }
        }
    }
}

/// A shared mapping of a file, for the fcntl design and the minimal ring.
pub struct Shm {
    ptr: *mut u8,
    len: usize,
}
impl Shm {
    pub fn open(path: &str, len: usize, create: bool) -> Shm {
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
    pub fn atomic(&self, off: usize) -> &AtomicU64 {
        assert!(off + 8 <= self.len && off.is_multiple_of(8));
        // SAFETY: in bounds and aligned (checked above); the mapping lives as long as `self`.
        unsafe { &*(self.ptr.add(off) as *const AtomicU64) }
    }
    pub fn atomic32(&self, off: usize) -> &AtomicU32 {
        assert!(off + 4 <= self.len && off.is_multiple_of(4));
        // SAFETY: in bounds and aligned (checked above); the mapping lives as long as `self`.
        unsafe { &*(self.ptr.add(off) as *const AtomicU32) }
    }
    pub fn bytes(&self, off: usize, len: usize) -> *mut u8 {
        assert!(off + len <= self.len);
        // SAFETY: in bounds (checked above).
        unsafe { self.ptr.add(off) }
    }
}

/// The note's design: records in shared memory, one fcntl byte-range lock per slot. The
/// producer holds the lock of the slot it writes and takes the next slot's lock before it
/// releases the current one; a consumer takes a slot's lock (waiting while the producer holds
/// it) to read it. The producer never waits for a consumer: one that falls a ring behind is
/// lapped, and resumes at the record it finds in its slot (one ring newer, within a ring of
/// the producer), as the note's consumers look for the newest record rather than the ones
/// they missed.
pub struct Fcntl {
    pub shm: Shm,
    pub lock: std::fs::File,
    pub i: u64,
    pub slots: u64,
    pub size: usize,
}
/// The design's slots unless `--depth` says otherwise.
pub const FCNTL_SLOTS: u64 = 64;
impl Fcntl {
    /// Opens (the producer: creates) the design's slots at `path` and its lock file beside them.
    pub fn open(path: &str, size: usize, create: bool) -> Fcntl {
        let slots = crate::systems::depth().map_or(FCNTL_SLOTS, |d| d as u64);
        let shm = Shm::open(path, slots as usize * (size + 8), create);
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(format!("{path}.lock"))
            .unwrap();
        Fcntl {
            shm,
            lock,
            i: 0,
            slots,
            size,
        }
    }
    pub fn lock(&self, i: u64, kind: i32) {
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
                // Lapped by the producer: the records up to the one this slot holds now are
                // lost; resume at it. (Stepping on one record at a time, as this consumer
                // once did, costs the same two fcntl calls per record as the producer's
                // sends: a consumer lapped once then trailed the producer by a ring until it
                // stopped, receiving nothing more, and the run's figure was the chance moment
                // of its first lap: 2-100% of the records sent.)
                self.i = stamp - 1;
                continue;
            }
            // Got the lock before the producer took it: let it go and try again.
            std::thread::yield_now();
        }
    }
}

/// How a polling loop waits: a short pure spin, then a yield between rounds, so that a
/// poller never starves the very process it waits for when processes outnumber cores (the
/// same courtesy shmio's own waits pay).
#[derive(Default)]
pub struct Backoff(u32);
impl Backoff {
    #[inline]
    pub fn snooze(&mut self) {
        self.0 += 1;
        if self.0 < 256 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}
