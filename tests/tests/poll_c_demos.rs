//! The poller's C demos: `event_server` answers real HTTP/1.1 requests on 127.0.0.1 with
//! every backend, and `et_lt_pipe` shows level- versus edge-triggered reporting.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::*;

const BACKENDS: [&str; 6] = [
    "select",
    "poll",
    "epoll",
    "epoll-et",
    "rtsig",
    "rtsig-onefd",
];

/// Reads one HTTP response (headers + Content-Length body); returns (status line, body).
fn response(r: &mut BufReader<TcpStream>) -> (String, Vec<u8>) {
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let mut len = None;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = Some(v.trim().parse::<usize>().unwrap());
        }
    }
    let mut body = vec![0u8; len.expect("Content-Length")];
    r.read_exact(&mut body).unwrap();
    (status.trim_end().to_string(), body)
}

fn connect(port: u16) -> BufReader<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    BufReader::new(s)
}

fn serve(backend: &str) {
    // A file larger than a socket buffer, so replies need writable events too.
    let file = std::env::temp_dir().join(format!("shmio-es-{}-{backend}", std::process::id()));
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &body).unwrap();
    let mut srv = Proc::spawn(
        &demo("event_server"),
        &["-b", backend, "-p", "0", "-f", file.to_str().unwrap()],
    );
    let line = srv.expect_line("listening on 127.0.0.1:", Duration::from_secs(30));
    let port: u16 = line["listening on 127.0.0.1:".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(line.ends_with(&format!("backend {backend}")), "{line}");

    // Keep-alive: three requests on one connection, two of them pipelined.
    let mut c = connect(port);
    c.get_mut()
        .write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut c), ("HTTP/1.1 200 OK".into(), body.clone()));
    c.get_mut()
        .write_all(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /any/path HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut c).1, body);
    assert_eq!(response(&mut c).1, body);

    // Twenty connections at once, each with a small request: 1 request each.
    let mut many: Vec<BufReader<TcpStream>> = (0..20).map(|_| connect(port)).collect();
    for m in &mut many {
        m.get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
    }
    for m in &mut many {
        assert_eq!(response(m).1.len(), body.len());
    }

    // Connection: close is honoured: the reply, then EOF.
    let mut last = connect(port);
    last.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut last).1, body);
    let mut rest = Vec::new();
    assert_eq!(
        last.read_to_end(&mut rest).unwrap(),
        0,
        "closed after reply"
    );

    // The next connection gets the closed one's descriptor (the lowest free) and none of its
    // state: two pipelined requests, two replies, still open. (event_server once cleared only
    // part of a reused connection slot: this got one reply, then was closed.)
    let mut reuse = connect(port);
    reuse
        .get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut reuse).1, body);
    assert_eq!(response(&mut reuse).1, body);
    reuse
        .get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut reuse).1, body, "kept alive");

    // SIGINT: stats, exit 0.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(srv.child.id() as i32, libc::SIGINT) };
    let (code, lines) = srv.finish(Duration::from_secs(20));
    assert_eq!(code, 0, "{lines:?}");
    let stats = lines
        .iter()
        .find(|l| l.starts_with(&format!("backend {backend}: requests ")))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(stats.contains("requests 27,"), "{stats}");
    assert!(
        lines.iter().any(|l| l.starts_with("poller: waits ")),
        "{lines:?}"
    );
    let _ = std::fs::remove_file(&file);
}

#[test]
fn event_server_select() {
    serve("select")
}
#[test]
fn event_server_poll() {
    serve("poll")
}
#[test]
fn event_server_epoll() {
    serve("epoll")
}
#[test]
fn event_server_epoll_et() {
    serve("epoll-et")
}
#[test]
fn event_server_rtsig() {
    serve("rtsig")
}
#[test]
fn event_server_rtsig_onefd() {
    serve("rtsig-onefd")
}

#[test]
fn et_lt_pipe_prints_what_the_note_describes() {
    let out = Command::new(demo("et_lt_pipe"))
        .args(BACKENDS)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |b: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{b}: ")))
            .unwrap_or_else(|| panic!("{text}"))
            .to_string()
    };
    for b in BACKENDS {
        let l = line(b);
        assert!(l.contains("1st wait: readable; read 1024 of 2048"), "{l}");
        let again = matches!(b, "select" | "poll" | "epoll" | "rtsig-onefd");
        assert_eq!(l.contains("2nd wait: readable again"), again, "{l}");
        assert_eq!(
            l.contains("2nd wait: nothing (edge-triggered)"),
            !again,
            "{l}"
        );
    }
}
