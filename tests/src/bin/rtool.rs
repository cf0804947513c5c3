//! `shmio-rtool`: a region peer for the multi-process tests.
//!
//! ```text
//! shmio-rtool create NAME SIZE            create the region (SIZE bytes) -> "created"
//! shmio-rtool writer NAME ID SLOTS        checksummed 1 KiB records into slots 1..=SLOTS until
//!                                         the stop word (bytes 0..8) is non-zero
//! shmio-rtool reader NAME SLOTS READS     READS consistent reads of random slots, verified
//! shmio-rtool waiter NAME SEEN MS         wait_changed(SEEN, MS) -> "changed V" / "timeout"
//! shmio-rtool die-mid-write NAME OFF LEN HOLD_MS
//!                                         write_with: fill half the range, print "half",
//!                                         sleep HOLD_MS holding the lock, then SIGKILL itself
//! shmio-rtool fork-hold NAME HOLD_MS      fork; the child holds the lock HOLD_MS, the parent
//!                                         writes meanwhile -> "waited MS child STATUS"
//! shmio-rtool write NAME OFF BYTE LEN     one consistent write -> "wrote V"
//! shmio-rtool read NAME OFF LEN           one consistent read -> "ok B0" / "torn OFF LEN"
//! shmio-rtool scribble PATH OFF MS        writes random u32s at file offset OFF for MS ms, as
//!                                         a hostile peer would (plain file writes) -> "done N"
//! ```
//! Every result goes to stdout, one line each; errors exit with status 2.

use std::io::Write;
use std::time::{Duration, Instant};

use shmio::region::{Error, Region, RegionOptions};
use shmio_tests::{REC, check_slot_record, fill_slot_record};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("shmio-rtool: {e}");
        std::process::exit(2);
    }
}

fn num(s: Option<&String>, what: &str) -> Result<u64, String> {
    s.ok_or_else(|| format!("missing {what}"))?
        .parse()
        .map_err(|_| format!("bad {what}"))
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn run(args: &[String]) -> Result<(), String> {
    let cmd = args.first().ok_or("usage: see the source")?;
    let name = args.get(1).ok_or("missing NAME")?;
    if cmd == "scribble" {
        use std::os::unix::fs::FileExt;
        let off = num(args.get(2), "OFF")?;
        let ms = num(args.get(3), "MS")?;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(name)
            .map_err(|e| e.to_string())?;
        let until = Instant::now() + Duration::from_millis(ms);
        let (mut n, mut x) = (0u64, 0x9e37_79b9u32);
        while Instant::now() < until {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            f.write_all_at(&x.to_le_bytes(), off)
                .map_err(|e| e.to_string())?;
            n += 1;
        }
        say(&format!("done {n}"));
        return Ok(());
    }
    if cmd == "create" {
        let size = num(args.get(2), "SIZE")?;
        Region::create(name, size, &RegionOptions::new()).map_err(|e| e.to_string())?;
        say("created");
        return Ok(());
    }
    let r = Region::open(name, &RegionOptions::new()).map_err(|e| e.to_string())?;
    let e = |e: Error| e.to_string();
    match cmd.as_str() {
        "writer" => {
            let id = num(args.get(2), "ID")?;
            let slots = num(args.get(3), "SLOTS")?;
            let mut rec = vec![0u8; REC];
            let mut stop = [0u8; 8];
            let mut n = 0u64;
            say("writing");
            loop {
                if n & 63 == 0 {
                    r.read(0, &mut stop).map_err(e)?;
                    if stop != [0; 8] {
                        break;
                    }
                }
                let slot = 1 + (n % slots);
                fill_slot_record(&mut rec, id, n);
                r.write(slot * REC as u64, &rec).map_err(e)?;
                n += 1;
            }
            say(&format!("writes {n}"));
        }
        "reader" => {
            let slots = num(args.get(2), "SLOTS")?;
            let reads = num(args.get(3), "READS")?;
            let mut rec = vec![0u8; REC];
            let (mut bad, mut empty, mut good) = (0u64, 0u64, 0u64);
            let mut writers_seen = std::collections::BTreeSet::new();
            let mut x = u64::from(std::process::id()) | 1;
            let start = Instant::now();
            for _ in 0..reads {
                // xorshift: a cheap random slot.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let slot = 1 + x % slots;
                r.read(slot * REC as u64, &mut rec).map_err(e)?;
                match check_slot_record(&rec) {
                    Some(Some(w)) => {
                        good += 1;
                        writers_seen.insert(w);
                    }
                    Some(None) => empty += 1,
                    None => bad += 1,
                }
            }
            say(&format!(
                "reads {reads} good {good} empty {empty} bad {bad} writers {} ms {}",
                writers_seen.len(),
                start.elapsed().as_millis()
            ));
        }
        "waiter" => {
            let seen = num(args.get(2), "SEEN")?;
            let ms = num(args.get(3), "MS")?;
            say("waiting");
            match r.wait_changed(seen, Some(Duration::from_millis(ms))) {
                Ok(v) => say(&format!("changed {v}")),
                Err(Error::Timeout) => say("timeout"),
                Err(x) => return Err(x.to_string()),
            }
        }
        "fork-hold" => {
            // One handle shared by a parent and its forked child (the same open file
            // description): the child holds the lock for HOLD_MS, the parent writes meanwhile
            // and reports how long it waited: it must not take the lock from its live child.
            let hold = num(args.get(2), "HOLD_MS")?;
            r.write(0, &[1]).map_err(|e| e.to_string())?;
            // SAFETY: fork(2); the child only uses the region handle, then _exit(2)s. The
            // parent has one other thread (the lock keeper), asleep on a futex.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let res = r.write_with(8, 8, |mut b| {
                    b.fill(2);
                    say("child-holds");
                    std::thread::sleep(Duration::from_millis(hold));
                });
                // SAFETY: _exit(2) ends the child without running the parent's destructors.
                unsafe { libc::_exit(if res.is_ok() { 0 } else { 3 }) };
            }
            std::thread::sleep(Duration::from_millis(50));
            let t = Instant::now();
            r.write(100, &[3]).map_err(|e| e.to_string())?;
            let waited = t.elapsed().as_millis();
            let mut status = 0;
            // SAFETY: waitpid on our own child with a valid status pointer.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            say(&format!(
                "waited {waited} child {}",
                libc::WEXITSTATUS(status)
            ));
        }
        "die-mid-write" => {
            let off = num(args.get(2), "OFF")?;
            let len = num(args.get(3), "LEN")?;
            let hold = num(args.get(4), "HOLD_MS")?;
            r.write_with(off, len, |mut buf| {
                let half = buf.len() / 2;
                buf.copy_from(&vec![0xEE; half]);
                say("half");
                std::thread::sleep(Duration::from_millis(hold));
                // SAFETY: kill(2) on our own pid; the process ends here.
                unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
                std::thread::sleep(Duration::from_secs(60));
            })
            .map_err(e)?;
            return Err("survived SIGKILL".into());
        }
        "write" => {
            let off = num(args.get(2), "OFF")?;
            let byte = num(args.get(3), "BYTE")? as u8;
            let len = num(args.get(4), "LEN")?;
            let v = r.write(off, &vec![byte; len as usize]).map_err(e)?;
            say(&format!("wrote {v}"));
        }
        "read" => {
            let off = num(args.get(2), "OFF")?;
            let len = num(args.get(3), "LEN")?;
            let mut buf = vec![0u8; len as usize];
            match r.read(off, &mut buf) {
                Ok(_) => say(&format!("ok {}", buf.first().copied().unwrap_or(0))),
                Err(Error::Torn { offset, len }) => say(&format!("torn {offset} {len}")),
                Err(x) => return Err(x.to_string()),
            }
        }
        other => return Err(format!("unknown command {other}")),
    }
    Ok(())
}
