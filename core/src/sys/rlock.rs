//! A robust lock whose only shared state is one futex word.
//!
//! The region's writer lock used to be a glibc robust `pthread_mutex_t` in the shared file.
//! While held, glibc keeps pointers into the holder's thread control block *in the mutex* and
//! writes through them at unlock, so a process that can write the file could make the holder
//! write chosen values to chosen addresses of its own memory; it also compares thread ids,
//! which repeat across PID namespaces. This lock shares exactly one 32-bit word:
//!
//! - `0` (perhaps with [`FUTEX_OWNER_DIED`]): free; `OWNER_DIED` says its last holder died
//!   holding it;
//! - the *keeper* thread id of the holding handle, perhaps with [`FUTEX_WAITERS`]: held.
//!
//! Robustness comes from the kernel's robust-futex list, as for the queue's owner words (see
//! `sys::robust`), with every list node private to the process: each [`RobustLock`] has a
//! small keeper thread whose robust list holds the lock word's node *only while this handle
//! holds the lock* (linked and unlinked by the locking thread, with `list_op_pending` covering
//! the steps in between, as the robust-futex ABI prescribes). When the process dies holding the
//! lock, the kernel marks the word `OWNER_DIED` and wakes a waiter; the next locker is told
//! ([`Locked::OwnerDied`]) and repairs what the dead holder left. Because a handle lists the
//! word only while it holds it, a process in another PID namespace whose keeper happens to have
//! the same thread id cannot mark our lock when it dies.
//!
//! Threads of one handle take the lock in turn (a process-local mutex in front of the word).
//! Waits sleep in slices of at most [`BACKSTOP`](crate::queue::BACKSTOP): the kernel wakes one
//! waiter per death, and that waiter may die in the same instant.
//!
//! **Liveness byte.** A keeper also holds, for its whole life, a shared open-file-description
//! lock (`F_OFD_SETLK`, `F_RDLCK`) on byte [`LIVENESS_BASE`]` + tid` of the file, through a
//! description of its own (the file reopened through `/proc/self/fd`, closed in forked
//! children), taken before the word can ever hold that tid. So "the word
//! names tid T, but no description holds byte T" means no live handle has that keeper: a
//! scribbled word (a peer's stray write, or a forged id). A waiter that finds the word held,
//! unchanged over a whole [`BACKSTOP`](crate::queue::BACKSTOP) slice, by an id whose byte
//! nobody holds, takes the lock as from a dead holder ([`Locked::OwnerDied`]: the pending range
//! is marked torn). An honest holder cannot be robbed this way: its byte is locked all the
//! time its id can be in the word. Ids repeat across PID namespaces; the lock is shared, so
//! two keepers with one id both hold it, and a waiter then counts the id as alive (waits, as
//! before) rather than stealing from a live holder. Without `/proc` the keeper locks its byte
//! through the lock owner's description instead, which a forked child using the same handle
//! shares; OFD locks do not conflict within one description, so such a keeper's probe could
//! miss a live holder on it: it never takes a word this way (it waits, as before). The robust
//! list still reports real deaths at once.
//!
//! A peer that scribbles the word can make lockers wait at most a backstop slice, or (copying
//! the id of a live handle) until that handle closes, as a live peer holding the lock would;
//! it can make the holder's unlock report [`Scribbled`]; it cannot make anyone write outside
//! its mapping.
//!
//! # References
//! - [set_robust_list(2)](https://man7.org/linux/man-pages/man2/set_robust_list.2.html),
//!   [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html), Linux
//!   `Documentation/locking/robust-futex-ABI.rst`
//! - [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html), "Open file description
//!   locks"

use std::io;
use std::sync::atomic::{AtomicIsize, AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::futex::{
    self, FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS, RobustList, RobustListHead, WaitOutcome,
    get_robust_list, set_robust_list,
};
use super::time::{deadline_passed, slice_end};
use super::{fork, ofd};

/// Offset of the liveness bytes (byte `LIVENESS_BASE + tid` for a keeper with id `tid`): far
/// beyond any file's end, so the advisory locks touch no data.
pub(crate) const LIVENESS_BASE: i64 = 1 << 41;

pub(crate) fn liveness_byte(tid: u32) -> i64 {
    LIVENESS_BASE + i64::from(tid & FUTEX_TID_MASK)
}

/// The keeper's robust list: its head and the lock word's node, at a fixed heap address. Other
/// threads of the process (the lockers) link and unlink the node while the kernel may read it.
struct ListMem {
    head: RobustListHead,
    node: RobustList,
}

impl ListMem {
    fn head_node(&self) -> *mut RobustList {
        (&self.head.list as *const RobustList).cast_mut()
    }
    fn node(&self) -> *mut RobustList {
        (&self.node as *const RobustList).cast_mut()
    }
    /// Links the node (we hold the word) or unlinks it, with `list_op_pending` set meanwhile.
    fn set_linked(&self, linked: bool) {
        self.head
            .list_op_pending
            .store(self.node(), Ordering::SeqCst);
        let next = if linked {
            self.node()
        } else {
            self.head_node()
        };
        self.head.list.next.store(next, Ordering::SeqCst);
    }
    fn clear_pending(&self) {
        self.head
            .list_op_pending
            .store(std::ptr::null_mut(), Ordering::SeqCst);
    }
}

/// A thread whose robust list is [`ListMem`], alive as long as the lock (in one process).
struct Keeper {
    mem: Arc<ListMem>,
    tid: u32,
    stop: Arc<AtomicU32>,
    thread: Option<JoinHandle<()>>,
    fork_gen: u32,
    /// The description holding this keeper's liveness byte: its own, or the lock owner's.
    desc: Desc,
}

/// Where a keeper's liveness byte is locked.
enum Desc {
    /// A description of its own, registered to be closed in forked children (the entry).
    Own(OwnedFd, Option<usize>),
    /// The lock owner's (no `/proc`): see the module docs.
    Owner(RawFd),
}

impl Keeper {
    fn spawn(word: *const AtomicU32, file: RawFd) -> io::Result<Keeper> {
        let mem = Arc::new(ListMem {
            head: RobustListHead {
                list: RobustList {
                    next: AtomicPtr::new(std::ptr::null_mut()),
                },
                futex_offset: AtomicIsize::new(0),
                list_op_pending: AtomicPtr::new(std::ptr::null_mut()),
            },
            node: RobustList {
                next: AtomicPtr::new(std::ptr::null_mut()),
            },
        });
        // The node points back at the head; the head points at itself while the lock is not
        // held (an empty list).
        mem.node.next.store(mem.head_node(), Ordering::SeqCst);
        mem.head.list.next.store(mem.head_node(), Ordering::SeqCst);
        // Read only by the kernel; written once, before the head is registered.
        mem.head.futex_offset.store(
            (word as isize).wrapping_sub(mem.node() as isize),
            Ordering::SeqCst,
        );
        let stop = Arc::new(AtomicU32::new(0));
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<u32>>(1);
        let (t_mem, t_stop) = (Arc::clone(&mem), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("shmio-rlock".into())
            .stack_size(64 * 1024)
            .spawn(move || keeper_main(&t_mem, &t_stop, &tx))?;
        let tid = match rx.recv() {
            Ok(Ok(tid)) => tid,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(io::Error::other("lock keeper thread ended early"));
            }
        };
        // Held while the description is opened, locked and registered: no fork copies it
        // half-done (the child handler closes registered descriptors).
        let guard = fork::guard();
        let desc = match std::fs::File::open(format!("/proc/self/fd/{file}")) {
            Ok(f) => {
                let fd = OwnedFd::from(f);
                let entry = fork::register(&guard, fd.as_raw_fd());
                Desc::Own(fd, entry)
            }
            Err(_) => Desc::Owner(file),
        };
        let keeper = Keeper {
            mem,
            tid,
            stop,
            thread: Some(thread),
            fork_gen: fork::generation(),
            desc,
        };
        // Before the word can ever hold `tid`. A shared lock is only refused by a write lock,
        // which shmio never takes on these bytes: refused or failed, the keeper is not made
        // (dropping it stops the thread), as a waiter could otherwise rob it.
        let locked = ofd::try_share(keeper.fd(), liveness_byte(tid));
        drop(guard);
        match locked {
            Ok(true) => Ok(keeper),
            Ok(false) => Err(io::Error::other(format!(
                "the liveness byte of lock keeper {tid} is write-locked by another process"
            ))),
            Err(e) => Err(e),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match &self.desc {
            Desc::Own(fd, _) => fd.as_fd(),
            // SAFETY: the lock owner's descriptor outlives the lock and so this keeper
            // (`RobustLock::new`'s contract).
            Desc::Owner(fd) => unsafe { BorrowedFd::borrow_raw(*fd) },
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        if self.fork_gen != fork::generation() {
            // A forked child: the thread exists only in the parent, and the liveness byte is
            // the parent's to release (the child handler already closed our own description:
            // its number may be reused, so it must not be closed again).
            std::mem::forget(self.thread.take());
            if let Desc::Own(fd, _) = std::mem::replace(&mut self.desc, Desc::Owner(-1)) {
                std::mem::forget(fd);
            }
            return;
        }
        match std::mem::replace(&mut self.desc, Desc::Owner(-1)) {
            // Closing our own description drops its lock.
            Desc::Own(fd, entry) => {
                let guard = fork::guard();
                if let Some(e) = entry {
                    fork::unregister(&guard, e);
                }
                drop(fd);
                drop(guard);
            }
            Desc::Owner(fd) => {
                // SAFETY: as in `fd()`.
                ofd::unlock(
                    unsafe { BorrowedFd::borrow_raw(fd) },
                    liveness_byte(self.tid),
                );
            }
        }
        self.stop.store(1, Ordering::SeqCst);
        futex::wake_all(&self.stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn keeper_main(mem: &ListMem, stop: &AtomicU32, tx: &std::sync::mpsc::SyncSender<io::Result<u32>>) {
    // A library thread takes none of the application's signals.
    super::signal::block_all_but_faults();
    let glibc_head = match get_robust_list() {
        Ok(h) => h,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    // SAFETY: `mem` lives (an Arc held by this thread's closure) until after we restore glibc's
    // head below; the word its node names stays mapped while the lock's owner lives, and the
    // kernel reads it only when this thread exits with the node linked (the lock held, so the
    // mapping alive).
    if let Err(e) = unsafe { set_robust_list(&mem.head) } {
        let _ = tx.send(Err(e));
        return;
    }
    let _ = tx.send(Ok(super::process::gettid()));
    while stop.load(Ordering::SeqCst) == 0 {
        let _ = futex::wait(stop, 0, None);
    }
    // SAFETY: glibc's head lives in the thread control block for the whole life of the thread.
    let _ = unsafe { set_robust_list(glibc_head) };
}

/// What locking gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locked {
    /// Held; the previous holder unlocked cleanly.
    Clean,
    /// Held; the previous holder died while holding it: repair what it left.
    OwnerDied,
}

/// Why locking failed.
#[derive(Debug)]
pub(crate) enum LockError {
    /// The deadline passed.
    Timeout,
    /// Setting up the keeper thread failed.
    Io(io::Error),
}

/// The holder found the word changed by someone else when it unlocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scribbled {
    pub(crate) found: u32,
}

/// The process-local lock that lets one thread of a handle at a time at the shared word: a
/// futex mutex (0 free, 1 held, 2 held with waiters) with a timed wait.
struct LocalLock(AtomicU32);

impl LocalLock {
    fn lock(&self, deadline: Option<&libc::timespec>) -> bool {
        if self
            .0
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return true;
        }
        loop {
            if self.0.swap(2, Ordering::Acquire) == 0 {
                return true;
            }
            if deadline.is_some_and(deadline_passed) {
                return false;
            }
            let _: io::Result<WaitOutcome> = futex::wait(&self.0, 2, deadline);
        }
    }
    fn unlock(&self) {
        if self.0.swap(0, Ordering::Release) == 2 {
            let _ = futex::wake(&self.0, 1);
        }
    }
}

/// A robust lock over one futex word in a shared mapping (see the module docs).
pub(crate) struct RobustLock {
    word: *const AtomicU32,
    /// The lock owner's descriptor of the file the word is in (for the liveness bytes).
    file: RawFd,
    local: LocalLock,
    /// This process's keeper; used only while `local` is held.
    keeper: Mutex<Option<Keeper>>,
}

// SAFETY: `word` points into a mapping that the lock's owner keeps alive for the lock's whole
// life (a `RobustLock` is a field of the handle that owns the mapping, dropped before it), and
// it is only used for atomic operations; the keeper is behind a mutex.
unsafe impl Send for RobustLock {}
// SAFETY: as above: shared use goes through atomics and the mutex.
unsafe impl Sync for RobustLock {}

/// The lock, held: unlock with [`Held::unlock`] (dropping it unlocks too).
pub(crate) struct Held<'a> {
    lock: &'a RobustLock,
    guard: Option<MutexGuard<'a, Option<Keeper>>>,
}

impl RobustLock {
    /// # Safety
    /// `word` must be 4-byte aligned and stay valid (mapped) for the life of the value, and
    /// `file` must be an open descriptor (of the file the word is mapped from) for as long.
    pub(crate) unsafe fn new(word: *const AtomicU32, file: RawFd) -> RobustLock {
        RobustLock {
            word,
            file,
            local: LocalLock(AtomicU32::new(0)),
            keeper: Mutex::new(None),
        }
    }

    fn word(&self) -> &AtomicU32 {
        // SAFETY: `new`'s contract: aligned and mapped while `self` lives.
        unsafe { &*self.word }
    }

    /// Takes the lock, waiting until the absolute `CLOCK_MONOTONIC` `deadline` (if any).
    pub(crate) fn lock(
        &self,
        deadline: Option<&libc::timespec>,
    ) -> Result<(Held<'_>, Locked), LockError> {
        if !self.local.lock(deadline) {
            return Err(LockError::Timeout);
        }
        // Only the holder of `local` locks this mutex, so it is never contended (and a panic
        // while holding it left nothing inconsistent in it).
        let mut guard = self.keeper.lock().unwrap_or_else(|p| p.into_inner());
        if guard
            .as_ref()
            .is_none_or(|k| k.fork_gen != fork::generation())
        {
            // First use in this process (or in a forked child, whose copy is inert).
            if let Some(old) = guard.take() {
                drop(old);
            }
            match Keeper::spawn(self.word, self.file) {
                Ok(k) => *guard = Some(k),
                Err(e) => {
                    drop(guard);
                    self.local.unlock();
                    return Err(LockError::Io(e));
                }
            }
        }
        let k = guard.as_ref().expect("keeper just made");
        let (mem, tid) = (Arc::clone(&k.mem), k.tid);
        // Liveness bytes are probed through our keeper's description: every other keeper's
        // lock is on another one, so the probe sees it.
        let probe = k.fd();
        let may_take = matches!(k.desc, Desc::Own(..));
        let w = self.word();
        // Announce the node before the word can hold our id: if we die after a successful
        // CAS, the kernel finds it through `list_op_pending`.
        mem.head.list_op_pending.store(mem.node(), Ordering::SeqCst);
        let mut waited = false;
        let mut cur = w.load(Ordering::SeqCst);
        let outcome = loop {
            if cur & FUTEX_TID_MASK == 0 {
                // Free. After a wait, keep the waiters bit: others may still sleep.
                let new = tid
                    | if waited {
                        FUTEX_WAITERS
                    } else {
                        cur & FUTEX_WAITERS
                    };
                match w.compare_exchange(cur, new, Ordering::SeqCst, Ordering::SeqCst) {
                    Ok(_) => {
                        break if cur & FUTEX_OWNER_DIED != 0 {
                            Locked::OwnerDied
                        } else {
                            Locked::Clean
                        };
                    }
                    Err(now) => {
                        cur = now;
                        continue;
                    }
                }
            }
            if let Some(d) = deadline {
                if deadline_passed(d) {
                    mem.clear_pending();
                    drop(guard);
                    self.local.unlock();
                    return Err(LockError::Timeout);
                }
            }
            if cur & FUTEX_WAITERS == 0 {
                if let Err(now) =
                    w.compare_exchange(cur, cur | FUTEX_WAITERS, Ordering::SeqCst, Ordering::SeqCst)
                {
                    cur = now;
                    continue;
                }
                cur |= FUTEX_WAITERS;
            }
            let until = slice_end(deadline, crate::queue::BACKSTOP);
            let slept = std::time::Instant::now();
            // Woken, timed out (a slice), interrupted or the word changed: look again.
            let _: io::Result<WaitOutcome> = futex::wait(w, cur, Some(&until));
            waited = true;
            let before = cur;
            cur = w.load(Ordering::SeqCst);
            // Held by the same id for a whole slice: is any handle with that keeper alive?
            if may_take
                && cur == before
                && cur & FUTEX_TID_MASK != 0
                && cur & FUTEX_OWNER_DIED == 0
                && slept.elapsed() >= crate::queue::BACKSTOP
                && !ofd::held_elsewhere(probe, liveness_byte(cur))
            {
                // Nobody's: a scribbled word. Take it as from a dead holder.
                match w.compare_exchange(
                    cur,
                    tid | FUTEX_WAITERS,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => break Locked::OwnerDied,
                    Err(now) => cur = now,
                }
            }
        };
        mem.set_linked(true);
        mem.clear_pending();
        Ok((
            Held {
                lock: self,
                guard: Some(guard),
            },
            outcome,
        ))
    }

    fn release(&self, guard: MutexGuard<'_, Option<Keeper>>) -> Result<(), Scribbled> {
        let k = guard.as_ref().expect("held implies a keeper");
        let (mem, tid) = (&k.mem, k.tid);
        mem.set_linked(false);
        let prev = self.word().swap(0, Ordering::SeqCst);
        mem.clear_pending();
        drop(guard);
        self.local.unlock();
        if prev & FUTEX_WAITERS != 0 || prev & FUTEX_TID_MASK != tid {
            futex::wake(self.word(), 1).ok();
        }
        if prev & !FUTEX_WAITERS == tid {
            Ok(())
        } else {
            Err(Scribbled { found: prev })
        }
    }
}

impl Held<'_> {
    /// Releases the lock; reports whether somebody else changed the word meanwhile.
    pub(crate) fn unlock(mut self) -> Result<(), Scribbled> {
        let g = self.guard.take().expect("held once");
        self.lock.release(g)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(g) = self.guard.take() {
            let _ = self.lock.release(g);
        }
    }
}

#[cfg(test)]
mod tests;
