"""The region from Python, and the native region benchmark.

1. ``shmio-region-bench`` (the Rust program: the note's 1 KiB memcpy loop on a tmpfs region
   and an ``O_SYNC`` region against ``malloc``, consistent read/write against raw memcpy,
   change notification against a raw futex, ``flush`` cost); its table is kept as printed.
   ``--quick`` runs it with fewer passes and round trips.
2. A Python-level run on a 4 MiB tmpfs region: 1 KiB at a time over the whole region, the
   consistent ``Region.write``/``Region.read`` (and ``read_into``) against plain slicing of
   ``memoryview(region)`` and of a ``bytearray`` of the same size. Passes alternate between the
   ways so that machine noise hits all alike; medians are reported in MB/s. A read makes a
   ``bytes`` of the chunk (``read_into`` and "into a buffer": copies into a preallocated one).
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import shmio

from ._common import KIB, MIB, Steps, find_program, pyplot, run_program, table, wrote

SIZE = 4 * MIB
CHUNK = KIB


@dataclass
class Row:
    way: str
    op: str
    mbps: float


def _passes(region: Any, view: memoryview, ba: bytearray) -> dict[tuple[str, str], Callable[[], None]]:
    chunk = bytes(range(256)) * (CHUNK // 256)
    buf = bytearray(CHUNK)
    offsets = range(0, SIZE, CHUNK)

    def region_write() -> None:
        w = region.write
        for off in offsets:
            w(off, chunk)

    def region_read() -> None:
        r = region.read
        for off in offsets:
            r(off, CHUNK)

    def region_read_into() -> None:
        r = region.read_into
        for off in offsets:
            r(off, buf)

    def view_write() -> None:
        for off in offsets:
            view[off : off + CHUNK] = chunk

    def view_read() -> None:
        for off in offsets:
            bytes(view[off : off + CHUNK])

    def view_read_into() -> None:
        for off in offsets:
            buf[:] = view[off : off + CHUNK]

    bav = memoryview(ba)  # slicing a bytearray itself would copy twice on reads

    def ba_write() -> None:
        for off in offsets:
            bav[off : off + CHUNK] = chunk

    def ba_read() -> None:
        for off in offsets:
            bytes(bav[off : off + CHUNK])

    return {
        ("Region.write / Region.read (consistent)", "write"): region_write,
        ("Region.write / Region.read (consistent)", "read"): region_read,
        ("Region.read_into (consistent)", "read"): region_read_into,
        ("memoryview(region) slicing", "write"): view_write,
        ("memoryview(region) slicing", "read"): view_read,
        ("memoryview(region) into a buffer", "read"): view_read_into,
        ("memoryview(bytearray) slicing", "write"): ba_write,
        ("memoryview(bytearray) slicing", "read"): ba_read,
    }


def python_level(passes: int, steps: Steps | None = None) -> list[Row]:
    name = f"shmio_bench_region_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    region: Any = shmio.Region.create(name, SIZE)  # Any: Buffer on 3.11 stubs too
    try:
        view = memoryview(region)
        try:
            ba = bytearray(SIZE)
            ways = _passes(region, view, ba)
            times: dict[tuple[str, str], list[float]] = {k: [] for k in ways}
            keys = list(ways)
            for p in range(passes):
                order = keys if p % 2 == 0 else keys[::-1]
                for k in order:
                    t0 = time.perf_counter()
                    ways[k]()
                    times[k].append(time.perf_counter() - t0)
            rows = [Row(w, op, SIZE / statistics.median(ts) / 1e6) for (w, op), ts in times.items()]
        finally:
            view.release()
    finally:
        region.close()
        shmio.Region.unlink(name)
    return rows


def native(quick: bool, disk_dir: Path) -> tuple[str, list[str]]:
    """Runs shmio-region-bench; returns its stdout and its table rows (as printed)."""
    prog = find_program("shmio-region-bench")
    args: list[str | os.PathLike[str]] = [prog, "--dir", disk_dir]
    if quick:
        args += ["--passes", "16", "--rounds", "2000"]
    out = run_program(args)
    rows = [ln for ln in out.splitlines() if ln.startswith("|") and "---" not in ln]
    return out, rows[1:]  # without its header


def run(
    out: Path, *, quick: bool = False, native_too: bool = True, disk_dir: Path | None = None
) -> list[Row]:
    """Runs the region benchmarks; writes ``region.md`` (and ``region.png``) into ``out``."""
    passes = 5 if quick else 31
    disk_dir = disk_dir if disk_dir is not None else Path.cwd()
    steps = Steps(2 if native_too else 1)
    native_out: str | None = None
    native_rows: list[str] = []
    notes: list[str] = []
    if native_too:
        steps.step("shmio-region-bench" + (" (quick)" if quick else ""))
        native_out, native_rows = native(quick, disk_dir)  # MissingProgram: the caller's
        steps.done()
    steps.step(f"Python: 1 KiB read/write over 4 MiB x {passes} passes")
    rows = python_level(passes)
    steps.done()
    steps.close()

    lines = [
        "# shmio region: native and from Python",
        "",
        f"{os.cpu_count()} CPUs, {'quick' if quick else 'full'} run, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}. Figures from a shared machine: compare the "
        "ratios within a run, not absolute numbers across runs.",
    ]
    if native_rows:
        lines += [
            "",
            "## shmio-region-bench (Rust)",
            "",
            "| measurement | shmio | baseline | ratio |",
            "|---|---:|---:|---:|",
            *native_rows,
        ]
        tail = [ln for ln in (native_out or "").splitlines() if ln.startswith("(")]
        if tail:
            lines += ["", tail[-1]]
    base = {r.op: r.mbps for r in rows if r.way == "memoryview(bytearray) slicing"}
    lines += [
        "",
        "## From Python: 1 KiB at a time over a 4 MiB tmpfs region",
        "",
        f"Median of {passes} alternating passes; MB/s of payload moved.",
        "",
        *table(
            ["way", "op", "MB/s", "vs bytearray"],
            [
                [r.way, r.op, f"{r.mbps:,.0f}", f"{r.mbps / base[r.op]:.2f}x" if r.op in base else "-"]
                for r in rows
            ],
            right=2,
        ),
    ]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    md = "\n".join(lines) + "\n"
    (out / "region.md").write_text(md)
    print(md)
    png = _plot(rows, out / "region.png")
    wrote(out / "region.md", png)
    return rows


def _plot(rows: list[Row], path: Path) -> Path | None:
    plt = pyplot()
    if plt is None or not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), squeeze=False)
    for ax, op in zip(axes[0], ("write", "read")):
        sel = [r for r in rows if r.op == op]
        colors = ["tab:orange" if "Region" in r.way else "tab:blue" for r in sel]
        ax.barh([r.way for r in sel], [r.mbps for r in sel], color=colors)
        ax.set_xlabel("MB/s")
        ax.set_title(f"1 KiB {op}s, 4 MiB region")
    fig.suptitle("shmio region from Python")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
