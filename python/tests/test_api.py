"""The queue API within one process: records, zero copy, exported views, errors, polling."""

from __future__ import annotations

import array
import gc
import threading
import os
import selectors
import time

import pytest

import shmio
from shmio import Queue


def test_send_recv_roundtrip_accepts_any_buffer(qname: str) -> None:
    with Queue.create(qname, slots=8, slot_size=64) as tx, Queue.open(qname) as rx:
        assert tx.send(b"hello") == 0
        assert tx.send(bytearray(b"ba")) == 1
        assert tx.send(memoryview(b"xmv")[1:]) == 2
        assert tx.send(array.array("i", [1, 2])) == 3
        assert tx.send(b"") == 4
        assert tx.send(type("Sub", (bytes,), {})(b"sub")) == 5  # bytes itself is read in place
        assert rx.recv() == b"hello"
        assert rx.recv() == b"ba"
        assert rx.recv() == b"mv"
        assert rx.recv() == array.array("i", [1, 2]).tobytes()
        assert rx.recv() == b""
        assert rx.recv() == b"sub"
        assert rx.try_recv() is None
        assert rx.position == 6
        assert rx.received == 6
        assert tx.next_seq == 6


def test_start_positions(qname: str) -> None:
    with Queue.create(qname, slots=8, slot_size=16) as tx:
        for i in range(5):
            tx.send(bytes([i]))
        with Queue.open(qname) as newest:
            assert newest.recv(timeout=0) == bytes([4])
        with Queue.open(qname, start="oldest") as oldest:
            assert oldest.recv(timeout=0) == bytes([0])
        with Queue.open(qname, start=3) as third:
            assert third.position == 3
            assert third.recv(timeout=0) == bytes([3])


def test_queue_layout_version_names_its_kind() -> None:
    # QUEUE_LAYOUT_VERSION names the file kind; LAYOUT_VERSION, its older name, stays.
    assert isinstance(shmio.QUEUE_LAYOUT_VERSION, int)
    assert shmio.QUEUE_LAYOUT_VERSION == shmio.LAYOUT_VERSION


def test_info_and_stats(qname: str) -> None:
    with Queue.create(qname, slots=5, slot_size=100, policy="backpressure") as tx:
        info = tx.info
        assert info["slots"] == 8  # rounded up to a power of two
        assert info["slot_size"] == 100
        assert info["policy"] == "backpressure"
        assert info["path"] == f"/dev/shm/{qname}"
        with Queue.open(qname, start="oldest") as rx:
            for i in range(3):
                tx.send(b"x")
            rx.recv()
            st = Queue.stats(qname)
            assert st["head"] == 3
            assert st["producer"] == "alive"
            assert st["producer_pid"] == os.getpid()
            assert st["producer_generation"] == 1
            [c] = st["consumers"]
            assert (c["position"], c["lag"], c["received"], c["lost"]) == (1, 2, 1, 0)
            assert c["pid"] == os.getpid()
    st = Queue.stats(qname)
    assert st["producer"] == "none"
    assert st["consumers"] == []


@pytest.mark.parametrize(
    "resume, first",
    [
        (None, 7),
        ("near-oldest", 7),
        ("half-ring", 8),
        ("newest", 9),
        (3, 7),
        (0, 10),
        ("oldest", 6),
    ],
)
def test_overwrite_counts_lost_records(qname: str, resume: str | int | None, first: int) -> None:
    # 10 records into 4 slots, the consumer at 0: where it resumes after the lap.
    kw = {} if resume is None else {"resume": resume}
    with Queue.create(qname, slots=4, slot_size=8) as tx, Queue.open(
        qname, start="oldest", **kw
    ) as rx:
        for i in range(10):
            tx.send(bytes([i]))
        got = []
        while (rec := rx.try_recv()) is not None:
            got.append(rec[0])
        assert got == list(range(first, 10))
        assert rx.lost == first


@pytest.mark.parametrize("resume", ["sometimes", -1, 1.5])
def test_bad_resume_is_refused(qname: str, resume: object) -> None:
    with Queue.create(qname, slots=4, slot_size=8):
        with pytest.raises(shmio.InvalidArgument):
            Queue.open(qname, resume=resume)  # type: ignore[arg-type]


def test_backpressure_try_send_and_timeout(qname: str) -> None:
    with Queue.create(qname, slots=2, slot_size=8, policy="backpressure") as tx:
        with Queue.open(qname) as rx:
            assert tx.try_send(b"a") == 0
            assert tx.try_send(b"b") == 1
            assert tx.try_send(b"c") is None
            with pytest.raises(shmio.Timeout) as ei:
                tx.send(b"c", timeout=0.05)
            assert isinstance(ei.value, TimeoutError)
            assert rx.recv() == b"a"
            assert tx.try_send(b"c") == 2
            assert [rx.recv(), rx.recv()] == [b"b", b"c"]


def test_recv_timeout_is_timeout_error(qname: str) -> None:
    with Queue.create(qname) as tx, Queue.open(qname) as rx:
        with pytest.raises(TimeoutError):
            rx.recv(timeout=0.02)
        tx.send(b"late")
        assert rx.recv(timeout=5) == b"late"


def test_recv_into(qname: str) -> None:
    with Queue.create(qname, slot_size=32) as tx, Queue.open(qname, start="oldest") as rx:
        tx.send(b"0123456789")
        tx.send(b"ab")
        small = bytearray(4)
        with pytest.raises(shmio.BufferTooSmall) as ei:
            rx.recv_into(small)
        assert ei.value.needed == 10
        assert rx.position == 0  # not consumed
        buf = bytearray(16)
        assert rx.recv_into(buf) == 10
        assert bytes(buf[:10]) == b"0123456789"
        arr = array.array("B", bytes(8))
        assert rx.recv_into(memoryview(arr)[2:]) == 2
        assert arr.tobytes()[2:4] == b"ab"
        with pytest.raises(BufferError):
            rx.recv_into(b"read-only bytes")


def test_iteration_ends_when_the_producer_closes(qname: str) -> None:
    tx = Queue.create(qname, slots=16)
    rx = Queue.open(qname, start="oldest")
    for i in range(5):
        tx.send(b"%d" % i)
    tx.close()
    tx.close()  # idempotent
    assert list(rx) == [b"0", b"1", b"2", b"3", b"4"]
    with pytest.raises(shmio.Closed):
        rx.recv()
    rx.close()


def test_reserve_commit_abort(qname: str) -> None:
    with Queue.create(qname, slots=8, slot_size=16) as tx, Queue.open(qname, start="oldest") as rx:
        mv = tx.reserve()
        assert len(mv) == 16 and not mv.readonly
        mv[:5] = b"hello"
        assert tx.commit(5) == 0
        with pytest.raises(ValueError):
            mv[0]  # the view was released at commit
        mv = tx.reserve(3)
        mv[:] = b"abc"
        assert tx.commit() == 1  # default: the whole view
        mv = tx.reserve(4)
        mv[:] = b"nope"
        tx.abort()
        assert tx.send(b"after") == 2
        assert [rx.recv(), rx.recv(), rx.recv()] == [b"hello", b"abc", b"after"]
        with pytest.raises(shmio.TooLarge) as ei:
            tx.reserve(17)
        assert (ei.value.len, ei.value.max) == (17, 16)
        with pytest.raises(shmio.InvalidArgument):
            tx.commit()


def test_commit_refuses_while_the_slot_is_still_exported(qname: str) -> None:
    with Queue.create(qname, slot_size=16) as tx, Queue.open(qname, start="oldest") as rx:
        mv = tx.reserve(4)
        part = mv[1:3]  # shares the export
        mv[:] = b"wxyz"
        with pytest.raises(BufferError):
            tx.commit()
        with pytest.raises(shmio.InvalidArgument):
            tx.reserve()  # still open
        assert rx.try_recv() is None  # nothing published
        del part
        assert tx.commit(4) == 0
        assert rx.recv() == b"wxyz"
        mv = tx.reserve(2)
        held = memoryview(mv)
        with pytest.raises(BufferError):
            tx.close()
        assert not tx.closed
        held.release()
        tx.close()  # aborts the reservation
        assert tx.closed
        with pytest.raises(shmio.Closed):
            rx.recv()


def test_recv_view_zero_copy(qname: str) -> None:
    with Queue.create(qname, slot_size=64) as tx, Queue.open(qname, start="oldest") as rx:
        tx.send(b"in place")
        tx.send(b"second")
        view = rx.recv_view()
        assert view.seq == 0 and len(view) == 8 and not view.released
        with view as mv:
            assert mv.readonly
            assert bytes(mv) == b"in place"
            with pytest.raises(TypeError):
                mv[0] = 1  # type: ignore[index]
        assert view.released
        with pytest.raises(ValueError):
            mv[0]  # released with the block
        assert rx.position == 1
        with rx.recv_view() as mv:
            assert mv.tobytes() == b"second"
        assert rx.try_recv() is None


def test_view_held_past_the_block_stays_valid_and_blocks_the_consumer(qname: str) -> None:
    with Queue.create(qname, slot_size=64) as tx, Queue.open(qname, start="oldest") as rx:
        tx.send(b"keep me")
        tx.send(b"next")
        view = rx.recv_view()
        with pytest.raises(BufferError):
            with view as mv:
                kept = mv[0:4]
        # The exit refused to give the slot back: the memory under `kept` is still the record.
        assert not view.released
        assert bytes(kept) == b"keep"
        with pytest.raises(BufferError):
            rx.close()
        with pytest.raises(BufferError):
            rx.recv()
        assert rx.position == 0
        del kept
        view.release()
        assert view.released
        assert rx.recv() == b"next"


def test_unused_view_is_given_back_by_the_next_read(qname: str) -> None:
    with Queue.create(qname) as tx, Queue.open(qname, start="oldest") as rx:
        tx.send(b"a")
        tx.send(b"b")
        view = rx.recv_view()
        assert rx.recv() == b"b"  # the view was never entered: released, record consumed
        assert view.released
        with pytest.raises(BufferError):
            view.memoryview()


def test_view_keeps_the_consumer_alive(qname: str) -> None:
    with Queue.create(qname) as tx:
        tx.send(b"alive")

        def view_of_a_dropped_consumer() -> shmio.RecordView:
            return Queue.open(qname, start="oldest").recv_view()

        view = view_of_a_dropped_consumer()
        gc.collect()
        assert len(Queue.stats(qname)["consumers"]) == 1
        with view as mv:
            assert bytes(mv) == b"alive"
        del view, mv
        gc.collect()
        assert Queue.stats(qname)["consumers"] == []


def test_dropping_handles_closes_them(qname: str) -> None:
    tx = Queue.create(qname)
    mv = tx.reserve(1)
    del tx, mv  # no reference cycle keeps the producer alive
    gc.collect()
    assert Queue.stats(qname)["producer"] == "none"


def test_fileno_with_selectors(qname: str) -> None:
    with Queue.create(qname) as tx, Queue.open(qname) as rx:
        sel = selectors.DefaultSelector()
        sel.register(rx, selectors.EVENT_READ)
        assert sel.select(timeout=0.01) == []
        tx.send(b"ping")
        events = sel.select(timeout=10)
        assert len(events) == 1 and events[0][0].fileobj is rx
        assert rx.try_recv() == b"ping"
        assert rx.try_recv() is None  # re-arms
        assert sel.select(timeout=0.01) == []
        sel.close()


def test_take_over(qname: str) -> None:
    tx = Queue.create(qname)
    tx.send(b"one")
    with pytest.raises(shmio.ProducerExists) as ei:
        Queue.take_over(qname)
    assert ei.value.pid == os.getpid()
    tx.close()
    with Queue.take_over(qname) as tx2:
        assert tx2.next_seq == 1
        assert Queue.stats(qname)["producer_generation"] == 2


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"policy": "sometimes"}, shmio.InvalidArgument),
        ({"slots": 0}, shmio.InvalidArgument),
        ({"slots": -1}, shmio.InvalidArgument),
        ({"slot_size": 0}, shmio.InvalidArgument),
        ({"max_consumers": 0}, shmio.InvalidArgument),
        ({"slots": 1.5}, TypeError),
    ],
)
def test_bad_create_arguments(qname: str, kwargs: dict, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        Queue.create(qname, **kwargs)
    assert not os.path.exists(f"/dev/shm/{qname}")


def test_error_mapping(qname: str, tmp_path) -> None:
    with pytest.raises(shmio.NotFound) as nf:
        Queue.open(qname)
    assert isinstance(nf.value, FileNotFoundError)
    assert isinstance(nf.value, shmio.ShmioError)
    with pytest.raises(shmio.InvalidArgument):
        Queue.open("")
    with Queue.create(qname, slot_size=8, max_consumers=1) as tx:
        with pytest.raises(FileExistsError):
            Queue.create(qname)
        with pytest.raises(shmio.TooLarge) as tl:
            tx.send(b"123456789")
        assert isinstance(tl.value, ValueError)
        with pytest.raises(TypeError):
            tx.send("text is not bytes")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            tx.send(b"x", timeout=-1)
        with pytest.raises(shmio.InvalidArgument):
            Queue.open(qname, start="middle")  # type: ignore[arg-type]
        with pytest.raises(shmio.InvalidArgument):
            Queue.open(qname, start=-3)
        with pytest.raises(shmio.InvalidArgument):
            Queue.open(qname, start=99)  # ahead of the producer
        with Queue.open(qname) as rx:
            with pytest.raises(shmio.TooManyConsumers) as tm:
                Queue.open(qname)
            assert tm.value.max == 1
        rx.close()
        with pytest.raises(ValueError):
            rx.recv()
    bad = tmp_path / "garbage"
    bad.write_bytes(b"\x00" * 8192)
    with pytest.raises(shmio.Corrupt):
        Queue.open(str(bad))
    with pytest.raises(shmio.Corrupt):
        Queue.stats(bad)


def test_every_core_error_has_a_class() -> None:
    names = [
        "InvalidArgument", "AlreadyExists", "NotFound", "PermissionDenied", "Corrupt",
        "VersionMismatch", "WouldBlock", "Timeout", "Interrupted", "ProducerDead", "Closed",
        "ProducerExists", "TooManyConsumers", "TooLarge", "BufferTooSmall", "Overrun",
        "Unsupported", "SyscallError", "NoSpace",
    ]
    builtin = {
        "Timeout": TimeoutError, "WouldBlock": BlockingIOError,
        "AlreadyExists": FileExistsError, "NotFound": FileNotFoundError,
        "PermissionDenied": PermissionError, "InvalidArgument": ValueError,
        "NoSpace": OSError,
    }
    for n in names:
        cls = getattr(shmio, n)
        assert issubclass(cls, shmio.ShmioError), n
        assert not issubclass(cls, RuntimeError), n
        if n in builtin:
            assert issubclass(cls, builtin[n]), n


def test_overwritten_view_raises_overrun_and_counts_the_loss(qname: str) -> None:
    with Queue.create(qname, slots=2, slot_size=8) as tx, Queue.open(
        qname, start="oldest", resume="oldest"
    ) as rx:
        tx.send(b"first")
        view = rx.recv_view()
        with pytest.raises(shmio.Overrun):
            with view as mv:
                assert bytes(mv) == b"first"
                for i in range(4):  # laps the 2-slot ring: the viewed slot is rewritten
                    tx.send(b"new %d" % i)
        assert view.released
        assert rx.lost >= 1
        assert rx.recv() == b"new 2"  # the oldest record the ring still holds
        assert rx.lost == 3  # "first", "new 0" and "new 1"


def test_blocking_calls_release_the_gil(qname: str) -> None:
    got: list[bytes] = []
    with Queue.create(qname, slots=2, slot_size=8, policy="backpressure") as tx:
        with Queue.open(qname) as rx:
            t = threading.Thread(target=lambda: got.append(rx.recv(timeout=60)))
            t.start()
            # While the thread waits in recv, this thread must be able to run Python code
            # (were the GIL held, the send would only run after the recv timed out).
            time.sleep(0.2)
            tx.send(b"wake")
            t.join(timeout=60)
            assert got == [b"wake"]
            # A producer blocked on a full back-pressure queue releases the GIL too.
            tx.send(b"1")
            tx.send(b"2")
            sent: list[int] = []
            t = threading.Thread(target=lambda: sent.append(tx.send(b"3", timeout=60)))
            t.start()
            assert rx.recv(timeout=60) == b"1"
            t.join(timeout=60)
            assert sent == [3]
            # The record sent after the wait (its bytes read in place without the GIL) is whole.
            assert rx.recv(timeout=60) == b"2"
            assert rx.recv(timeout=60) == b"3"


def test_fileno_with_asyncio(qname: str) -> None:
    import asyncio

    async def main() -> list[bytes]:
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        done = loop.create_future()
        with Queue.create(qname) as tx, Queue.open(qname) as rx:

            def readable() -> None:
                while (rec := rx.try_recv()) is not None:  # drain: re-arms the descriptor
                    got.append(rec)
                if len(got) >= 3 and not done.done():
                    done.set_result(None)

            loop.add_reader(rx.fileno(), readable)
            for i in range(3):
                await asyncio.sleep(0.01)
                tx.send(b"%d" % i)
            await asyncio.wait_for(done, timeout=30)
            loop.remove_reader(rx.fileno())
        return got

    assert asyncio.run(main()) == [b"0", b"1", b"2"]


def test_version_is_the_workspace_version_everywhere() -> None:
    """One version source: the workspace Cargo.toml; the wheel's metadata and the module read it."""
    import importlib.metadata
    import re

    from conftest import REPO

    cargo = (REPO / "Cargo.toml").read_text()
    m = re.search(r'\[workspace\.package\][^\[]*?\nversion = "([^"]+)"', cargo)
    assert m, "workspace.package.version not found"
    assert shmio.__version__ == m.group(1)
    assert importlib.metadata.version("shmio") == m.group(1)
    pyproject = (REPO / "python" / "pyproject.toml").read_text()
    assert re.search(r"^version\s*=", pyproject, re.M) is None, "pyproject.toml keeps its own version"
