//! Tests of the file helpers: creation, linking, reservation, checked unlink.

use super::*;
use std::os::unix::fs::PermissionsExt;

/// A fresh directory on /dev/shm, removed with its contents on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        static N: AtomicU64 = AtomicU64::new(0);
        let d = PathBuf::from(format!(
            "/dev/shm/shmio-unit-shmfile-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&d).unwrap();
        Dir(d)
    }

    /// The names in the directory, sorted.
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn unnamed_file_is_invisible_until_linked_with_exact_mode_and_length() {
    let d = Dir::new("unnamed");
    let path = d.0.join("q");
    // 0o666: any usual umask (022, 077) would take bits off.
    let tmp = create_tmp(&path, 0o666, 12345, 0).unwrap();
    assert!(tmp.name.is_none(), "tmpfs with /proc: an O_TMPFILE file");
    assert!(
        d.names().is_empty(),
        "nothing in the directory before the link"
    );
    let ino = tmp.file.metadata().unwrap().ino();
    tmp.link_into_place(&path).unwrap();
    assert_eq!(d.names(), ["q"]);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!((meta.ino(), meta.len()), (ino, 12345));
    assert_eq!(mode_of(&path), 0o666);
}

#[test]
fn unnamed_link_onto_an_existing_name_is_already_exists() {
    let d = Dir::new("unnamed-exists");
    let path = d.0.join("q");
    std::fs::write(&path, b"keep").unwrap();
    let tmp = create_tmp(&path, 0o600, 4096, 0).unwrap();
    assert!(tmp.name.is_none());
    match tmp.link_into_place(&path) {
        Err(FileError::AlreadyExists(p)) => assert_eq!(p, path),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"keep");
    assert_eq!(d.names(), ["q"]);
}

#[test]
fn unnamed_file_links_through_proc_too_and_refuses_a_taken_name() {
    let d = Dir::new("via-proc");
    let path = d.0.join("q");
    let tmp = create_tmp(&path, 0o640, 100, 0).unwrap();
    assert!(tmp.name.is_none());
    link_via_proc(&tmp.file, &path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 100);
    let other = create_tmp(&path, 0o640, 100, 0).unwrap();
    let e = link_via_proc(&other.file, &path).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    let e = link_empty_path(&other.file, &path).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(d.names(), ["q"]);
}

#[test]
fn named_fallback_ignores_leftovers_and_links_with_exact_mode() {
    let d = Dir::new("named");
    let path = d.0.join("q");
    // What the old `.NAME.PID.COUNTER.tmp` scheme left after a crash of pid 1.
    std::fs::write(d.0.join(".q.1.0.tmp"), b"").unwrap();
    let tmp = create_named(&path, 0o666, 4096, 0, random_u64).unwrap();
    let name = tmp.name.clone().expect("a named file");
    let file_name = name.file_name().unwrap().to_str().unwrap().to_owned();
    let hex = file_name
        .strip_prefix(".q.")
        .and_then(|s| s.strip_suffix(".tmp"))
        .unwrap();
    assert!(hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(mode_of(&name), 0o666);
    assert_eq!(std::fs::metadata(&name).unwrap().len(), 4096);
    tmp.link_into_place(&path).unwrap();
    assert_eq!(d.names(), [".q.1.0.tmp", "q"], "the temporary name is gone");
    assert_eq!(mode_of(&path), 0o666);
}

#[test]
fn named_fallback_retries_a_taken_name_and_gives_up_after_a_bound() {
    let d = Dir::new("retry");
    let path = d.0.join("q");
    let taken = ".q.0000000000000001.tmp";
    std::fs::write(d.0.join(taken), b"").unwrap();
    let mut draws = [1u64, 1, 2].into_iter();
    let tmp = create_named(&path, 0o600, 1, 0, || draws.next().unwrap()).unwrap();
    assert_eq!(
        tmp.name.as_deref(),
        Some(d.0.join(".q.0000000000000002.tmp").as_path())
    );
    drop(tmp);
    let mut calls = 0;
    match create_named(&path, 0o600, 1, 0, || {
        calls += 1;
        1
    }) {
        Err(FileError::Io(e)) => {
            assert_eq!(e.source.kind(), io::ErrorKind::AlreadyExists);
        }
        other => panic!(
            "expected an Io error, got {:?}",
            other.map(|t| t.name.clone())
        ),
    }
    assert_eq!(calls, TMP_TRIES);
    assert_eq!(d.names(), [taken]);
}

#[test]
fn named_link_onto_an_existing_name_is_already_exists() {
    let d = Dir::new("named-exists");
    let path = d.0.join("q");
    std::fs::write(&path, b"keep").unwrap();
    let tmp = create_named(&path, 0o600, 4096, 0, random_u64).unwrap();
    match tmp.link_into_place(&path) {
        Err(FileError::AlreadyExists(p)) => assert_eq!(p, path),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"keep");
    assert_eq!(d.names(), ["q"], "the temporary name is gone");
}

#[test]
fn named_temporary_file_goes_when_dropped_or_when_creation_fails() {
    let d = Dir::new("named-drop");
    let path = d.0.join("q");
    let tmp = create_named(&path, 0o600, 4096, 0, random_u64).unwrap();
    assert_eq!(d.names().len(), 1);
    drop(tmp);
    assert!(d.names().is_empty());
    // A length no file can have: the open succeeds, ftruncate fails.
    assert!(create_named(&path, 0o600, 1 << 63, 0, random_u64).is_err());
    assert!(d.names().is_empty());
    assert!(create_tmp(&path, 0o600, 1 << 63, 0).is_err());
    assert!(d.names().is_empty());
}

#[test]
fn created_files_have_their_blocks_reserved() {
    let d = Dir::new("reserved");
    let path = d.0.join("q");
    let len = 1 << 20;
    let unnamed = create_tmp(&path, 0o600, len, 0).unwrap();
    let named = create_named(&path, 0o600, len, 0, random_u64).unwrap();
    for t in [&unnamed, &named] {
        let meta = t.file.metadata().unwrap();
        assert_eq!(meta.len(), len);
        // Not sparse: every block is allocated (st_blocks counts 512-byte units).
        assert!(meta.blocks() * 512 >= len, "{} blocks", meta.blocks());
    }
}

#[test]
fn bad_mode_is_refused_before_anything_is_made() {
    let d = Dir::new("mode");
    assert!(matches!(
        create_tmp(&d.0.join("q"), 0o4755, 1, 0),
        Err(FileError::InvalidArgument(_))
    ));
    assert!(d.names().is_empty());
}

#[test]
fn random_names_differ() {
    let a: Vec<u64> = (0..8).map(|_| random_u64()).collect();
    let mut b = a.clone();
    b.sort_unstable();
    b.dedup();
    assert_eq!(a.len(), b.len());
}

#[test]
fn names_are_paths_only_when_they_look_like_paths() {
    let dir = shm_dir();
    assert_eq!(resolve("orders", "queue").unwrap(), dir.join("orders"));
    assert_eq!(resolve("..orders", "queue").unwrap(), dir.join("..orders"));
    for path in ["/tmp/q", "./q", "../q", "./a/b"] {
        assert_eq!(
            resolve(path, "queue").unwrap(),
            PathBuf::from(path),
            "{path}"
        );
    }
    for bad in ["a/b", "a/", "orders/../x", "", ".", "..", "a\0b"] {
        assert!(
            matches!(resolve(bad, "queue"), Err(FileError::InvalidArgument(_))),
            "{bad:?}"
        );
    }
    let Err(FileError::InvalidArgument(m)) = resolve("a/b", "region") else {
        panic!()
    };
    assert!(m.contains("write \"./a/b\""), "{m}");
}
