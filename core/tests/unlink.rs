//! `queue::unlink` and `region::unlink` remove only the kind of file they name (issue 11, item
//! 4): anything else at the path is refused with `Corrupt` and left alone.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use shmio::queue::{self, Consumer, Producer, QueueOptions, Start};
use shmio::region::{self, Region, RegionOptions};

/// A fresh directory on /dev/shm, removed with its contents on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        static N: AtomicU32 = AtomicU32::new(0);
        let d = PathBuf::from(format!(
            "/dev/shm/shmio-unlink-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&d).unwrap();
        Dir(d)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn exists(p: &str) -> bool {
    Path::new(p).symlink_metadata().is_ok()
}

fn make_queue(p: &str) {
    drop(Producer::create(p, &QueueOptions::new().slots(4).slot_size(16)).unwrap());
}

fn make_region(p: &str) {
    drop(Region::create(p, 4096, &RegionOptions::new()).unwrap());
}

/// `Corrupt`, naming the path and saying `why`.
fn queue_refused(e: queue::Error, p: &str, why: &str) {
    match e {
        queue::Error::Corrupt(m) => {
            assert!(m.contains(p) && m.contains("not a shmio queue file"), "{m}");
            assert!(m.contains(why), "{m}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

fn region_refused(e: region::Error, p: &str, why: &str) {
    match e {
        region::Error::Corrupt(m) => {
            assert!(
                m.contains(p) && m.contains("not a shmio region file"),
                "{m}"
            );
            assert!(m.contains(why), "{m}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn queue_unlink_refuses_a_region_and_region_unlink_a_queue() {
    let d = Dir::new("kinds");
    let (q, r) = (d.path("q"), d.path("r"));
    make_queue(&q);
    make_region(&r);
    queue_refused(queue::unlink(&r).unwrap_err(), &r, "it is a shmio region");
    region_refused(region::unlink(&q).unwrap_err(), &q, "it is a shmio queue");
    // Both are intact and still open.
    Region::open(&r, &RegionOptions::new()).unwrap();
    drop(Consumer::open(&q, Start::Oldest).unwrap());
    // Each call removes its own kind.
    queue::unlink(&q).unwrap();
    region::unlink(&r).unwrap();
    assert!(!exists(&q) && !exists(&r));
    assert!(matches!(queue::unlink(&q), Err(queue::Error::NotFound(_))));
    assert!(matches!(
        region::unlink(&r),
        Err(region::Error::NotFound(_))
    ));
}

#[test]
fn unlink_refuses_a_text_file_a_short_file_and_an_empty_one() {
    let d = Dir::new("text");
    let t = d.path("notes.txt");
    std::fs::write(&t, b"hello world, not a queue\n").unwrap();
    queue_refused(
        queue::unlink(&t).unwrap_err(),
        &t,
        "it starts with \"hello wo\"",
    );
    region_refused(
        region::unlink(&t).unwrap_err(),
        &t,
        "it starts with \"hello wo\"",
    );
    assert_eq!(std::fs::read(&t).unwrap(), b"hello world, not a queue\n");
    // The magic without its last byte.
    let s = d.path("short");
    std::fs::write(&s, b"SHMIOQ\0").unwrap();
    queue_refused(queue::unlink(&s).unwrap_err(), &s, "7 bytes long");
    let e = d.path("empty");
    std::fs::write(&e, b"").unwrap();
    region_refused(region::unlink(&e).unwrap_err(), &e, "0 bytes long");
    assert!(exists(&s) && exists(&e));
}

#[test]
fn unlink_refuses_a_symlink_to_a_queue_and_a_directory() {
    let d = Dir::new("link");
    let q = d.path("q");
    make_queue(&q);
    let l = d.path("link");
    std::os::unix::fs::symlink(&q, &l).unwrap();
    queue_refused(queue::unlink(&l).unwrap_err(), &l, "symbolic link");
    assert!(exists(&l) && exists(&q));
    let sub = d.path("sub");
    std::fs::create_dir(&sub).unwrap();
    queue_refused(queue::unlink(&sub).unwrap_err(), &sub, "directory");
    region_refused(region::unlink(&sub).unwrap_err(), &sub, "directory");
    assert!(exists(&sub));
}

#[test]
fn unlink_removes_a_queue_of_another_layout_version() {
    use std::io::{Seek, SeekFrom, Write};
    let d = Dir::new("version");
    let q = d.path("q");
    make_queue(&q);
    let mut f = std::fs::OpenOptions::new().write(true).open(&q).unwrap();
    f.seek(SeekFrom::Start(8)).unwrap();
    f.write_all(&99u32.to_le_bytes()).unwrap();
    drop(f);
    assert!(matches!(
        Consumer::open(&q, Start::Oldest),
        Err(queue::Error::VersionMismatch { found: 99, .. })
    ));
    queue::unlink(&q).unwrap();
    assert!(!exists(&q));
}
