//! `Splicer`.

use std::io::Write;

use super::*;
use crate::zc::{Error, Method, Splicer};

#[test]
fn splicer_sends_memory_over_tcp_and_unix_and_reuses_its_pipe() {
    let mut sp = Splicer::new().unwrap();
    assert!(sp.pipe_size() >= 4096);
    let data = pattern(5 << 20, 6);
    let (tx, rx) = tcp_pair();
    let got = read_all(rx);
    let p = sp.send(&tx, &data).unwrap();
    assert_eq!(
        (p.sent, p.remaining, p.method),
        (data.len() as u64, 0, Method::Splice)
    );
    let p = sp.send(&tx, &data[..12345]).unwrap();
    assert_eq!(p.sent, 12345);
    drop(tx);
    let got = got.join().unwrap();
    assert!(got[..data.len()] == data[..] && got[data.len()..] == data[..12345]);
    // The same splicer, another socket type.
    let (tx, rx) = unix_pair();
    let got = read_all(rx);
    assert_eq!(sp.send(&tx, &data[7..]).unwrap().method, Method::Splice);
    drop(tx);
    assert!(got.join().unwrap() == data[7..]);
    assert_eq!(sp.pending(), 0);
}

#[test]
fn splicer_on_a_non_blocking_socket_keeps_what_is_in_its_pipe() {
    let mut sp = Splicer::with_pipe_size(64 << 10).unwrap();
    let data = pattern(1 << 20, 7);
    let (tx, mut rx) = small_unix_pair();
    let (mut sent, mut got, mut partial) = (0usize, Vec::new(), 0);
    while sent < data.len() {
        let p = sp.send(&tx, &data[sent..]).unwrap();
        sent += p.sent as usize;
        assert_eq!(p.remaining as usize, data.len() - sent);
        if !p.is_done() {
            partial += 1;
        }
        drain(&mut rx, &mut got);
    }
    drop(tx);
    drain(&mut rx, &mut got);
    assert!(partial > 0);
    assert!(got == data);
    // Passing fewer bytes than the pipe holds is refused, and resets the splicer.
    let (tx, _rx) = small_unix_pair();
    let p = sp.send(&tx, &data).unwrap();
    assert!(!p.is_done());
    if sp.pending() > 0 {
        let e = sp.send(&tx, &data[..sp.pending() - 1]).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        assert_eq!(sp.pending(), 0);
    }
}

#[test]
fn splicer_falls_back_to_write_where_splice_is_refused() {
    // splice(2) refuses an O_APPEND target (EINVAL).
    let out = Tmp::new("append");
    let mut o = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&out.0)
        .unwrap();
    o.write_all(b"x").unwrap();
    let mut sp = Splicer::new().unwrap();
    let data = pattern(300_000, 8);
    let p = sp.send(&o, &data).unwrap();
    assert_eq!((p.sent, p.method), (300_000, Method::Copy));
    assert!(sp.is_copying());
    assert_eq!(sp.pending(), 0);
    let mut want = b"x".to_vec();
    want.extend_from_slice(&data);
    assert!(std::fs::read(&out.0).unwrap() == want);
}

#[test]
fn splicer_reports_a_vanished_peer() {
    let data = pattern(4 << 20, 9);
    let code = in_child_with_sigpipe(|| {
        let mut sp = Splicer::new().unwrap();
        let (tx, rx) = tcp_pair();
        drop(rx);
        let tcp = sp.send(&tx, &data);
        let (tx, rx) = unix_pair();
        drop(rx);
        let unix = sp.send(&tx, &data);
        let ok = |r: crate::zc::Result<_>| matches!(r, Err(e) if e.is_disconnect());
        ok(tcp) && ok(unix) && sp.pending() == 0
    });
    assert_eq!(code, 0);
}

#[test]
fn splicer_send_to_a_client_that_disconnects_mid_send() {
    let data = pattern(32 << 20, 13);
    let (tx, mut rx) = tcp_pair();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 100_000];
        std::io::Read::read_exact(&mut rx, &mut buf).unwrap();
        buf
    });
    let mut sp = Splicer::new().unwrap();
    let e = sp.send(&tx, &data).unwrap_err();
    assert!(e.is_disconnect(), "{e}");
    assert_eq!(sp.pending(), 0);
    assert!(reader.join().unwrap() == data[..100_000]);
}
