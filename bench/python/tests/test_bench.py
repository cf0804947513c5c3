"""The benchmark drivers run end to end, each in its quickest mode (about 30 s in all)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import shmio_bench
from shmio_bench import _common
from shmio_bench.dirty import MEMORY_FS, fs_type

REPO = Path(__file__).resolve().parents[3]  # bench/python/tests/test_bench.py -> repo
PKG = Path(shmio_bench.__file__).resolve().parent


def _bench(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
           pkg: Path = PKG) -> subprocess.CompletedProcess[str]:
    path = [str(pkg.parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    return subprocess.run(
        [sys.executable, "-m", "shmio_bench", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "SHMIO_REPO": str(REPO), "PYTHONPATH": os.pathsep.join(path),
             **(env or {})},
        cwd=cwd or REPO,
    )


def _outside_checkout(tmp_path: Path) -> Path:
    """A copy of the drivers in ``tmp_path/bench/python``, so that the checkout they sit in
    is ``tmp_path``, where no native program was built."""
    pkg = tmp_path / "bench" / "python" / "shmio_bench"
    shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return pkg


def _need(program: str) -> None:
    os.environ.setdefault("SHMIO_REPO", str(REPO))
    try:
        _common.find_program(program)
    except _common.MissingProgram as e:
        pytest.skip(f"native benchmark program missing: {e}")


def _disk_dir(tmp_path: Path) -> Path:
    """A scratch directory on a disk file system (the repository's, else /var/tmp)."""
    for base in (REPO / "target", Path("/var/tmp")):
        if base.is_dir() and fs_type(base) not in MEMORY_FS and os.access(base, os.W_OK):
            d = base / f"shmio-test-bench-{os.getpid()}-{tmp_path.name}"
            d.mkdir()
            return d
    pytest.skip("no writable directory on a disk file system (dirty pages need one)")


def test_bench_queue_quick_writes_a_table(tmp_path: Path) -> None:
    proc = _bench("queue", "--quick", "--no-native", "--out", str(tmp_path),
                  "--only", "shmio", "--only", "multiprocessing.Pipe")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "queue.md").read_text()
    for row in ("| 64 B | shmio |", "| 64 KiB | shmio |", "| 64 B | multiprocessing.Pipe |",
                "| 1 MiB | shmio recv (copy) |", "| 1 MiB | shmio recv_view (zero copy) |"):
        assert row in md, md
    assert "failed" not in md


def test_bench_queue_iceoryx2_peer(tmp_path: Path) -> None:
    pytest.importorskip("iceoryx2")  # an optional peer: scripts/main.sh installs it
    proc = _bench("queue", "--quick", "--no-native", "--out", str(tmp_path),
                  "--only", "iceoryx2")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "queue.md").read_text()
    assert "| 64 B | iceoryx2 |" in md and "| 64 KiB | iceoryx2 |" in md, md
    assert "RetryUntilDelivered" in md and "failed" not in md, md


def test_bench_queue_runs_the_native_program_too(tmp_path: Path) -> None:
    _need("shmio-bench")
    proc = _bench("queue", "--quick", "--out", str(tmp_path), "--only", "shmio",
                  "--native-args=--sizes 64 --systems shmio-bp,pipe")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "queue.md").read_text()
    assert "| 64 B | shmio |" in md, md  # the Python-level table
    assert "## Native: `shmio-bench --json --quick --sizes 64 --systems shmio-bp,pipe`" in md, md
    assert "### 64 B records" in md and "| pattern | system | records_per_s |" in md, md
    for row in ("| 1to1 | shmio-bp | ", "| 1to1 | pipe | "):
        assert row in md, md
    assert re.search(r"^\| rtt[-\w]* \| shmio-bp \| ", md, re.M), md  # rtt, rtt-spin, ...
    assert "shmio-bench exited" not in md, md
    if (tmp_path / "queue.png").exists():  # matplotlib installed
        assert (tmp_path / "queue-native.png").stat().st_size > 0


def test_bench_queue_without_the_native_program_runs_python_level(tmp_path: Path) -> None:
    proc = _bench("queue", "--quick", "--out", str(tmp_path), "--only", "shmio",
                  env={"SHMIO_REPO": str(tmp_path)}, cwd=tmp_path,
                  pkg=_outside_checkout(tmp_path))
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "queue.md").read_text()
    assert "| 64 B | shmio |" in md, md
    if "## Native" in md:
        pytest.skip("shmio-bench found through the package's own source tree")
    assert "shmio-bench not found" in md and "cargo build --release" in md, md


def test_bench_queue_native_rows_render_whatever_they_hold() -> None:
    from shmio_bench.queue import native_markdown

    rows = [
        {"system": "memcpy", "pattern": "1", "size": 64, "gbps": 9.5},
        {"system": "shmio-bp", "pattern": "1to1", "size": 64, "records_per_s": 12_000_000,
         "gbps": 0.77},
        {"system": "futex-pingpong", "pattern": "rtt-block", "size": 64, "p50_ns": 4100,
         "p99_ns": 9000, "wakeups": 3},
        {"system": "iceoryx2", "pattern": "1to1", "size": 65536, "records_per_s": 90_000},
    ]
    md = native_markdown(rows, "shmio-bench --json")
    assert "### 64 B records" in md and "### 64 KiB records" in md, md
    assert "| pattern | system | records_per_s | gbps | p50_ns | p99_ns | wakeups |" in md, md
    assert "| 1to1 | shmio-bp | 12,000,000 | 0.770 |  |  |  |" in md, md
    assert "| rtt-block | futex-pingpong |  |  | 4,100 | 9,000 | 3 |" in md, md
    assert "| 1to1 | iceoryx2 | 90,000 |" in md, md


def test_bench_region_quick_writes_a_table(tmp_path: Path) -> None:
    _need("shmio-region-bench")
    disk = _disk_dir(tmp_path)
    try:
        proc = _bench("region", "--quick", "--out", str(tmp_path), "--disk-dir", str(disk))
        assert proc.returncode == 0, proc.stderr
        assert list(disk.iterdir()) == []  # the native program cleaned up after itself
    finally:
        disk.rmdir()
    md = (tmp_path / "region.md").read_text()
    for row in ("| consistent 1 KiB read vs raw memcpy", "| change notification",
                "| Region.write / Region.read (consistent) | write |",
                "| Region.read_into (consistent) | read |",
                "| memoryview(region) slicing | read |",
                "| memoryview(bytearray) slicing | write | "):
        assert row in md, md


def test_bench_poll_quick_writes_a_table(tmp_path: Path) -> None:
    _need("shmio-poll-bench")
    proc = _bench("poll", "--quick", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "poll.md").read_text()
    assert "| 100 | 1 | " in md, md  # a row of the native table
    for way in ("shmio epoll", "shmio rtsig-onefd", "selectors.EpollSelector",
                "selectors.PollSelector"):
        assert f"| {way} | " in md, md
    assert "| selectors.SelectSelector | " in md and "n/a (fd > 1023)" in md, md
    # Every cell with its spread: native "ns (syscalls) spread%", Python "µs (ratio) spread%".
    assert re.search(r"\| 100 \| 1 \| \d+ \(\d+\.\d\d\) \d+% \|", md), md
    assert re.search(r"\| shmio epoll \| \d+\.\d\d \(\d+\.\d\dx\) \d+% \|", md), md
    assert "Best of 3 runs per cell" in md and "best of 3 runs" in md, md


def test_bench_poll_every_way_gets_the_same_runs_at_every_n(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No way a single sample where the others get k: at a large N (here any N above 50)
    # every way runs k times, on the same, smaller number of events.
    from shmio_bench import poll

    runs: dict[str, list[int]] = {}

    def fake(ring: object, events: int, **way: object) -> float:
        key = str(way.get("backend") or way["make"])
        runs.setdefault(key, []).append(events)
        return [3.0, 1.0, 2.0][len(runs[key]) - 1]

    monkeypatch.setattr(poll, "LARGE_N", 50)
    monkeypatch.setattr(poll, "_on_shmio", fake)
    monkeypatch.setattr(poll, "_on_selector", fake)
    rows = poll.python_level([100], events=8000, reps=3)
    assert len(runs) == len(poll.SHMIO_BACKENDS) + len(poll.SELECTORS), runs
    assert all(events == [400, 400, 400] for events in runs.values()), runs
    for r in rows:
        # best of the three runs, spread (max - min) / median = (3 - 1) / 2
        assert (r.us_per_event, r.spread) == (1.0, 1.0), r


def test_bench_dirty_quick_samples_and_cleans_up(tmp_path: Path) -> None:
    disk = _disk_dir(tmp_path)
    target = disk / "dirty.dump"
    try:
        proc = _bench("dirty", "--quick", "--seconds", "2", "--out", str(tmp_path),
                      "--file", str(target))
        assert proc.returncode == 0, proc.stderr
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)
        disk.rmdir()
    md = (tmp_path / "dirty.md").read_text()
    assert "| background writeback threshold |" in md and "| file dirty, peak |" in md, md
    rows = (tmp_path / "dirty.csv").read_text().splitlines()
    assert rows[0].startswith("t_s,file_bytes,file_dirty_bytes")
    assert len(rows) - 1 == 5  # 0, 0.5, ..., 2.0 s
    assert int(rows[-1].split(",")[1]) == 2 * 1024 * 1024  # two 1 MiB writes


def test_bench_dirty_with_the_c_writer(tmp_path: Path) -> None:
    _need("dirty_writer")
    disk = _disk_dir(tmp_path)
    target = disk / "dirty-c.dump"
    try:
        proc = _bench("dirty", "--writer", "c", "--seconds", "2", "--out", str(tmp_path),
                      "--file", str(target))
        assert proc.returncode == 0, proc.stderr
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)
        disk.rmdir()
    md = (tmp_path / "dirty.md").read_text()
    assert "dirty_writer's own lines" in md and "t=1s size 1024 KB" in md, md


def test_bench_dirty_refuses_tmpfs(tmp_path: Path) -> None:
    if fs_type(Path("/dev/shm")) not in MEMORY_FS:
        pytest.skip("/dev/shm is not tmpfs here")
    proc = _bench("dirty", "--quick", "--out", str(tmp_path), "--file", "/dev/shm/x.dump")
    assert proc.returncode != 0 and "tmpfs" in proc.stderr, proc.stderr


def test_bench_missing_program_says_how_to_build(tmp_path: Path) -> None:
    proc = _bench("region", "--quick", "--out", str(tmp_path),
                  env={"SHMIO_REPO": str(tmp_path)}, cwd=tmp_path,
                  pkg=_outside_checkout(tmp_path))
    if proc.returncode == 0:
        pytest.skip("shmio-region-bench found through the package's own source tree")
    assert proc.returncode == 2
    assert "cargo build --release" in proc.stderr and "SHMIO_REPO" in proc.stderr, proc.stderr


def test_bench_all_quick_python_level(tmp_path: Path) -> None:
    disk = _disk_dir(tmp_path)
    try:
        proc = _bench("all", "--quick", "--no-native", "--only", "shmio", "--seconds", "1",
                      "--out", str(tmp_path), "--file", str(disk / "all.dump"))
        assert proc.returncode == 0, proc.stderr
    finally:
        (disk / "all.dump").unlink(missing_ok=True)
        disk.rmdir()
    for name in ("queue.md", "region.md", "poll.md", "dirty.md", "dirty.csv"):
        assert (tmp_path / name).is_file(), name


def test_each_subcommand_has_its_own_help_and_only_lists_its_choices() -> None:
    top = _bench("--help")
    assert top.returncode == 0 and "{queue,region,poll,dirty,all}" in top.stdout, top.stdout
    q = _bench("queue", "--help")
    assert q.returncode == 0, q.stderr
    for name in ("shmio", "multiprocessing.Queue", "pyzmq", "iceoryx2"):
        assert name in q.stdout, q.stdout
    assert "--rate" not in q.stdout, "dirty's options are not queue's"
    d = _bench("dirty", "--help")
    assert d.returncode == 0 and "--rate" in d.stdout and "--only" not in d.stdout, d.stdout
    bad = _bench("queue", "--only", "nope")
    assert bad.returncode == 2 and "invalid choice: 'nope'" in bad.stderr, bad.stderr
    assert _bench("poll", "--only", "shmio").returncode == 2, "poll takes no --only"
