//! Surviving a file shrunk under a live mapping.
//!
//! Any process with write access to a queue or region file can `ftruncate` it while others have
//! it mapped; the next load or store to a page past the new end raises `SIGBUS`, which would
//! kill every process using it. shmio installs one process-wide `SIGBUS` handler (the first
//! time a mapping is [`protect`]ed) that, for a fault inside one of shmio's mappings only:
//! 1. maps a private zero page over the faulting page (`mmap(MAP_FIXED | MAP_ANONYMOUS)`, which
//!    is async-signal-safe), so the faulting instruction completes on harmless memory;
//! 2. marks the mapping *poisoned*: every later call on its handle fails with `Corrupt`.
//!
//! A fault anywhere else goes to the handler that was installed before ours (Rust's stack
//! overflow handler, Python's faulthandler, the application's own), or, if there was none, to
//! the default action, exactly as if ours did not exist.
//!
//! What remains: a call that was running when the file shrank may return data read from the
//! zero page before the handle reports the poison (it is refused from the next call on); other
//! programs' mappings of the file are theirs to protect; a handler installed *after* ours that
//! does not chain to it takes the fault.
//!
//! # References
//! - sigaction(2), mmap(2) (`MAP_FIXED`), signal-safety(7)

use std::sync::Once;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Mappings watched at once; a mapping beyond that is simply not protected.
const SLOTS: usize = 1024;

struct Entry {
    /// First byte of the mapping; 0: free entry.
    start: AtomicUsize,
    len: AtomicUsize,
    /// Set by the handler when it patched a page of this mapping.
    poisoned: AtomicU32,
}

static TABLE: [Entry; SLOTS] = [const {
    Entry {
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        poisoned: AtomicU32::new(0),
    }
}; SLOTS];

static INSTALL: Once = Once::new();
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// The handler that was installed before ours (written once, before ours is installed).
struct Previous(std::cell::UnsafeCell<std::mem::MaybeUninit<libc::sigaction>>);
// SAFETY: written exactly once inside `INSTALL` before the handler that reads it exists; read
// only afterwards.
unsafe impl Sync for Previous {}
static PREVIOUS: Previous = Previous(std::cell::UnsafeCell::new(std::mem::MaybeUninit::uninit()));

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers; for SIGBUS the
    // address member is the faulting address.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed);
    for e in &TABLE {
        let start = e.start.load(Ordering::Acquire);
        if start == 0 || addr < start || addr - start >= e.len.load(Ordering::Acquire) {
            continue;
        }
        let at = addr & !(page - 1);
        // SAFETY: `at` is a page inside a mapping shmio owns and keeps mapped while it is
        // registered (unregistered before unmapping); replacing that page with private zeroes
        // only changes what the faulting access sees. mmap(2) is async-signal-safe.
        let r = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if r != libc::MAP_FAILED {
            e.poisoned.store(1, Ordering::Release);
            return;
        }
        break;
    }
    // Not ours (or the patch failed): whoever came before us decides.
    // SAFETY: PREVIOUS was initialised before this handler was installed.
    let prev = unsafe { (*PREVIOUS.0.get()).assume_init_ref() };
    let h = prev.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        // Restore the default action and return: the access faults again and the process
        // dies as it would have without us.
        // SAFETY: a valid sigaction struct; restoring a disposition is async-signal-safe.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
        }
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed as an SA_SIGINFO handler with this
        // signature; we pass the kernel's own arguments on.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: as above, for a plain handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}

fn install() {
    INSTALL.call_once(|| {
        PAGE.store(super::page_size() as usize, Ordering::Relaxed);
        // SAFETY: `sa` is a valid sigaction with our handler; PREVIOUS receives the old one
        // before the new one takes effect (the kernel writes `oldact` first); nothing reads
        // PREVIOUS before our handler can run.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigbus as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGBUS, &sa, (*PREVIOUS.0.get()).as_mut_ptr());
        }
    });
}

/// A mapping watched by the handler; unwatched when dropped (drop it before unmapping).
#[derive(Debug)]
pub(crate) struct Watch(Option<usize>);

/// Watches `len` bytes at `start` (a mapping the caller owns).
pub(crate) fn protect(start: *const u8, len: usize) -> Watch {
    install();
    for (i, e) in TABLE.iter().enumerate() {
        if e.start
            .compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            e.poisoned.store(0, Ordering::Relaxed);
            e.len.store(len, Ordering::Release);
            e.start.store(start as usize, Ordering::Release);
            return Watch(Some(i));
        }
    }
    Watch(None)
}

impl Watch {
    /// Whether the handler patched a page of this mapping (its file shrank under it).
    #[inline]
    pub(crate) fn poisoned(&self) -> bool {
        self.0
            .is_some_and(|i| TABLE[i].poisoned.load(Ordering::Relaxed) != 0)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            TABLE[i].start.store(0, Ordering::Release);
        }
    }
}
