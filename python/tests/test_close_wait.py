"""close() from another thread ends a blocked call; close() in a forked child; wait_producer and
wait_consumers."""

from __future__ import annotations

import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable

import pytest

import shmio
from shmio import Queue

from conftest import run_script, wait_until

# How long the blocked calls below wait at most: without a prompt wake-up by close(), the call
# ends by itself only after this (and the test fails on the latency and the exception type).
SELF_TIMEOUT = 5.0
TRIES = 5


def _setup(kind: str, name: str) -> tuple[Callable[[], object], Callable[[], None], list[object]]:
    """Makes a queue and returns (the blocking call, the close() that must end it, handles)."""
    if kind in ("send", "wait_consumers"):
        tx = Queue.create(name, slots=2, slot_size=8, policy="backpressure")
        if kind == "wait_consumers":
            return lambda: tx.wait_consumers(5, timeout=SELF_TIMEOUT), tx.close, [tx]
        rx = Queue.open(name)  # attached, never reads: the ring fills up
        tx.send(b"1")
        tx.send(b"2")
        return lambda: tx.send(b"3", timeout=SELF_TIMEOUT), tx.close, [tx, rx]
    tx = Queue.create(name)
    rx = Queue.open(name)
    if kind == "recv":
        call: Callable[[], object] = lambda: rx.recv(timeout=SELF_TIMEOUT)
    elif kind == "recv_view":
        call = lambda: rx.recv_view(timeout=SELF_TIMEOUT)
    elif kind == "iter":
        # Iteration has no timeout: without the wake-up, the producer's close (a timer) ends
        # the iteration normally instead, after SELF_TIMEOUT.
        timer = threading.Timer(SELF_TIMEOUT, tx.close)
        timer.daemon = True
        timer.start()
        call = lambda: [r for r in rx]
    elif kind == "wait_producer":
        tx.close()
        with pytest.raises(shmio.Closed):
            rx.recv(timeout=1)
        call = lambda: rx.wait_producer(timeout=SELF_TIMEOUT)
    else:
        raise AssertionError(kind)
    return call, rx.close, [tx, rx]


def _close_latency(kind: str, name: str) -> float:
    """Blocks `kind` in a thread, closes its handle from this one; returns the seconds from the
    close() call to the exception in the blocked thread, after checking it is Closed."""
    call, close, handles = _setup(kind, name)
    outcome: list[tuple[float, BaseException | None]] = []

    def run() -> None:
        try:
            call()
        except BaseException as e:  # noqa: BLE001 - reported to the main thread
            outcome.append((time.perf_counter(), e))
        else:
            outcome.append((time.perf_counter(), None))

    t = threading.Thread(target=run)
    t.start()
    try:
        time.sleep(0.1)  # the call is asleep in its wait by now
        assert t.is_alive() and not outcome, outcome
        start = time.perf_counter()
        close()
        closed_in = time.perf_counter() - start
        t.join(timeout=SELF_TIMEOUT * 2)
        assert not t.is_alive()
        (at, exc), = outcome
        assert isinstance(exc, shmio.Closed), f"{kind}: {exc!r}"
        assert "closed by another thread" in str(exc)
        assert closed_in < SELF_TIMEOUT / 2, f"close() took {closed_in:.3f} s"
        # The handle is closed for good: later calls say so.
        with pytest.raises(shmio.InvalidArgument, match="closed"):
            call()
        return at - start
    finally:
        t.join(timeout=SELF_TIMEOUT * 2)
        for h in handles:
            h.close()
        Queue.unlink(name)


@pytest.mark.parametrize(
    "kind", ["recv", "iter", "recv_view", "send", "wait_producer", "wait_consumers"]
)
def test_close_from_another_thread_ends_a_blocked_call(qname: str, kind: str) -> None:
    lat = [_close_latency(kind, f"{qname}_{i}") for i in range(TRIES)]
    med = statistics.median(lat)
    print(
        f"close() -> Closed in the blocked {kind}: median {med * 1e3:.2f} ms, "
        f"max {max(lat) * 1e3:.2f} ms ({', '.join(f'{x * 1e3:.2f}' for x in lat)})"
    )
    # The wake-up takes microseconds; the median gives a loaded machine slack.
    assert med < 0.010, lat


def test_close_while_nothing_waits_is_unchanged(qname: str) -> None:
    with Queue.create(qname) as tx, Queue.open(qname) as rx:
        tx.send(b"a")
        assert rx.recv(timeout=1) == b"a"
        rx.close()
        rx.close()
        assert rx.closed
        with pytest.raises(shmio.InvalidArgument, match="closed consumer"):
            rx.recv(timeout=0)
        tx.close()
        assert tx.closed


FORK_CLOSE_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, threading, time, shmio
    name = sys.argv[1]
    tx = shmio.Queue.create(name)
    rx = shmio.Queue.open(name)
    busy = shmio.Queue.open(name)
    got = []
    # At the fork this thread is blocked in recv, holding busy's lock: in the child nobody
    # would ever give it back.
    t = threading.Thread(target=lambda: got.append(busy.recv(timeout=30)))
    t.start()
    time.sleep(0.2)
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)  # a hang fails the child instead of the test run
        code = 0
        try:
            for h in (busy, rx, tx):
                h.close()
                h.close()  # idempotent
                h.__exit__(None, None, None)
            for call in (
                lambda: tx.send(b"x"),
                lambda: tx.wait_consumers(1, timeout=0),
                lambda: tx.closed,
                lambda: rx.recv(timeout=0),
                lambda: rx.wait_producer(timeout=0),
                lambda: busy.recv(timeout=0),
                lambda: busy.closed,
            ):
                try:
                    call()
                except shmio.InvalidArgument as e:
                    assert "fork" in str(e) and "open the queue again" in str(e), e
                else:
                    code = 3
        except BaseException as e:
            print("child:", repr(e), file=sys.stderr, flush=True)
            code = 4
        # Interpreter shutdown drops the inherited handles: harmless to the parent.
        sys.exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    s = shmio.Queue.stats(name)
    assert s["producer"] == "alive" and len(s["consumers"]) == 2, s
    tx.send(b"after the fork")
    assert rx.recv(timeout=5) == b"after the fork"
    t.join(timeout=30)
    assert got == [b"after the fork"], got
    print("ok", flush=True)
    """
)


def test_close_in_a_forked_child(qname: str) -> None:
    assert run_script(FORK_CLOSE_SCRIPT, qname, timeout=60) == "ok\n"


TAKE_OVER_SCRIPT = textwrap.dedent(
    """
    import sys, time, shmio
    time.sleep(0.3)
    tx = shmio.Queue.take_over(sys.argv[1])
    tx.send(b"new")
    sys.stdin.read()  # holds the queue until the test is done
    tx.close()
    """
)


def test_wait_producer(qname: str) -> None:
    tx = Queue.create(qname)
    with Queue.open(qname, start="oldest") as rx:
        rx.wait_producer()  # a live producer: at once
        rx.wait_producer(timeout=0)
        tx.send(b"old")
        tx.close()
        assert rx.recv(timeout=5) == b"old"
        with pytest.raises(shmio.Closed):
            rx.recv(timeout=5)
        t0 = time.monotonic()
        with pytest.raises(shmio.Timeout):
            rx.wait_producer(timeout=0.2)
        assert time.monotonic() - t0 >= 0.2
        with pytest.raises(shmio.Timeout):  # as recv(timeout=0), as any timeout
            rx.wait_producer(timeout=0)
        with pytest.raises(shmio.InvalidArgument):
            rx.wait_producer(timeout=-1)
        proc = subprocess.Popen(
            [sys.executable, "-c", TAKE_OVER_SCRIPT, qname], stdin=subprocess.PIPE
        )
        try:
            rx.wait_producer(timeout=30)
            assert Queue.stats(qname)["producer"] == "alive"
            # The new producer writes its pid and generation just after it claims the queue.
            wait_until(
                lambda: Queue.stats(qname)["producer_pid"] == proc.pid, "the new producer's pid"
            )
            assert Queue.stats(qname)["producer_generation"] == 2
            assert rx.recv(timeout=10) == b"new"
        finally:
            proc.communicate(timeout=30)
        assert proc.returncode == 0


CONSUMER_SCRIPT = textwrap.dedent(
    """
    import sys, time, shmio
    time.sleep(float(sys.argv[2]))
    with shmio.Queue.open(sys.argv[1]) as rx:
        for _ in rx:  # until the producer closes
            pass
    """
)


def test_wait_consumers(qname: str) -> None:
    with Queue.create(qname) as tx:
        assert tx.wait_consumers(0) == 0
        with pytest.raises(shmio.Timeout):
            tx.wait_consumers(1, timeout=0.1)
        with pytest.raises(shmio.Timeout):  # as send(timeout=0), as any timeout
            tx.wait_consumers(1, timeout=0)
        procs = [
            subprocess.Popen([sys.executable, "-c", CONSUMER_SCRIPT, qname, delay])
            for delay in ("0.2", "0.5")
        ]
        try:
            assert tx.wait_consumers(2, timeout=30) == 2
            assert len(Queue.stats(qname)["consumers"]) == 2
            assert tx.wait_consumers(1, timeout=0) == 2
        finally:
            tx.close()
            for p in procs:
                p.wait(timeout=30)
        assert [p.returncode for p in procs] == [0, 0]
