"""The dirty-page note's experiment, from Python.

A writer thread (or, with ``--writer c``, the note's C program ``dirty_writer``) appends
``rate`` MiB per second to a file on a disk file system (one
``write(2)`` of ``rate`` MiB at each whole second, as the note's program does), while the main
thread samples every ``interval`` seconds through :mod:`shmio.vm`: the system's ``Dirty`` and
``Writeback`` (``/proc/meminfo``) and the file's own dirty and writeback pages
(``cachestat(2)`` through :func:`shmio.vm.file_cache`). The thresholds the ``vm.dirty_*`` knobs
imply (:func:`shmio.vm.thresholds`) are drawn as horizontal lines. Writes ``dirty.csv``,
``dirty.png`` (with matplotlib) and ``dirty.md``; the file is removed at the end.

tmpfs pages never count as dirty, so a file on tmpfs (``/dev/shm``, often ``/tmp``) is refused.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shmio
from shmio import vm

from ._common import MIB, Steps, find_program, pyplot, wrote

MEMORY_FS = {"tmpfs", "ramfs", "devtmpfs", "hugetlbfs", "overlay-tmpfs"}


@dataclass
class Sample:
    t: float
    file_bytes: int
    file_dirty: int | None
    file_writeback: int | None
    sys_dirty: int
    sys_writeback: int


def fs_type(path: Path) -> str:
    """The file system type of the mount holding ``path`` (from ``/proc/self/mounts``)."""
    target = str(path.resolve())
    best, kind = "", "unknown"
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return kind
    for ln in lines:
        parts = ln.split()
        if len(parts) < 3:
            continue
        mnt = parts[1].replace("\\040", " ")
        inside = target == mnt or target.startswith(mnt.rstrip("/") + "/")
        if inside and len(mnt) >= len(best):
            best, kind = mnt, parts[2]
    return kind


class _Writer(threading.Thread):
    def __init__(self, path: Path, rate_mib: float, seconds: float) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.chunk = b"\xa5" * int(rate_mib * MIB)
        self.seconds = seconds
        self.stop = threading.Event()
        self.written = 0
        self.slowest = 0.0  # the longest single write(2), seconds (throttling shows here)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                t0 = time.monotonic()
                k = 0
                while not self.stop.is_set() and k < self.seconds:
                    w0 = time.monotonic()
                    view = memoryview(self.chunk)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
                    self.slowest = max(self.slowest, time.monotonic() - w0)
                    self.written += len(self.chunk)
                    k += 1
                    self.stop.wait(max(0.0, t0 + k - time.monotonic()))
            finally:
                os.close(fd)
        except BaseException as e:  # reported by the main thread
            self.error = e


class _CWriter(threading.Thread):
    """The note's C program, ``examples-c/build/dirty_writer``, as the writer; its per-second
    lines (``t=...``) are kept for the summary."""

    def __init__(self, path: Path, rate_mib: float, seconds: float) -> None:
        super().__init__(daemon=True)
        if rate_mib != int(rate_mib) or rate_mib < 1:
            raise SystemExit("error: --writer c takes a whole number of MiB/s (--rate)")
        self.args = [str(find_program("dirty_writer")), "-r", str(int(rate_mib)),
                     "-d", str(max(1, round(seconds))), "-f", str(path), "-u"]
        self.stop = threading.Event()
        self.written = 0
        self.slowest: float | None = None
        self.error: BaseException | None = None
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    def run(self) -> None:
        try:
            self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
            assert self.proc.stdout is not None
            for ln in self.proc.stdout:
                if ln.startswith("t="):
                    self.lines.append(ln.rstrip())
                    m = re.search(r"size (\d+) KB", ln)
                    if m:
                        self.written = int(m.group(1)) * 1024
            rc = self.proc.wait()
            if rc != 0 and not self.stop.is_set():
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise RuntimeError(f"dirty_writer exited with {rc}: {err.strip()}")
        except BaseException as e:  # reported by the main thread
            self.error = e

    def finish(self) -> None:
        self.stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # it removes its file (-u) and exits


def _file_cache(path: Path, page: int) -> tuple[int | None, int | None, str | None]:
    try:
        c = vm.file_cache(path)
    except shmio.Unsupported as e:
        return None, None, f"file dirty pages unavailable: {e} (cachestat needs Linux 6.5)"
    except (shmio.ShmioError, OSError):
        if not path.exists():  # not created yet, or already removed
            return 0, 0, None
        raise
    return c["dirty"] * page, c["writeback"] * page, None


def run(
    out: Path,
    *,
    quick: bool = False,
    rate: float = 1.0,
    seconds: float | None = None,
    interval: float = 0.5,
    file: Path | None = None,
    writer_kind: str = "python",
) -> list[Sample]:
    """Runs the experiment; writes ``dirty.csv``, ``dirty.md`` (and ``dirty.png``) to ``out``."""
    seconds = seconds if seconds is not None else (4.0 if quick else 60.0)
    path = file if file is not None else Path.cwd() / f"shmio-dirty-bench-{os.getpid()}.dump"
    path = path.resolve()
    kind = fs_type(path.parent)
    if kind in MEMORY_FS:
        raise SystemExit(
            f"error: {path.parent} is on {kind}: its pages never count as dirty. Pass --file "
            "with a path on a disk file system (ext4, xfs, btrfs, ...)."
        )
    if path.exists():
        raise SystemExit(f"error: {path} exists; refusing to overwrite it (pass another --file)")
    page = vm.page_size()
    knobs = vm.knobs()
    th0 = vm.thresholds()
    notes: list[str] = []
    samples: list[Sample] = []
    writer: _Writer | _CWriter = (
        _CWriter(path, rate, seconds) if writer_kind == "c" else _Writer(path, rate, seconds)
    )
    n_samples = int(seconds / interval) + 1
    steps = Steps(n_samples, unit="sample")
    if writer_kind != "c":
        path.touch()  # so that the first sample finds it
    t0 = time.monotonic()
    writer.start()
    try:
        for i in range(n_samples):
            delay = t0 + i * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            steps.step(f"dirty: t={i * interval:.1f}s")
            s = vm.system()
            fd_, fw, note = _file_cache(path, page)
            if note and note not in notes:
                notes.append(note)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                size = 0
            samples.append(
                Sample(
                    round(time.monotonic() - t0, 3), size, fd_, fw,
                    s["dirty_bytes"], s["writeback_bytes"],
                )
            )
            steps.done()
    finally:
        steps.close()
        if isinstance(writer, _CWriter):
            writer.join(timeout=3)  # it stops on its own after -d seconds
            writer.finish()
        writer.stop.set()
        writer.join(timeout=60)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    if writer.error is not None:
        raise RuntimeError(f"writer failed: {writer.error}") from writer.error
    th = vm.thresholds()

    with open(out / "dirty.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "file_bytes", "file_dirty_bytes", "file_writeback_bytes",
                    "system_dirty_bytes", "system_writeback_bytes"])
        for x in samples:
            w.writerow([x.t, x.file_bytes, "" if x.file_dirty is None else x.file_dirty,
                        "" if x.file_writeback is None else x.file_writeback,
                        x.sys_dirty, x.sys_writeback])
    md = _markdown(samples, path, kind, rate, seconds, interval, knobs, th0, th, writer, notes)
    (out / "dirty.md").write_text(md)
    print(md)
    png = _plot(samples, th, rate, kind, out / "dirty.png")
    print(f"wrote {out / 'dirty.csv'}", end="; ")
    wrote(out / "dirty.md", png)
    return samples


def _mib(b: float | None) -> str:
    return "n/a" if b is None else f"{b / MIB:,.1f} MiB"


def _markdown(
    samples: list[Sample], path: Path, kind: str, rate: float, seconds: float, interval: float,
    knobs: dict[str, int], th0: dict[str, int | None], th: dict[str, int | None],
    writer: _Writer | _CWriter, notes: list[str],
) -> str:
    fdirty = [x.file_dirty for x in samples if x.file_dirty is not None]
    peak_f = max(fdirty) if fdirty else None
    peak_f_t = next((x.t for x in samples if x.file_dirty == peak_f), None) if fdirty else None
    peak_s = max(x.sys_dirty for x in samples)
    bg = th.get("background_bytes")
    hard = th.get("dirty_bytes")
    # The first sample at which the file's dirty pages went down: writeback of its pages began.
    first_drop = None
    for a, b in zip(samples, samples[1:]):
        if a.file_dirty is not None and b.file_dirty is not None and b.file_dirty < a.file_dirty:
            first_drop = b.t
            break
    lines = [
        "# Dirty pages while writing at a steady rate",
        "",
        f"{rate:g} MiB/s written to `{path.name}` in `{path.parent}` ({kind}) for {seconds:g} s, "
        f"sampled every {interval:g} s; {time.strftime('%Y-%m-%d %H:%M:%S')}. "
        f"{_mib(writer.written)} written"
        + (f"; the longest single write took {writer.slowest * 1000:.1f} ms"
           if writer.slowest is not None else " by examples-c/build/dirty_writer")
        + ". The file is removed.",
        "",
        "Knobs: " + ", ".join(f"`vm.{k}` = {v}" for k, v in knobs.items()) + ".",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| dirtyable memory | {_mib(th.get('dirtyable_bytes'))} |",
        f"| background writeback threshold | {_mib(bg)} |",
        f"| throttling threshold (dirty limit) | {_mib(hard)} |",
        f"| kernel's own background / dirty threshold | {_mib(th.get('kernel_background_bytes'))} / {_mib(th.get('kernel_dirty_bytes'))} |",
        f"| file dirty, peak | {_mib(peak_f)}" + (f" at t={peak_f_t:g} s" if peak_f_t is not None else "") + " |",
        f"| file dirty, at the end | {_mib(samples[-1].file_dirty)} |",
        f"| file's dirty pages first fell at | {'t=%g s' % first_drop if first_drop is not None else 'never during the run'} |",
        f"| system Dirty, peak | {_mib(peak_s)} |",
        f"| system Writeback, peak | {_mib(max(x.sys_writeback for x in samples))} |",
        "",
    ]
    if bg:
        lines.append(
            f"System Dirty peaked at {100 * peak_s / bg:.1f}% of the background threshold: "
            + ("below it, so only the periodic flusher "
               f"(every {knobs.get('dirty_writeback_centisecs', 0) / 100:g} s, for pages older "
               f"than {knobs.get('dirty_expire_centisecs', 0) / 100:g} s) writes the file back."
               if peak_s < bg else "above it, so background writeback ran.")
        )
    b0, b1 = th0.get("background_bytes") or 0, th.get("background_bytes") or 0
    if abs(b1 - b0) > 0.01 * max(b0, b1, 1):
        lines += ["", "The thresholds moved during the run (free memory changed); the plot "
                  "uses those at the end."]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    if isinstance(writer, _CWriter) and writer.lines:
        lines += ["", "dirty_writer's own lines:", "", "```", *writer.lines, "```"]
    lines += ["", "Samples: `dirty.csv`; plot: `dirty.png` (when matplotlib is installed)."]
    return "\n".join(lines) + "\n"


def _plot(
    samples: list[Sample], th: dict[str, int | None], rate: float, kind: str, path: Path
) -> Path | None:
    plt = pyplot()
    if plt is None or not samples:
        return None
    fig, ax = plt.subplots(figsize=(9, 5))
    t = [x.t for x in samples]

    def mib(v: list[Any]) -> list[float]:
        return [float("nan") if x is None else x / MIB for x in v]

    ax.plot(t, mib([x.sys_dirty for x in samples]), label="system Dirty", color="tab:red")
    ax.plot(t, mib([x.sys_writeback for x in samples]), label="system Writeback",
            color="tab:purple", linestyle="--")
    if any(x.file_dirty is not None for x in samples):
        ax.plot(t, mib([x.file_dirty for x in samples]), label="file dirty", color="tab:blue")
        ax.plot(t, mib([x.file_writeback for x in samples]), label="file writeback",
                color="tab:cyan", linestyle="--")
    ax.plot(t, mib([x.file_bytes for x in samples]), label="file size", color="0.6",
            linestyle=":")
    styles = {
        "background_bytes": ("background writeback threshold", "tab:orange"),
        "dirty_bytes": ("throttling threshold", "tab:green"),
    }
    for key, (label, color) in styles.items():
        v = th.get(key)
        if v:
            ax.axhline(v / MIB, color=color, linestyle="-.", label=f"{label} ({v / MIB:,.0f} MiB)")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("seconds")
    ax.set_ylabel("MiB (symlog)")
    ax.set_title(f"Dirty pages while writing {rate:g} MiB/s to a file on {kind}")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
