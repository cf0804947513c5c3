//! `sendfile` and `SendFile`.

use std::io::{Read, Write};
use std::net::Shutdown;

use super::*;
use crate::ErrorKind;
use crate::zc::{Error, Method, SendFile, sendfile};

#[test]
fn sendfile_sends_a_range_over_tcp() {
    let data = pattern(3 << 20, 1);
    let (_t, f) = Tmp::file("tcp", &data);
    let (tx, rx) = tcp_pair();
    let got = read_all(rx);
    let p = sendfile(&tx, &f, 1000, (2 << 20) + 7).unwrap();
    assert_eq!(
        (p.sent, p.remaining, p.method),
        ((2 << 20) + 7, 0, Method::SendFile)
    );
    drop(tx);
    assert!(got.join().unwrap() == data[1000..1000 + (2 << 20) + 7]);
}

#[test]
fn sendfile_on_a_non_blocking_unix_socket_returns_progress() {
    let data = pattern(1 << 20, 2);
    let (_t, f) = Tmp::file("nb", &data);
    let (tx, mut rx) = small_unix_pair();
    let mut send = SendFile::new(&f, 0, data.len() as u64).unwrap();
    let (mut got, mut partial) = (Vec::new(), 0);
    while !send.is_done() {
        let p = send.progress(&tx, &f).unwrap();
        assert_eq!(p.method, Method::SendFile);
        if !p.is_done() {
            partial += 1;
        }
        drain(&mut rx, &mut got);
    }
    assert_eq!(send.sent(), data.len() as u64);
    drop(tx);
    drain(&mut rx, &mut got);
    assert!(partial > 0, "a 16 KiB send buffer never filled");
    assert!(got == data);
    // Done: a further call sends nothing.
    let p = send.progress(&rx, &f).unwrap();
    assert_eq!((p.sent, p.remaining), (0, 0));
}

#[test]
fn sendfile_falls_back_to_copies_where_refused() {
    // sendfile(2) refuses an O_APPEND target (EINVAL): the copy path takes over.
    let data = pattern(200_000, 3);
    let (_t, f) = Tmp::file("src", &data);
    let out = Tmp::new("append");
    let mut o = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&out.0)
        .unwrap();
    o.write_all(b"head").unwrap();
    let p = sendfile(&o, &f, 5, 150_000).unwrap();
    assert_eq!((p.sent, p.method), (150_000, Method::Copy));
    let mut want = b"head".to_vec();
    want.extend_from_slice(&data[5..150_005]);
    assert!(std::fs::read(&out.0).unwrap() == want);
    let mut send = SendFile::new(&f, 0, 10).unwrap();
    assert_eq!(send.progress(&o, &f).unwrap().method, Method::Copy);
    assert_eq!(send.method(), Method::Copy);
}

#[test]
fn sendfile_checks_its_range() {
    let (_t, f) = Tmp::file("short", b"0123456789");
    let (tx, _rx) = unix_pair();
    for (off, len) in [(0, 11), (11, 0), (5, u64::MAX)] {
        let e = sendfile(&tx, &f, off, len).unwrap_err();
        assert!(matches!(e, Error::OutOfBounds { size: 10, .. }), "{e}");
        assert_eq!(e.kind(), ErrorKind::OutOfBounds);
        assert!(SendFile::new(&f, off, len).is_err());
    }
    assert_eq!(sendfile(&tx, &f, 10, 0).unwrap().sent, 0);
}

#[test]
fn a_file_that_shrinks_during_the_send_ends_it() {
    let data = pattern(1 << 20, 4);
    let (_t, f) = Tmp::file("shrink", &data);
    let (tx, mut rx) = small_unix_pair();
    let mut send = SendFile::new(&f, 0, data.len() as u64).unwrap();
    let p = send.progress(&tx, &f).unwrap();
    assert!(!p.is_done());
    f.set_len(100_000).unwrap();
    let mut got = Vec::new();
    let e = loop {
        drain(&mut rx, &mut got);
        match send.progress(&tx, &f) {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(e, Error::Truncated { offset: 100_000, remaining } if remaining == (1 << 20) - 100_000),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::OutOfBounds);
    assert!(e.to_string().contains("shrank"), "{e}");
    assert_eq!(send.sent(), 100_000);
    drain(&mut rx, &mut got);
    assert!(got == data[..100_000]);
}

#[test]
fn a_peer_that_disconnects_is_an_error_not_a_signal() {
    let data = pattern(4 << 20, 5);
    let (_t, f) = Tmp::file("gone", &data);
    for tcp in [false, true] {
        let code = in_child_with_sigpipe(|| {
            let r = if tcp {
                let (tx, rx) = tcp_pair();
                rx.shutdown(Shutdown::Both).unwrap();
                drop(rx);
                sendfile(&tx, &f, 0, data.len() as u64)
            } else {
                let (tx, rx) = unix_pair();
                drop(rx);
                sendfile(&tx, &f, 0, data.len() as u64)
            };
            matches!(r, Err(e) if e.is_disconnect() && e.kind() == ErrorKind::Io)
        });
        assert_eq!(code, 0, "tcp {tcp}: not a disconnect error");
    }
}

#[test]
fn a_client_that_disconnects_mid_send_ends_it_with_an_error() {
    let data = pattern(32 << 20, 12);
    let (_t, f) = Tmp::file("midsend", &data);
    let (tx, mut rx) = tcp_pair();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 100_000];
        rx.read_exact(&mut buf).unwrap();
        buf
        // Closed here with data unread: the peer answers further segments with a reset.
    });
    let e = sendfile(&tx, &f, 0, data.len() as u64).unwrap_err();
    assert!(e.is_disconnect(), "{e}");
    assert!(reader.join().unwrap() == data[..100_000]);
}
