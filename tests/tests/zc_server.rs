//! `event_server -m read|sendfile|splice|zerocopy` and `-w WORKERS` end to end: real HTTP/1.1
//! clients on 127.0.0.1 fetch a 1 MiB and a small file (keep-alive, pipelined) and compare
//! every body byte for byte; a client that leaves mid-body does not stop the server; three
//! pre-forked workers share one listener (and one shared cache).

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use common::*;

/// A file removed on drop.
struct TempFile(PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_file(tag: &str, body: &[u8]) -> TempFile {
    let p = std::env::temp_dir().join(format!("shmio-zcs-{}-{tag}", std::process::id()));
    std::fs::write(&p, body).unwrap();
    TempFile(p)
}

/// Reads one HTTP response; returns (status line, X-Worker pid, body).
fn response(r: &mut BufReader<TcpStream>) -> (String, u32, Vec<u8>) {
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let (mut len, mut worker) = (None, 0);
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h == "\r\n" || h.is_empty() {
            break;
        }
        let l = h.to_ascii_lowercase();
        if let Some(v) = l.strip_prefix("content-length:") {
            len = Some(v.trim().parse::<usize>().unwrap());
        }
        if let Some(v) = l.strip_prefix("x-worker:") {
            worker = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; len.expect("Content-Length")];
    r.read_exact(&mut body).unwrap();
    (status.trim_end().to_string(), worker, body)
}

fn connect(port: u16) -> BufReader<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    BufReader::new(s)
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// Starts event_server with `args`; returns it and its port.
fn start(args: &[&str]) -> (Proc, u16) {
    let mut all = vec!["-p", "0"];
    all.extend_from_slice(args);
    let mut srv = Proc::spawn(&demo("event_server"), &all);
    let line = srv.expect_line("listening on 127.0.0.1:", Duration::from_secs(60));
    let port = line["listening on 127.0.0.1:".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (srv, port)
}

/// SIGINT; exit 0; returns the output lines.
fn stop(srv: Proc) -> Vec<String> {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(srv.child.id() as i32, libc::SIGINT) };
    let (code, lines) = srv.finish(Duration::from_secs(30));
    assert_eq!(code, 0, "{lines:?}");
    lines
}

fn line<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {lines:?}"))
}

/// Every method's replies, keep-alive and pipelined, for a 1 MiB file and a small one, and a
/// client that disconnects mid-body.
fn serve(method: &str, backend: &str) {
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let small = b"a small file\n".to_vec();
    let cache = RegionName::new("zcs");
    for (tag, body) in [("big", &big), ("small", &small)] {
        let f = temp_file(&format!("{method}-{backend}-{tag}"), body);
        let path = f.0.to_str().unwrap();
        let (srv, port) = start(&["-b", backend, "-m", method, "-f", path, "-c", &cache.0]);
        let mut c = connect(port);
        c.get_mut().write_all(GET).unwrap();
        let (status, pid, got) = response(&mut c);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(pid, srv.child.id());
        assert!(got == *body, "{method} {backend} {tag}: body differs");
        // Three pipelined requests, written at once.
        c.get_mut().write_all(&GET.repeat(3)).unwrap();
        for _ in 0..3 {
            assert!(
                response(&mut c).2 == *body,
                "{method} {backend} {tag}: pipelined"
            );
        }
        // A client that reads a little of a reply and leaves (reset: unread data).
        let mut gone = connect(port);
        gone.get_mut().write_all(&GET.repeat(2)).unwrap();
        let mut some = [0u8; 100];
        gone.read_exact(&mut some).unwrap();
        gone.get_mut().shutdown(Shutdown::Both).unwrap();
        drop(gone);
        // The server goes on: the kept-alive connection and a new one are served.
        c.get_mut().write_all(GET).unwrap();
        assert!(
            response(&mut c).2 == *body,
            "{method} {backend} {tag}: after a leaver"
        );
        let mut d = connect(port);
        d.get_mut().write_all(GET).unwrap();
        assert!(
            response(&mut d).2 == *body,
            "{method} {backend} {tag}: new connection"
        );
        let lines = stop(srv);
        let l = line(&lines, &format!("backend {backend}: requests "));
        assert!(l.contains("requests 8,"), "{l}");
        assert!(
            line(&lines, &format!("method {method}: bytes sent ")).contains("workers 0"),
            "{lines:?}"
        );
    }
    // The cache (-c) is the one the first server made; the second found the file absent and
    // added it; both removed what they created.
    if method == "splice" {
        assert!(!cache.path().exists(), "the cache was removed at exit");
    }
}

#[test]
fn read_epoll() {
    serve("read", "epoll")
}
#[test]
fn read_poll() {
    serve("read", "poll")
}
#[test]
fn sendfile_epoll() {
    serve("sendfile", "epoll")
}
#[test]
fn sendfile_poll() {
    serve("sendfile", "poll")
}
#[test]
fn sendfile_rtsig() {
    serve("sendfile", "rtsig")
}
#[test]
fn splice_epoll() {
    serve("splice", "epoll")
}
#[test]
fn splice_poll() {
    serve("splice", "poll")
}
#[test]
fn zerocopy_epoll() {
    serve("zerocopy", "epoll")
}
#[test]
fn zerocopy_poll() {
    serve("zerocopy", "poll")
}

/// A cache made beforehand by another server (`-c`) is opened, not made again, and kept.
#[test]
fn splice_uses_an_existing_cache() {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 13) as u8).collect();
    let f = temp_file("existing", &body);
    let cache = RegionName::new("zcs-keep");
    let path = f.0.to_str().unwrap();
    let args = ["-m", "splice", "-f", path, "-c", &cache.0];
    // The first server makes the cache (and would remove it): keep it alive with a second
    // server started while the first runs, which only opens it.
    let (first, p1) = start(&args);
    let (second, p2) = start(&args);
    for port in [p1, p2] {
        let mut c = connect(port);
        c.get_mut().write_all(GET).unwrap();
        assert!(response(&mut c).2 == body);
    }
    stop(second);
    assert!(cache.path().exists(), "the server that opened it keeps it");
    stop(first);
    assert!(!cache.path().exists(), "the server that made it removes it");
}

/// -w 3: concurrent clients are served by several workers; the exit counters are their sum.
fn workers(method: &str) {
    workers_on(method, "epoll")
}

/// [`workers`] on the poller backend `backend`.
fn workers_on(method: &str, backend: &str) {
    let body: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 % 253) as u8).collect();
    let f = temp_file(&format!("workers-{method}"), &body);
    let cache = RegionName::new("zcs-w");
    let path = f.0.to_str().unwrap();
    let (mut srv, port) = start(&[
        "-m", method, "-f", path, "-c", &cache.0, "-w", "3", "-b", backend,
    ]);
    let pids: HashSet<u32> = srv
        .expect_line("workers ", Duration::from_secs(30))
        .split_whitespace()
        .skip(1)
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    let mut seen = HashSet::new();
    let mut rounds = 0;
    while seen.len() < 2 && rounds < 10 {
        rounds += 1;
        let clients: Vec<_> = (0..12)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut c = connect(port);
                    c.get_mut().write_all(&GET.repeat(2)).unwrap();
                    let a = response(&mut c);
                    let b = response(&mut c);
                    (a, b)
                })
            })
            .collect();
        for t in clients {
            let (a, b) = t.join().unwrap();
            assert!(a.2 == body && b.2 == body, "{method} -w 3: body differs");
            assert_eq!(a.1, b.1, "one connection, one worker");
            assert!(pids.contains(&a.1), "{} not a worker of {pids:?}", a.1);
            seen.insert(a.1);
        }
    }
    assert!(
        seen.len() >= 2,
        "one worker served every connection: {seen:?}"
    );
    let lines = stop(srv);
    let l = line(&lines, &format!("backend {backend}: requests "));
    let requests = 24 * rounds;
    assert!(l.contains(&format!("requests {requests},")), "{l}");
    let m = line(&lines, &format!("method {method}: bytes sent "));
    assert!(m.contains("workers 3"), "{m}");
    let sent: u64 = m["method : bytes sent ".len() + method.len()..]
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(sent >= requests as u64 * body.len() as u64, "{m}");
    assert!(!cache.path().exists() || method != "splice");
}

#[test]
fn workers_read() {
    workers("read")
}
#[test]
fn workers_splice() {
    workers("splice")
}
#[test]
fn workers_zerocopy() {
    workers("zerocopy")
}
/// A socket's RT signals go to one owner: each rtsig worker listens on a socket of its own
/// (SO_REUSEPORT), and connections reach more than one of them.
#[test]
fn workers_rtsig() {
    workers_on("read", "rtsig")
}

/// A reply larger than loopback's socket buffers to a client that does not read for a while:
/// every method stops at EAGAIN, serves another client meanwhile, and finishes the reply from
/// WRITABLE events (edge-triggered epoll, so a send that stopped early would hang here).
#[test]
fn partial_sends_continue_from_the_event_loop() {
    let body: Vec<u8> = (0..16u32 << 20).map(|i| (i % 241) as u8).collect();
    let f = temp_file("slow", &body);
    let cache = RegionName::new("zcs-slow");
    for method in ["read", "sendfile", "splice", "zerocopy"] {
        let path = f.0.to_str().unwrap();
        let (srv, port) = start(&["-b", "epoll-et", "-m", method, "-f", path, "-c", &cache.0]);
        let mut slow = connect(port);
        slow.get_mut().write_all(GET).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let mut other = connect(port);
        other.get_mut().write_all(GET).unwrap();
        assert!(response(&mut other).2 == body, "{method}: the other client");
        assert!(response(&mut slow).2 == body, "{method}: the slow client");
        let lines = stop(srv);
        assert!(
            line(&lines, "backend epoll-et: ").contains("requests 2,"),
            "{lines:?}"
        );
    }
}

/// Every method on every backend: a 300 kB reply, then two pipelined ones, byte for byte.
#[test]
fn every_method_on_every_backend() {
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 239) as u8).collect();
    let f = temp_file("every", &body);
    let cache = RegionName::new("zcs-every");
    let path = f.0.to_str().unwrap();
    for backend in [
        "select",
        "poll",
        "epoll",
        "epoll-et",
        "rtsig",
        "rtsig-onefd",
    ] {
        for method in ["read", "sendfile", "splice", "zerocopy"] {
            let (srv, port) = start(&["-b", backend, "-m", method, "-f", path, "-c", &cache.0]);
            let mut c = connect(port);
            c.get_mut().write_all(GET).unwrap();
            assert!(response(&mut c).2 == body, "{method} {backend}");
            c.get_mut().write_all(&GET.repeat(2)).unwrap();
            assert!(response(&mut c).2 == body, "{method} {backend}: 2nd");
            assert!(response(&mut c).2 == body, "{method} {backend}: 3rd");
            let lines = stop(srv);
            let l = line(&lines, &format!("backend {backend}: "));
            assert!(l.contains("requests 3,"), "{l}");
        }
    }
}
