//! Tests of the robust lock: exclusion, a dead holder, scribbled words and liveness bytes.

use super::*;

use std::os::fd::AsRawFd;

fn temp_file(tag: &str) -> std::fs::File {
    let path = std::env::temp_dir().join(format!("shmio-rlock-{tag}-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let _ = std::fs::remove_file(&path);
    f
}

#[test]
fn lock_excludes_threads_and_reports_a_dead_holder() {
    let word = Box::new(AtomicU32::new(0));
    let file = temp_file("basic");
    // SAFETY: the box and the file outlive the lock (dropped at the end, after it).
    let lock = Arc::new(unsafe { RobustLock::new(&*word, file.as_raw_fd()) });
    let (held, how) = lock.lock(None).unwrap();
    assert_eq!(how, Locked::Clean);
    assert_ne!(word.load(Ordering::SeqCst) & FUTEX_TID_MASK, 0);
    // Another thread times out while it is held, then gets it once released.
    let l2 = Arc::clone(&lock);
    let t = std::thread::spawn(move || {
        let d = super::super::time::deadline_after(std::time::Duration::from_millis(30));
        assert!(matches!(l2.lock(Some(&d)), Err(LockError::Timeout)));
        let (h, how) = l2.lock(None).unwrap();
        assert_eq!(how, Locked::Clean);
        h.unlock().unwrap();
    });
    std::thread::sleep(std::time::Duration::from_millis(60));
    held.unlock().unwrap();
    t.join().unwrap();
    assert_eq!(word.load(Ordering::SeqCst), 0);
    // A word the kernel marked after its holder died.
    word.store(FUTEX_OWNER_DIED, Ordering::SeqCst);
    let (held, how) = lock.lock(None).unwrap();
    assert_eq!(how, Locked::OwnerDied);
    // A scribble while held is reported at unlock.
    word.store(0x1234, Ordering::SeqCst);
    assert_eq!(held.unlock(), Err(Scribbled { found: 0x1234 }));
    drop(lock);
}

/// A word scribbled with an id no live keeper has is taken (as from a dead holder) after
/// one backstop slice; one naming a keeper whose liveness byte another description holds
/// is respected (the locker times out), and its keeper's byte is released with it.
#[test]
fn a_scribbled_word_is_taken_unless_its_id_is_alive() {
    let word = Box::new(AtomicU32::new(0));
    let file = temp_file("scribble");
    // SAFETY: the box and the file outlive the lock.
    let lock = unsafe { RobustLock::new(&*word, file.as_raw_fd()) };
    word.store(0x2345, Ordering::SeqCst);
    let t0 = std::time::Instant::now();
    let (held, how) = lock.lock(None).unwrap();
    assert_eq!(how, Locked::OwnerDied);
    assert!(t0.elapsed() >= crate::queue::BACKSTOP);
    assert!(
        t0.elapsed() < crate::queue::BACKSTOP * 3,
        "{:?}",
        t0.elapsed()
    );
    let mine = word.load(Ordering::SeqCst) & FUTEX_TID_MASK;
    held.unlock().unwrap();
    // Another description (another handle, maybe another process) holds id 0x3456's byte.
    let live = std::fs::OpenOptions::new()
        .read(true)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .unwrap();
    assert!(ofd::try_share(std::os::fd::AsFd::as_fd(&live), liveness_byte(0x3456)).unwrap());
    word.store(0x3456, Ordering::SeqCst);
    let d = super::super::time::deadline_after(
        crate::queue::BACKSTOP * 2 + std::time::Duration::from_millis(100),
    );
    assert!(matches!(lock.lock(Some(&d)), Err(LockError::Timeout)));
    // Once that description lets go, the id is nobody's.
    drop(live);
    let (held, how) = lock.lock(None).unwrap();
    assert_eq!(how, Locked::OwnerDied);
    held.unlock().unwrap();
    // Our own keeper's byte is held by our description while the lock lives.
    let probe = std::fs::File::open(format!("/proc/self/fd/{}", file.as_raw_fd())).unwrap();
    assert!(ofd::held_elsewhere(&probe, liveness_byte(mine)));
    drop(lock);
    assert!(!ofd::held_elsewhere(&probe, liveness_byte(mine)));
}
