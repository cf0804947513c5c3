"""asyncio: arecv / async for / asend / await_changed on a running loop, cancellation, and
100,000 records at random gaps from another process (0 lost; latency printed beside an
os.pipe baseline in the same run, not asserted)."""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
import time

import pytest

import shmio
from shmio import Queue, Region

from conftest import wait_until

N = 100_000
REC = struct.Struct("<Qq")  # sequence number, send time (perf_counter_ns: CLOCK_MONOTONIC)

# Sends N records at random gaps (a burst of 1-200, then a pause of 0-300 us) to a queue, or
# with "pipe" to the pipe on fd 3.
SENDER = """
import os, random, struct, sys, time, shmio
rec, n, kind, target = struct.Struct("<Qq"), int(sys.argv[2]), sys.argv[1], sys.argv[3]
rng = random.Random(7)
if kind == "pipe":
    out = int(target)
    send = lambda b: os.write(out, b)
else:
    p = shmio.Queue.create(target, slots=4096, slot_size=rec.size, policy="backpressure")
    p.wait_consumers(1, timeout=30)
    send = p.send
i = 0
while i < n:
    for _ in range(min(rng.randint(1, 200), n - i)):
        send(rec.pack(i, time.perf_counter_ns()))
        i += 1
    end = time.perf_counter() + rng.random() * 300e-6
    while time.perf_counter() < end:
        pass
if kind != "pipe":
    p.close()
"""


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 60))


def pct(xs: list[int], q: float) -> float:
    return sorted(xs)[int(q * (len(xs) - 1))] / 1000.0


def test_arecv_waits_without_blocking_the_loop_and_survives_cancel(qname: str) -> None:
    async def main() -> None:
        with Queue.create(qname, slots=8, slot_size=32) as tx, Queue.open(qname) as rx:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.001)

            t = asyncio.create_task(ticker())
            task = asyncio.create_task(rx.arecv())
            await asyncio.sleep(0.05)
            assert not task.done()
            assert ticks >= 10, "the loop ran meanwhile"
            with pytest.raises(RuntimeError):
                await rx.arecv()  # a second task awaiting the same consumer
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            tx.send(b"after cancel")
            assert await rx.arecv(timeout=5) == b"after cancel"
            later = asyncio.create_task(rx.arecv())
            await asyncio.sleep(0.01)
            tx.send(b"woken")
            assert await later == b"woken"
            t0 = time.monotonic()
            with pytest.raises(shmio.Timeout):
                await rx.arecv(timeout=0.05)
            assert time.monotonic() - t0 >= 0.05
            with pytest.raises(shmio.InvalidArgument):
                await rx.arecv(timeout=-1)
            t.cancel()

    run(main())


def test_async_for_ends_when_the_producer_closes(qname: str) -> None:
    async def main() -> list[bytes]:
        tx = Queue.create(qname, slots=8, slot_size=32)
        rx = Queue.open(qname)

        async def produce() -> None:
            for i in range(20):
                tx.send(b"%d" % i)
                await asyncio.sleep(0.001)
            tx.close()

        p = asyncio.create_task(produce())
        got = [r async for r in rx]
        await p
        rx.close()
        return got

    assert run(main()) == [b"%d" % i for i in range(20)]


def test_asend_waits_for_space_and_a_cancelled_one_sent_nothing(qname: str) -> None:
    async def main() -> None:
        with Queue.create(qname, slots=2, slot_size=8, policy="backpressure") as tx, Queue.open(
            qname, start="oldest"
        ) as rx:
            assert await tx.asend(b"1") == 0
            assert await tx.asend(b"2") == 1
            waiting = asyncio.create_task(tx.asend(b"3"))
            await asyncio.sleep(0.02)
            assert not waiting.done()
            assert rx.recv() == b"1"
            assert await asyncio.wait_for(waiting, 5) == 2
            cancelled = asyncio.create_task(tx.asend(b"x"))
            await asyncio.sleep(0.02)
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            with pytest.raises(shmio.Timeout):
                await tx.asend(b"y", timeout=0.02)
            assert rx.recv_many(8) == [b"2", b"3"], "the cancelled and timed-out sends sent nothing"

    run(main())


def test_await_changed(rname: str) -> None:
    async def main() -> None:
        with Region.create(rname, 4096) as r, Region.open(rname) as other:
            v = other.version
            task = asyncio.create_task(other.await_changed(v))
            await asyncio.sleep(0.01)
            assert not task.done()
            r.write(0, b"x")
            assert await asyncio.wait_for(task, 5) == r.version != v
            with pytest.raises(shmio.Timeout):
                await other.await_changed(r.version, timeout=0.02)

    run(main())


def test_100k_records_at_random_gaps_none_lost_latency_beside_a_pipe(qname: str) -> None:
    async def over_queue() -> list[int]:
        sender = subprocess.Popen([sys.executable, "-c", SENDER, "queue", str(N), qname])
        wait_until(lambda: os.path.exists(f"/dev/shm/{qname}"), "the sender's queue")
        rx = Queue.open(qname, start="oldest")
        lat, expect = [], 0
        async for rec in rx:
            seq, sent = REC.unpack(rec)
            assert seq == expect, f"record {expect} lost (got {seq})"
            lat.append(time.perf_counter_ns() - sent)
            expect += 1
        assert expect == N
        assert sender.wait(30) == 0
        assert rx.lost == 0
        rx.close()
        return lat

    async def over_pipe() -> list[int]:
        r, w = os.pipe()
        sender = subprocess.Popen([sys.executable, "-c", SENDER, "pipe", str(N), str(w)], pass_fds=(w,))
        os.close(w)
        loop = asyncio.get_running_loop()
        buf, lat, expect = b"", [], 0
        ready = asyncio.Event()
        loop.add_reader(r, ready.set)
        try:
            while expect < N:
                await asyncio.wait_for(ready.wait(), 30)
                ready.clear()
                chunk = os.read(r, 1 << 16)
                assert chunk, "the sender ended early"
                buf += chunk
                now = time.perf_counter_ns()
                while len(buf) >= REC.size:
                    seq, sent = REC.unpack_from(buf)
                    buf = buf[REC.size :]
                    assert seq == expect
                    lat.append(now - sent)
                    expect += 1
        finally:
            loop.remove_reader(r)
            os.close(r)
        assert sender.wait(30) == 0
        return lat

    q = run(over_queue())
    p = run(over_pipe())
    print(
        f"asyncio, {N} records at random gaps from another process: "
        f"shmio arecv p50 {pct(q, 0.5):.1f} us p99 {pct(q, 0.99):.1f} us; "
        f"os.pipe + add_reader p50 {pct(p, 0.5):.1f} us p99 {pct(p, 0.99):.1f} us "
        f"(p50 ratio {pct(q, 0.5) / pct(p, 0.5):.2f}x)"
    )
