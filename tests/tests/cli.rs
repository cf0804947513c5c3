//! End-to-end tests of the `shmio` command (cli/): every subcommand against live queues and
//! regions made by real processes (shmio-qtool) or in this process, in a private directory
//! (`$SHMIO_DIR`) so that `ls` and `gc` see only this test's objects.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{Proc, eventually, qtool};
use serde_json::Value;
use shmio::queue::{Policy, Producer, QueueOptions};
use shmio::region::{Region, RegionOptions};

const T: Duration = Duration::from_secs(20);

/// The `shmio` binary, built once per test process (`cargo build -p shmio-cli`, in the profile
/// and target directory of this test binary).
fn shmio_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // target/PROFILE/deps/cli-HASH
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-q", "-p", "shmio-cli"])
            .current_dir(common::root())
            .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap());
        if profile_dir.file_name().unwrap() == "release" {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success(), "cargo build -p shmio-cli");
        let bin = profile_dir.join("shmio");
        assert!(bin.exists(), "{} missing", bin.display());
        bin
    })
}

/// A private directory under /dev/shm for one test's objects, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        static N: AtomicU32 = AtomicU32::new(0);
        let d = PathBuf::from(format!(
            "/dev/shm/shmio-cli-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        Dir(d)
    }
    /// The absolute path of `name` in it, as shmio takes it.
    fn q(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
    fn s(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn shmio_cmd(dir: &Dir, args: &[&str]) -> Command {
    let mut c = Command::new(shmio_bin());
    c.args(args).env("SHMIO_DIR", &dir.0).stdin(Stdio::null());
    c
}

/// Runs `shmio ARGS` with `$SHMIO_DIR` set to `dir`; returns (exit code, stdout, stderr).
fn shmio(dir: &Dir, args: &[&str]) -> (i32, String, String) {
    output(shmio_cmd(dir, args).output().unwrap())
}

fn output(o: Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `shmio ARGS` that must succeed; its stdout.
fn ok(dir: &Dir, args: &[&str]) -> String {
    let (code, out, err) = shmio(dir, args);
    assert_eq!(code, 0, "shmio {args:?}: {err}\n{out}");
    out
}

fn json(dir: &Dir, args: &[&str]) -> Value {
    let out = ok(dir, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("shmio {args:?}: {e}: {out}"))
}

/// The entry named `name` of `shmio ls --json`.
fn listed(dir: &Dir, name: &str) -> Option<Value> {
    json(dir, &["ls", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .cloned()
}

fn producer(q: &str, extra: &str) -> Proc {
    let args = format!("produce {q} --create {extra}");
    Proc::qtool(&common::words(&args)).once("ready", T)
}

fn consumer(q: &str, extra: &str) -> Proc {
    let args = format!("consume {q} --quiet {extra}");
    Proc::qtool(&common::words(&args)).once("opened", T)
}

#[test]
fn ls_and_stat_show_a_live_queue_field_by_field() {
    let d = Dir::new("ls");
    let q = d.q("live");
    let p = producer(
        &q,
        "--slots 64 --size 128 --count 100000000 --interval-us 500",
    );
    let c1 = consumer(&q, "--count 100000000");
    let c2 = consumer(&q, "--count 100000000 --slow-us 2000");
    eventually(T, "two consumers", || {
        shmio::queue::inspect(&q).is_ok_and(|s| s.consumers.len() == 2)
    });

    let e = listed(&d, "live").expect("listed");
    assert_eq!(e["kind"], "queue");
    assert_eq!(e["path"], q.as_str());
    assert_eq!(e["layout_version"], shmio::queue::LAYOUT_VERSION);
    assert_eq!(e["slots"], 64);
    assert_eq!(e["slot_size"], 128);
    assert_eq!(e["policy"], "overwrite");
    assert_eq!(e["max_consumers"], 64);
    assert_eq!(e["producer"]["state"], "alive");
    assert_eq!(e["producer"]["pid"], p.child.id());
    assert_eq!(e["producer"]["generation"], 1);
    assert_eq!(e["consumers"], 2);
    assert_eq!(e["dead_consumers"], 0);
    let len = std::fs::metadata(&q).unwrap().len();
    assert!(e["disk_bytes"].as_u64().unwrap() >= len, "{e}");
    let text = ok(&d, &["ls"]);
    assert!(text.starts_with("KIND"), "{text}");
    let row = text.lines().find(|l| l.contains("live")).unwrap();
    assert!(
        row.contains("64 x 128 B, overwrite")
            && row.contains(&format!("alive pid {} gen 1", p.child.id())),
        "{row}"
    );

    let s = json(&d, &["stat", "live", "--json"]);
    let head = s["head"].as_u64().unwrap();
    assert!(head > 0);
    assert_eq!(s["oldest"].as_u64().unwrap(), (head + 1).saturating_sub(64));
    let cs = s["consumers"].as_array().unwrap();
    assert_eq!(cs.len(), 2);
    let pids: Vec<u64> = cs.iter().map(|c| c["pid"].as_u64().unwrap()).collect();
    assert!(pids.contains(&u64::from(c1.child.id())) && pids.contains(&u64::from(c2.child.id())));
    for c in cs {
        assert_eq!(c["state"], "alive");
        let (pos, lag) = (c["position"].as_u64().unwrap(), c["lag"].as_u64().unwrap());
        assert!(pos + lag >= head && pos <= head + 1000, "{c}");
        assert!(c["received"].is_u64() && c["lost"].is_u64());
    }
    let text = ok(&d, &["stat", &q]);
    for want in [
        "head",
        "oldest",
        "producer   alive",
        "INDEX",
        "LAG",
        "RECEIVED",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    // --watch with --count: that many reports, the head moving.
    let out = ok(
        &d,
        &["stat", "live", "--json", "--watch", "50", "--count", "3"],
    );
    let heads: Vec<u64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["head"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(heads.len(), 3);
    assert!(heads[2] > heads[0], "{heads:?}");

    // top: the queue, with a rate, in plain reports (stdout is no terminal).
    let out = ok(&d, &["top", "--interval", "200", "--count", "2"]);
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("live")).collect();
    assert_eq!(rows.len(), 2, "{out}");
    let rate: f64 = common::words(rows[1])[3].parse().unwrap();
    assert!(rate > 50.0, "{out}");
    assert!(!out.contains("\x1b["), "no ANSI codes when not a terminal");
    drop((p, c1, c2));
}

#[test]
fn gc_removes_what_killed_processes_left_and_keeps_live_and_idle_queues() {
    let d = Dir::new("gc");
    let (killed, live, idle) = (d.q("killed"), d.q("live"), d.q("idle"));
    let mut p = producer(&killed, "--slots 8 --count 100000000 --interval-us 1000");
    let mut c = consumer(&killed, "--count 100000000");
    let _p2 = producer(&live, "--slots 8 --count 100000000 --interval-us 1000");
    drop(Producer::create(&idle, &QueueOptions::new().slots(8)).unwrap());
    // The consumer first: killed after its producer, it would notice the death and exit
    // cleanly before the SIGKILL.
    c.kill9();
    p.kill9();
    let e = listed(&d, "killed").unwrap();
    assert_eq!(e["producer"]["state"], "dead");
    assert_eq!(
        (e["consumers"].as_u64(), e["dead_consumers"].as_u64()),
        (Some(0), Some(1))
    );
    let out = ok(&d, &["stat", "killed"]);
    assert!(
        out.contains("producer   dead") && out.contains("0 live, 1 dead"),
        "{out}"
    );

    let out = ok(&d, &["gc", d.s(), "--dry-run"]);
    assert!(
        out.contains(&format!("would remove queue {killed}")),
        "{out}"
    );
    assert!(Path::new(&killed).exists());
    let out = ok(&d, &["gc"]);
    assert!(out.contains(&format!("removed queue {killed}")), "{out}");
    assert!(!Path::new(&killed).exists());
    assert!(
        Path::new(&live).exists() && Path::new(&idle).exists(),
        "{out}"
    );
    // Idle queues go only when asked; a live one never.
    let out = ok(&d, &["gc", "--all-idle"]);
    assert!(out.contains(&format!("removed queue {idle}")), "{out}");
    assert!(Path::new(&live).exists() && !Path::new(&idle).exists());
    // Regions are left alone, and gc says so.
    let _r = Region::create(&d.q("reg"), 4096, &RegionOptions::new()).unwrap();
    let out = ok(&d, &["gc", "--all-idle"]);
    assert!(out.contains("left 1 regions alone"), "{out}");
    assert!(Path::new(&d.q("reg")).exists());
}

/// Spawns `shmio tail ARGS`, stdout and stderr piped.
fn tail(d: &Dir, args: &[&str]) -> std::process::Child {
    let mut all = vec!["tail"];
    all.extend_from_slice(args);
    shmio_cmd(d, &all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: std::process::Child) -> (i32, String, String) {
    let deadline = Instant::now() + T;
    let out = child.wait_with_output().unwrap();
    assert!(Instant::now() < deadline);
    output(out)
}

#[test]
fn tail_prints_exactly_the_records_sent_as_text_and_hex() {
    let d = Dir::new("tail");
    let q = d.q("t");
    let mut tx = Producer::create(&q, &QueueOptions::new().slots(64).slot_size(32)).unwrap();
    let text = tail(&d, &["t", "--from", "oldest", "--count", "4"]);
    let hex = tail(
        &d,
        &[
            "t", "--from", "oldest", "--count", "4", "--format", "hex", "--seq",
        ],
    );
    let len = tail(
        &d,
        &["t", "--from", "oldest", "--count", "4", "--format", "len"],
    );
    let recs: [&[u8]; 4] = [b"hello", b"tab\there", b"\x00\xff", b"last one\0\0"];
    for r in recs {
        tx.send(r).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, out, err) = finish(text);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hello\ntab\\there\n\\0\u{fffd}\nlast one\n");
    assert!(err.contains("4 records received, 0 lost"), "{err}");
    let (code, out, _) = finish(hex);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "0 68656c6c6f\n1 7461620968657265\n2 00ff\n3 6c617374206f6e650000\n"
    );
    assert_eq!(finish(len).1, "5\n8\n2\n10\n");
    // From newest: only what comes after it opened.
    let newest = tail(&d, &["t", "--count", "1"]);
    std::thread::sleep(Duration::from_millis(300));
    tx.send(b"after").unwrap();
    assert_eq!(finish(newest).1, "after\n");
    // Not a queue: an error.
    let _r = Region::create(&d.q("r"), 100, &RegionOptions::new()).unwrap();
    let (code, _, err) = shmio(&d, &["tail", "r"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a queue"), "{err}");
}

#[test]
fn tail_never_slows_a_back_pressure_producer() {
    let d = Dir::new("tailbp");
    let q = d.q("bp");
    let opts = QueueOptions::new()
        .slots(16)
        .slot_size(64)
        .policy(Policy::BackPressure);
    let mut tx = Producer::create(&q, &opts).unwrap();
    // Into files: a pipe that nobody reads during the run would fill and stop tail.
    let (out_path, err_path) = (d.0.join("tail.out"), d.0.join("tail.err"));
    let mut t = shmio_cmd(&d, &["tail", "bp", "--from", "oldest", "--format", "len"])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // The ring is 16 slots: a tail that held a consumer slot would stop this at record 16.
    let start = Instant::now();
    for i in 0u32..100_000 {
        tx.try_send(&i.to_le_bytes())
            .unwrap_or_else(|e| panic!("record {i}: {e}"));
    }
    let took = start.elapsed();
    let s = shmio::queue::inspect(&q).unwrap();
    assert_eq!((s.head, s.consumers.len()), (100_000, 0));
    let out = json(&d, &["stat", "bp", "--json"]);
    assert_eq!(out["consumers"].as_array().unwrap().len(), 0);
    assert!(t.try_wait().unwrap().is_none(), "tail still runs");
    // A few more, slowly, that tail surely sees.
    for _ in 0..5 {
        tx.send(&[0u8; 7]).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(t.id() as i32, libc::SIGINT) };
    t.wait().unwrap();
    let out = std::fs::read_to_string(&out_path).unwrap();
    let err = std::fs::read_to_string(&err_path).unwrap();
    // Every record is either printed or reported lost, exactly once.
    assert_eq!(out.lines().filter(|l| *l == "7").count(), 5, "{err}");
    let printed = out.lines().filter(|l| *l == "4").count() as u64;
    let lost: u64 = err
        .lines()
        .filter_map(|l| l.strip_prefix("shmio tail: lost "))
        .map(|l| common::words(l)[0].parse::<u64>().unwrap())
        .sum();
    assert_eq!(printed + lost, 100_000, "{err}");
    eprintln!("100000 back-pressure sends with tail attached: {took:?}");
}

#[test]
fn stat_and_ls_show_a_region() {
    let d = Dir::new("region");
    let path = d.q("reg");
    let r = Region::create(&path, 10_000, &RegionOptions::new()).unwrap();
    r.write(0, b"abc").unwrap();
    r.write(10, b"def").unwrap();
    let _claim = r.claim_writer().unwrap();
    let s = json(&d, &["stat", "reg", "--json"]);
    assert_eq!(s["kind"], "region");
    assert_eq!(s["size"], 10_000);
    assert_eq!(s["version"], 2);
    assert_eq!(s["torn"], Value::Null);
    assert_eq!(s["torn_writes"], 0);
    assert_eq!(s["write_in_progress"], false);
    assert_eq!(s["writer"]["state"], "alive");
    assert_eq!(s["writer"]["pid"], std::process::id());
    assert_eq!(s["lock"]["state"], "free");
    let text = ok(&d, &["stat", &path]);
    assert!(
        text.contains("version    2") && text.contains("torn       none"),
        "{text}"
    );
    let e = listed(&d, "reg").unwrap();
    assert_eq!(
        (e["kind"].as_str(), e["size"].as_u64()),
        (Some("region"), Some(10_000))
    );
    assert!(ok(&d, &["ls"]).contains("version 2"));
}

#[test]
fn rm_removes_shmio_objects_only() {
    let d = Dir::new("rm");
    drop(Producer::create(&d.q("q"), &QueueOptions::new().slots(4)).unwrap());
    drop(Region::create(&d.q("r"), 100, &RegionOptions::new()).unwrap());
    std::fs::write(d.q("notes.txt"), b"not a queue").unwrap();
    let (code, _, err) = shmio(&d, &["rm", "notes.txt"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a shmio queue or region"), "{err}");
    assert!(Path::new(&d.q("notes.txt")).exists());
    let (code, _, err) = shmio(&d, &["rm", "missing"]);
    assert_eq!(code, 3, "{err}");
    let out = ok(&d, &["rm", "q", &d.q("r")]);
    assert!(
        out.contains("removed queue") && out.contains("removed region"),
        "{out}"
    );
    assert!(!Path::new(&d.q("q")).exists() && !Path::new(&d.q("r")).exists());
    // Not a shmio file: ls skips it silently.
    assert_eq!(json(&d, &["ls", "--json"]), Value::Array(vec![]));
    // Usage errors exit with 2.
    assert_eq!(shmio(&d, &["rm"]).0, 2);
    assert_eq!(shmio(&d, &["frobnicate"]).0, 2);
}

#[test]
fn doctor_prints_every_line() {
    let d = Dir::new("doctor");
    let out = ok(&d, &["doctor"]);
    let keys = [
        "shm_dir",
        "kernel",
        "futex_waitv",
        "membarrier",
        "seccomp",
        "rlimit_sigpending",
        "rlimit_memlock",
        "pid_namespace",
    ];
    for k in keys {
        assert!(out.lines().any(|l| l.starts_with(k)), "{k}: {out}");
    }
    assert_eq!(
        out.matches("-> ").count(),
        keys.len(),
        "each with its meaning"
    );
    assert!(out.contains(d.s()), "the directory in use: {out}");
    let j = json(&d, &["doctor", "--json"]);
    for k in keys {
        assert!(
            j[k]["meaning"].is_string() && j[k]["text"].is_string(),
            "{k}"
        );
    }
    assert!(j["kernel"]["value"].as_str().unwrap().contains('.'));
    assert!(j["shm_dir"]["value"]["free_bytes"].is_u64());
}

/// `program ARGS` as user and group `nobody` (65534), with `$SHMIO_DIR` set to `dir`.
fn as_nobody(dir: &Dir, program: &Path, args: &[&str]) -> (i32, String, String) {
    let mut c = Command::new(program);
    c.args(args).env("SHMIO_DIR", &dir.0);
    // SAFETY: only async-signal-safe calls (setgroups, setgid, setuid) between fork and exec.
    unsafe {
        c.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    output(c.output().unwrap())
}

#[test]
fn the_read_only_subcommands_need_read_access_only() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run a child as another user");
        return;
    }
    let d = Dir::new("ro");
    let q = d.q("ro");
    let mut tx = Producer::create(&q, &QueueOptions::new().slots(16).slot_size(16)).unwrap();
    for r in [b"one", b"two"] {
        tx.send(r).unwrap();
    }
    let r = Region::create(&d.q("reg"), 100, &RegionOptions::new()).unwrap();
    r.write(0, b"x").unwrap();
    for f in [&q, &d.q("reg")] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    let bin = shmio_bin();
    let (code, out, err) = as_nobody(&d, bin, &["ls", "--json"]);
    assert_eq!(code, 0, "{err}");
    let all: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2, "{out}");
    assert!(
        all[0]["error"].is_null() && all[1]["error"].is_null(),
        "{out}"
    );
    let (code, out, err) = as_nobody(&d, bin, &["stat", "ro", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["head"], 2);
    let (code, out, err) = as_nobody(&d, bin, &["stat", "reg"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("version    1"), "{out}");
    let (code, out, err) = as_nobody(&d, bin, &["tail", "ro", "--from", "oldest", "--count", "2"]);
    assert_eq!((code, out.as_str()), (0, "one\ntwo\n"), "{err}");
    let (code, out, _) = as_nobody(&d, bin, &["top", "--interval", "10", "--count", "1"]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.starts_with("ro ")), "{out}");
    // Opening to join needs write access: refused.
    let (code, _, err) = as_nobody(&d, Path::new(qtool()), &["consume", &q, "--from", "oldest"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.to_lowercase().contains("permission"), "{err}");
    // rm needs to write the directory: refused, with its own exit status.
    let (code, _, err) = as_nobody(&d, bin, &["rm", "ro"]);
    assert_eq!(code, 4, "{err}");
    assert!(Path::new(&q).exists());
}

#[test]
fn corrupt_and_truncated_files_are_errors_not_crashes() {
    let d = Dir::new("corrupt");
    let (q, r) = (d.q("q"), d.q("r"));
    drop(Producer::create(&q, &QueueOptions::new().slots(4)).unwrap());
    drop(Region::create(&r, 100, &RegionOptions::new()).unwrap());
    let old = d.q("old");
    drop(Producer::create(&old, &QueueOptions::new().slots(4)).unwrap());
    // Another layout version: listed as such, refused by stat.
    common::scribble(Path::new(&old), 8, &2u32.to_le_bytes());
    for f in [&q, &r] {
        std::fs::OpenOptions::new()
            .write(true)
            .open(f)
            .unwrap()
            .set_len(200)
            .unwrap();
    }
    for name in ["q", "r"] {
        let (code, out, err) = shmio(&d, &["stat", name]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            err.starts_with("shmio: ") && err.contains("corrupt"),
            "{err}"
        );
    }
    let (code, _, err) = shmio(&d, &["tail", "q"]);
    assert_eq!(code, 1, "{err}");
    let all = json(&d, &["ls", "--json"]);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3);
    for e in all {
        assert!(e["error"].is_string(), "{e}");
    }
    let e = all.iter().find(|e| e["name"] == "old").unwrap();
    assert_eq!(e["layout_version"], 2);
    assert!(
        e["error"].as_str().unwrap().contains("layout version 2"),
        "{e}"
    );
    let (code, _, err) = shmio(&d, &["stat", "old"]);
    assert_eq!(code, 1);
    assert!(err.contains("layout version 2"), "{err}");
    // gc keeps what it cannot read; top skips it.
    assert!(!ok(&d, &["gc", "--all-idle"]).contains("removed"));
    ok(&d, &["top", "--interval", "10", "--count", "1"]);
    // A file shorter than the magic, or with garbage: not a shmio object.
    std::fs::write(d.q("short"), b"SHMIO").unwrap();
    assert_eq!(json(&d, &["ls", "--json"]).as_array().unwrap().len(), 3);
}
