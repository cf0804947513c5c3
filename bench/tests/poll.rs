//! `shmio-poll-bench` end to end, in its quickest form: every cell is the best of the same
//! number of runs with its spread printed (no backend a single sample where the others get
//! K), and bad arguments exit 2. Not how fast anything is.

use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shmio-poll-bench"))
}

#[test]
fn every_cell_is_the_best_of_k_with_its_spread() {
    let out = bench().args(["200", "--reps", "2"]).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{s}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.lines().next().unwrap().contains("best of 2"), "{s}");
    let rows: Vec<&str> = s
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    // N = 100, 1000 and the largest ring RLIMIT_NOFILE allows, each at A = 1 and A = 100.
    assert_eq!(rows.len(), 6, "{s}");
    for row in rows {
        let parts: Vec<&str> = row.split('|').collect();
        assert_eq!(parts.len(), 4, "{row}");
        // raw epoll, then the six backends: each "ns (syscalls) spread%" or "n/a (fds)".
        let measured = row.matches('%').count();
        let not_run = row.matches("n/a (fds)").count();
        assert_eq!(measured + not_run, 7, "{row}");
        // raw epoll, poll and epoll run at every N.
        assert!(parts[1].trim().ends_with('%'), "{row}");
        assert!(measured >= 3, "{row}");
        assert!(parts[3].trim().parse::<f64>().is_ok(), "{row}");
    }
}

#[test]
fn bad_arguments_exit_2() {
    for args in [&["--reps"][..], &["--reps", "0"], &["x"], &["10", "20"]] {
        let out = bench().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
    }
}
