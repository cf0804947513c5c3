//! The C demos (`examples-c/`), built with `make` and run as real processes, alone and against
//! the Rust side.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(60);

fn wait_for_queue(q: &QueueName) {
    eventually(T, "the queue file", || shmio::queue::inspect(&q.0).is_ok());
}

/// `write Data : N` lines → N.
fn data_numbers(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("write Data : "))
        .map(|n| n.trim().parse().unwrap())
        .collect()
}

#[test]
fn c_producer_three_c_consumers_backpressure_get_everything() {
    let q = QueueName::new("c3");
    let p = Proc::spawn(
        &demo("producer"),
        &[
            "-q", &q.0, "-b", "-n", "3000", "-i", "0", "-s", "16", "-w", "3",
        ],
    );
    wait_for_queue(&q);
    let consumers: Vec<Proc> = [
        vec!["-q", q.0.as_str(), "--from", "oldest", "-n", "3000"],
        vec!["-q", q.0.as_str(), "--from", "oldest", "-n", "3000", "-z"],
        vec![
            "-q",
            q.0.as_str(),
            "--from",
            "oldest",
            "-n",
            "3000",
            "-t",
            "3",
        ],
    ]
    .iter()
    .map(|a| Proc::spawn(&demo("consumer"), a))
    .collect();
    for (i, c) in consumers.into_iter().enumerate() {
        let (code, lines) = c.finish(T);
        assert_eq!(code, 0, "consumer {i}: {:?}", lines.last());
        let mut got = data_numbers(&lines);
        if i == 2 {
            // Three processing threads print in any order, each record exactly once.
            got.sort_unstable();
        }
        assert!(
            got.into_iter().eq(0..3000),
            "consumer {i}: gap or duplicate"
        );
    }
    assert_eq!(p.finish(T).0, 0);
}

#[test]
fn killed_c_producer_makes_c_consumers_exit_3_after_draining() {
    let q = QueueName::new("ckill");
    let mut p = Proc::spawn(
        &demo("producer"),
        // -w 3: nothing is sent before the three consumers are attached (a slow start, as
        // under valgrind, would otherwise let the ring wrap past records they never saw).
        &[
            "-q", &q.0, "-n", "1000000", "-i", "100", "-s", "64", "-w", "3",
        ],
    );
    wait_for_queue(&q);
    let consumers: Vec<Proc> = (0..3)
        .map(|i| {
            let mut a = vec!["-q", q.0.as_str(), "--from", "oldest"];
            if i == 1 {
                a.push("-z");
            }
            if i == 2 {
                a.extend(["-t", "2"]);
            }
            Proc::spawn(&demo("consumer"), &a)
        })
        .collect();
    eventually(T, "three consumers", || live_consumers(&q) == 3);
    // Let a few records through, then kill the producer while the consumers wait.
    std::thread::sleep(Duration::from_millis(550));
    let killed = Instant::now();
    p.kill9();
    let head = shmio::queue::inspect(&q.0).unwrap().head;
    assert!(head >= 3, "producer sent only {head} records");
    for (i, c) in consumers.into_iter().enumerate() {
        let (code, lines) = c.finish(Duration::from_secs(5));
        assert!(
            killed.elapsed() < Duration::from_secs(1),
            "consumer {i} too slow"
        );
        assert_eq!(code, 3, "consumer {i}: {:?}", lines.last());
        let mut got = data_numbers(&lines);
        got.sort_unstable();
        assert!(
            got.iter().copied().eq(0..head),
            "consumer {i}: every committed record exactly once, got {got:?} of {head}"
        );
    }
}

#[test]
fn c_producer_to_rust_consumer() {
    let q = QueueName::new("c2rust");
    let p = Proc::spawn(
        &demo("producer"),
        &[
            "-q", &q.0, "-b", "-n", "500", "-i", "0", "-s", "32", "-w", "1",
        ],
    );
    wait_for_queue(&q);
    let c = Proc::qtool(&[
        "consume", &q.0, "--from", "oldest", "--count", "500", "--text",
    ]);
    let (code, lines) = c.finish(T);
    assert_eq!(code, 0);
    let texts: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("text "))
        .collect();
    assert_eq!(texts.len(), 500);
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(*t, format!("{i} write Data : {i}"));
    }
    assert_eq!(p.finish(T).0, 0);
}

#[test]
fn rust_producer_to_c_consumer() {
    let q = QueueName::new("rust2c");
    let mut p = Proc::qtool(&[
        "produce",
        &q.0,
        "--policy",
        "bp",
        "--size",
        "80",
        "--slots",
        "16",
        "--text",
        "--count",
        "500",
        "--wait-consumers",
        "1",
    ]);
    p.expect_line("ready", T);
    let c = Proc::spawn(
        &demo("consumer"),
        &["-q", &q.0, "--from", "oldest", "-n", "500"],
    );
    let (code, lines) = c.finish(T);
    assert_eq!(code, 0, "{:?}", lines.last());
    assert!(data_numbers(&lines).into_iter().eq(0..500));
    assert_eq!(p.finish(T).0, 0);
}

#[test]
fn late_c_consumer_starts_at_newest() {
    let q = QueueName::new("clate");
    let mut p = Proc::qtool(&[
        "produce", &q.0, "--size", "80", "--text", "--count", "50", "--hold",
    ]);
    p.expect_line("sent 50", T);
    let (code, lines) = Proc::spawn(&demo("consumer"), &["-q", &q.0, "-n", "1"]).finish(T);
    assert_eq!(code, 0);
    assert_eq!(data_numbers(&lines), vec![49]);
}

#[test]
fn queue_stat_shows_the_producer_alive_then_dead_and_each_consumer() {
    let q = QueueName::new("cstat");
    let mut p = Proc::spawn(
        &demo("producer"),
        &["-q", &q.0, "-n", "1000000", "-i", "20", "-s", "16"],
    );
    wait_for_queue(&q);
    let c = Proc::spawn(&demo("consumer"), &["-q", &q.0, "--from", "oldest"]);
    eventually(T, "one consumer", || live_consumers(&q) == 1);
    let stat = |args: &[&str]| Proc::spawn(&demo("queue_stat"), args).finish(T);

    let (code, lines) = stat(&["-q", &q.0]);
    assert_eq!(code, 0, "{lines:?}");
    let head = format!("queue {}: 16 slots of ", q.0);
    assert!(lines[0].starts_with(&head), "{lines:?}");
    assert!(
        lines[0].ends_with(", overwrite, 1/64 consumers"),
        "{lines:?}"
    );
    let alive = format!("  producer: alive, pid {}, generation ", p.child.id());
    assert!(lines[1].starts_with(&alive), "{lines:?}");
    assert!(lines[2].starts_with("  records: head "), "{lines:?}");
    let row: Vec<&str> = lines[4].split_whitespace().collect();
    assert_eq!(
        row[1],
        c.child.id().to_string(),
        "consumer pid in {lines:?}"
    );

    // Watch mode: a snapshot every 20 ms until SIGINT, then exit 0.
    let mut w = Proc::spawn(&demo("queue_stat"), &["-q", &q.0, "-w", "20"]);
    w.expect_line(&head, T);
    w.expect_line(&head, T);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(w.child.id() as i32, libc::SIGINT) };
    assert_eq!(w.finish(T).0, 0);

    p.kill9();
    assert_eq!(c.finish(T).0, 3, "the consumer sees the producer die");
    let (code, lines) = stat(&["-q", &q.0]);
    assert_eq!(code, 0, "{lines:?}");
    assert!(lines[1].starts_with("  producer: dead, pid "), "{lines:?}");
    assert!(lines[0].ends_with(", 0/64 consumers"), "{lines:?}");

    let gone = QueueName::new("cstat-missing");
    assert_eq!(stat(&["-q", &gone.0]).0, 2);
    assert_eq!(stat(&["-w", "0"]).0, 2);
}

#[test]
fn c_consumer_bad_arguments_and_missing_queue_exit_2() {
    let q = QueueName::new("cmissing");
    let out = Command::new(demo("consumer"))
        .args(["-q", &q.0])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&q.0) || err.contains("no queue"),
        "stderr: {err}"
    );
    let out = Command::new(demo("consumer"))
        .args(["--from", "sideways"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(demo("producer"))
        .args(["-s", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The number after `label` on the line starting with it, e.g. `Sync. Read  0.000395 Sec.`.
fn figure(lines: &[String], label: &str) -> f64 {
    let l = lines
        .iter()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in {lines:?}"));
    l[label.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("bad figure in {l:?}"))
}

fn check_memsync(lines: &[String]) {
    for label in ["Sync. Read", "Sync. Write", "Priv. Read", "Priv. Write"] {
        let s = figure(lines, label);
        assert!(s > 0.0 && s < 1.0, "{label}: {s} seconds per 4 MiB pass");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(label) && l.ends_with("Sec.")),
            "{label} line ends with Sec."
        );
    }
    for (ratio, a, b) in [
        ("Sync/Priv Read", "Sync. Read", "Priv. Read"),
        ("Sync/Priv Write", "Sync. Write", "Priv. Write"),
    ] {
        let r = figure(lines, ratio);
        let expect = figure(lines, a) / figure(lines, b);
        assert!(
            (r - expect).abs() <= expect * 0.02 + 0.002,
            "{ratio} {r} vs {expect}"
        );
    }
}

#[test]
fn memsync_prints_the_notes_four_figures_and_ratios() {
    let name = format!("shmio-e2e-memsync-{}", std::process::id());
    let (code, lines) = Proc::spawn(&demo("memsync"), &["-p", &name, "-n", "3"]).finish(T);
    assert_eq!(code, 0, "{lines:?}");
    check_memsync(&lines);
    assert!(lines.iter().any(|l| l.contains("raw memcpy")));
    assert!(
        !shmio::region::resolve(&name).unwrap().exists(),
        "the region it created is unlinked"
    );
    // Consistent calls, O_SYNC, on a disk file system path.
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("memsync-{}.region", std::process::id()));
    let p = path.to_str().unwrap();
    let (code, lines) = Proc::spawn(&demo("memsync"), &["-p", p, "-S", "-c", "-n", "2"]).finish(T);
    assert_eq!(code, 0, "{lines:?}");
    check_memsync(&lines);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("consistent") && l.contains("O_SYNC"))
    );
    assert!(!path.exists());
    // A bad option.
    let (code, _) = Proc::spawn(&demo("memsync"), &["-n", "0"]).finish(T);
    assert_eq!(code, 2);
}

#[test]
fn dirty_writer_prints_sizes_dirty_pages_and_thresholds() {
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dirty-{}.dump", std::process::id()));
    let f = file.to_str().unwrap();
    let (code, lines) = Proc::spawn(
        &demo("dirty_writer"),
        &["-r", "2", "-d", "2", "-f", f, "-u"],
    )
    .finish(T);
    assert_eq!(code, 0, "{lines:?}");
    // The knobs, as /proc/sys/vm has them.
    for k in shmio::vm::Knob::ALL {
        let v = shmio::vm::knob(k).unwrap();
        assert!(
            lines.contains(&format!("vm.{} = {v}", k.name())),
            "vm.{} = {v} in {lines:?}",
            k.name()
        );
    }
    let secs: Vec<&String> = lines.iter().filter(|l| l.starts_with("t=")).collect();
    assert_eq!(secs.len(), 2, "{lines:?}");
    for (i, l) in secs.iter().enumerate() {
        println!("{l}");
        let want = format!("t={}s size {} KB |", i + 1, (i + 1) * 2048);
        assert!(l.starts_with(&want), "{l:?} starts with {want:?}");
        assert!(
            l.contains("system Dirty ") && l.contains(" Writeback "),
            "{l}"
        );
        let bg = l.split("thresholds background ").nth(1).unwrap();
        let bg: u64 = bg.split_whitespace().next().unwrap().parse().unwrap();
        assert!(bg > 0, "{l}");
        if !l.contains("file dirty n/a") {
            // cachestat: the file's pages are all cached, some dirty or under writeback.
            let cached: u64 = l
                .split(" cached ")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(cached, (i as u64 + 1) * 512, "{l}");
        }
    }
    assert!(!file.exists(), "-u removes the file");
}
