//! The zero-copy C functions, on real sockets: sendfile, the splicer, MSG_ZEROCOPY, the cache.

use std::ffi::CString;
use std::io::Read;
use std::mem::MaybeUninit;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::ptr;

use super::exit_code;
use crate::ffi::last_error_string;
use crate::status::shmio_status::*;
use crate::zc::*;

fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    (a, l.accept().unwrap().0)
}

fn reader(mut s: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        s.read_to_end(&mut v).unwrap();
        v
    })
}

fn progress() -> shmio_zc_progress {
    let mut p = MaybeUninit::uninit();
    // SAFETY: a writable struct.
    assert_eq!(unsafe { shmio_zc_progress_init(p.as_mut_ptr()) }, SHMIO_OK);
    // SAFETY: initialised just above.
    unsafe { p.assume_init() }
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn zc_sendfile_and_its_argument_checks() {
    let path = std::env::temp_dir().join(format!("shmio-capi-zc-{}", std::process::id()));
    let bytes = data(300_000);
    std::fs::write(&path, &bytes).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let (tx, rx) = UnixStream::pair().unwrap();
    let got = reader(rx);
    let mut p = progress();
    // SAFETY: open descriptors, a struct from _init; NULL and bad values where that is the point.
    unsafe {
        let st = shmio_zc_sendfile(tx.as_raw_fd(), f.as_raw_fd(), 10, 200_000, &mut p);
        assert_eq!(st, SHMIO_OK, "{}", last_error_string());
        assert_eq!(
            (p.sent, p.remaining, p.method),
            (200_000, 0, SHMIO_ZC_METHOD_SENDFILE)
        );
        let st = shmio_zc_sendfile(tx.as_raw_fd(), f.as_raw_fd(), 0, 300_001, &mut p);
        assert_eq!(st, SHMIO_ERR_INVALID_ARGUMENT);
        assert!(
            last_error_string().contains("past the end"),
            "{}",
            last_error_string()
        );
        let st = shmio_zc_sendfile(-1, f.as_raw_fd(), 0, 1, &mut p);
        assert_eq!(st, SHMIO_ERR_INVALID_ARGUMENT);
        let st = shmio_zc_sendfile(tx.as_raw_fd(), f.as_raw_fd(), 0, 1, ptr::null_mut());
        assert_eq!(st, SHMIO_ERR_NULL_POINTER);
        // 0 (not filled), or 12 (which would cut a 64-bit field in two): refused, untouched.
        for size in [0, 12] {
            let mut bad = progress();
            bad.struct_size = size;
            let before = format!("{bad:?}");
            let st = shmio_zc_sendfile(tx.as_raw_fd(), f.as_raw_fd(), 0, 1, &mut bad);
            assert_eq!(st, SHMIO_ERR_INVALID_ARGUMENT);
            assert_eq!(format!("{bad:?}"), before);
        }
    }
    drop(tx);
    // The failed checks came before any byte was sent.
    assert!(got.join().unwrap() == bytes[10..200_010]);
}

#[test]
fn zc_splicer_sends_over_tcp_and_survives_a_vanished_peer() {
    let bytes = data(3 << 20);
    let mut sp = ptr::null_mut();
    // SAFETY: valid out pointers, live handles, readable data.
    unsafe {
        assert_eq!(shmio_zc_splicer_new(0, &mut sp), SHMIO_OK);
        let (tx, rx) = tcp_pair();
        let got = reader(rx);
        let mut p = progress();
        let st = shmio_zc_splicer_send(
            sp,
            tx.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            &mut p,
        );
        assert_eq!(st, SHMIO_OK, "{}", last_error_string());
        assert_eq!(
            (p.sent, p.method),
            (bytes.len() as u64, SHMIO_ZC_METHOD_SPLICE)
        );
        assert_eq!(shmio_zc_splicer_pending(sp), 0);
        drop(tx);
        assert!(got.join().unwrap() == bytes);
        let st = shmio_zc_splicer_send(ptr::null_mut(), 0, ptr::null(), 0, &mut p);
        assert_eq!(st, SHMIO_ERR_NULL_POINTER);
        // A vanished peer, with SIGPIPE at its default action: an error, not a death.
        let pid = libc::fork();
        if pid == 0 {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            let (tx, rx) = UnixStream::pair().unwrap();
            drop(rx);
            let st = shmio_zc_splicer_send(
                sp,
                tx.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                &mut p,
            );
            libc::_exit(if st == SHMIO_ERR_IO { 0 } else { 1 });
        }
        assert_eq!(exit_code(pid), 0);
        shmio_zc_splicer_reset(sp);
        shmio_zc_splicer_free(sp);
        shmio_zc_splicer_free(ptr::null_mut());
    }
}

#[test]
fn zc_zerocopy_send_reap_and_fallback() {
    let mut buf = vec![0x5Au8; 1 << 20];
    // SAFETY: valid out pointers, live handles, readable data.
    unsafe {
        let (tx, rx) = tcp_pair();
        let got = reader(rx);
        let mut zc = ptr::null_mut();
        assert_eq!(shmio_zc_zerocopy_enable(tx.as_raw_fd(), &mut zc), SHMIO_OK);
        assert_eq!(shmio_zc_zerocopy_is_zerocopy(zc), 1);
        let mut s = MaybeUninit::uninit();
        assert_eq!(shmio_zc_sent_init(s.as_mut_ptr()), SHMIO_OK);
        let mut s = s.assume_init();
        let (mut off, mut last) = (0, 0);
        while off < buf.len() {
            let st = shmio_zc_zerocopy_send(
                zc,
                tx.as_raw_fd(),
                buf[off..].as_ptr().cast(),
                buf.len() - off,
                &mut s,
            );
            assert_eq!(st, SHMIO_OK, "{}", last_error_string());
            assert_eq!(s.method, SHMIO_ZC_METHOD_ZEROCOPY);
            off += s.len as usize;
            if s.has_seq == 1 {
                last = s.seq;
            }
        }
        let mut r = MaybeUninit::uninit();
        assert_eq!(shmio_zc_reaped_init(r.as_mut_ptr()), SHMIO_OK);
        let mut r = r.assume_init();
        let st = shmio_zc_zerocopy_reap(zc, tx.as_raw_fd(), last, 20_000, &mut r);
        assert_eq!(st, SHMIO_OK, "{}", last_error_string());
        assert_eq!(shmio_zc_zerocopy_is_complete(zc, last), 1);
        assert_eq!(shmio_zc_zerocopy_outstanding(zc), 0);
        buf.fill(0); // only now
        let st = shmio_zc_zerocopy_reap(zc, tx.as_raw_fd(), last + 5, -1, ptr::null_mut());
        assert_eq!(st, SHMIO_ERR_INVALID_ARGUMENT);
        shmio_zc_zerocopy_free(zc);
        drop(tx);
        assert!(got.join().unwrap().iter().all(|&b| b == 0x5A));
        // A Unix socket refuses SO_ZEROCOPY: plain sends, complete at once.
        let (tx, _rx) = UnixStream::pair().unwrap();
        assert_eq!(shmio_zc_zerocopy_enable(tx.as_raw_fd(), &mut zc), SHMIO_OK);
        assert_eq!(shmio_zc_zerocopy_is_zerocopy(zc), 0);
        let st = shmio_zc_zerocopy_send(zc, tx.as_raw_fd(), b"hi".as_ptr().cast(), 2, &mut s);
        assert_eq!(st, SHMIO_OK);
        assert_eq!(
            (s.len, s.has_seq, s.seq, s.method),
            (2, 1, 0, SHMIO_ZC_METHOD_COPY)
        );
        assert_eq!(shmio_zc_zerocopy_is_complete(zc, 0), 1);
        shmio_zc_zerocopy_free(zc);
    }
}

#[test]
fn zc_cache_add_lookup_send() {
    let name = CString::new(format!("shmio-capi-zc-cache-{}", std::process::id())).unwrap();
    let key = CString::new("/a").unwrap();
    let bytes = data(100_000);
    // SAFETY: valid strings, out pointers, live handles.
    unsafe {
        let mut c = ptr::null_mut();
        assert_eq!(
            shmio_zc_cache_create(name.as_ptr(), 1 << 20, 4, &mut c),
            SHMIO_OK,
            "{}",
            last_error_string()
        );
        let mut e = MaybeUninit::uninit();
        assert_eq!(shmio_zc_entry_init(e.as_mut_ptr()), SHMIO_OK);
        let mut e = e.assume_init();
        let st = shmio_zc_cache_add(c, key.as_ptr(), bytes.as_ptr().cast(), bytes.len(), &mut e);
        assert_eq!(st, SHMIO_OK, "{}", last_error_string());
        assert_eq!(e.len, 100_000);
        let st = shmio_zc_cache_add(c, key.as_ptr(), bytes.as_ptr().cast(), 1, ptr::null_mut());
        assert_eq!(st, SHMIO_ERR_ALREADY_EXISTS);
        let mut o = ptr::null_mut();
        assert_eq!(shmio_zc_cache_open(name.as_ptr(), &mut o), SHMIO_OK);
        let mut found = e;
        found.offset = 0;
        assert_eq!(shmio_zc_cache_lookup(o, key.as_ptr(), &mut found), SHMIO_OK);
        assert_eq!(found, e);
        let none = CString::new("/none").unwrap();
        assert_eq!(
            shmio_zc_cache_lookup(o, none.as_ptr(), &mut found),
            SHMIO_ERR_NOT_FOUND
        );
        let mut sp = ptr::null_mut();
        assert_eq!(shmio_zc_splicer_new(0, &mut sp), SHMIO_OK);
        let (tx, rx) = UnixStream::pair().unwrap();
        let got = reader(rx);
        let mut p = progress();
        let st = shmio_zc_cache_send(o, &e, 1, tx.as_raw_fd(), sp, &mut p);
        assert_eq!(st, SHMIO_OK, "{}", last_error_string());
        assert_eq!(p.sent, 99_999);
        let mut past = e;
        past.len = u64::MAX;
        assert_eq!(
            shmio_zc_cache_send(o, &past, 0, tx.as_raw_fd(), sp, &mut p),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        drop(tx);
        assert!(got.join().unwrap() == bytes[1..]);
        let (tx, rx) = tcp_pair();
        let got = reader(rx);
        let mut zc = ptr::null_mut();
        assert_eq!(shmio_zc_zerocopy_enable(tx.as_raw_fd(), &mut zc), SHMIO_OK);
        let mut s = MaybeUninit::uninit();
        assert_eq!(shmio_zc_sent_init(s.as_mut_ptr()), SHMIO_OK);
        let mut s = s.assume_init();
        let mut from = 0;
        while from < e.len {
            let st = shmio_zc_cache_send_zerocopy(o, &e, from, tx.as_raw_fd(), zc, &mut s);
            assert_eq!(st, SHMIO_OK, "{}", last_error_string());
            from += s.len;
        }
        assert_eq!(
            shmio_zc_zerocopy_reap(zc, tx.as_raw_fd(), s.seq, 20_000, ptr::null_mut()),
            SHMIO_OK
        );
        shmio_zc_zerocopy_free(zc);
        drop(tx);
        assert!(got.join().unwrap() == bytes);
        shmio_zc_splicer_free(sp);
        shmio_zc_cache_close(o);
        shmio_zc_cache_close(c);
        assert_eq!(shmio_zc_cache_unlink(name.as_ptr()), SHMIO_OK);
        assert_eq!(
            shmio_zc_cache_open(name.as_ptr(), &mut o),
            SHMIO_ERR_NOT_FOUND
        );
    }
}
