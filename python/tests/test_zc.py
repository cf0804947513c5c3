"""shmio.zc: zero-copy sending over real sockets (TCP on loopback, Unix socket pairs)."""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import shmio
from shmio import zc

from conftest import _fresh_name


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        a = socket.create_connection(srv.getsockname())
        b, _ = srv.accept()
    return a, b


def data(n: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(n))


class Reader(threading.Thread):
    """Reads a socket to its end."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.got = bytearray()
        self.start()

    def run(self) -> None:
        while chunk := self.sock.recv(1 << 16):
            self.got += chunk

    def result(self) -> bytes:
        self.join(30)
        assert not self.is_alive()
        return bytes(self.got)


def drain(sock: socket.socket, into: bytearray) -> None:
    try:
        while chunk := sock.recv(1 << 16):
            into += chunk
    except BlockingIOError:
        pass


def small_nonblocking_pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 << 10)
    a.setblocking(False)
    b.setblocking(False)
    return a, b


@pytest.fixture
def cname() -> Iterator[str]:
    yield from _fresh_name("shmio_pytest_cache", zc.Cache.unlink)


def test_sendfile_over_tcp_and_a_range_check(tmp_path: Path) -> None:
    blob = data(2 << 20)
    p = tmp_path / "f"
    p.write_bytes(blob)
    a, b = tcp_pair()
    r = Reader(b)
    with open(p, "rb") as f:
        prog = zc.sendfile(a, f, 100, 1 << 20)
        assert prog == zc.Progress(1 << 20, 0, "sendfile") and prog.done
        with pytest.raises(shmio.OutOfBounds):
            zc.sendfile(a, f, 1, 2 << 20)
        with pytest.raises(shmio.InvalidArgument):
            zc.sendfile(-1, f, 0, 1)
    a.close()
    assert r.result() == blob[100 : 100 + (1 << 20)]
    b.close()


def test_sendfile_on_a_non_blocking_socket_and_a_shrinking_file(tmp_path: Path) -> None:
    blob = data(1 << 20, 1)
    p = tmp_path / "f"
    p.write_bytes(blob)
    a, b = small_nonblocking_pair()
    got = bytearray()
    with open(p, "r+b") as f:
        send = zc.SendFile(f)
        partial = 0
        while not send.done:
            if not send.progress(a).done:
                partial += 1
            drain(b, got)
        assert partial > 0 and send.sent == len(blob)
        drain(b, got)
        assert bytes(got) == blob
        # Shrinks mid-send: an error, never a hang.
        send = zc.SendFile(f)
        assert not send.progress(a).done
        f.truncate(50_000)
        with pytest.raises(shmio.OutOfBounds, match="shrank|past the end"):
            while not send.done:
                drain(b, got)
                send.progress(a)
    a.close()
    b.close()


def test_sendfile_falls_back_to_copies(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(data(100_000))
    out = tmp_path / "out"
    with open(src, "rb") as f, open(out, "ab") as o:
        assert zc.sendfile(o, f).method == "copy"  # O_APPEND: sendfile refuses
    assert out.read_bytes() == src.read_bytes()


def test_splicer_over_tcp_unix_and_partial_sends() -> None:
    blob = data(3 << 20, 2)
    with zc.Splicer() as sp:
        assert sp.pipe_size >= 4096
        a, b = tcp_pair()
        r = Reader(b)
        assert sp.send(a, blob) == (len(blob), 0, "splice")
        a.close()
        assert r.result() == blob
        b.close()
        a, b = small_nonblocking_pair()
        sent, got = 0, bytearray()
        view = memoryview(blob)
        while sent < len(blob):
            n, remaining, method = sp.send(a, view[sent:])
            assert method == "splice" and remaining == len(blob) - sent - n
            sent += n
            drain(b, got)
        a.close()
        drain(b, got)
        assert bytes(got) == blob
        assert sp.pending == 0
        b.close()
    assert sp.closed
    with pytest.raises(shmio.InvalidArgument):
        sp.send(0, b"x")


def test_a_vanished_peer_raises_epipe_or_econnreset() -> None:
    blob = data(4 << 20, 3)
    for make in (socket.socketpair, tcp_pair):
        a, b = make()
        b.close()
        with zc.Splicer() as sp, pytest.raises(shmio.SyscallError) as e:
            sp.send(a, blob)
        assert e.value.errno in (errno.EPIPE, errno.ECONNRESET)
        a.close()


def test_zerocopy_buffer_rewritten_only_after_completion() -> None:
    a, b = tcp_pair()
    r = Reader(b)
    z = zc.ZeroCopy(a)
    assert z.state()[0], "SO_ZEROCOPY refused on TCP"
    buf = bytearray(b"\xaa" * (1 << 20))
    for fill in (0xAA, 0xBB):
        buf[:] = bytes([fill]) * len(buf)  # only once the last send completed
        view = memoryview(buf)
        off, last = 0, None
        while off < len(buf):
            n, seq, method = z.send(view[off:])
            assert method == "zerocopy"
            off += n
            last = seq if seq is not None else last
        assert last is not None
        z.wait(last, timeout=20)
        assert z.is_complete(last)
        del view
    zerocopy, outstanding, next_seq, copied, zero = z.state()
    assert outstanding == 0 and copied + zero == next_seq
    print(f"MSG_ZEROCOPY on loopback: {copied} sends copied, {zero} not")
    z.close()
    a.close()
    got = r.result()
    assert got == b"\xaa" * (1 << 20) + b"\xbb" * (1 << 20)
    b.close()


def test_zerocopy_falls_back_on_unix_sockets(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    with zc.ZeroCopy(a) as z:
        assert not z.state()[0]
        assert z.send(b"hi") == (2, 0, "copy")
        assert z.is_complete(0)
        assert z.reap() == (0, 0)
        assert z.fileno() == a.fileno()
    assert b.recv(2) == b"hi"


def test_cache_add_open_lookup_send(cname: str, tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_bytes(b"<html>hi</html>")
    blob = data(2 << 20, 4)
    with zc.Cache.create(cname, 4 << 20, max_entries=4) as c:
        big = c.add("/big", blob)
        small = c.add_file("/index.html", page)
        with pytest.raises(shmio.AlreadyExists):
            c.add("/big", b"x")
        with zc.Cache.open(cname) as o:
            assert o.lookup("/big") == big and o.lookup("/none") is None
            assert [k for k, _ in o.entries()] == ["/big", "/index.html"]
            assert o.read(small) == b"<html>hi</html>"
            a, b = tcp_pair()
            r = Reader(b)
            assert o.send(big, a, zc.Splicer(), start=5)[:2] == (len(blob) - 5, 0)
            a.close()
            assert r.result() == blob[5:]
            b.close()
            a, b = tcp_pair()
            r = Reader(b)
            z = zc.ZeroCopy(a)
            start, last = 0, 0
            while start < small[1]:
                n, seq, _ = o.send_zerocopy(small, z, start)
                start += n
                last = seq if seq is not None else last
            z.wait(last, timeout=20)
            a.close()
            assert r.result() == b"<html>hi</html>"
            b.close()
            with pytest.raises(shmio.OutOfBounds):
                o.read((small[0], 2**63))
    with pytest.raises(shmio.NoSpace):
        with zc.Cache.open(cname) as c:
            for i in range(4):
                c.add(f"/{i}", b"x")
