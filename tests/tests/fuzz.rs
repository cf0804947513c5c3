//! `shmio-fuzz` in CI: a million mutated queue and region files (or `SHMIO_FUZZ_CASES`), with
//! a fresh seed each run (or `SHMIO_FUZZ_SEED`), printed so that a failure replays with
//! `shmio-fuzz --seed S --case N`. See `tests/src/bin/fuzz/main.rs` and `scripts/fuzz.sh`.

use std::process::Command;

#[test]
fn a_million_mutated_files_give_errors_never_panics_hangs_or_crashes() {
    let cases = std::env::var("SHMIO_FUZZ_CASES").unwrap_or_else(|_| "1000000".into());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmio-fuzz"));
    // A hang never ends: 5 s (not the default 2 s) only spares a loaded CI machine a false
    // alarm (the slowest case seen took 0.75 s, with four workers on two cores).
    cmd.args(["--cases", &cases, "--hang-ms", "5000"]);
    if let Ok(seed) = std::env::var("SHMIO_FUZZ_SEED") {
        cmd.args(["--seed", &seed]);
    }
    let out = cmd.output().expect("run shmio-fuzz");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Shown with --nocapture, and in the failure message.
    println!("{stdout}");
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("shmio-fuzz: summary:"))
        .unwrap_or("");
    assert!(
        out.status.success() && summary.ends_with("PASS"),
        "shmio-fuzz failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        summary.contains(&format!("cases {cases},"))
            && summary
                .contains("panics 0, hangs 0, crashes 0, big allocations 0, oracle failures 0"),
        "{summary}"
    );
}
