//! Robust futex ownership: how a process's death becomes a futex wake in other processes.
//!
//! A *keeper* is a small thread that owns one 32-bit word in shared memory for as long as a
//! shmio handle (a producer or a consumer) lives. It stores its thread id in the word and lists
//! the word on its own kernel *robust futex list* (`set_robust_list(2)`). When the process dies,
//! however it dies (`kill -9` included), the kernel walks that list, sees its thread id in the
//! word, replaces the id by `FUTEX_OWNER_DIED` (keeping `FUTEX_WAITERS`) and, if `FUTEX_WAITERS`
//! was set, wakes one sleeper on the word. Peers that sleep on the word therefore learn of the
//! death at once, with no timeout and no polling; the first to wake wakes the rest.
//!
//! Why a dedicated thread rather than the caller's: robust lists are per *thread*, and the kernel
//! processes them when that thread exits. Owning the word from the thread that opened a handle
//! would report the handle dead when that thread exits, even though the process and the handle
//! live on. The keeper lives exactly as long as the handle (or the process), so handles can move
//! between threads freely. The keeper registers its own list head (it never locks glibc robust
//! mutexes) and restores glibc's head before it returns, so glibc's own bookkeeping is untouched.
//!
//! Word states (the kernel's encoding, see futex(2)):
//! - `0` (perhaps with `FUTEX_WAITERS`): free / closed cleanly;
//! - `tid` (perhaps with `FUTEX_WAITERS`): held by a live keeper;
//! - `FUTEX_OWNER_DIED` (perhaps with `FUTEX_WAITERS`): the holder died.
//!
//! # References
//! - [set_robust_list(2)](https://man7.org/linux/man-pages/man2/set_robust_list.2.html),
//!   [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html), Linux
//!   `Documentation/locking/robust-futex-ABI.rst`

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicPtr, AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::futex::{
    self, FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS, RobustList, RobustListHead,
    get_robust_list, set_robust_list,
};

/// Held by whoever is evicting a dead holder's slot (see `queue::wait::evict_if_dead`). Thread
/// ids never reach it (`pid_max` is at most 2^22), and claims only take words with no id, so
/// while a slot shows it nobody else can claim or settle the slot.
pub(crate) const EVICTING: u32 = FUTEX_TID_MASK;

/// What an owner word says about its holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// Nobody holds it: never held, or released cleanly.
    Free,
    /// Held by the live thread with this id.
    Alive(u32),
    /// The holder died without releasing it.
    Died,
    /// A peer is evicting the dead holder (transient).
    Evicting,
}

/// Decodes an owner word.
pub(crate) fn owner_of(word: u32) -> Owner {
    let tid = word & FUTEX_TID_MASK;
    if tid == EVICTING {
        Owner::Evicting
    } else if tid != 0 {
        Owner::Alive(tid)
    } else if word & FUTEX_OWNER_DIED != 0 {
        Owner::Died
    } else {
        Owner::Free
    }
}

/// Sets `FUTEX_WAITERS` on an owner word so that the kernel wakes a sleeper if the owner dies.
/// Returns the word's value with the bit set (the value to pass to a futex wait), or `None` if
/// the word shows no live owner (there is nothing to wait for).
pub(crate) fn mark_waiting(word: &AtomicU32) -> Option<u32> {
    let mut cur = word.load(Ordering::SeqCst);
    loop {
        if cur & FUTEX_TID_MASK == 0 {
            return None;
        }
        if cur & FUTEX_WAITERS != 0 {
            return Some(cur);
        }
        match word.compare_exchange_weak(
            cur,
            cur | FUTEX_WAITERS,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => return Some(cur | FUTEX_WAITERS),
            Err(now) => cur = now,
        }
    }
}

/// A pointer to a 32-bit word in shared memory, with whatever keeps that memory mapped.
#[derive(Clone)]
pub(crate) struct SharedWord {
    ptr: *const AtomicU32,
    _mapping: Arc<dyn Send + Sync>,
}

// SAFETY: the word is an atomic in a mapping kept alive by `_mapping`; atomics may be used from
// any thread.
unsafe impl Send for SharedWord {}
// SAFETY: as above; only atomic operations are performed through `ptr`.
unsafe impl Sync for SharedWord {}

impl SharedWord {
    /// # Safety
    /// `ptr` must be 4-byte aligned and stay valid for as long as `mapping` is alive.
    pub(crate) unsafe fn new(ptr: *const AtomicU32, mapping: Arc<dyn Send + Sync>) -> Self {
        SharedWord {
            ptr,
            _mapping: mapping,
        }
    }

    pub(crate) fn get(&self) -> &AtomicU32 {
        // SAFETY: `new`'s contract: aligned and valid while `_mapping`, which we hold, lives.
        unsafe { &*self.ptr }
    }
}

/// Control block shared between a handle and its keeper thread (process-private memory).
pub(crate) struct KeeperCtl {
    /// Futex word: [`RUN`] while the handle lives, [`RELEASE`] when it is being closed.
    pub(crate) state: AtomicU32,
    /// Futex word for an optional watch loop (see the queue's poll notifier): bumped to wake it.
    pub(crate) kick: AtomicU32,
}

pub(crate) const RUN: u32 = 0;
pub(crate) const RELEASE: u32 = 1;

impl KeeperCtl {
    pub(crate) fn releasing(&self) -> bool {
        self.state.load(Ordering::SeqCst) == RELEASE
    }
}

/// A claim was refused because a live thread holds the word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) tid: u32,
}

/// A thread holding one or more robust words for as long as this value lives.
pub(crate) struct Keeper {
    ctl: Arc<KeeperCtl>,
    thread: Option<JoinHandle<()>>,
    tid: u32,
    /// The fork generation the keeper was made in (see `sys::fork`).
    fork_gen: u32,
}

/// How a keeper takes its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Only a word that shows no live owner (one word only).
    IfFree,
    /// Whatever the words show: the caller proved by other means (its liveness lock) that no
    /// live peer holds them, so a live-looking id is a leftover or a scribble.
    Force,
}

impl Keeper {
    /// Spawns a keeper that claims `words` and holds them.
    ///
    /// All words must lie in one mapping at offsets that are equal modulo 8 (the kernel finds
    /// each at a fixed offset from a private list node). The kernel processes them in this order
    /// when the process dies; they are claimed in the reverse order, so `words[0]` is taken last
    /// and published first on death: a peer that sees `words[0]` held sees the others held too.
    ///
    /// `while_held` runs on the keeper thread once the words are held; it must return promptly
    /// once [`KeeperCtl::releasing`] is true (it is woken through `state`, and `kick` is
    /// available for its own use). After it returns, the keeper clears the words (in list
    /// order) and wakes every sleeper on them.
    ///
    /// Returns `Ok(Err(Held))` when, with [`Claim::IfFree`], a live owner holds the word.
    pub(crate) fn spawn<F>(
        name: &str,
        words: Vec<SharedWord>,
        claim: Claim,
        while_held: F,
    ) -> io::Result<Result<Keeper, Held>>
    where
        F: FnOnce(&KeeperCtl) + Send + 'static,
    {
        assert!(!words.is_empty() && (claim == Claim::Force || words.len() == 1));
        let base = words.iter().map(|w| w.ptr as usize).min().unwrap_or(0);
        if words
            .iter()
            .any(|w| (w.ptr as usize - base) % 8 != 0 || (w.ptr as usize) % 4 != 0)
        {
            return Err(io::Error::other("robust words at unequal offsets modulo 8"));
        }
        let fork_gen = super::fork::generation();
        let ctl = Arc::new(KeeperCtl {
            state: AtomicU32::new(RUN),
            kick: AtomicU32::new(0),
        });
        let (tx, rx) = mpsc::sync_channel::<io::Result<Result<u32, Held>>>(1);
        let thread_ctl = Arc::clone(&ctl);
        let thread = std::thread::Builder::new()
            .name(name.chars().take(15).collect())
            .stack_size(128 * 1024)
            .spawn(move || keeper_main(words, claim, thread_ctl, tx, while_held))?;
        let res = rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("keeper thread ended before claiming")));
        match res {
            Ok(Ok(tid)) => Ok(Ok(Keeper {
                ctl,
                thread: Some(thread),
                tid,
                fork_gen,
            })),
            Ok(Err(held)) => {
                let _ = thread.join();
                Ok(Err(held))
            }
            Err(e) => {
                let _ = thread.join();
                Err(e)
            }
        }
    }

    /// The keeper's thread id (the value stored in the words).
    pub(crate) fn tid(&self) -> u32 {
        self.tid
    }

    pub(crate) fn ctl(&self) -> &Arc<KeeperCtl> {
        &self.ctl
    }

    /// Whether this keeper belongs to a parent of the current process (it was made before a
    /// fork): its thread does not exist here.
    pub(crate) fn forked(&self) -> bool {
        self.fork_gen != super::fork::generation()
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        if self.forked() {
            // A forked child: the thread lives only in the parent, which still holds the words.
            // Neither signal nor join it (joining a thread that is not ours never returns or
            // aborts); its copied state is simply left alone.
            std::mem::forget(self.thread.take());
            return;
        }
        self.ctl.state.store(RELEASE, Ordering::SeqCst);
        futex::wake_all(&self.ctl.state);
        self.ctl.kick.fetch_add(1, Ordering::SeqCst);
        futex::wake_all(&self.ctl.kick);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Claims one word for `tid`, keeping `FUTEX_WAITERS`. With [`Claim::IfFree`], fails if a live
/// id is in it.
fn claim_word(w: &AtomicU32, tid: u32, claim: Claim) -> Result<(), Held> {
    let mut cur = w.load(Ordering::SeqCst);
    loop {
        if claim == Claim::IfFree && cur & FUTEX_TID_MASK != 0 {
            return Err(Held {
                tid: cur & FUTEX_TID_MASK,
            });
        }
        match w.compare_exchange(
            cur,
            tid | (cur & FUTEX_WAITERS),
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => return Ok(()),
            Err(now) => cur = now,
        }
    }
}

fn keeper_main<F>(
    words: Vec<SharedWord>,
    claim: Claim,
    ctl: Arc<KeeperCtl>,
    tx: mpsc::SyncSender<io::Result<Result<u32, Held>>>,
    while_held: F,
) where
    F: FnOnce(&KeeperCtl),
{
    // A library thread must not take the application's signals (SIGINT for a Python
    // KeyboardInterrupt, the RT signals of a poller): the kernel then delivers them to the
    // application's own threads and interrupts their waits.
    super::signal::block_all_but_faults();
    let tid = super::process::gettid();
    let glibc_head = match get_robust_list() {
        Ok(h) => h,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    // Our own list: head -> node(words[0]) -> node(words[1]) -> ... -> head. The kernel finds
    // each word at `node + futex_offset`, one offset for the whole list, so the nodes sit in a
    // private buffer that mirrors the words' span of the mapping: the node of the word at
    // `base + d` is at `mirror + d`. Words are 8-aligned relative to each other (checked by
    // `spawn`), so every node is an aligned pointer-sized slot of the buffer.
    let base = words.iter().map(|w| w.ptr as usize).min().unwrap_or(0);
    let span = words
        .iter()
        .map(|w| w.ptr as usize - base)
        .max()
        .unwrap_or(0);
    let mut mirror: Box<[u64]> = vec![0u64; span / 8 + 1].into_boxed_slice();
    let mirror_ptr = mirror.as_mut_ptr();
    let head = Box::new(RobustListHead {
        list: RobustList {
            next: AtomicPtr::new(std::ptr::null_mut()),
        },
        futex_offset: AtomicIsize::new((base as isize).wrapping_sub(mirror_ptr as isize)),
        list_op_pending: AtomicPtr::new(std::ptr::null_mut()),
    });
    let head_list_ptr: *mut RobustList = (&head.list as *const RobustList).cast_mut();
    let node = |w: &SharedWord| -> *mut RobustList {
        // SAFETY: `(w.ptr - base) / 8 < mirror.len()` by construction of `span`; the result
        // stays inside the buffer.
        unsafe {
            mirror_ptr
                .add((w.ptr as usize - base) / 8)
                .cast::<RobustList>()
        }
    };
    for (i, w) in words.iter().enumerate() {
        let next = words.get(i + 1).map_or(head_list_ptr, node);
        // SAFETY: `node(w)` is an aligned u64 slot of `mirror`, which we own and which outlives
        // the registration; `RobustList` is one pointer, no larger than a u64 and no more
        // aligned.
        unsafe {
            node(w).write(RobustList {
                next: AtomicPtr::new(next),
            })
        };
    }
    head.list.next.store(node(&words[0]), Ordering::SeqCst);
    let head_ptr: *const RobustListHead = &*head;
    // SAFETY: `head` and `mirror` are boxed and live until after we restore glibc's head below;
    // the words they name stay mapped because `words` holds the mapping.
    if let Err(e) = unsafe { set_robust_list(head_ptr) } {
        let _ = tx.send(Err(e));
        return;
    }

    // Claim, last word first: the nodes are already listed, so if we die after a CAS the
    // kernel sees our id in that word.
    let mut claimed = Ok(tid);
    for w in words.iter().rev() {
        if let Err(held) = claim_word(w.get(), tid, claim) {
            claimed = Err(held);
            break;
        }
    }
    let held = claimed.is_ok();
    if held {
        // Sleepers that saw the old owner re-evaluate. Every sleeper sets `FUTEX_WAITERS`
        // first (and a claim keeps it), so a word without it has nobody to wake.
        for w in &words {
            if w.get().load(Ordering::SeqCst) & FUTEX_WAITERS != 0 {
                futex::wake_all(w.get());
            }
        }
    }
    let _ = tx.send(Ok(claimed));

    if held {
        // A panic must not unwind past the robust-list nodes the kernel points at: catch it
        // here and release normally.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| while_held(&ctl)));
        while !ctl.releasing() {
            let _ = futex::wait(&ctl.state, RUN, None);
        }
        // Release cleanly, in list order: clear the words (0 = closed), then wake the sleepers
        // of those that had `FUTEX_WAITERS`. No id comparison: thread ids repeat across PID namespaces, so an id proves
        // nothing; the words are ours because nobody may claim them while our handle lives
        // (a forced claim needs the handle's liveness lock, which we hold until after this).
        let had_waiters: Vec<bool> = words
            .iter()
            .map(|w| w.get().swap(0, Ordering::SeqCst) & FUTEX_WAITERS != 0)
            .collect();
        for (w, _) in words.iter().zip(&had_waiters).filter(|(_, h)| **h) {
            futex::wake_all(w.get());
        }
    }

    // Give the thread back to glibc's list before our nodes are freed.
    // SAFETY: glibc's head lives in the thread control block for the whole life of the thread.
    let _ = unsafe { set_robust_list(glibc_head) };
    drop(head);
    drop(mirror);
}
