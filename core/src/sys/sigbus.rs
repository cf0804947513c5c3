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
//! The handler is installed and the page patched through nix (`sigaction`, `mmap_anonymous`);
//! the previous disposition is read raw (`sigaction(SIGBUS, NULL, &old)`: nix's `sigaction`
//! always installs an action, nix-rust/nix#2172), so that it is recorded before our handler can
//! run.
//!
//! # References
//! - [sigaction(2)](https://man7.org/linux/man-pages/man2/sigaction.2.html)
//! - [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html) (`MAP_FIXED`)
//! - [signal-safety(7)](https://man7.org/linux/man-pages/man7/signal-safety.7.html)

use std::num::NonZeroUsize;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

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
        let (Some(at), Some(len)) = (
            NonZeroUsize::new(addr & !(page - 1)),
            NonZeroUsize::new(page),
        ) else {
            break;
        };
        // SAFETY: `at` is a page inside a mapping shmio owns and keeps mapped while it is
        // registered (unregistered before unmapping); replacing that page with private zeroes
        // (`MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS`) only changes what the faulting access
        // sees. mmap(2) is async-signal-safe.
        let patched = unsafe {
            mmap_anonymous(
                Some(at),
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_FIXED | MapFlags::MAP_PRIVATE,
            )
        };
        if patched.is_ok() {
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
        let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        // SAFETY: the default disposition runs no handler; sigaction(2) is async-signal-safe.
        let _ = unsafe { sigaction(Signal::SIGBUS, &dfl) };
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
        PAGE.store(super::process::page_size() as usize, Ordering::Relaxed);
        // First the disposition we replace, then ours: the kernel hands back an old action only
        // after the new one is in force, and our handler must never find PREVIOUS unwritten.
        // SAFETY: a NULL `act` only reads the current disposition; PREVIOUS is a writable
        // sigaction that nothing reads yet (our handler is not installed).
        let r = unsafe {
            libc::sigaction(
                libc::SIGBUS,
                std::ptr::null(),
                (*PREVIOUS.0.get()).as_mut_ptr(),
            )
        };
        if r != 0 {
            return;
        }
        let ours = SigAction::new(
            SigHandler::SigAction(on_sigbus),
            SaFlags::SA_SIGINFO | SaFlags::SA_ONSTACK | SaFlags::SA_NODEFER,
            SigSet::empty(),
        );
        // SAFETY: `on_sigbus` only uses atomics, mmap(2) and sigaction(2), which are
        // async-signal-safe, and the previous handler, which PREVIOUS now holds. A handler
        // another thread installs between the read above and this call is replaced without
        // being chained (it would be replaced in any case).
        let _ = unsafe { sigaction(Signal::SIGBUS, &ours) };
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
