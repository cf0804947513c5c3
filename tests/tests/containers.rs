//! The queue (and the region) as containers run them.
//!
//! - Under a seccomp filter that refuses `futex_waitv` with `EPERM`, as the default profiles
//!   of container runtimes did (Podman/CRI-O until 2026): `tests/c/no_futex_waitv.c` installs
//!   it and runs a `shmio-qtool` under it, so every thread of that process is filtered.
//! - Under a filter that refuses `membarrier(2)` too (`--membarrier`), in the producer or in the
//!   consumers: the wake-up handshake falls back to full fences, agreed through the file.
//! - Across PID namespaces (`unshare -p -f --mount-proc`), where the processes' main threads are
//!   each pid 1 and their keeper threads have the same thread ids.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use shmio::queue::{Policy, Producer, ProducerStatus, QueueOptions};

const T: Duration = Duration::from_secs(20);

/// The seccomp launcher, compiled once per test binary.
fn launcher() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let out = dir.join("no_futex_waitv");
        let tmp = dir.join(format!("no_futex_waitv.{}", std::process::id()));
        let st = Command::new("cc")
            .args(["-Wall", "-Wextra", "-Werror", "-O2", "-o"])
            .arg(&tmp)
            .arg(root().join("tests/c/no_futex_waitv.c"))
            .status()
            .expect("run cc");
        assert!(st.success(), "cc tests/c/no_futex_waitv.c failed");
        std::fs::rename(&tmp, &out).unwrap();
        out.to_string_lossy().into_owned()
    })
}

/// `shmio-qtool ARGS` under the filter that refuses `futex_waitv` with `EPERM`.
fn filtered(args: &[&str]) -> Proc {
    let mut all = vec![qtool()];
    all.extend_from_slice(args);
    Proc::spawn(launcher(), &all)
}

/// `shmio-qtool ARGS` under the filter that refuses `membarrier(2)` too.
fn no_membarrier(args: &[&str]) -> Proc {
    let mut all = vec!["--membarrier", qtool()];
    all.extend_from_slice(args);
    Proc::spawn(launcher(), &all)
}

// ---- seccomp -------------------------------------------------------------------------------

#[test]
fn the_filter_is_active_in_the_launched_process() {
    let (code, lines) = Proc::spawn(launcher(), &["--check"]).finish(T);
    assert_eq!(lines, vec!["futex_waitv: EPERM".to_string()]);
    assert_eq!(code, 0);
    // The filter survives the exec: the command runs in seccomp filter mode (2).
    let (code, lines) =
        Proc::spawn(launcher(), &["grep", "^Seccomp:", "/proc/self/status"]).finish(T);
    assert_eq!(code, 0);
    assert_eq!(lines, vec!["Seccomp:\t2".to_string()]);
}

#[test]
fn filtered_blocking_consumers_get_every_record() {
    let q = QueueName::new("sc-recv");
    const COUNT: u64 = 2000;
    // A producer slower than its consumers, so that they sleep between records.
    let p = Proc::qtool_line(&format!(
        "produce {q} --policy bp --slots 64 --count {COUNT} --interval-us 100 --wait-consumers 2"
    ))
    .once("ready", T);
    let lines = from_oldest(&q, &["", "--zero-copy"]);
    for c in start_all(filtered, &lines, "opened 0", T) {
        assert_every_record(c, T, 0, COUNT, "closed");
    }
    assert_eq!(p.finish(T).0, 0);
}

#[test]
fn the_membarrier_filter_refuses_both_calls() {
    let (code, lines) = Proc::spawn(launcher(), &["--membarrier", "--check"]).finish(T);
    assert_eq!(lines, vec!["futex_waitv: EPERM", "membarrier: EPERM"]);
    assert_eq!(code, 0);
}

/// A producer slower than its two consumers (so that they sleep between records), each side
/// spawned by its function; both consumers must get every record, and the sleeper-count word
/// must end with the barrier agreement `fences` (see `common::fence_bits`).
fn sleepers_get_every_record(
    tag: &str,
    producer: impl Fn(&[&str]) -> Proc,
    consumer: impl Fn(&[&str]) -> Proc,
    fences: (bool, bool),
) {
    let q = QueueName::new(tag);
    const COUNT: u64 = 1000;
    let line = format!(
        "produce {q} --policy bp --slots 64 --count {COUNT} --interval-us 200 --wait-consumers 2"
    );
    let mut p = producer(&words(&line));
    p.expect_line("ready", T);
    let lines = from_oldest(&q, &["", "--zero-copy"]);
    for c in start_all(&consumer, &lines, "opened 0", T) {
        assert_every_record(c, T, 0, COUNT, "closed");
    }
    assert_eq!(p.finish(T).0, 0);
    assert_eq!(fence_bits(&q), fences, "(fences requested, acknowledged)");
}

#[test]
fn membarrier_refused_to_consumers_they_ask_the_light_producer_for_fences() {
    // The consumers ask, sleep in 1 ms slices until the producer acknowledges (on its next
    // record), then sleep as usual; no wake-up is lost for good.
    sleepers_get_every_record("mb-cons", Proc::qtool, no_membarrier, (true, true));
}

#[test]
fn membarrier_refused_to_the_producer_it_fences_from_the_start() {
    sleepers_get_every_record("mb-prod", no_membarrier, Proc::qtool, (false, true));
}

#[test]
fn membarrier_allowed_everywhere_the_producer_stays_light() {
    sleepers_get_every_record("mb-all", Proc::qtool, Proc::qtool, (false, false));
}

/// A producer faster than its two consumers (so that it sleeps for space, with its spin off,
/// every few records), each side spawned by its function: both consumers must get every record.
fn space_waiter_gets_every_slot(
    tag: &str,
    producer: impl Fn(&[&str]) -> Proc,
    consumer: impl Fn(&[&str]) -> Proc,
) {
    let q = QueueName::new(tag);
    const COUNT: u64 = 3000;
    let line =
        format!("produce {q} --policy bp --slots 4 --count {COUNT} --spin-us 0 --wait-consumers 2");
    let mut p = producer(&words(&line));
    p.expect_line("ready", T);
    let lines = from_oldest(&q, &["--slow-us 50", "--zero-copy --slow-us 50"]);
    for c in start_all(&consumer, &lines, "opened 0", T) {
        assert_every_record(c, T, 0, COUNT, "closed");
    }
    assert_eq!(p.finish(T).0, 0);
}

#[test]
fn membarrier_refused_to_a_producer_waiting_for_space_it_sleeps_in_slices() {
    // Consumers release behind a compiler fence; the producer cannot make it a full one, so
    // no sleep of its is longer than 1 ms, and no slot freed is missed for good.
    space_waiter_gets_every_slot("mb-space-prod", no_membarrier, Proc::qtool);
}

#[test]
fn membarrier_refused_to_consumers_they_release_with_a_full_fence() {
    space_waiter_gets_every_slot("mb-space-cons", Proc::qtool, no_membarrier);
}

#[test]
fn filtered_recv_times_out_on_time() {
    let q = QueueName::new("sc-timeout");
    let mut p = Proc::qtool(&["produce", &q.0, "--count", "1", "--hold"]);
    p.expect_line("sent 1", T);
    let mut c = filtered(&["consume", &q.0, "--timeout-ms", "500"]);
    c.expect_line("opened 0", T);
    let start = Instant::now();
    let (code, lines) = c.finish(T);
    let took = start.elapsed();
    println!("timeout after opened: {took:?}");
    assert_eq!(code, 4, "{:?}", lines.last());
    assert_eq!(recs(&lines), vec![0]);
    assert_eq!(end_line(&lines), ("timeout".into(), 1, 0));
    assert!(
        took >= Duration::from_millis(480) && took < Duration::from_millis(1500),
        "timed out after {took:?}"
    );
}

#[test]
fn filtered_consumers_notice_a_killed_producer_promptly() {
    let q = QueueName::new("sc-kill");
    let mut p = Proc::qtool_line(&format!(
        "produce {q} --slots 1024 --count 500 --wait-consumers 2 --hold"
    ))
    .once("ready", T);
    let consumers = start_all(
        filtered,
        &from_oldest(&q, &["", "--zero-copy"]),
        "opened",
        T,
    );
    p.expect_line("sent 500", T);
    // Let them drain and go to sleep.
    let settle = Duration::from_millis(300);
    assert_death_noticed(consumers, 500, settle, "filtered", || p.kill9());
}

/// Waits until `c` has printed nothing new for `quiet`; returns its last `rec` number.
fn until_stalled(c: &mut Proc, quiet: Duration) -> u64 {
    let deadline = Instant::now() + T;
    let mut n = c.take_lines();
    let mut since = Instant::now();
    while since.elapsed() < quiet {
        assert!(Instant::now() < deadline, "{} never stalled", c.name);
        std::thread::sleep(Duration::from_millis(10));
        let m = c.take_lines();
        if m != n {
            n = m;
            since = Instant::now();
        }
    }
    *recs(&c.seen).last().expect("no record yet")
}

#[test]
fn filtered_backpressure_producer_resumes_and_survives_a_killed_consumer() {
    let q = QueueName::new("sc-bp");
    const COUNT: u64 = 3000;
    let mut p = filtered(&words(&format!(
        "produce {q} --policy bp --slots 16 --count {COUNT} --wait-consumers 1"
    )))
    .once("ready", T);
    // A reader slower than the producer: the ring is full most of the time, and the producer
    // sleeps until the reader frees a slot.
    let mut reader = filtered(&words(&format!(
        "consume {q} --from oldest --count {COUNT} --slow-us 100 --flush-each"
    )));
    reader.expect_line("rec 500", T);
    // A consumer that never reads joins: the producer blocks on it, and so the reader stalls.
    let mut stuck = filtered(&["consume", &q.0, "--hold"]);
    let opened: u64 = stuck.expect_line("opened", T)[7..].parse().unwrap();
    let last = until_stalled(&mut reader, Duration::from_millis(300));
    assert!(
        last < opened + 16,
        "the reader got record {last}, past what the stuck consumer at {opened} allows"
    );
    assert!(p.child.try_wait().unwrap().is_none(), "the producer exited");
    // Killed while the producer sleeps on it: the producer evicts it and goes on.
    let killed = Instant::now();
    stuck.kill9();
    reader.expect_line(&format!("rec {}", last + 1), T);
    let took = killed.elapsed();
    println!("resumed after the kill (filtered bp): {took:?}");
    assert!(took < Duration::from_secs(1), "resumed after {took:?}");
    let (code, lines) = reader.finish(T);
    assert_eq!(code, 0, "{:?}", lines.last());
    assert!(recs(&lines).into_iter().eq(0..COUNT), "gap or duplicate");
    assert_sent(p, T, COUNT);
}

#[test]
fn filtered_poll_consumer_gets_every_record_then_the_death() {
    let q = QueueName::new("sc-poll");
    const COUNT: u64 = 300;
    let mut p = Proc::qtool_line(&format!(
        "produce {q} --count {COUNT} --interval-us 300 --wait-consumers 1 --hold"
    ))
    .once("ready", T);
    let mut c = filtered(&words(&format!(
        "consume {q} --from oldest --poll --flush-each"
    )));
    c.expect_line("opened 0", T);
    c.expect_line(&format!("rec {}", COUNT - 1), T);
    let settle = Duration::from_millis(200);
    let lines = assert_death_noticed(vec![c], COUNT, settle, "filtered poll", || p.kill9());
    let lines = &lines[0];
    // The descriptor became readable for records and death, not in a loop.
    let l = lines.iter().find(|l| l.starts_with("polls ")).unwrap();
    let f: Vec<u64> = l
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let (polls, empty) = (f[0], f[1]);
    assert!((2..=COUNT + 10).contains(&polls), "{l}");
    assert!(empty <= 10, "readable with nothing to read: {l}");
}

// ---- PID namespaces ------------------------------------------------------------------------

/// `PROGRAM ARGS` as pid 1 of a new PID namespace (killed with `unshare` if the test drops it).
fn in_pidns(program: &str, args: &[&str]) -> Proc {
    let mut all = vec!["-p", "-f", "--mount-proc", "--kill-child", program];
    all.extend_from_slice(args);
    Proc::spawn("unshare", &all)
}

fn qtool_in_pidns(args: &[&str]) -> Proc {
    in_pidns(qtool(), args)
}

/// The `NSpid` ids of task `tid` of process `pid` (outermost namespace first).
fn nspid(pid: u32, tid: u32) -> Vec<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
    let l = s.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    l.split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect()
}

/// The host pid of the process `unshare` forked, checked to be pid 1 of its namespace. Call it
/// once the process has printed a line (it has exec'd by then).
fn ns_init(p: &Proc) -> u32 {
    let u = p.child.id();
    let kids = std::fs::read_to_string(format!("/proc/{u}/task/{u}/children")).unwrap();
    let pid: u32 = kids.split_whitespace().next().unwrap().parse().unwrap();
    let ids = nspid(pid, pid);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[1], 1, "not pid 1 of its namespace: {ids:?}");
    pid
}

/// The thread ids of process `pid` as its own namespace sees them, sorted.
fn ns_tids(pid: u32) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| {
            let tid: u32 = e.unwrap().file_name().to_str().unwrap().parse().unwrap();
            *nspid(pid, tid).last().unwrap()
        })
        .collect();
    v.sort_unstable();
    v
}

fn pidns_of(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap()
}

/// Kills pid 1 of `p`'s namespace (so the kernel kills the whole namespace) and reaps `unshare`.
fn kill_pidns(p: &mut Proc, init: u32) {
    // SAFETY: plain kill(2) of a process we started (through unshare), still unreaped: its
    // parent `unshare` is our child and waits for it.
    assert_eq!(unsafe { libc::kill(init as i32, libc::SIGKILL) }, 0);
    let _ = p.child.wait();
}

#[test]
fn pidns_producer_killed_is_noticed_in_other_namespaces() {
    let q = QueueName::new("ns-kill");
    let mut p = qtool_in_pidns(&words(&format!(
        "produce {q} --slots 1024 --count 500 --wait-consumers 2 --hold"
    )))
    .once("ready", T);
    let init = ns_init(&p);
    // One consumer in this namespace, one as pid 1 of another.
    let oldest = from_oldest(&q, &[""]);
    let mut consumers = start_all(Proc::qtool, &oldest, "opened", T);
    consumers.extend(start_all(qtool_in_pidns, &oldest, "opened", T));
    ns_init(&consumers[1]);
    p.expect_line("sent 500", T);
    let settle = Duration::from_millis(300);
    assert_death_noticed(consumers, 500, settle, "pidns", || kill_pidns(&mut p, init));
    let st = shmio::queue::inspect(&q.0).unwrap();
    assert!(matches!(st.producer, ProducerStatus::Dead { .. }));
}

#[test]
fn pidns_producer_in_another_namespace_takes_over() {
    let q = QueueName::new("ns-takeover");
    let mut p1 = qtool_in_pidns(&[
        "produce", &q.0, "--slots", "64", "--size", "256", "--count", "10", "--hold",
    ]);
    p1.expect_line("sent 10", T);
    let init = ns_init(&p1);
    // While it lives, a producer in another namespace is refused (its keeper thread is most
    // likely thread 2 of its namespace, as the holder's is).
    let (code, _) =
        qtool_in_pidns(&["produce", &q.0, "--open", "--size", "256", "--hold"]).finish(T);
    assert_eq!(code, 2, "a second live producer was let in");
    let mut c = qtool_in_pidns(&[
        "consume",
        &q.0,
        "--from",
        "oldest",
        "--count",
        "20",
        "--survive",
        "--flush-each",
    ]);
    c.expect_line("rec 9", T);
    kill_pidns(&mut p1, init);
    c.expect_line("gone dead", Duration::from_secs(1));
    let mut p2 = qtool_in_pidns(&[
        "produce", &q.0, "--open", "--size", "256", "--count", "10", "--hold",
    ]);
    p2.expect_line("ready 10", T);
    ns_init(&p2);
    p2.expect_line("sent 10", T);
    let (code, lines) = c.finish(T);
    assert_eq!(code, 0, "{:?}", lines.last());
    assert!(recs(&lines).into_iter().eq(0..20));
    assert_eq!(shmio::queue::inspect(&q.0).unwrap().producer_generation, 2);
}

#[test]
fn pidns_backpressure_producer_evicts_a_dead_consumer_of_another_namespace() {
    let q = QueueName::new("ns-deadc");
    let opts = QueueOptions::new()
        .slots(16)
        .slot_size(64)
        .policy(Policy::BackPressure);
    let mut p = Producer::create(&q.0, &opts).unwrap();
    let mut stuck = qtool_in_pidns(&["consume", &q.0, "--hold"]);
    stuck.expect_line("opened", T);
    let init = ns_init(&stuck);
    for i in 0..16u64 {
        p.try_send(&i.to_le_bytes()).unwrap();
    }
    assert!(matches!(
        p.try_send(b"x"),
        Err(shmio::queue::Error::WouldBlock)
    ));
    let h = std::thread::spawn(move || {
        for i in 16..1016u64 {
            p.send_for(&i.to_le_bytes(), Some(Duration::from_secs(10)))
                .unwrap();
        }
        (Instant::now(), p)
    });
    std::thread::sleep(Duration::from_millis(200));
    let killed = Instant::now();
    kill_pidns(&mut stuck, init);
    let (done, p) = h.join().unwrap();
    let took = done.duration_since(killed);
    println!("went on after the kill (pidns bp): {took:?}");
    assert!(took < Duration::from_secs(1), "went on after {took:?}");
    assert_eq!(p.next_seq(), 1016);
    assert_eq!(p.stats().live_consumers(), 0);
}

#[test]
fn pidns_two_pid1_consumers_each_get_every_record() {
    let q = QueueName::new("ns-two");
    const COUNT: u64 = 20_000;
    let p = Proc::qtool_line(&format!(
        "produce {q} --policy bp --slots 64 --count {COUNT} --wait-consumers 3"
    ))
    .once("ready", T);
    // Two that read everything; a third, killed mid-stream: the producer must evict it, not
    // one of the others.
    let variants = ["", "--zero-copy", "--slow-us 50 --flush-each"];
    let mut consumers = start_all(qtool_in_pidns, &from_oldest(&q, &variants), "opened 0", T);
    let mut victim = consumers.pop().unwrap();
    let pids: Vec<u32> = consumers.iter().chain([&victim]).map(ns_init).collect();
    // Distinct namespaces, and the same thread ids inside them (pid 1 and its keeper thread),
    // so the owner words in the file hold equal values.
    assert_ne!(pidns_of(pids[0]), pidns_of(pids[1]));
    assert_ne!(pidns_of(pids[1]), pidns_of(pids[2]));
    let tids = ns_tids(pids[0]);
    assert!(tids.len() >= 2, "{tids:?}");
    assert_eq!(ns_tids(pids[1]), tids);
    assert_eq!(ns_tids(pids[2]), tids);
    victim.expect_line("rec 1000", T);
    kill_pidns(&mut victim, pids[2]);
    for c in consumers {
        assert_every_record(c, T, 0, COUNT, "closed");
    }
    assert_sent(p, T, COUNT);
}

#[test]

fn pidns_two_pid1_region_writers() {
    use shmio::region::{Region, RegionOptions};
    const SLOTS: u64 = 4;
    let n = RegionName::new("ns");
    let name = n.0.clone();
    let r = Region::create(
        &name,
        (SLOTS + 1) * shmio_tests::REC as u64,
        &RegionOptions::new(),
    )
    .unwrap();
    let rtool = rtool();
    // Each writer is pid 1 of its own namespace and writes from its main thread, so both take
    // the writer lock as thread 1; `sh` (pid 1, which the exec keeps) says its pid and
    // redirects stderr into the captured stdout.
    let mut writers: Vec<Proc> = (0..2)
        .map(|id| {
            let id = id.to_string();
            let slots = SLOTS.to_string();
            let args = [
                "-c",
                "echo \"pid $$\"; exec \"$0\" \"$@\" 2>&1",
                rtool,
                "writer",
                &name,
                &id,
                &slots,
            ];
            in_pidns("sh", &args)
        })
        .collect();
    for w in &mut writers {
        w.expect_line("pid 1", T);
        w.expect_line("writing", T);
    }
    let (code, lines) =
        Proc::spawn(rtool, &["reader", &name, &SLOTS.to_string(), "200000"]).finish(T);
    assert_eq!(code, 0, "{lines:?}");
    r.write(0, &1u64.to_le_bytes()).unwrap();
    let mut writes = 0;
    for w in writers {
        let (code, lines) = w.finish(T);
        assert_eq!(code, 0, "a pid-1 writer failed: {lines:?}");
        let l = lines.iter().find(|l| l.starts_with("writes ")).unwrap();
        writes += l[7..].parse::<u64>().unwrap();
    }
    assert_eq!(r.version(), writes + 1, "one version per write");
}
