//! Create after a crash (issue 10, item 5): a create that died halfway, or the temporary names
//! an older shmio left behind, never block a later create, even from a process with the same
//! pid (pid 1 or 2 of a fresh PID namespace, as in a restarted container).
//!
//! Each test works in a directory of its own on /dev/shm (`$SHMIO_DIR`), so it can list
//! everything a create leaves there. `SHMIO_TEST_HOOK=die-in-create` makes a create SIGKILL
//! itself right after making its file; pid 1 of a namespace cannot be killed from inside, so
//! such a create runs as pid 2, under `sh`.

mod common;

use std::path::Path;
use std::process::Command;

use shmio_testfs::ShmDir;

/// Plants an empty file in `d`, like the leftovers of an older shmio's crashed create.
fn plant(d: &ShmDir, name: &str) {
    std::fs::write(d.0.join(name), b"").unwrap();
}

/// Runs `program args` in a new PID namespace (with its own /proc) and `$SHMIO_DIR` = `dir`.
/// `as_pid` 1 execs it as the namespace's init; 2 runs it under `sh`, which prints its exit
/// status as `status N` (137 for SIGKILL). Returns (exit code of `unshare`, stdout).
fn in_pid_ns(
    dir: &Path,
    hook: Option<&str>,
    as_pid: u32,
    program: &str,
    args: &[&str],
) -> (i32, String) {
    let mut cmd = Command::new("unshare");
    cmd.args(["-p", "-f", "--mount-proc"]);
    match as_pid {
        1 => cmd.arg(program).args(args),
        2 => cmd
            .args(["sh", "-c", r#""$0" "$@"; echo "status $?""#, program])
            .args(args),
        _ => unreachable!(),
    };
    run(cmd, dir, hook)
}

fn run(mut cmd: Command, dir: &Path, hook: Option<&str>) -> (i32, String) {
    cmd.env("SHMIO_DIR", dir).env_remove("SHMIO_TEST_HOOK");
    if let Some(h) = hook {
        cmd.env("SHMIO_TEST_HOOK", h);
    }
    let out = cmd.output().expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "{cmd:?}: {:?}\nstdout: {stdout}stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), stdout)
}

/// Whether `name` is a fallback temporary name for `base`: `.BASE.<16 hex digits>.tmp`.
fn is_random_tmp_name(name: &str, base: &str) -> bool {
    name.strip_prefix(&format!(".{base}."))
        .and_then(|s| s.strip_suffix(".tmp"))
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn queue_create_as_pid_1_ignores_old_temporary_names() {
    let d = ShmDir::new("shmio-e2e-crash-queue-pid1");
    // What crashed creates of pid 1 left under the old `.NAME.PID.COUNTER.tmp` scheme.
    for i in 0..4 {
        plant(&d, &format!(".q.1.{i}.tmp"));
    }
    let (code, out) = in_pid_ns(
        &d.0,
        None,
        1,
        common::qtool(),
        &["produce", "q", "--count", "0"],
    );
    assert_eq!(code, 0, "create as pid 1 failed: {out}");
    assert!(out.contains("ready 0"), "{out}");
    let mut want: Vec<String> = (0..4).map(|i| format!(".q.1.{i}.tmp")).collect();
    want.push("q".into());
    assert_eq!(d.names(), want, "the queue, and nothing new beside it");
    shmio::queue::inspect(d.0.join("q").to_str().unwrap()).expect("a valid queue");
}

#[test]
fn region_create_as_pid_1_ignores_old_temporary_names() {
    let d = ShmDir::new("shmio-e2e-crash-region-pid1");
    plant(&d, ".r.1.0.tmp");
    let (code, out) = in_pid_ns(&d.0, None, 1, common::rtool(), &["create", "r", "4096"]);
    assert_eq!(code, 0, "create as pid 1 failed: {out}");
    assert!(out.contains("created"), "{out}");
    assert_eq!(d.names(), [".r.1.0.tmp", "r"]);
    let r = shmio::region::Region::open(
        d.0.join("r").to_str().unwrap(),
        &shmio::region::RegionOptions::new(),
    )
    .expect("a valid region");
    assert_eq!(r.len(), 4096);
}

#[test]
fn queue_create_killed_halfway_leaves_nothing_and_the_same_pid_creates_again() {
    let d = ShmDir::new("shmio-e2e-crash-queue-kill");
    let args = ["produce", "q", "--count", "0"];
    let (_, out) = in_pid_ns(&d.0, Some("die-in-create"), 2, common::qtool(), &args);
    assert!(
        out.contains("status 137"),
        "the create was SIGKILLed: {out}"
    );
    assert!(!out.contains("ready"), "{out}");
    assert_eq!(
        d.names(),
        Vec::<String>::new(),
        "a killed create leaves nothing"
    );
    // The same pid, in a new namespace, creates the queue.
    let (_, out) = in_pid_ns(&d.0, None, 2, common::qtool(), &args);
    assert!(out.contains("ready 0") && out.contains("status 0"), "{out}");
    assert_eq!(d.names(), ["q"]);
}

#[test]
fn region_create_killed_halfway_leaves_nothing_and_the_same_pid_creates_again() {
    let d = ShmDir::new("shmio-e2e-crash-region-kill");
    let args = ["create", "r", "4096"];
    let (_, out) = in_pid_ns(&d.0, Some("die-in-create"), 2, common::rtool(), &args);
    assert!(
        out.contains("status 137"),
        "the create was SIGKILLed: {out}"
    );
    assert_eq!(
        d.names(),
        Vec::<String>::new(),
        "a killed create leaves nothing"
    );
    let (_, out) = in_pid_ns(&d.0, None, 2, common::rtool(), &args);
    assert!(out.contains("created") && out.contains("status 0"), "{out}");
    assert_eq!(d.names(), ["r"]);
}

/// Without `O_TMPFILE` a killed create does leave its temporary file, but under a random name
/// that no later create trips on.
#[test]
fn named_fallback_killed_create_leaves_only_an_unused_random_name() {
    let d = ShmDir::new("shmio-e2e-crash-fallback-kill");
    let args = ["produce", "q", "--count", "0"];
    let hook = Some("die-in-create,no-tmpfile");
    let (_, out) = in_pid_ns(&d.0, hook, 2, common::qtool(), &args);
    assert!(
        out.contains("status 137"),
        "the create was SIGKILLed: {out}"
    );
    let left = d.names();
    assert!(
        left.len() == 1 && is_random_tmp_name(&left[0], "q"),
        "one randomly named temporary file: {left:?}"
    );
    let (_, out) = in_pid_ns(&d.0, Some("no-tmpfile"), 2, common::qtool(), &args);
    assert!(out.contains("ready 0") && out.contains("status 0"), "{out}");
    assert_eq!(
        d.names(),
        [left[0].clone(), "q".into()],
        "nothing new but the queue"
    );
}

/// Without /proc an unnamed file could not be linked by an unprivileged process, so the
/// create takes the random-name fallback, which the old names do not block either.
#[test]
fn create_as_pid_1_without_proc_takes_the_named_fallback() {
    let d = ShmDir::new("shmio-e2e-crash-no-proc");
    plant(&d, ".q.1.0.tmp");
    plant(&d, ".r.1.0.tmp");
    for (program, args) in [
        (common::qtool(), &["produce", "q", "--count", "0"][..]),
        (common::rtool(), &["create", "r", "4096"][..]),
    ] {
        // A new mount namespace (private propagation) whose /proc is unmounted; `exec`
        // makes the tool pid 1.
        let mut cmd = Command::new("unshare");
        cmd.args(["-p", "-f", "-m", "sh", "-c"])
            .arg(r#"umount -l /proc && exec "$0" "$@""#)
            .arg(program)
            .args(args);
        let (code, out) = run(cmd, &d.0, None);
        assert_eq!(code, 0, "create without /proc failed: {out}");
    }
    assert_eq!(d.names(), [".q.1.0.tmp", ".r.1.0.tmp", "q", "r"]);
}
