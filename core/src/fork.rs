//! `fork()` and shmio's handles: which ones a forked child may use.
//!
//! A forked child has a copy of every handle of its parent, but not the parent's other threads
//! (a queue handle's keeper thread, a thread blocked in a call), and it shares the parent's
//! open files. The rule:
//!
//! - A queue handle ([`Producer`](crate::queue::Producer),
//!   [`Consumer`](crate::queue::Consumer)), a [`Poller`](crate::poll::Poller) or a
//!   [`Waker`](crate::poll::Waker) made before a fork is inert in the child: its calls return
//!   `Forked` ([`ErrorKind::Forked`](crate::ErrorKind::Forked)), and dropping it there leaves
//!   the parent's state alone (the queue's liveness, a poller's files). Make a new one in the
//!   child.
//! - A [`Region`](crate::region::Region) stays usable in the child: parent and child share it
//!   as two processes would (its writer lock is robust across processes).
//!
//! An [`Origin`] is how a handle tells: the process it was made in. Checking it costs one
//! relaxed load (no `getpid` system call): shmio's `pthread_atfork` handler counts forks.
//! Bindings that keep a handle behind a lock of their own check the handle's origin before they
//! take that lock, since a thread of the parent may have held it at the fork, and in the child
//! nobody would ever give it back.

/// The process a handle was made in, as far as `fork()` is concerned (see the [module
/// documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The fork generation it was taken in (`sys::fork`).
    generation: u32,
}

impl Origin {
    /// The calling process. From now on, a child forked from this process (or from one of its
    /// children) tells itself apart.
    pub fn current() -> Origin {
        Origin {
            generation: crate::sys::fork::watch(),
        }
    }

    /// Whether the caller is a forked child (or a later descendant by `fork()`) of the process
    /// this origin was taken in, rather than that process itself.
    #[inline]
    pub fn is_inherited(self) -> bool {
        self.generation != crate::sys::fork::generation()
    }
}

#[cfg(test)]
mod tests {
    use super::Origin;

    #[test]
    fn an_origin_is_inherited_only_in_a_forked_child() {
        let here = Origin::current();
        assert!(!here.is_inherited());
        // SAFETY: the child makes only atomic loads and leaves with _exit (async-signal-safe);
        // the parent waits for it.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let ok = here.is_inherited() && !Origin::current().is_inherited();
            // SAFETY: ends the child at once, running nothing of the parent's.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: our own child, a valid out-pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{status:#x}"
        );
        assert!(!here.is_inherited(), "the parent is not its own child");
    }
}
