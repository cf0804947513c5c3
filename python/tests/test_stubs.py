"""The hand-written stubs match the installed extension module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


ALLOWLIST = Path(__file__).resolve().parents[1] / "stubtest-allowlist.txt"


def test_stubtest(tmp_path) -> None:
    pytest.importorskip("mypy")
    # Run outside the source tree so that only the installed package is visible.
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--allowlist", str(ALLOWLIST), "shmio"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
