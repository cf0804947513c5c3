"""Files (issue 11, items 2 and 4): NoSpace from a create on a file system too small for the
object, never a SIGBUS later; unlink removes only the kind of file it names."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import shmio
from shmio import Queue, Region

MIB = 1 << 20
FS_SIZE = 8 * MIB


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs mounted on a fresh directory (needs root), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    d = tmp_path / "small"
    d.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FS_SIZE},mode=0700", "tmpfs", str(d)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=True)


def run_child(code: str, d: Path, hooks: str) -> None:
    """Runs `code` in a fresh interpreter (so a SIGBUS kills it, not pytest, and the test hook,
    read once per process, applies) with ``d`` in ``$SHMIO_DIR`` and ``sys.argv[1]``."""
    env = dict(os.environ, SHMIO_DIR=str(d), SHMIO_TEST_HOOK=hooks)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(d)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (
        f"hooks {hooks!r}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    )
    assert os.listdir(d) == [], os.listdir(d)


TOO_BIG = """
    import errno, os, sys
    import shmio
    d = sys.argv[1]
    fs_size = 8 << 20
    def check(e, path, needed):
        assert isinstance(e, OSError) and e.errno == errno.ENOSPC, repr(e)
        assert e.filename == path, e.filename
        assert needed(e.needed) and e.available == fs_size, (e.needed, e.available)
        assert str(e.needed) in str(e) and str(e.available) in str(e), str(e)
        assert os.listdir(d) == [], os.listdir(d)
    # Just over 16 MiB: 4096 slots with a stride of 4096 bytes, and the header.
    try:
        shmio.Queue.create("q", slots=4096, slot_size=4096 - 16)
    except shmio.NoSpace as e:
        check(e, os.path.join(d, "q"), lambda n: n > 16 << 20)
    else:
        raise AssertionError("Queue.create: no NoSpace")
    try:
        shmio.Region.create(os.path.join(d, "r"), 16 << 20)
    except shmio.NoSpace as e:
        check(e, os.path.join(d, "r"), lambda n: n == shmio.Region.file_len(16 << 20))
    else:
        raise AssertionError("Region.create: no NoSpace")
    print("ok")
"""


@pytest.mark.parametrize("hooks", ["", "no-tmpfile"])
def test_create_larger_than_the_fs_raises_no_space_and_leaves_nothing(
    small_fs: Path, hooks: str
) -> None:
    run_child(TOO_BIG, small_fs, hooks)


FIT_THEN_FILL = """
    import os, sys
    import shmio
    d = sys.argv[1]
    slot = 2048 - 16
    r = shmio.Region.create("r", 3 << 20)
    tx = shmio.Queue.create("q", slots=1024, slot_size=slot)
    rx = shmio.Queue.open("q", start="oldest")
    # Somebody else takes every block left.
    with open(os.path.join(d, "filler"), "wb", buffering=0) as f:
        try:
            while f.write(b"\\xee" * (64 << 10)):
                pass
        except OSError:
            pass
    # Every byte of both is still ours to store (a sparse file would SIGBUS here).
    mb = b"\\x5a" * (1 << 20)
    for i in range(3):
        r.write(i << 20, mb)
    assert r.read(2 << 20, 1 << 20) == mb
    rec = b"\\xa5" * slot
    for _ in range(1024):
        tx.send(rec)
    for _ in range(1024):
        assert rx.recv() == rec
    rx.close(); tx.close(); r.close()
    shmio.Queue.unlink("q")
    shmio.Region.unlink("r")
    os.unlink(os.path.join(d, "filler"))
    print("ok")
"""


@pytest.mark.parametrize("hooks", ["", "no-tmpfile"])
def test_objects_that_fit_keep_working_when_the_fs_fills_up(small_fs: Path, hooks: str) -> None:
    run_child(FIT_THEN_FILL, small_fs, hooks)


def test_unlink_removes_only_its_own_kind(tmp_path: Path) -> None:
    q, r, t, link = (tmp_path / n for n in ("q", "r", "notes.txt", "link"))
    Queue.create(q, slots=4, slot_size=16).close()
    Region.create(r, 4096).close()
    t.write_text("hello world\n")
    link.symlink_to(q)
    with pytest.raises(shmio.Corrupt, match=r"is not a shmio queue file \(it is a shmio region\)"):
        Queue.unlink(r)
    with pytest.raises(shmio.Corrupt, match=r"is not a shmio region file \(it is a shmio queue\)"):
        Region.unlink(q)
    with pytest.raises(shmio.Corrupt, match="it starts with"):
        Queue.unlink(t)
    with pytest.raises(shmio.Corrupt, match="it starts with"):
        Region.unlink(t)
    with pytest.raises(shmio.Corrupt, match="symbolic link"):
        Queue.unlink(link)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "notes.txt", "q", "r"]
    assert t.read_text() == "hello world\n"
    Queue.unlink(q)
    Region.unlink(r)
    with pytest.raises(shmio.NotFound):
        Queue.unlink(q)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "notes.txt"]
