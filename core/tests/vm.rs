//! `shmio::vm` against the kernel's own files.

use std::io::Write;

use shmio::vm::{self, Knob};

fn proc_value(k: Knob) -> u64 {
    std::fs::read_to_string(format!("/proc/sys/vm/{}", k.name()))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn knobs_equal_proc_sys_vm() {
    let k = vm::knobs().unwrap();
    for knob in Knob::ALL {
        assert_eq!(k.get(knob), proc_value(knob), "{}", knob.name());
        assert_eq!(vm::knob(knob).unwrap(), proc_value(knob));
    }
}

#[test]
fn thresholds_are_close_to_the_kernels() {
    let t = vm::thresholds().unwrap();
    let k = vm::knobs().unwrap();
    println!("{t:?}");
    assert!(t.background_bytes < t.dirty_bytes);
    if k.dirty_bytes != 0 {
        assert_eq!(t.dirty_bytes, k.dirty_bytes.div_ceil(4096) * 4096);
    } else {
        assert!(t.dirty_bytes <= t.dirtyable_bytes * k.dirty_ratio / 100);
        assert!(t.dirty_bytes >= t.dirtyable_bytes * k.dirty_ratio / 100 * 99 / 100);
    }
    // The kernel subtracts its reserve (not exported) from dirtyable memory, so its figures
    // are a little lower; memory also moves between the two reads.
    if let (Some(kb), Some(kd)) = (t.kernel_background_bytes, t.kernel_dirty_bytes) {
        for (ours, kernel) in [(t.background_bytes, kb), (t.dirty_bytes, kd)] {
            assert!(
                ours >= kernel * 9 / 10 && ours <= kernel * 115 / 100,
                "ours {ours} vs kernel {kernel}"
            );
        }
    }
}

#[test]
fn system_dirty_reads_meminfo() {
    let s = vm::system().unwrap();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    assert!(meminfo.contains("Dirty:") && meminfo.contains("Writeback:"));
    // Both are page multiples expressed in kB.
    assert_eq!(s.dirty_bytes % 4096, 0, "{s:?}");
    assert_eq!(s.writeback_bytes % 4096, 0, "{s:?}");
}

#[test]
fn file_cache_of_a_written_file() {
    let dir = env!("CARGO_TARGET_TMPDIR");
    let path = std::path::Path::new(dir).join(format!("vm-file-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&vec![1u8; 1 << 20]).unwrap();
    let res = vm::file_cache(&path);
    match res {
        Ok(c) => {
            println!("{c:?}");
            assert_eq!(c.cached, 256, "1 MiB just written is all cached");
            assert!(c.dirty + c.writeback <= 256);
            f.sync_all().unwrap();
            let c = vm::file_cache(&path).unwrap();
            assert_eq!((c.dirty, c.writeback), (0, 0), "after fsync: {c:?}");
        }
        Err(vm::Error::Unsupported(m)) => println!("skipped: {m}"),
        Err(e) => panic!("{e}"),
    }
    let _ = std::fs::remove_file(&path);
    match vm::file_cache("/nonexistent/shmio") {
        Err(e @ vm::Error::NotFound(_)) => {
            assert_eq!(e.kind(), shmio::ErrorKind::NotFound);
            assert_eq!(e.to_string(), "no such file: /nonexistent/shmio");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn set_knob_returns_the_old_value() {
    // Writes the current value back, so the (shared) machine's settings do not change.
    let k = Knob::DirtyExpireCentisecs;
    let cur = proc_value(k);
    match vm::set_knob(k, cur) {
        Ok(old) => {
            assert_eq!(old, cur);
            assert_eq!(proc_value(k), cur);
        }
        Err(vm::Error::PermissionDenied(_)) => println!("skipped: not permitted to set knobs"),
        Err(vm::Error::Io(e)) if e.raw_os_error() == Some(libc::EROFS) => {
            println!("skipped: /proc/sys is read-only here")
        }
        Err(e) => panic!("{e}"),
    }
    assert!(matches!(
        vm::set_knob(Knob::DirtyRatio, 101),
        Err(vm::Error::InvalidArgument(_))
    ));
}
