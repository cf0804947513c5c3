//! The oracles that watch a case from outside: no allocation larger than max(file size,
//! 1 MiB) (a counting global allocator), no panic in any thread (a panic hook), no hang (a
//! watchdog thread that aborts the process, for the supervisor to report the case).

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// Oracle: no allocation above the file's size.

/// Allocations larger than this fail the running case (`usize::MAX`: between cases).
static ALLOC_LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
/// The largest allocation above the limit in the running case (0: none).
static ALLOC_BIG: AtomicUsize = AtomicUsize::new(0);

struct Counting;

#[inline]
fn note_size(size: usize) {
    if size > ALLOC_LIMIT.load(Ordering::Relaxed) {
        ALLOC_BIG.fetch_max(size, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed unchanged to the system allocator; the only addition is a
// relaxed atomic update, which neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_size(layout.size());
        // SAFETY: the caller's layout meets `GlobalAlloc::alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_size(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` (every allocation above goes there) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_size(new_size);
        // SAFETY: `ptr` came from `System` with `layout`; the caller meets `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// Oracles: no panic (any thread), no hang (watchdog).

static PANICS: AtomicU64 = AtomicU64::new(0);
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());
/// The running case and when it started (ns since `EPOCH`; 0: no case running).
static CASE_NO: AtomicU64 = AtomicU64::new(0);
static CASE_T0: AtomicU64 = AtomicU64::new(0);
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

pub fn gettid() -> u32 {
    // SAFETY: gettid(2) has no arguments and cannot fail.
    unsafe { libc::gettid() as u32 }
}

pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        let thread = std::thread::current();
        let msg = format!("thread {:?}: {info}", thread.name().unwrap_or("?"));
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = msg;
        }
    }));
}

/// Aborts the process if a case runs longer than `limit`, after saying which (and removing
/// `cleanup`, the work directory of a replay, which no supervisor removes).
pub fn spawn_watchdog(
    limit: Duration,
    seed: u64,
    progress: Option<File>,
    cleanup: Option<PathBuf>,
) -> u32 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("fuzz-watchdog".into())
        .spawn(move || {
            let _ = tx.send(gettid());
            loop {
                std::thread::sleep(Duration::from_millis(25));
                let t0 = CASE_T0.load(Ordering::SeqCst);
                if t0 != 0 && now_ns().saturating_sub(t0) > limit.as_nanos() as u64 {
                    let n = CASE_NO.load(Ordering::SeqCst);
                    eprintln!(
                        "FAIL hang seed={seed} case={n}: still running after {limit:?}\n  \
                         replay: shmio-fuzz --seed {seed} --case {n}"
                    );
                    if let Some(p) = &progress {
                        let _ = p.write_all_at(&1u64.to_le_bytes(), 8);
                    }
                    if let Some(d) = &cleanup {
                        let _ = std::fs::remove_dir_all(d);
                    }
                    std::process::abort();
                }
            }
        })
        .expect("spawn the watchdog");
    rx.recv().unwrap_or(0)
}

/// From here on, an allocation above max(`file_len`, 1 MiB) fails the running case.
pub fn set_alloc_limit(file_len: u64) {
    let limit = file_len.max(1 << 20).min(usize::MAX as u64) as usize;
    ALLOC_LIMIT.store(limit, Ordering::SeqCst);
}

/// A running case, as the oracles saw it begin.
pub struct Watch {
    t0: u64,
    panics: u64,
}

impl Watch {
    /// Case `n` begins: the watchdog times it; panics and big allocations count from now.
    pub fn start(n: u64) -> Watch {
        CASE_NO.store(n, Ordering::SeqCst);
        let t0 = now_ns();
        CASE_T0.store(t0, Ordering::SeqCst);
        let panics = PANICS.load(Ordering::SeqCst);
        ALLOC_BIG.store(0, Ordering::SeqCst);
        Watch { t0, panics }
    }

    /// The case is over: how long it took (ns), and the failures the oracles saw.
    pub fn stop(self) -> (u64, Vec<(&'static str, String)>) {
        ALLOC_LIMIT.store(usize::MAX, Ordering::SeqCst);
        CASE_T0.store(0, Ordering::SeqCst);
        let took = now_ns() - self.t0;
        let mut failures = Vec::new();
        if PANICS.load(Ordering::SeqCst) != self.panics {
            let msg = LAST_PANIC.lock().map(|m| m.clone()).unwrap_or_default();
            failures.push(("panic", msg));
        }
        let big = ALLOC_BIG.swap(0, Ordering::SeqCst);
        if big != 0 {
            failures.push((
                "alloc",
                format!("an allocation of {big} bytes, above max(file size, 1 MiB)"),
            ));
        }
        (took, failures)
    }
}
