//! fork(2) awareness: handles opened before a fork are inert in the child.
//!
//! A forked child has a copy of every handle's memory but none of its keeper threads, and it
//! shares the parent's open file descriptions. Two things follow, both handled here by
//! `pthread_atfork` handlers registered once, when the first handle is made:
//! - the child must be able to tell that a handle is not its own: [`generation`] is bumped in
//!   every child, and a handle records the generation it was made in, so the check on each call
//!   is one relaxed load (no `getpid` system call);
//! - the child must not keep the parent's liveness locks (see `sys::ofd`) alive after the parent
//!   dies: the descriptors that carry them are [`register`]ed and closed in the child. Setting
//!   one up happens under [`guard`], which the prepare handler also takes, so no fork can copy a
//!   half-made one.
//!
//! Raw `libc`: nix has no `pthread_atfork`, and the table holds bare numbers that the child
//! handler closes with close(2) (nix's `close` and `OwnedFd` take ownership, which the table
//! does not have: the handles own the descriptors).
//!
//! # References
//! - [pthread_atfork(3)](https://man7.org/linux/man-pages/man3/pthread_atfork.3.html)
//! - [fork(2)](https://man7.org/linux/man-pages/man2/fork.2.html)

use std::sync::Once;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

static GENERATION: AtomicU32 = AtomicU32::new(0);
static HANDLERS: Once = Once::new();
static GUARD: AtomicU32 = AtomicU32::new(0);

/// Descriptors carrying liveness locks; -1 is a free entry. A process with more handles than
/// this keeps the excess descriptors open in forked children (the only effect: a child that
/// outlives its parent hides the parent's death from the lock check until the child exits).
const MAX_REGISTERED: usize = 1024;
static FDS: [AtomicI32; MAX_REGISTERED] = [const { AtomicI32::new(-1) }; MAX_REGISTERED];

fn acquire() {
    while GUARD
        .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::thread::yield_now();
    }
}

extern "C" fn prepare() {
    acquire();
}

extern "C" fn parent() {
    GUARD.store(0, Ordering::Release);
}

extern "C" fn child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    for slot in &FDS {
        let fd = slot.swap(-1, Ordering::Relaxed);
        if fd >= 0 {
            // SAFETY: `fd` was registered as a descriptor owned by a handle; in the child that
            // handle is inert and never closes it (its `Shared` is kept alive by the copy of the
            // keeper thread's state, which no thread will ever drop), so this is the only close.
            // close(2) is async-signal-safe.
            unsafe { libc::close(fd) };
        }
    }
    GUARD.store(0, Ordering::Release);
}

/// `pthread_atfork(prepare, parent, child)`, once per process.
///
/// # References
/// - [pthread_atfork(3)](https://man7.org/linux/man-pages/man3/pthread_atfork.3.html)
fn ensure_handlers() {
    HANDLERS.call_once(|| {
        // SAFETY: the three handlers are `extern "C"` functions that live for the whole program
        // and only use atomics and close(2), which are safe in a child of a multi-threaded
        // process. A failure (ENOMEM) only leaves forked children undetected; nothing to undo.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}

/// The fork generation of this process: 0 in a process that was not forked since its handles'
/// registration, bumped in every forked child.
#[inline]
pub(crate) fn generation() -> u32 {
    GENERATION.load(Ordering::Relaxed)
}

/// The fork generation of this process, with the fork handlers registered (so that a child
/// forked from now on sees a new generation): what a handle records when it is made.
pub(crate) fn watch() -> u32 {
    ensure_handlers();
    generation()
}

/// Held while a role's liveness descriptor is opened, locked and registered: fork waits for it.
/// Re-entrant within a thread (a handle dropped on a failure path while its creator holds the
/// guard unregisters its descriptor under the same guard).
pub(crate) struct Guard(());

std::thread_local! {
    /// How many [`Guard`]s this thread holds.
    static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Takes the fork guard (and registers the fork handlers the first time).
pub(crate) fn guard() -> Guard {
    ensure_handlers();
    if DEPTH.get() == 0 {
        acquire();
    }
    DEPTH.set(DEPTH.get() + 1);
    Guard(())
}

impl Drop for Guard {
    fn drop(&mut self) {
        let depth = DEPTH.get() - 1;
        DEPTH.set(depth);
        if depth == 0 {
            GUARD.store(0, Ordering::Release);
        }
    }
}

/// Registers `fd` to be closed in forked children; returns its entry, or `None` if the table is
/// full. Call with the [`guard`] held.
pub(crate) fn register(_guard: &Guard, fd: i32) -> Option<usize> {
    FDS.iter().position(|slot| {
        slot.compare_exchange(-1, fd, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    })
}

/// Removes a registration. Call with the [`guard`] held, and close the descriptor before
/// releasing it: a fork in between would leave the child an unregistered copy, which keeps the
/// description's liveness lock alive for as long as the child lives.
pub(crate) fn unregister(_guard: &Guard, entry: usize) {
    FDS[entry].store(-1, Ordering::Relaxed);
}
