"""shmio.Region: consistent access, the buffer protocol, change notification across
processes, error mapping."""

from __future__ import annotations

import multiprocessing as mp
import sys
import textwrap
import threading

import pytest

import shmio
from shmio import Region

from conftest import assert_ctrl_c_interrupts


def test_round_trip_and_versions(rname: str) -> None:
    with Region.create(rname, 4096) as r, Region.open(rname) as other:
        assert r.size == len(r) == 4096
        assert r.path.endswith(rname)
        assert r.version == 0
        assert r.write(100, b"hello") == 1
        assert r.write(200, bytearray(b"world")) == 2
        assert other.read(100, 5) == b"hello"
        assert other.read(200, 5) == b"world"
        assert other.version == 2
        buf = bytearray(5)
        assert other.read_into(100, buf) == 2
        assert buf == b"hello"
        assert r.read(0, 0) == b""
        assert r.torn is None
        assert r.torn_writes == 0
    assert r.closed


def test_buffer_protocol_is_zero_copy(rname: str) -> None:
    with Region.create(rname, 8192) as r:
        mv = memoryview(r)
        assert len(mv) == 8192 and not mv.readonly
        mv[10:15] = b"abcde"  # a store into the mapping itself
        assert r.read(10, 5) == b"abcde"
        v = r.write(20, b"xyz")
        assert bytes(mv[20:23]) == b"xyz"  # the write is visible through the view
        assert r.touch() == v + 1  # publishes raw changes
        # Another handle sees the bytes written through the view.
        with Region.open(rname) as other:
            assert other.read(10, 5) == b"abcde"
        # A view of the region as the source of a write (overlapping source and target).
        r.write(12, mv[10:15])
        assert r.read(10, 7) == b"ababcde"
        mv.release()


def test_numpy_frombuffer_is_zero_copy(rname: str) -> None:
    np = pytest.importorskip("numpy")  # in the test command's .venv (scripts/lib.sh)

    def word(v: int) -> bytes:
        return v.to_bytes(4, sys.byteorder)

    r = Region.create(rname, 4096)
    a = np.frombuffer(r, dtype=np.uint32)
    assert a.shape == (1024,) and a.flags.writeable and not a.flags.owndata
    a[0] = 0xDEADBEEF  # a store through the array lands in the mapping
    assert r.read(0, 4) == word(0xDEADBEEF)
    r.write(4, word(7))  # a consistent write shows in the array: no copy was taken
    assert a[1] == 7
    with Region.open(rname) as other:  # another handle, another mapping of the same pages
        b = np.frombuffer(other, dtype=np.uint32)
        assert b[0] == 0xDEADBEEF and b[1] == 7
        del b
    p = mp.get_context("spawn").Process(target=_writer, args=(rname, word(0x01020304)))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert a[0] == 0x01020304  # another process's write, seen through the array
    tail = a[2:4]  # a slice keeps the array's export alive
    del a
    with pytest.raises(BufferError):
        r.close()  # refused while the mapping is exported, as mmap.close() is
    assert not r.closed
    tail[0] = 9
    assert r.read(8, 4) == word(9)
    del tail
    r.close()
    assert r.closed


def test_close_refused_while_a_view_is_exported(rname: str) -> None:
    r = Region.create(rname, 4096)
    mv = memoryview(r)
    sub = mv[1:3]
    with pytest.raises(BufferError):
        r.close()
    assert not r.closed
    mv.release()
    with pytest.raises(BufferError):
        r.close()  # the slice still holds an export
    sub.release()
    r.close()
    r.close()  # idempotent
    with pytest.raises(shmio.InvalidArgument):
        r.read(0, 1)
    with pytest.raises(shmio.InvalidArgument):
        memoryview(r)


def test_bad_offsets_and_arguments(rname: str) -> None:
    with Region.create(rname, 4096) as r:
        with pytest.raises(shmio.OutOfBounds) as e:
            r.read(4090, 10)
        assert (e.value.offset, e.value.len, e.value.size) == (4090, 10, 4096)
        assert isinstance(e.value, IndexError)
        with pytest.raises(shmio.OutOfBounds):
            r.read(0, 1 << 62)  # refused before allocating
        with pytest.raises(shmio.OutOfBounds):
            r.write(4096, b"x")
        with pytest.raises(shmio.OutOfBounds):
            r.read_into(4095, bytearray(2))
        with pytest.raises(shmio.OutOfBounds):
            r.flush(5000)
        with pytest.raises(shmio.InvalidArgument):  # not a bare OverflowError
            r.read(-1, 1)
        with pytest.raises(TypeError):
            r.write(0, "not bytes")  # type: ignore[arg-type]
        with pytest.raises(shmio.InvalidArgument):
            r.wait_changed(0, timeout=-1)
    with pytest.raises(shmio.AlreadyExists):
        Region.create(rname, 4096)
    with pytest.raises(shmio.InvalidArgument):
        Region.create(rname + "_zero", 0)
    with pytest.raises(shmio.NotFound):
        Region.open(rname + "_missing")


def test_open_rejects_a_file_that_is_not_a_region(tmp_path) -> None:
    bad = tmp_path / "not_a_region"
    bad.write_bytes(b"\0" * 8192)
    with pytest.raises(shmio.Corrupt):
        Region.open(bad)


def test_wait_changed_timeout_and_thread_wake(rname: str) -> None:
    with Region.create(rname, 4096) as r:
        with pytest.raises(shmio.Timeout):
            r.wait_changed(r.version, timeout=0)
        with pytest.raises(TimeoutError):
            r.wait_changed(r.version, timeout=0.01)
        assert r.wait_changed(r.version + 5) == r.version  # already different: no wait
        seen = r.version
        t = threading.Thread(target=lambda: r.write(0, b"x"))
        t.start()
        assert r.wait_changed(seen, timeout=30) == seen + 1
        t.join()


def test_flush_and_cache_stat(rname: str, tmp_path) -> None:
    with Region.create(tmp_path / "durable", 64 << 10) as r:
        r.write(0, b"x" * 4096)
        r.flush()
        r.flush(0, 4096)
        r.flush(4096, 0)
        try:
            st = r.cache_stat()
        except shmio.Unsupported:
            pytest.skip("cachestat(2) needs Linux 6.5")
        assert st["page_size"] == shmio.vm.page_size()
        assert st["cached"] >= 1
        # The data was just flushed; only the header page (its counters) and the page of the
        # change-tracking table (16 chunks) may still be dirty.
        assert st["dirty"] <= 2
        assert set(st) == {
            "page_size", "cached", "dirty", "writeback", "evicted", "recently_evicted"
        }


def _writer(name: str, data: bytes) -> None:
    with shmio.Region.open(name) as r:
        r.write(0, data)


def test_wait_changed_woken_by_another_process(rname: str) -> None:
    ctx = mp.get_context("spawn")
    with Region.create(rname, 4096) as r:
        seen = r.version
        p = ctx.Process(target=_writer, args=(rname, b"from the child"))
        p.start()
        try:
            v = r.wait_changed(seen, timeout=60)
        finally:
            p.join(60)
        assert v == seen + 1
        assert p.exitcode == 0
        assert r.read(0, 14) == b"from the child"


BLOCKED_SCRIPT = textwrap.dedent(
    """
    import sys, shmio
    r = shmio.Region.create(sys.argv[1], 4096)
    try:
        print("blocking", flush=True)
        r.wait_changed(r.version)
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
        sys.exit(42)
    """
)


def test_ctrl_c_interrupts_wait_changed(rname: str) -> None:
    assert_ctrl_c_interrupts(BLOCKED_SCRIPT, rname)


def test_new_error_classes() -> None:
    for n in ["OutOfBounds", "Torn", "FdTooLarge", "AlreadyRegistered", "NotRegistered",
              "WrongThread", "RtSigInUse"]:
        cls = getattr(shmio, n)
        assert issubclass(cls, shmio.ShmioError), n
        assert not issubclass(cls, RuntimeError), n
