"""Helpers shared by the benchmark drivers: finding the native benchmark programs, progress
bars (tqdm when installed), optional matplotlib, and a plain Markdown table."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

KIB = 1024
MIB = 1024 * 1024

#: Where each native program lives, relative to the repository root, and how to build it.
PROGRAMS: dict[str, tuple[str, str]] = {
    "shmio-bench": ("target/release/shmio-bench", "cargo build --release --workspace"),
    "shmio-region-bench": ("target/release/shmio-region-bench", "cargo build --release --workspace"),
    "shmio-poll-bench": ("target/release/shmio-poll-bench", "cargo build --release --workspace"),
    "dirty_writer": ("examples-c/build/dirty_writer", "make -C examples-c"),
}


class MissingProgram(RuntimeError):
    """A native benchmark program was not found; the message says how to build it."""


def repo_candidates() -> list[Path]:
    """Where to look for the repository: ``$SHMIO_REPO``, the current directory, and the
    source tree this package sits in (when run from a checkout)."""
    out: list[Path] = []
    env = os.environ.get("SHMIO_REPO")
    if env:
        out.append(Path(env))
    out.append(Path.cwd())
    here = Path(__file__).resolve().parents[3]  # bench/python/shmio_bench/_common.py -> repo
    if here not in out:
        out.append(here)
    return out


def find_program(name: str) -> Path:
    """The path of native program ``name``; :class:`MissingProgram` with build instructions
    when it is in none of :func:`repo_candidates`."""
    rel, build = PROGRAMS[name]
    tried = []
    for root in repo_candidates():
        p = root / rel
        tried.append(str(p))
        if p.is_file() and os.access(p, os.X_OK):
            return p
    raise MissingProgram(
        f"{name} not found (looked at {', '.join(tried)}). Build it in the shmio repository "
        f"with `{build}`, then run from the repository root or set SHMIO_REPO=/path/to/shmio."
    )


def run_program(args: Sequence[str | os.PathLike[str]], timeout: float = 900) -> str:
    """Runs a native program, echoing nothing; returns its stdout (raises on failure)."""
    proc = subprocess.run(
        [os.fspath(a) for a in args], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{os.fspath(args[0])} exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}"
        )
    return proc.stdout


def optional(module: str) -> Any:
    """Imports an optional package (typed as Any: none of them is required)."""
    return importlib.import_module(module)


def human(size: int) -> str:
    """A byte count as the tables print it: ``64 B``, ``1 KiB``, ``4 MiB``."""
    if size >= MIB:
        return f"{size // MIB} MiB"
    if size >= KIB:
        return f"{size // KIB} KiB"
    return f"{size} B"


def progress(total: int, unit: str = "run") -> Any:
    """A tqdm bar on stderr, or None when tqdm is not installed."""
    try:
        tqdm = optional("tqdm").tqdm
        return tqdm(total=total or None, unit=unit, file=sys.stderr)  # 0: not known
    except ImportError:
        return None


class Steps:
    """Progress over a known number of steps: a tqdm bar, or ``[i/n] what`` lines."""

    def __init__(self, total: int, unit: str = "run") -> None:
        self.total = total
        self.i = 0
        self.bar = progress(total, unit)

    def step(self, desc: str) -> None:
        self.i += 1
        if self.bar is not None:
            self.bar.set_description(desc)
        else:
            print(f"[{self.i}/{self.total}] {desc}", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def pyplot() -> Any:
    """matplotlib.pyplot with the Agg backend, or None when matplotlib is not installed."""
    try:
        matplotlib = optional("matplotlib")
        matplotlib.use("Agg")
        return optional("matplotlib.pyplot")
    except ImportError:
        return None


def table(header: Sequence[str], rows: Sequence[Sequence[object]], right: int = 1) -> list[str]:
    """A Markdown table; columns from index ``right`` on are right-aligned."""
    align = ["---" if i < right else "---:" for i in range(len(header))]
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def wrote(md: Path, png: Path | None) -> None:
    print(f"wrote {md}" + (f" and {png}" if png else " (matplotlib not installed: no plot)"))


# The queue benchmark's transports (here so that ``--help`` lists them without importing
# shmio): always run, and optional peers by the module each needs.
CORE = ["shmio", "multiprocessing.Queue", "multiprocessing.Pipe"]
OPTIONAL = {
    "faster-fifo": "faster_fifo",
    "posix_ipc": "posix_ipc",
    "pyzmq": "zmq",
    "iceoryx2": "iceoryx2",
}
