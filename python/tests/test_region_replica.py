"""shmio.Region: change tracking, the replication state, fresh reads, promotion and the writer
claim. Python has no call that makes a region a replica (only its bridge does that): the tests
play the bridge by writing the replication fields of the region's header through an mmap of
the file, at the offsets tests/src/layout.rs (module `region`) gives."""

from __future__ import annotations

import math
import mmap
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time

import pytest

import shmio
from shmio import Region, RegionWriter, ReplicaState

# The header's replication line (little-endian): role (1: replica), flags, the primary's
# incarnation, the primary versions applied and seen, when the primary was last heard and when
# the replica was last in sync (Unix ns).
ROLE, FLAGS, SOURCE, APPLIED, SEEN, HEARD, SYNCED = 512, 516, 520, 528, 536, 544, 552
PRIMARY_ALIVE, WRITER_ALIVE, WRITER_KNOWN, CATCHING_UP = 1, 2, 4, 8


class Bridge:
    """Writes a region's replication state as its bridge would."""

    def __init__(self, r: Region) -> None:
        with open(r.path, "r+b") as f:
            self.m = mmap.mmap(f.fileno(), 4096)

    def close(self) -> None:
        self.m.close()

    def u32(self, at: int, v: int) -> None:
        struct.pack_into("<I", self.m, at, v)

    def u64(self, at: int, v: int) -> None:
        struct.pack_into("<Q", self.m, at, v)

    def become_replica(self, source: int) -> None:
        self.u64(SOURCE, source)
        self.u32(ROLE, 1)

    @staticmethod
    def ago(seconds: float | None) -> int:
        return 0 if seconds is None else time.time_ns() - int(seconds * 1e9)

    def note(
        self,
        *,
        applied: int = 0,
        seen: int = 0,
        heard: float | None = None,
        synced: float | None = None,
        flags: int = 0,
    ) -> None:
        self.u64(APPLIED, applied)
        self.u64(SEEN, seen)
        self.u64(HEARD, self.ago(heard))
        self.u64(SYNCED, self.ago(synced))
        self.u32(FLAGS, flags)


def test_new_errors_are_shmio_errors_and_exported() -> None:
    for name in ["Stale", "ReadOnly", "WriterExists"]:
        cls = getattr(shmio, name)
        assert issubclass(cls, shmio.ShmioError), name
        assert name in shmio.__all__
    for name in ["ReplicaState", "RegionWriter", "WriterClaim"]:
        assert name in shmio.__all__


def test_chunk_size_and_incarnation(rname: str) -> None:
    with Region.create(rname, 1 << 16) as r:
        assert r.chunk_size == 4096
        inc = r.incarnation
        assert isinstance(inc, int)
        with Region.open(rname) as other:
            assert other.incarnation == inc
            assert other.chunk_size == 4096
    Region.unlink(rname)
    with Region.create(rname, 1 << 16, chunk_size=256) as r:
        assert r.chunk_size == 256
        assert r.incarnation != inc  # another file under the same name
    Region.unlink(rname)
    for bad in [100, 32, 2 << 20, 0]:
        with pytest.raises(shmio.InvalidArgument, match="chunk"):
            Region.create(rname, 4096, chunk_size=bad)
    with pytest.raises(OverflowError):
        Region.create(rname, 4096, chunk_size=-1)


def test_file_len_is_what_create_makes(rname: str) -> None:
    with Region.create(rname, 1 << 16) as r:
        assert os.path.getsize(r.path) == Region.file_len(1 << 16)
    assert Region.file_len(1 << 16, chunk_size=64) > Region.file_len(1 << 16)
    for size, chunk in [(0, 4096), (shmio.REGION_MAX_SIZE + 1, 4096), (4096, 100)]:
        with pytest.raises(shmio.InvalidArgument, match="out of range"):
            Region.file_len(size, chunk)


def test_touch_range_publishes_raw_changes(rname: str) -> None:
    with Region.create(rname, 8192) as r:
        mv = memoryview(r)
        mv[5000:5004] = b"raw!"
        assert r.touch_range(5000, 4) == 1
        assert r.touch_range(0, 0) == 2
        with pytest.raises(shmio.OutOfBounds):
            r.touch_range(8190, 4)
        assert r.version == 2
        mv.release()
    with pytest.raises(shmio.InvalidArgument, match="closed"):
        r.touch_range(0, 1)


def test_a_primary_has_no_replica_state_and_reads_fresh(rname: str) -> None:
    with Region.create(rname, 4096) as r:
        r.write(0, b"prim")
        assert r.replica() is None
        assert r.is_replica is False
        assert r.read_fresh(0, 4, 0.0) == b"prim"
        r.check_fresh(0)
        v = r.version
        assert r.promote() == v
        assert r.version == v


def test_replica_state_and_the_stale_path(rname: str) -> None:
    with Region.create(rname, 4096) as r:
        r.write(0, b"prim")
        bridge = Bridge(r)
        try:
            bridge.become_replica(0xABC)
            assert r.is_replica
            st = r.replica()
            assert isinstance(st, ReplicaState)
            assert st == ReplicaState(0xABC, 0, 0, 0, None, None, False, None, False)
            assert repr(st).startswith("ReplicaState(source=2748,")

            # Never in sync: stale whatever the bound.
            with pytest.raises(shmio.Stale, match="never in sync") as e:
                r.read_fresh(0, 4, math.inf)
            assert e.value.staleness is None
            assert e.value.max_staleness == math.inf
            assert (e.value.applied, e.value.seen) == (0, 0)
            with pytest.raises(shmio.Stale):
                r.check_fresh(1.0)

            # In sync 10 s ago, the primary ahead by 2, its bridge and writer alive.
            alive = PRIMARY_ALIVE | WRITER_KNOWN | WRITER_ALIVE
            bridge.note(applied=3, seen=5, heard=0.5, synced=10, flags=alive)
            st = r.replica()
            assert st is not None
            assert (st.applied, st.seen, st.lag) == (3, 5, 2)
            assert st.heard is not None and 0.4 < st.heard < 60
            assert st.staleness is not None and 9.9 < st.staleness < 70
            assert (st.primary_alive, st.writer_alive, st.catching_up) == (True, True, False)
            with pytest.raises(shmio.Stale, match=r"last in sync \d+ ms ago.*allowed: 1.5 s") as e:
                r.read_fresh(0, 4, 1.5)
            assert e.value.staleness is not None and e.value.staleness > 9.9
            assert e.value.max_staleness == 1.5
            assert (e.value.applied, e.value.seen) == (3, 5)
            assert r.read_fresh(0, 4, 600) == b"prim"
            r.check_fresh(600)

            # The writer known dead; in sync just now.
            bridge.note(applied=5, seen=5, heard=0, synced=0, flags=WRITER_KNOWN)
            st = r.replica()
            assert st is not None and st.writer_alive is False and st.primary_alive is False
            assert r.read_fresh(0, 4, 60) == b"prim"

            # Catching up: stale whatever the bound, and the message says why.
            bridge.note(applied=5, seen=5, heard=0, synced=0, flags=CATCHING_UP)
            assert r.replica().catching_up  # type: ignore[union-attr]
            with pytest.raises(shmio.Stale, match="catching up"):
                r.read_fresh(0, 4, math.inf)

            # The bound is checked; so is the range.
            bridge.note(applied=5, seen=5, heard=0, synced=0)
            for bad in [-1.0, math.nan]:
                with pytest.raises(shmio.InvalidArgument, match="max_staleness"):
                    r.read_fresh(0, 4, bad)
            with pytest.raises(shmio.OutOfBounds):
                r.read_fresh(4090, 10, 60)

            # Local writes are refused on a replica.
            with pytest.raises(shmio.ReadOnly, match="replica"):
                r.write(0, b"mine")
            with pytest.raises(shmio.ReadOnly):
                r.touch()
            with pytest.raises(shmio.ReadOnly):
                r.touch_range(0, 4)
        finally:
            bridge.close()


def test_promote_makes_a_replica_a_writable_primary(rname: str) -> None:
    with Region.create(rname, 4096) as r:
        bridge = Bridge(r)
        try:
            bridge.become_replica(7)
        finally:
            bridge.close()
        inc = r.incarnation
        v = r.promote()
        assert v >= 1
        assert not r.is_replica and r.replica() is None
        assert r.incarnation != inc
        assert r.write(0, b"mine") == v + 1
        assert r.promote() == v + 1  # a primary: left alone


def test_writer_claim_is_exclusive_and_released_by_with(rname: str) -> None:
    with Region.create(rname, 4096) as r:
        assert r.writer() is None
        with r.claim_writer() as c:
            assert not c.released
            assert repr(c) == f"<shmio.WriterClaim {r.path} pid={os.getpid()}>"
            assert r.writer() == RegionWriter(os.getpid(), True)
            with pytest.raises(shmio.WriterExists, match=f"pid {os.getpid()}") as e:
                r.claim_writer()
            assert e.value.pid == os.getpid()
        assert c.released
        assert repr(c) == "<shmio.WriterClaim closed>"
        c.release()  # idempotent
        assert r.writer() == RegionWriter(os.getpid(), False)
        c2 = r.claim_writer()
        # The claim outlives the region handle it came from.
    with Region.open(rname) as again:
        assert again.writer() == RegionWriter(os.getpid(), True)
        c2.release()
        assert again.writer() == RegionWriter(os.getpid(), False)


def test_writer_claim_dies_with_its_process(rname: str) -> None:
    script = textwrap.dedent(
        """
        import sys, time, shmio
        r = shmio.Region.open(sys.argv[1])
        c = r.claim_writer()
        print("claimed", flush=True)
        time.sleep(120)
        """
    )
    with Region.create(rname, 4096) as r:
        child = subprocess.Popen(
            [sys.executable, "-c", script, rname], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line == b"claimed\n", child.stderr.read() if child.stderr else b""
            assert r.writer() == RegionWriter(child.pid, True)
            with pytest.raises(shmio.WriterExists) as e:
                r.claim_writer()
            assert e.value.pid == child.pid
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(30)
        assert r.writer() == RegionWriter(child.pid, False)
        with r.claim_writer():
            assert r.writer() == RegionWriter(os.getpid(), True)


def test_a_forked_child_shares_the_claim_and_its_release_leaves_the_parents(rname: str) -> None:
    with Region.create(rname, 4096) as r, r.claim_writer() as c:
        pid = os.fork()
        if pid == 0:  # the child: its release closes only its copy of the claim
            code = 0
            try:
                c.release()
                code = 0 if r.writer() == RegionWriter(os.getppid(), True) else 3
            except BaseException:
                code = 4
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        assert not c.released
        assert r.writer() == RegionWriter(os.getpid(), True)
        with pytest.raises(shmio.WriterExists):
            r.claim_writer()
