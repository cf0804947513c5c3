"""Batches: Producer.send_many and Consumer.recv_many, and the speed they buy (printed, not
asserted: speed lives in the benchmarks)."""

from __future__ import annotations

import os
import threading
import time

import pytest

import shmio
from shmio import Queue


def test_send_many_and_recv_many_round_trip(qname: str) -> None:
    with Queue.create(qname, slots=16, slot_size=64, policy="backpressure") as tx, Queue.open(
        qname, start="oldest"
    ) as rx:
        recs = [b"a", bytearray(b"bc"), memoryview(b"def"), b""]
        assert tx.send_many(recs) == 4
        assert tx.send_many([]) == 0
        assert tx.send_many(iter([b"g"])) == 1
        assert rx.recv_many(10) == [b"a", b"bc", b"def", b"", b"g"]
        assert rx.recv_many(10, timeout=0) == []
        assert rx.recv_many(10, timeout=0.01) == []
        tx.send_many([b"x", b"y", b"z"])
        assert rx.recv_many(2) == [b"x", b"y"]
        assert rx.recv_many(2) == [b"z"]
        assert rx.received == 8


def test_send_many_refuses_what_cannot_be_sent(qname: str) -> None:
    with Queue.create(qname, slots=4, slot_size=8, policy="backpressure") as tx, Queue.open(
        qname, start="oldest"
    ) as rx:
        with pytest.raises(shmio.TooLarge):
            tx.send_many([b"ok", b"x" * 9])
        assert rx.recv_many(8, timeout=0) == [], "nothing was sent"
        with pytest.raises(TypeError):
            tx.send_many([b"ok", 3])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            tx.send_many(5)  # type: ignore[arg-type]
        with pytest.raises(shmio.InvalidArgument):
            rx.recv_many(0)
        with pytest.raises(shmio.InvalidArgument):
            tx.send_many([b"a"], timeout=-1)
        # A full ring: a partial batch returns its count, an empty one raises.
        assert tx.send_many([b"1", b"2", b"3", b"4", b"5"], timeout=0) == 4
        with pytest.raises(shmio.Timeout):
            tx.send_many([b"5"], timeout=0)
        t = time.monotonic()
        with pytest.raises(shmio.Timeout):
            tx.send_many([b"5"], timeout=0.05)
        assert time.monotonic() - t >= 0.05
        assert rx.recv_many(8) == [b"1", b"2", b"3", b"4"]


def test_a_batch_larger_than_the_ring_waits_for_space_and_arrives_whole(qname: str) -> None:
    n = 20_000
    with Queue.create(qname, slots=8, slot_size=16, policy="backpressure") as tx, Queue.open(
        qname, start="oldest"
    ) as rx:
        got: list[bytes] = []

        def read() -> None:
            while len(got) < n:
                got.extend(rx.recv_many(64, timeout=10))

        t = threading.Thread(target=read)
        t.start()
        assert tx.send_many(b"%d" % i for i in range(n)) == n
        t.join(30)
        assert not t.is_alive()
        assert got == [b"%d" % i for i in range(n)]


def test_recv_many_ends_with_the_producer(qname: str) -> None:
    tx = Queue.create(qname, slots=8, slot_size=16)
    rx = Queue.open(qname, start="oldest")
    tx.send_many([b"1", b"2"])
    tx.close()
    assert rx.recv_many(8) == [b"1", b"2"]
    with pytest.raises(shmio.Closed):
        rx.recv_many(8, timeout=1)
    rx.close()


def test_batches_against_single_calls_at_64_bytes(qname: str) -> None:
    """The figure the closing note quotes (records per second, same run)."""
    n, rec = 200_000, b"x" * 64
    with Queue.create(qname, slots=4096, slot_size=64) as tx, Queue.open(qname) as rx:
        t = time.perf_counter()
        for _ in range(n // 1000):
            for _ in range(1000):
                tx.send(rec)
            for _ in range(1000):
                rx.recv()
        single = n / (time.perf_counter() - t)
        batch = [rec] * 1000
        t = time.perf_counter()
        for _ in range(n // 1000):
            tx.send_many(batch)
            got = 0
            while got < 1000:
                got += len(rx.recv_many(1000))
        many = n / (time.perf_counter() - t)
    print(f"64 B records, send+recv: single calls {single:,.0f}/s, batches of 1000 {many:,.0f}/s ({many / single:.1f}x)")


def test_negative_and_huge_integers_are_invalid_arguments_not_overflow(qname: str, rname: str) -> None:
    with Queue.create(qname, slots=4, slot_size=8) as tx, Queue.open(qname) as rx:
        for call in (
            lambda: rx.recv_many(-1),
            lambda: tx.wait_consumers(-1),
            lambda: tx.reserve(-5),
            lambda: rx.recv_many(2**70),
        ):
            with pytest.raises(shmio.InvalidArgument):
                call()
        with pytest.raises(TypeError):
            rx.recv_many(1.5)  # type: ignore[arg-type]
    with shmio.Region.create(rname, 4096) as r:
        for call in (
            lambda: r.read(-1, 4),
            lambda: r.read(0, -4),
            lambda: r.write(-1, b"x"),
            lambda: r.flush(-1),
            lambda: r.wait_changed(-1, timeout=0),
        ):
            with pytest.raises(shmio.InvalidArgument) as e:
                call()
            assert ">= 0" in str(e.value), e.value
    with shmio.Poller("epoll") as p:
        with pytest.raises(shmio.InvalidArgument):
            p.register(0, -1)


def test_an_exception_in_a_recv_view_block_is_never_replaced(qname: str) -> None:
    with Queue.create(qname, slots=4, slot_size=8) as tx, Queue.open(qname) as rx:
        tx.send(b"abc")
        with pytest.raises(ZeroDivisionError) as e:
            with rx.recv_view() as mv:
                part = mv[0:1]  # a buffer on the view, kept alive by the traceback's frame
                1 / 0
        notes = getattr(e.value, "__notes__", [])
        assert any("BufferError" in n for n in notes), notes
        del part, mv
        e = None  # type: ignore[assignment]
        # The slot is given back once the buffers are gone: the next read works.
        tx.send(b"def")
        assert rx.recv(timeout=1) == b"def"


def test_timeout_zero_raises_as_any_timeout_does(qname: str) -> None:
    with Queue.create(qname, slots=2, slot_size=8, policy="backpressure") as tx, Queue.open(qname) as rx:
        for t in (0, 1e-9, 0.001):
            with pytest.raises(shmio.Timeout):
                rx.recv(timeout=t)
        assert rx.try_recv() is None
        tx.send(b"1")
        tx.send(b"2")
        for t in (0, 1e-9):
            with pytest.raises(shmio.Timeout):
                tx.send(b"3", timeout=t)
        assert tx.try_send(b"3") is None


def test_names_are_paths_only_when_they_look_like_paths(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(shmio.InvalidArgument, match="a name has no '/'"):
        Queue.create("a/b")
    with pytest.raises(shmio.InvalidArgument):
        Queue.create("..")
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        with Queue.create("./q_here") as tx:
            assert os.path.exists(tmp_path / "q_here")
            tx.send(b"x")
        Queue.unlink("./q_here")
    finally:
        os.chdir(here)
