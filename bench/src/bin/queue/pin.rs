//! `--pin`: the producer (this process) and every child on fixed CPUs.
//!
//! The run takes the CPUs it may use (its affinity mask at start). The producer, and every
//! round trip's initiator, stays on the first; the children of a case (consumers, the echoing
//! peer) take the others in turn, child `k` of a case on CPU `1 + k mod (n - 1)` of that list.
//! With fewer CPUs than processes the children share: on two CPUs the four consumers of a
//! 1 -> 4 case all run on the second CPU (time-sliced there, with the producer alone on the
//! first), which is what a user pinning one producer core and one consumer core gets.
//!
//! The fcntl design's cases run pinned even with `--no-pin` ([`pinned`]): its producer never
//! waits, so its figure means something only with a consumer that can keep up, on a CPU of
//! its own (unpinned, sharing CPUs with the producer, its consumer received a quarter of the
//! records sent in a run here).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The CPUs in use when pinning (empty: not pinning).
static CPUS: Mutex<Vec<usize>> = Mutex::new(Vec::new());
/// Children started in the current case.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The CPUs this process may run on.
pub fn allowed() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid, writable set of the size we pass.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `c` is below CPU_SETSIZE.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// A set holding only `cpu`.
pub fn only(cpu: usize) -> libc::cpu_set_t {
    set_of(&[cpu])
}

/// A set holding `cpus`.
pub fn set_of(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: `cpu` came from the allowed list, below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    set
}

/// Moves the calling thread onto the CPUs of `set` (async-signal-safe: one system call, so
/// it may run between fork and exec).
pub fn apply(set: &libc::cpu_set_t) -> bool {
    // SAFETY: a valid set of the size we pass.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) == 0 }
}

/// Turns pinning on (when at least two CPUs are allowed): pins this process to the first.
/// Returns the CPUs used, empty when not pinning.
pub fn start(want: bool) -> Vec<usize> {
    let cpus = allowed();
    if !want || cpus.len() < 2 || !apply(&only(cpus[0])) {
        return Vec::new();
    }
    *CPUS.lock().unwrap() = cpus.clone();
    cpus
}

/// Runs `case` pinned as `--pin` pins (when the run is not pinning already and has two CPUs
/// or more), then gives this process its CPUs back.
pub fn pinned<T>(case: impl FnOnce() -> T) -> T {
    if !CPUS.lock().unwrap().is_empty() {
        return case();
    }
    let cpus = allowed();
    if cpus.len() < 2 || !apply(&only(cpus[0])) {
        return case();
    }
    *CPUS.lock().unwrap() = cpus.clone();
    let r = case();
    CPUS.lock().unwrap().clear();
    apply(&set_of(&cpus));
    r
}

/// A new case begins: its first child goes to the second CPU again.
pub fn new_case() {
    NEXT.store(0, Ordering::Relaxed);
}

/// The set the next child of this case is to run on (`None`: not pinning).
pub fn next_child() -> Option<libc::cpu_set_t> {
    let cpus = CPUS.lock().unwrap();
    if cpus.len() < 2 {
        return None;
    }
    let k = NEXT.fetch_add(1, Ordering::Relaxed);
    Some(only(cpus[1 + k % (cpus.len() - 1)]))
}

/// The CPUs of the run: those pinned to, or when not pinning, those this process may use.
pub fn run_cpus() -> Vec<usize> {
    let cpus = CPUS.lock().unwrap().clone();
    if cpus.is_empty() { allowed() } else { cpus }
}
