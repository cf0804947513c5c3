//! The shared cache.

use std::time::Duration;

use super::*;
use crate::ErrorKind;
use crate::zc::{Cache, Entry, Error, Method, Splicer, ZeroCopy};

fn name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("shmio-zc-cache-{}-{n}-{tag}", std::process::id())
}

struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = Cache::unlink(&self.0);
    }
}

#[test]
fn cache_entries_are_added_once_and_sent_from_every_opener() {
    let n = name("send");
    let _u = Unlink(n.clone());
    let c = Cache::create(&n, 4 << 20, 8).unwrap();
    let big = pattern(3 << 20, 11);
    let (_t, path) = {
        let (t, _) = Tmp::file("page", b"<html>hello</html>");
        let p = t.0.clone();
        (t, p)
    };
    let e1 = c.add("/big", &big).unwrap();
    let e2 = c.add_file("/index.html", &path).unwrap();
    assert_eq!(e2.len, 18);
    assert_eq!(e1.offset % 4096, 0);
    assert_eq!(e2.offset % 4096, 0);
    let e = c.add("/big", b"again").unwrap_err();
    assert!(matches!(e, Error::Exists(_)));
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    // Another opener (as another serving process would) finds both.
    let o = Cache::open(&n).unwrap();
    assert_eq!(o.lookup("/big").unwrap(), Some(e1));
    assert_eq!(o.lookup("/index.html").unwrap(), Some(e2));
    assert_eq!(o.lookup("/nothing").unwrap(), None);
    assert_eq!(o.entries().unwrap().len(), 2);
    // Spliced out over TCP, from byte 10.
    let mut sp = Splicer::new().unwrap();
    let (tx, rx) = tcp_pair();
    let got = read_all(rx);
    let p = o.send_splice(&e1, 10, &tx, &mut sp).unwrap();
    assert_eq!((p.sent, p.method), ((3 << 20) - 10, Method::Splice));
    drop(tx);
    assert!(got.join().unwrap() == big[10..]);
    // Over a Unix socket, non-blocking, in pieces.
    let (tx, mut rx) = small_unix_pair();
    let (mut from, mut got) = (0, Vec::new());
    while from < e1.len {
        from += o.send_splice(&e1, from, &tx, &mut sp).unwrap().sent;
        drain(&mut rx, &mut got);
    }
    drop(tx);
    drain(&mut rx, &mut got);
    assert!(got == big);
    // With MSG_ZEROCOPY over TCP.
    let (tx, rx) = tcp_pair();
    let mut zc = ZeroCopy::enable(&tx).unwrap();
    let got = read_all(rx);
    let (mut from, mut last) = (0, 0);
    while from < e2.len {
        let s = o.send_zerocopy(&e2, from, &tx, &mut zc).unwrap();
        from += s.len as u64;
        last = s.seq.unwrap_or(last);
    }
    zc.wait(&tx, last, Some(Duration::from_secs(20))).unwrap();
    drop(tx);
    assert_eq!(got.join().unwrap(), b"<html>hello</html>");
    // Out of range.
    let past = Entry {
        offset: e2.offset,
        len: u64::MAX,
    };
    assert!(matches!(o.bytes(&past, 0), Err(Error::OutOfBounds { .. })));
    assert!(matches!(o.bytes(&e2, 19), Err(Error::OutOfBounds { .. })));
}

#[test]
fn cache_full_and_bad_keys_are_refused() {
    let n = name("full");
    let _u = Unlink(n.clone());
    let c = Cache::create(&n, 12288, 2).unwrap();
    c.add("a", &[1; 5000]).unwrap();
    let e = c.add("b", &[1; 5000]).unwrap_err();
    assert!(matches!(e, Error::CacheFull(_)), "{e}");
    assert_eq!(e.kind(), ErrorKind::NoSpace);
    c.add("b", &[2; 100]).unwrap();
    assert!(matches!(c.add("c", b"x"), Err(Error::CacheFull(_))));
    assert!(matches!(c.add("", b"x"), Err(Error::InvalidArgument(_))));
    let long = "k".repeat(crate::zc::MAX_KEY + 1);
    assert!(matches!(c.add(&long, b"x"), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        Cache::create(&name("z"), 1, 0),
        Err(Error::InvalidArgument(_))
    ));
    let e = Cache::create(&n, 1, 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert_eq!(
        Cache::open(&name("absent")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn a_corrupt_cache_table_is_refused_not_trusted() {
    let n = name("corrupt");
    let _u = Unlink(n.clone());
    let c = Cache::create(&n, 8192, 4).unwrap();
    c.add("a", b"abc").unwrap();
    let r = c.region();
    // An entry pointing past the mapping.
    r.write(64 + 16, &u64::MAX.to_le_bytes()).unwrap();
    let e = c.lookup("a").unwrap_err();
    assert!(matches!(e, Error::Corrupt(_)), "{e}");
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    // An entry count past the table.
    r.write(64 + 16, &3u64.to_le_bytes()).unwrap();
    r.write(32, &99u32.to_le_bytes()).unwrap();
    assert!(matches!(Cache::open(&n), Err(Error::Corrupt(_))));
    assert!(matches!(c.add("b", b"x"), Err(Error::Corrupt(_))));
    // Not a cache at all.
    r.write(0, &[0u8; 8]).unwrap();
    assert!(matches!(Cache::open(&n), Err(Error::Corrupt(_))));
}
