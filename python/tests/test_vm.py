"""shmio.vm: the dirty-page knobs and statistics."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import shmio
from shmio import vm


def test_knobs_equal_proc_sys_vm() -> None:
    knobs = vm.knobs()
    assert list(knobs) == list(vm.KNOBS)
    for name, value in knobs.items():
        assert value == int(Path(f"/proc/sys/vm/{name}").read_text()), name
        assert vm.knob(name) == value


def test_unknown_knob() -> None:
    with pytest.raises(shmio.InvalidArgument):
        vm.knob("swappiness")
    with pytest.raises(shmio.InvalidArgument):
        vm.set_knob("dirty_ratio", 101)  # a percentage: refused before any write


def test_set_knob_returns_the_old_value_or_is_refused() -> None:
    old = vm.knob("dirty_expire_centisecs")
    try:
        assert vm.set_knob("dirty_expire_centisecs", old) == old  # writes the same value back
    except (shmio.PermissionDenied, shmio.SyscallError):
        pass  # unprivileged, or a read-only /proc/sys in a container
    assert vm.knob("dirty_expire_centisecs") == old


def test_thresholds_and_system() -> None:
    t = vm.thresholds()
    assert 0 < t["background_bytes"] <= t["dirty_bytes"] or vm.knob("dirty_bytes") == 0
    assert t["dirtyable_bytes"] > 0
    s = vm.system()
    assert set(s) == {"dirty_bytes", "writeback_bytes", "nr_dirty", "nr_writeback"}
    assert all(v >= 0 for v in s.values())


def test_file_cache(tmp_path: Path) -> None:
    f = tmp_path / "data"
    f.write_bytes(b"x" * 8192)
    try:
        st = vm.file_cache(f)
    except shmio.Unsupported:
        pytest.skip("cachestat(2) needs Linux 6.5")
    assert st["page_size"] == vm.page_size() == os.sysconf("SC_PAGE_SIZE")
    assert st["cached"] >= 1
    with pytest.raises(shmio.NotFound) as e:
        vm.file_cache(tmp_path / "missing")
    assert isinstance(e.value, FileNotFoundError)
    assert e.value.errno == errno.ENOENT
    assert e.value.filename == str(tmp_path / "missing")
