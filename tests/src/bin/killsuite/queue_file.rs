//! The queue file, read and written from outside: its name, the words the scenarios wait on
//! or scribble, and its removal however a cycle ended.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use shmio_tests::layout::queue;

pub fn queue_name(tag: &str, n: u64) -> String {
    format!("shmio-ks-{tag}-{}-{n}", std::process::id())
}

/// Removes the queue files of earlier drivers that died before unlinking them.
pub fn remove_stale_queues() {
    let Ok(dir) = std::fs::read_dir(shmio::queue::queue_dir()) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("shmio-ks-") else {
            continue;
        };
        let stale = rest
            .split('-')
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|pid| {
                pid != std::process::id() && !PathBuf::from(format!("/proc/{pid}")).exists()
            });
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Unlinks the queue when the cycle is over, however it ended.
pub struct QueueFile {
    pub name: String,
    file: Option<File>,
}

impl QueueFile {
    pub fn new(name: String) -> QueueFile {
        QueueFile { name, file: None }
    }

    fn file(&mut self) -> Option<&File> {
        if self.file.is_none() {
            let path = shmio::queue::resolve(&self.name).ok()?;
            self.file = File::open(path).ok();
        }
        self.file.as_ref()
    }

    pub fn read_u32(&mut self, off: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.file()?.read_exact_at(&mut b, off).ok()?;
        Some(u32::from_le_bytes(b))
    }

    pub fn read_u64(&mut self, off: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.file()?.read_exact_at(&mut b, off).ok()?;
        Some(u64::from_le_bytes(b))
    }

    /// Overwrites the producer's owner word, as a hostile or buggy peer could.
    pub fn scribble_owner(&mut self, value: u32) -> bool {
        let Some(path) = shmio::queue::resolve(&self.name).ok() else {
            return false;
        };
        let Ok(f) = std::fs::OpenOptions::new().write(true).open(path) else {
            return false;
        };
        f.write_all_at(&value.to_le_bytes(), queue::OWNER).is_ok()
    }

    /// Whether the slot of record `seq` is being written (its stamp odd for `seq`): a
    /// reservation was open when the producer died.
    pub fn mid_write(&mut self, seq: u64) -> bool {
        let (Some(n), Some(stride), Some(base)) = (
            self.read_u32(queue::SLOT_COUNT),
            self.read_u32(queue::SLOT_STRIDE),
            self.read_u64(queue::SLOTS_OFFSET),
        ) else {
            return false;
        };
        let idx = seq & u64::from(n.max(1) - 1);
        self.read_u64(base + idx * u64::from(stride)) == Some(2 * seq + 1)
    }

    /// The `sleeping` word of the consumer slot held by process `pid`.
    pub fn consumer_sleeping(&mut self, pid: i32) -> Option<u32> {
        let st = shmio::queue::inspect(&self.name).ok()?;
        let c = st.consumers.iter().find(|c| c.pid == pid as u32)?;
        let base =
            self.read_u64(queue::CONSUMERS_OFFSET)? + u64::from(c.index) * queue::CONSUMER_STRIDE;
        self.read_u32(base + queue::C_SLEEP)
    }

    /// Waits up to 2 s for the sleeper count to show `k` consumers asleep.
    pub fn await_sleepers(&mut self, k: u64) -> bool {
        poll_until(Duration::from_secs(2), || {
            self.read_u32(queue::WAITERS) == Some(k as u32)
        })
    }

    pub fn head(&self) -> Option<u64> {
        shmio::queue::inspect(&self.name).ok().map(|s| s.head)
    }
}

impl Drop for QueueFile {
    fn drop(&mut self) {
        // A hostile round may have scribbled the magic, and `unlink` leaves a file that is not
        // a queue alone: the name is ours, remove it anyway.
        if shmio::queue::unlink(&self.name).is_err()
            && let Ok(path) = shmio::queue::resolve(&self.name)
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Polls `f` every 100 us until it holds or `within` passes.
pub fn poll_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Checks the offsets of `shmio_tests::layout` against a queue made here, so that a layout change fails loudly
/// instead of making the suite poke the wrong words.
pub fn check_offsets() {
    use shmio::queue::{Consumer, Producer, QueueOptions, Start};
    let mut q = QueueFile::new(queue_name("offsets", 0));
    let p = Producer::create(&q.name, &QueueOptions::new().slots(8)).expect("create");
    let c = Consumer::open(&q.name, Start::Newest).expect("open");
    let owner = q.read_u32(queue::OWNER).expect("read owner");
    assert_eq!(
        owner & 0x3fff_ffff,
        p.keeper_tid(),
        "the producer's owner word is not at file offset {}",
        queue::OWNER
    );
    let base = q
        .read_u64(queue::CONSUMERS_OFFSET)
        .expect("consumers offset")
        + u64::from(c.index()) * queue::CONSUMER_STRIDE;
    assert_eq!(
        q.read_u32(base + queue::C_PID),
        Some(std::process::id()),
        "consumer slots are not where the config line says"
    );
    assert_eq!(q.read_u32(queue::WAITERS), Some(0));
    let mut p = p;
    let r = p.reserve().expect("reserve");
    assert!(
        q.mid_write(0),
        "slot stamps are not where the config line says"
    );
    r.commit(8).expect("commit");
    assert!(!q.mid_write(0));
    assert_eq!(q.read_u32(queue::PRODUCER_WAITING), Some(0));
}
