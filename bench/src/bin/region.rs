//! `shmio-region-bench`: the region against its baselines, in one run, as ratios.
//!
//! 1. The note's test: 4 MiB, 1 KiB `memcpy` reads then writes per pass, on a region (tmpfs,
//!    and an `O_SYNC` file on a disk file system) against `malloc`ed memory. Passes alternate
//!    between the two (in alternating order) so that machine noise hits both alike; medians
//!    are reported.
//! 2. Consistent 1 KiB `read`/`write` against raw `memcpy` on the same region: the fraction of
//!    raw bandwidth kept.
//! 3. Change notification across two processes (ping-pong through `write` + `wait_changed`)
//!    against a raw futex ping-pong on a shared word, one-way latency (round trip / 2).
//! 4. `flush` (msync `MS_SYNC`) cost per MiB dirtied, on a disk file system.
//!
//! ```text
//! shmio-region-bench [--dir DISK_DIR] [--passes N] [--rounds N]
//! ```
//! `DISK_DIR` defaults to `target/` next to the binary (must not be tmpfs for 1 and 4).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmio::region::{self, Region, RegionOptions};

const SIZE: usize = 4 << 20;
const CHUNK: usize = 1024;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One pass of the note's loop on `mem`: (read seconds, write seconds).
fn raw_pass(mem: *mut u8, buf: &mut [u8; CHUNK], fill: u8) -> (f64, f64) {
    let t0 = Instant::now();
    for i in (0..SIZE).step_by(CHUNK) {
        // SAFETY: `mem` is valid for SIZE bytes (a mapping or allocation of at least that
        // size, alive for the call) and does not overlap `buf`.
        unsafe { std::ptr::copy_nonoverlapping(mem.add(i), buf.as_mut_ptr(), CHUNK) };
        black_box(&mut *buf);
    }
    let r = t0.elapsed().as_secs_f64();
    buf.fill(fill);
    let t1 = Instant::now();
    for i in (0..SIZE).step_by(CHUNK) {
        black_box(&mut *buf);
        // SAFETY: as above.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), mem.add(i), CHUNK) };
    }
    black_box(mem);
    (r, t1.elapsed().as_secs_f64())
}

fn consistent_pass(r: &Region, buf: &mut [u8; CHUNK], fill: u8) -> (f64, f64) {
    let t0 = Instant::now();
    for i in (0..SIZE).step_by(CHUNK) {
        r.read(i as u64, buf).unwrap();
        black_box(&mut *buf);
    }
    let rd = t0.elapsed().as_secs_f64();
    buf.fill(fill);
    let t1 = Instant::now();
    for i in (0..SIZE).step_by(CHUNK) {
        r.write(i as u64, buf).unwrap();
    }
    (rd, t1.elapsed().as_secs_f64())
}

struct Table(Vec<[String; 4]>);
impl Table {
    fn row(&mut self, what: &str, shmio: String, base: String, ratio: String) {
        self.0.push([what.into(), shmio, base, ratio]);
    }
}

/// Region vs malloc, raw, alternating passes.
fn raw_vs_malloc(t: &mut Table, label: &str, r: &Region, passes: usize) {
    // Page aligned, like the mapping.
    let layout = std::alloc::Layout::from_size_align(SIZE, 4096).unwrap();
    // SAFETY: a non-zero-size layout.
    let heap = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!heap.is_null());
    let mut buf = [0u8; CHUNK];
    // Touch both once, untimed.
    raw_pass(r.as_ptr(), &mut buf, 1);
    raw_pass(heap, &mut buf, 1);
    let (mut rr, mut rw, mut hr, mut hw) = (vec![], vec![], vec![], vec![]);
    for p in 0..passes {
        // Alternate which goes first, so that order effects cancel.
        let ((a, b), (c, d)) = if p % 2 == 0 {
            let x = raw_pass(r.as_ptr(), &mut buf, p as u8);
            (x, raw_pass(heap, &mut buf, p as u8))
        } else {
            let y = raw_pass(heap, &mut buf, p as u8);
            (raw_pass(r.as_ptr(), &mut buf, p as u8), y)
        };
        rr.push(a);
        rw.push(b);
        hr.push(c);
        hw.push(d);
    }
    // SAFETY: allocated above with this layout, not used after.
    unsafe { std::alloc::dealloc(heap, layout) };
    let (rr, rw, hr, hw) = (
        median(&mut rr),
        median(&mut rw),
        median(&mut hr),
        median(&mut hw),
    );
    t.row(
        &format!("raw read, 4 MiB in 1 KiB memcpy: {label} / malloc"),
        format!("{:.1} µs", rr * 1e6),
        format!("{:.1} µs", hr * 1e6),
        format!("{:.2}", rr / hr),
    );
    t.row(
        &format!("raw write, 4 MiB in 1 KiB memcpy: {label} / malloc"),
        format!("{:.1} µs", rw * 1e6),
        format!("{:.1} µs", hw * 1e6),
        format!("{:.2}", rw / hw),
    );
}

fn consistent_vs_raw(t: &mut Table, r: &Region, passes: usize) {
    let mut buf = [0u8; CHUNK];
    let (mut cr, mut cw, mut rr, mut rw) = (vec![], vec![], vec![], vec![]);
    for p in 0..passes {
        let ((a, b), (c, d)) = if p % 2 == 0 {
            let x = consistent_pass(r, &mut buf, p as u8);
            (x, raw_pass(r.as_ptr(), &mut buf, p as u8))
        } else {
            let y = raw_pass(r.as_ptr(), &mut buf, p as u8);
            (consistent_pass(r, &mut buf, p as u8), y)
        };
        cr.push(a);
        cw.push(b);
        rr.push(c);
        rw.push(d);
    }
    let (cr, cw, rr, rw) = (
        median(&mut cr),
        median(&mut cw),
        median(&mut rr),
        median(&mut rw),
    );
    let gbs = |s: f64| format!("{:.1} GB/s", SIZE as f64 / s / 1e9);
    t.row(
        "consistent 1 KiB read vs raw memcpy (fraction of bandwidth)",
        gbs(cr),
        gbs(rr),
        format!("{:.2}", rr / cr),
    );
    t.row(
        "consistent 1 KiB write vs raw memcpy (fraction of bandwidth)",
        gbs(cw),
        gbs(rw),
        format!("{:.2}", rw / cw),
    );
}

// ---- change notification ------------------------------------------------------------------

/// A raw futex word in a shared file mapping, for the baseline.
struct RawWord {
    region: Region,
}

impl RawWord {
    fn word(&self) -> &AtomicU32 {
        // SAFETY: the region's data is page aligned, at least 4 bytes, shared, and only used
        // as this atomic by the two processes of the baseline.
        unsafe { &*(self.region.as_ptr() as *const AtomicU32) }
    }
    fn wait(&self, expected: u32) {
        // SAFETY: a live, aligned 32-bit word; FUTEX_WAIT (shared) reads it only.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word().as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                std::ptr::null::<libc::timespec>(),
            )
        };
    }
    fn wake(&self) {
        // SAFETY: a live, aligned 32-bit word; FUTEX_WAKE does not dereference the rest.
        unsafe { libc::syscall(libc::SYS_futex, self.word().as_ptr(), libc::FUTEX_WAKE, 1) };
    }
    /// Sets the word to `v`, wakes the peer, sleeps until the peer moves it past `v`.
    fn ping(&self, v: u32) {
        self.word().store(v, Ordering::SeqCst);
        self.wake();
        while self.word().load(Ordering::SeqCst) == v {
            // Sleeps only while the word still holds `v` (checked by the kernel).
            self.wait(v);
        }
    }
}

/// Child side: `--pong MODE NAME ROUNDS`.
fn pong(mode: &str, name: &str, rounds: u32) {
    let region = Region::open(name, &RegionOptions::new()).unwrap();
    match mode {
        "futex" => {
            let w = RawWord { region };
            // Odd values are the parent's, even ones ours.
            for i in 0..rounds {
                let theirs = 2 * i + 1;
                loop {
                    let cur = w.word().load(Ordering::SeqCst);
                    if cur == theirs {
                        break;
                    }
                    w.wait(cur);
                }
                w.word().store(theirs + 1, Ordering::SeqCst);
                w.wake();
            }
        }
        _ => {
            let mut seen = region.version();
            for _ in 0..rounds {
                region.wait_changed(seen, None).unwrap();
                seen = region.write(64, &[1]).unwrap();
            }
        }
    }
}

fn ping_pong(mode: &str, rounds: u32) -> f64 {
    let name = format!("shmio-bench-pp-{mode}-{}", std::process::id());
    let region = Region::create(&name, 4096, &RegionOptions::new()).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--pong", mode, &name, &rounds.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let start;
    match mode {
        "futex" => {
            let w = RawWord { region };
            start = Instant::now();
            for i in 0..rounds {
                w.ping(2 * i + 1);
            }
        }
        _ => {
            start = Instant::now();
            for _ in 0..rounds {
                let v = region.write(0, &[1]).unwrap();
                region.wait_changed(v, None).unwrap();
            }
        }
    }
    let per_round = start.elapsed().as_secs_f64() / f64::from(rounds);
    child.wait().unwrap();
    let _ = region::unlink(&name);
    per_round / 2.0
}

fn notification(t: &mut Table, rounds: u32) {
    let (mut s, mut b) = (vec![], vec![]);
    for _ in 0..3 {
        s.push(ping_pong("region", rounds));
        b.push(ping_pong("futex", rounds));
    }
    let (s, b) = (median(&mut s), median(&mut b));
    t.row(
        "change notification, one way across processes (write + wait_changed vs raw futex)",
        format!("{:.1} µs", s * 1e6),
        format!("{:.1} µs", b * 1e6),
        format!("{:.2}", s / b),
    );
}

fn flush_cost(t: &mut Table, dir: &Path) {
    let path = dir.join(format!("shmio-bench-flush-{}.region", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let r = Region::create(path.to_str().unwrap(), 16 << 20, &RegionOptions::new()).unwrap();
    let chunk = vec![7u8; 1 << 20];
    for mib in [1u64, 4, 16] {
        let mut v = vec![];
        for round in 0..3u8 {
            for i in 0..mib {
                r.write_with(i << 20, 1 << 20, |mut b| {
                    b.copy_from(&chunk);
                    b.set(0, round);
                })
                .unwrap();
            }
            let t0 = Instant::now();
            r.flush(0, mib << 20).unwrap();
            v.push(t0.elapsed().as_secs_f64() / mib as f64);
        }
        let per = median(&mut v);
        t.row(
            &format!("flush (msync MS_SYNC) of {mib} MiB dirtied, per MiB"),
            format!("{:.2} ms", per * 1e3),
            "-".into(),
            "-".into(),
        );
    }
    drop(r);
    let _ = std::fs::remove_file(&path);
}

fn fs_name(dir: &Path) -> String {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: an all-zero statfs is a valid value to be overwritten.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a writable statfs.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return "?".into();
    }
    match st.f_type as i64 {
        0xEF53 => "ext4".into(),
        0x0102_1994 => "tmpfs".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        x => format!("fs {x:#x}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--pong") {
        pong(&args[2], &args[3], args[4].parse().unwrap());
        return;
    }
    let mut dir: PathBuf = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut passes = 200usize;
    let mut rounds = 20_000u32;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => dir = PathBuf::from(it.next().expect("--dir DIR")),
            "--passes" => passes = it.next().expect("--passes N").parse().unwrap(),
            "--rounds" => rounds = it.next().expect("--rounds N").parse().unwrap(),
            _ => {
                eprintln!("usage: shmio-region-bench [--dir DISK_DIR] [--passes N] [--rounds N]");
                std::process::exit(2);
            }
        }
    }
    let mut t = Table(vec![]);

    let tmpfs_name = format!("shmio-bench-tmpfs-{}", std::process::id());
    let r = Region::create(&tmpfs_name, SIZE as u64, &RegionOptions::new()).unwrap();
    raw_vs_malloc(&mut t, "tmpfs region", &r, passes);
    consistent_vs_raw(&mut t, &r, passes / 4);
    drop(r);
    let _ = region::unlink(&tmpfs_name);

    let fsname = fs_name(&dir);
    let disk = dir.join(format!("shmio-bench-sync-{}.region", std::process::id()));
    let _ = std::fs::remove_file(&disk);
    let r = Region::create(
        disk.to_str().unwrap(),
        SIZE as u64,
        &RegionOptions::new().o_sync(true),
    )
    .unwrap();
    raw_vs_malloc(&mut t, &format!("O_SYNC {fsname} region"), &r, passes);
    drop(r);
    let _ = std::fs::remove_file(&disk);

    notification(&mut t, rounds);
    flush_cost(&mut t, &dir);

    println!("| measurement | shmio | baseline | ratio |");
    println!("|---|---:|---:|---:|");
    for [a, b, c, d] in &t.0 {
        println!("| {a} | {b} | {c} | {d} |");
    }
    println!(
        "\n(disk directory {} on {fsname}; medians of {passes} alternating passes; ping-pong \
         {rounds} round trips x3)",
        dir.display()
    );
}
