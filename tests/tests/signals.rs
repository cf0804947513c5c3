//! What a signal handler does to a blocking wait: the same for a queue's `recv` and a region's
//! `wait_changed` (and in C, `shmio_consumer_recv` and `shmio_region_wait_changed`): a handler
//! installed with `SA_RESTART` lets the wait go on to its deadline, any other ends it with
//! `Interrupted`. (Where `futex_waitv` is missing or refused, any handler ends it: see
//! `sys::futex::sleep`.)
//!
//! One test function: signal dispositions are per process, and the cases change them in turn.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{QueueName, RegionName};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use shmio::queue::{self, Consumer, Producer, QueueOptions, Start};
use shmio::region::{self, Region, RegionOptions};

const WAIT: Duration = Duration::from_millis(600);

extern "C" fn on_usr1(_: libc::c_int) {}

/// How a wait ended, and after how long.
#[derive(Debug, PartialEq)]
enum End {
    TimedOut,
    Interrupted,
    Other(String),
}

/// Runs `wait` on a thread while SIGUSR1 is sent to that thread every 50 ms, until it returns.
fn under_signals(wait: impl FnOnce() -> End + Send + 'static) -> (End, Duration) {
    let (tx, rx) = mpsc::channel::<libc::pthread_t>();
    let waiter = thread::spawn(move || {
        // SAFETY: pthread_self has no preconditions.
        tx.send(unsafe { libc::pthread_self() }).unwrap();
        let start = Instant::now();
        let end = wait();
        (end, start.elapsed())
    });
    let tid = rx.recv().unwrap();
    while !waiter.is_finished() {
        thread::sleep(Duration::from_millis(50));
        if !waiter.is_finished() {
            // SAFETY: `tid` is the waiter's, which is not joined yet (it may have returned from
            // `wait` since the check; the thread still exists until the join).
            unsafe { libc::pthread_kill(tid, libc::SIGUSR1) };
        }
    }
    waiter.join().unwrap()
}

fn queue_recv(q: String) -> End {
    let mut c = Consumer::open(&q, Start::Newest).unwrap();
    let mut buf = [0u8; 64];
    match c.recv_for(&mut buf, Some(WAIT)) {
        Err(queue::Error::Timeout) => End::TimedOut,
        Err(queue::Error::Interrupted) => End::Interrupted,
        other => End::Other(format!("{other:?}")),
    }
}

fn region_wait(r: String) -> End {
    let region = Region::open(&r, &RegionOptions::new()).unwrap();
    let v = region.version();
    match region.wait_changed(v, Some(WAIT)) {
        Err(region::Error::Timeout) => End::TimedOut,
        Err(region::Error::Interrupted) => End::Interrupted,
        other => End::Other(format!("{other:?}")),
    }
}

fn install(flags: SaFlags) {
    let act = SigAction::new(SigHandler::Handler(on_usr1), flags, SigSet::empty());
    // SAFETY: the handler does nothing, so it is async-signal-safe.
    unsafe { sigaction(Signal::SIGUSR1, &act) }.unwrap();
}

#[test]
fn queue_and_region_waits_treat_signals_alike() {
    let q = QueueName::new("sig");
    let _p = Producer::create(&q.0, &QueueOptions::new().slots(8).slot_size(64)).unwrap();
    let r = RegionName::new("sig");
    let _r = Region::create(&r.0, 4096, &RegionOptions::new()).unwrap();

    install(SaFlags::SA_RESTART);
    for (what, end) in both_waits(&q.0, &r.0) {
        println!("SA_RESTART, {what}: {end:?}");
        assert_eq!(
            end.0,
            End::TimedOut,
            "{what}: an SA_RESTART handler ended the wait"
        );
        assert!(
            end.1 >= WAIT - Duration::from_millis(20),
            "{what}: {:?}",
            end.1
        );
    }

    install(SaFlags::empty());
    for (what, end) in both_waits(&q.0, &r.0) {
        println!("no SA_RESTART, {what}: {end:?}");
        assert_eq!(end.0, End::Interrupted, "{what}");
        assert!(end.1 < WAIT, "{what}: interrupted only after {:?}", end.1);
    }
}

/// A queue `recv` on `q` and a region `wait_changed` on `r`, each under signals.
fn both_waits(q: &str, r: &str) -> [(&'static str, (End, Duration)); 2] {
    let (q, r) = (q.to_string(), r.to_string());
    [
        ("queue recv", under_signals(move || queue_recv(q))),
        ("region wait_changed", under_signals(move || region_wait(r))),
    ]
}
