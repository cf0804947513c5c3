"""The benchmark driver runs end to end (a short run of two transports)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_bench_queue_quick_writes_a_table(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "shmio.bench", "queue", "--quick", "--out", str(tmp_path),
         "--only", "shmio", "--only", "multiprocessing.Pipe"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "queue.md").read_text()
    for row in ("| 64 B | shmio |", "| 64 KiB | shmio |", "| 64 B | multiprocessing.Pipe |",
                "| 1 MiB | shmio recv (copy) |", "| 1 MiB | shmio recv_view (zero copy) |"):
        assert row in md, md
    assert "failed" not in md
