//! A slow overwrite consumer lapped by a fast producer, between real processes: it keeps
//! reading (it resumes where it can keep up, `Resume::NearOldest` by default), every record is
//! either received or counted lost, and no `try_recv` walks the ring after an overrun.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(120);
const COUNT: u64 = 1_000_000;
/// The consumer's busy work per record: it stays on the CPU, but slower than the producer.
const WORK_NS: u64 = 2_000;

/// What one lapped consumer did: (received, lost, CPU time, longest try_recv in its thread's
/// CPU time and in time).
fn run(tag: &str, resume: &str) -> (u64, u64, u64, u64, u64) {
    let q = QueueName::new(tag);
    let p = Proc::qtool_line(&format!(
        "produce {q} --slots 1024 --size 64 --count {COUNT} --wait-consumers 1"
    ))
    .once("ready", T);
    let c = start_all(
        Proc::qtool,
        &[format!(
            "consume {q} --from oldest --quiet --poll --timeout-ms 20000 --work-ns {WORK_NS} \
             {resume}"
        )],
        "opened 0",
        T,
    );
    assert_sent(p, T, COUNT);
    let (code, lines) = c.into_iter().next().unwrap().finish(T);
    assert_eq!(
        code,
        0,
        "{:?}",
        lines.iter().rev().take(3).collect::<Vec<_>>()
    );
    let (status, received, lost) = end_line(&lines);
    assert_eq!(status, "closed");
    let e = shmio_tests::EndLine::find(&lines).unwrap();
    assert_eq!((e.dup, e.order, e.torn), (0, 0, 0), "{e}");
    let t = lines
        .iter()
        .find(|l| l.starts_with("try "))
        .expect("a try line");
    let w = words(t);
    let field = |k: &str| -> u64 {
        let i = w.iter().position(|x| *x == k).unwrap();
        w[i + 1].parse().unwrap()
    };
    let figures = (
        received,
        lost,
        field("cpu_ns"),
        field("max_cpu_ns"),
        field("max_ns"),
    );
    eprintln!("{tag} {resume:?}: received {received} lost {lost}: {t}");
    figures
}

#[test]
fn lapped_overwrite_consumer_keeps_reading_and_counts_every_loss() {
    let (received, lost, cpu_ns, max_cpu_ns, max_ns) = run("lap", "");
    // Exact accounting: every record sent is received or counted lost, once.
    assert_eq!(received + lost, COUNT, "received {received} + lost {lost}");
    assert!(
        lost > 0,
        "the producer never lapped the consumer: the test tests nothing"
    );
    // It kept reading after being lapped: at least a quarter of its CPU time went into
    // records it received (the rest: copies, cache misses, resumes, polls). A consumer that
    // resumed at the slot the producer overwrites next spent it chasing the producer.
    assert!(
        received * WORK_NS >= cpu_ns / 4,
        "received {received} records of {WORK_NS} ns work in {cpu_ns} ns of CPU"
    );
    // No try_recv walks: bounded work per call (its thread's CPU time; the time is printed,
    // and includes any preemption).
    assert!(
        max_cpu_ns < 5_000_000,
        "a try_recv took {max_cpu_ns} ns of CPU ({max_ns} ns)"
    );
}

#[test]
fn every_resume_policy_counts_every_loss_between_processes() {
    for (i, resume) in ["half-ring", "newest", "oldest", "100"].iter().enumerate() {
        let (received, lost, _, max_cpu_ns, max_ns) =
            run(&format!("lap{i}"), &format!("--resume {resume}"));
        assert_eq!(
            received + lost,
            COUNT,
            "{resume}: received {received} + lost {lost}"
        );
        assert!(
            max_cpu_ns < 5_000_000,
            "{resume}: a try_recv took {max_cpu_ns} ns of CPU ({max_ns} ns)"
        );
    }
}
