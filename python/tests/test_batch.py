"""Batches: Producer.send_many and Consumer.recv_many, and the speed they buy (printed, not
asserted: speed lives in the benchmarks)."""

from __future__ import annotations

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
        with pytest.raises(shmio.WouldBlock):
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
