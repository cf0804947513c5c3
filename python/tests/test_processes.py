"""Real processes: multiprocessing (spawn), subprocess, producer death, Ctrl-C."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import pytest

import shmio
from shmio import Queue

from conftest import consumers_attached, queue_exists, wait_until

N = 20_000


def _consume_all(name: str, n: int) -> int:
    """Child: reads until the queue closes; exit status 0 iff it got records 0..n-1 in order."""
    with Queue.open(name, start="oldest") as rx:
        i = 0
        for rec in rx:
            if rec != b"record %d" % i:
                return 1
            i += 1
        return 0 if i == n and rx.lost == 0 else 2


def _child_main(name: str, n: int) -> None:
    sys.exit(_consume_all(name, n))


def _send_to_child(tx: Queue, name: str, child_main: Callable[[str, int], None], n: int) -> None:
    """Sends records 0..n-1 to a spawned child consumer (`child_main(name, n)`), then closes
    the queue: the child must exit 0."""
    child = mp.get_context("spawn").Process(target=child_main, args=(name, n))
    child.start()
    with tx:
        try:
            wait_until(consumers_attached(name), "the child to attach")
            for i in range(n):
                tx.send(b"record %d" % i)
        except BaseException:
            child.kill()
            raise
    child.join(timeout=120)
    assert child.exitcode == 0


def test_spawned_consumer_gets_every_record_in_order(qname: str) -> None:
    tx = Queue.create(qname, slots=64, slot_size=64, policy="backpressure")
    _send_to_child(tx, qname, _child_main, N)


def _consume_sleeping(name: str, n: int) -> None:
    """Child: like _consume_all, but every wait sleeps in the kernel at once."""
    with Queue.open(name, start="oldest") as rx:
        rx.spin = 0
        assert rx.spin == 0.0
        i = 0
        for rec in rx:
            if rec != b"record %d" % i:
                sys.exit(1)
            i += 1
        sys.exit(0 if i == n else 2)


def test_zero_spin_on_both_sides_loses_nothing(qname: str) -> None:
    # Spin 0 on both ends of a tiny back-pressure ring: the producer sleeps for space and the
    # consumer for data thousands of times; every record must still arrive, in order.
    tx = Queue.create(qname, slots=2, slot_size=64, policy="backpressure")
    assert tx.spin == pytest.approx(20e-6)
    tx.spin = 0
    _send_to_child(tx, qname, _consume_sleeping, 5_000)


def test_spin_rejects_bad_values(qname: str) -> None:
    with Queue.create(qname, slots=4, slot_size=8) as tx:
        for bad in (-1.0, float("nan"), float("inf")):
            with pytest.raises(shmio.InvalidArgument):
                tx.spin = bad
        tx.spin = 3600  # clamped, not refused
        assert tx.spin == 1.0
        with Queue.open(qname) as rx:
            with pytest.raises(shmio.InvalidArgument):
                rx.spin = -0.5
            rx.spin = 1e-6
            assert rx.spin == pytest.approx(1e-6)


def _spawned_views(name: str, n: int, q: "mp.Queue[int]") -> None:
    total = 0
    with Queue.open(name, start="oldest") as rx:
        for _ in range(n):
            with rx.recv_view() as mv:
                total += mv[0] + len(mv)
    q.put(total)


def test_spawned_zero_copy_consumers_and_reserving_producer(qname: str) -> None:
    ctx = mp.get_context("spawn")
    result: mp.Queue[int] = ctx.Queue()
    n = 2000
    with Queue.create(qname, slots=16, slot_size=4096, policy="backpressure") as tx:
        kids = [ctx.Process(target=_spawned_views, args=(qname, n, result)) for _ in range(2)]
        for k in kids:
            k.start()
        wait_until(consumers_attached(qname, 2), "both children to attach")
        expected = 0
        for i in range(n):
            size = 1 + i % 4096
            mv = tx.reserve(size)
            mv[0] = i % 256
            tx.commit()
            expected += i % 256 + size
        totals = [result.get(timeout=120), result.get(timeout=120)]
        for k in kids:
            k.join(timeout=60)
            assert k.exitcode == 0
    assert totals == [expected, expected]


PRODUCER_SCRIPT = textwrap.dedent(
    """
    import sys, time, shmio
    name, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    tx = shmio.Queue.create(name, slots=32, slot_size=80, policy="backpressure")
    while not shmio.Queue.stats(name)["consumers"]:
        time.sleep(0.005)
    for i in range(n):
        rec = b"write Data : %d" % i
        tx.send(rec.ljust(80, b"\\0"))
    print("sent", flush=True)
    if mode == "hang":
        time.sleep(600)
    tx.close()
    """
)


def test_subprocess_producer_then_clean_close(qname: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", PRODUCER_SCRIPT, qname, "500", "close"])
    try:
        wait_until(queue_exists(qname), "the queue file")
        with Queue.open(qname, start="oldest") as rx:
            recs = list(rx)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    assert len(recs) == 500
    assert recs[7].rstrip(b"\0") == b"write Data : 7"


def test_producer_death_is_reported_after_draining(qname: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", PRODUCER_SCRIPT, qname, "5", "hang"], stdout=subprocess.PIPE
    )
    try:
        wait_until(queue_exists(qname), "the queue file")
        rx = Queue.open(qname, start="oldest")
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"sent\n"
        proc.kill()
        proc.wait(timeout=60)
        got = [rx.recv(timeout=30) for _ in range(5)]
        assert got[4].rstrip(b"\0") == b"write Data : 4"
        with pytest.raises(shmio.ProducerDead):
            rx.recv(timeout=30)
        with pytest.raises(shmio.ProducerDead):
            list(rx)  # iteration raises on death (it ends only on a clean close)
        st = Queue.stats(qname)
        assert (st["producer"], st["producer_pid"]) == ("dead", proc.pid)
        with Queue.take_over(qname) as tx:
            assert Queue.stats(qname)["producer_generation"] == 2
            tx.send(b"new producer")
        rx.close()
    finally:
        proc.kill()


BLOCKED_SCRIPT = textwrap.dedent(
    """
    import sys, shmio
    name = sys.argv[1]
    tx = shmio.Queue.create(name)
    rx = shmio.Queue.open(name)
    try:
        print("blocking", flush=True)
        rx.recv()
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
        sys.exit(42)
    """
)


@pytest.mark.parametrize("call", ["recv", "iter"])
def test_ctrl_c_interrupts_a_blocked_recv(qname: str, call: str) -> None:
    script = BLOCKED_SCRIPT if call == "recv" else BLOCKED_SCRIPT.replace("rx.recv()", "list(rx)")
    proc = subprocess.Popen(
        [sys.executable, "-c", script, qname], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"blocking\n"
        time.sleep(0.3)  # let it reach the futex wait
        assert proc.poll() is None
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        # A generous bound keeps a loaded machine from failing the test; a wait that ignores
        # the signal would never end.
        out, err = proc.communicate(timeout=20)
        elapsed = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 42, err.decode()
    assert out == b"KeyboardInterrupt\n"
    print(f"KeyboardInterrupt after {elapsed * 1000:.0f} ms")
    assert elapsed < 5


FORK_SCRIPT = textwrap.dedent(
    """
    import os, sys, shmio
    name = sys.argv[1]
    tx = shmio.Queue.create(name)
    rx = shmio.Queue.open(name)
    pid = os.fork()
    if pid == 0:
        for call in (lambda: tx.send(b"x"), lambda: rx.recv(timeout=0)):
            try:
                call()
            except shmio.InvalidArgument as e:
                assert "fork" in str(e), e
            else:
                sys.exit(3)
        sys.exit(0)  # interpreter shutdown drops the inherited handles: must not hang
    _, status = os.waitpid(pid, 0)
    tx.send(b"parent still works")
    assert rx.recv(timeout=5) == b"parent still works"
    print(os.waitstatus_to_exitcode(status), flush=True)
    """
)


def test_handles_inherited_through_fork_are_refused(qname: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, qname], capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"0\n"
