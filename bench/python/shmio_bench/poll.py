"""Event dispatch: shmio's poller backends against the stdlib ``selectors`` module.

1. ``shmio-poll-bench`` (the Rust program: libevent's pipe-chain benchmark on every backend
   against a hand-written raw epoll loop); ``--quick`` runs fewer events per configuration.
2. A Python-level run of the same pipe chain: N socket pairs, one token circulating (A = 1):
   each read event reads the byte and writes one byte to the next pair. Every
   ``shmio.Poller`` backend against ``selectors.SelectSelector``/``PollSelector``/
   ``EpollSelector``; microseconds per event, best of k runs, interleaved, with the spread of
   the k runs, (max - min) / median. Every way runs the same k times; at N > 5000 every way
   runs fewer events per run instead (the O(N) ones cost about 1 ms per event there).
"""

from __future__ import annotations

import os
import re
import resource
import selectors
import socket
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import shmio

from ._common import Steps, find_program, pyplot, run_program, table, wrote

SHMIO_BACKENDS = ["select", "poll", "epoll", "epoll-et", "rtsig", "rtsig-onefd"]
SELECTORS: dict[str, Callable[[], selectors.BaseSelector]] = {
    "selectors.SelectSelector": selectors.SelectSelector,
    "selectors.PollSelector": selectors.PollSelector,
    "selectors.EpollSelector": selectors.EpollSelector,
}
FD_SETSIZE = 1024
#: Events per configuration for shmio-poll-bench in quick mode (poll at N = 10,000 costs ms each).
QUICK_NATIVE_EVENTS = 200
#: Runs of every cell of shmio-poll-bench in quick mode (its default is 5).
QUICK_NATIVE_REPS = 3
_FD_SETSIZE_BOUND = ("shmio select", "selectors.SelectSelector")
#: Rings larger than this run a twentieth of the events per run (at least 200), every way alike.
LARGE_N = 5000


def events_at(n: int, events: int) -> int:
    """Events per run at ``n`` pairs, the same for every way."""
    return max(200, events // 20) if n > LARGE_N else events


@dataclass
class Row:
    way: str
    n: int
    us_per_event: float | None  # None: not applicable (fds above FD_SETSIZE)
    spread: float | None = None  # (max - min) / median of the runs


def _raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


class _Ring:
    def __init__(self, n: int) -> None:
        self.pairs = [socket.socketpair() for _ in range(n)]
        for a, b in self.pairs:
            a.setblocking(False)
            b.setblocking(False)
        self.n = n

    def readers(self) -> list[socket.socket]:
        return [a for a, _ in self.pairs]

    def max_fd(self) -> int:
        return max(max(a.fileno(), b.fileno()) for a, b in self.pairs)

    def close(self) -> None:
        for a, b in self.pairs:
            a.close()
            b.close()


def _run_shmio(ring: _Ring, backend: str, events: int) -> float:
    n = ring.n
    with shmio.Poller(backend, capacity=max(256, n + 16)) as p:
        readers = ring.readers()
        writers = [b for _, b in ring.pairs]
        for i, r in enumerate(readers):
            p.register(r, i)
        writers[0].send(b"x")
        done = 0
        poll = p.poll
        t0 = time.perf_counter()
        while done < events:
            evs = poll(5.0)
            if not evs:
                raise RuntimeError(f"shmio {backend} stalled at N={n}")
            for ev in evs:
                i = ev.token
                try:
                    readers[i].recv(64)
                except BlockingIOError:
                    continue
                writers[(i + 1) % n].send(b"x")
                done += 1
        dt = time.perf_counter() - t0
        for r in readers:
            p.unregister(r)
    _drain(ring)
    return dt / done * 1e6


def _run_selector(ring: _Ring, make: Callable[[], selectors.BaseSelector], events: int) -> float:
    n = ring.n
    sel = make()
    try:
        readers = ring.readers()
        writers = [b for _, b in ring.pairs]
        for i, r in enumerate(readers):
            sel.register(r, selectors.EVENT_READ, i)
        writers[0].send(b"x")
        done = 0
        select = sel.select
        t0 = time.perf_counter()
        while done < events:
            evs = select(5.0)
            if not evs:
                raise RuntimeError(f"selector stalled at N={n}")
            for key, _mask in evs:
                i = key.data
                readers[i].recv(64)
                writers[(i + 1) % n].send(b"x")
                done += 1
        dt = time.perf_counter() - t0
    finally:
        sel.close()
    _drain(ring)
    return dt / done * 1e6


def _drain(ring: _Ring) -> None:
    for a, _ in ring.pairs:
        try:
            while a.recv(4096):
                pass
        except BlockingIOError:
            pass


def _on_shmio(ring: _Ring, events: int, *, backend: str) -> float:
    return _run_shmio(ring, backend, events)


def _on_selector(
    ring: _Ring, events: int, *, make: Callable[[], selectors.BaseSelector]
) -> float:
    return _run_selector(ring, make, events)


def python_level(sizes: list[int], events: int, reps: int, steps: Steps | None = None) -> list[Row]:
    nofile = _raise_nofile()
    ways: list[tuple[str, Callable[[_Ring, int], float]]] = []
    for b in SHMIO_BACKENDS:
        ways.append((f"shmio {b}", partial(_on_shmio, backend=b)))
    for label, make in SELECTORS.items():
        ways.append((label, partial(_on_selector, make=make)))
    rows: list[Row] = []
    for n in sizes:
        n = min(n, max(16, (nofile - 64) // 2))
        if steps is not None:
            steps.step(f"Python pipe chain N={n}, {events} events x {reps}")
        ring = _Ring(n)
        try:
            runs: dict[str, list[float]] = {}
            for _rep in range(reps):
                for label, f in ways:
                    runs.setdefault(label, [])
                    if label in _FD_SETSIZE_BOUND and ring.max_fd() >= FD_SETSIZE:
                        continue
                    runs[label].append(f(ring, events_at(n, events)))
            rows += [_row(label, n, us) for label, us in runs.items()]
        finally:
            ring.close()
        if steps is not None:
            steps.done()
    return rows


def _row(way: str, n: int, runs: list[float]) -> Row:
    """A cell from its runs: the best (fewest µs per event) and the spread."""
    if not runs:
        return Row(way, n, None)
    s = sorted(runs)
    median = s[len(s) // 2]
    return Row(way, n, s[0], (s[-1] - s[0]) / median if median > 0 else 0.0)


_NATIVE_ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s*\|(.*)$")
#: A cell: "ns (syscalls) spread%", "n/a (why)", or the closing ratio.
_NATIVE_CELL = re.compile(r"n/a \([^)]*\)|\d+ \(\d+\.\d+\)\s+\d+%|\d+\.\d+|NaN")


def native(quick: bool) -> tuple[list[str], list[list[str]]]:
    """Runs shmio-poll-bench; returns its column names and rows (cells as printed, but one
    space between a cell's parts)."""
    prog = find_program("shmio-poll-bench")
    quick_args = [str(QUICK_NATIVE_EVENTS), "--reps", str(QUICK_NATIVE_REPS)]
    out = run_program([prog, *quick_args] if quick else [prog])
    header = ["N", "A", "raw epoll", "select", "poll", "epoll", "epoll-et", "rtsig",
              "rtsig-onefd", "epoll/raw"]
    rows = []
    for ln in out.splitlines():
        m = _NATIVE_ROW.match(ln)
        if m:
            rest = [" ".join(c.split()) for c in _NATIVE_CELL.findall(m.group(3))]
            rows.append([m.group(1), m.group(2), *rest])
    rows = [r for r in rows if len(r) == len(header)]
    if not rows:
        raise RuntimeError(f"shmio-poll-bench printed no table:\n{out}")
    return header, rows


def run(out: Path, *, quick: bool = False, native_too: bool = True) -> list[Row]:
    """Runs the poller benchmarks; writes ``poll.md`` (and ``poll.png``) into ``out``."""
    sizes = [100, 1000] if quick else [100, 1000, 10_000]
    events = 2000 if quick else 20_000
    reps = 3 if quick else 5
    steps = Steps(len(sizes) + (1 if native_too else 0))
    notes: list[str] = []
    native_table: tuple[list[str], list[list[str]]] | None = None
    if native_too:
        steps.step("shmio-poll-bench" + (f" ({QUICK_NATIVE_EVENTS} events per run)" if quick else ""))
        native_table = native(quick)  # MissingProgram: the caller's
        steps.done()
    rows = python_level(sizes, events, reps, steps)
    steps.close()

    lines = [
        "# shmio poller: native and from Python",
        "",
        f"{os.cpu_count()} CPUs, {'quick' if quick else 'full'} run, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}. Figures from a shared machine: compare the "
        "ratios within a run, not absolute numbers across runs.",
    ]
    if native_table is not None:
        header, nrows = native_table
        lines += [
            "",
            "## shmio-poll-bench (Rust): pipe chain, ns per event (poller syscalls per event)",
            "",
            f"Best of {QUICK_NATIVE_REPS if quick else 5} runs per cell, interleaved, and their "
            "spread, (max - min) / median; at N > 5000 every backend runs a tenth of the events "
            "per run.",
            "",
            *table(header, nrows, right=0),
        ]
    ns = sorted({r.n for r in rows})
    labels = list(dict.fromkeys(r.way for r in rows))
    by = {(r.way, r.n): r.us_per_event for r in rows}
    base = {n: by.get(("selectors.EpollSelector", n)) for n in ns}

    spreads = {(r.way, r.n): r.spread for r in rows}

    def cell(way: str, n: int) -> str:
        v = by.get((way, n))
        if v is None:
            return "n/a (fd > 1023)"
        b = base[n]
        spread = spreads.get((way, n)) or 0.0
        return f"{v:.2f}" + (f" ({b / v:.2f}x)" if b else "") + f" {spread * 100:.0f}%"

    lines += [
        "",
        "## From Python: pipe chain, one active pair (A = 1)",
        "",
        f"Microseconds per event (each: poll, read a byte, write a byte to the next pair), "
        f"best of {reps} runs, interleaved, {events} events per run (at N > {LARGE_N}: "
        f"{events_at(LARGE_N + 1, events)}, for every way); in brackets the speed against "
        "selectors.EpollSelector (the stdlib's DefaultSelector on Linux); then the spread of "
        f"the {reps} runs, (max - min) / median.",
        "",
        *table(["way", *[f"N={n}" for n in ns]], [[w, *[cell(w, n) for n in ns]] for w in labels]),
    ]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    md = "\n".join(lines) + "\n"
    (out / "poll.md").write_text(md)
    print(md)
    png = _plot(rows, out / "poll.png")
    wrote(out / "poll.md", png)
    return rows


def _plot(rows: list[Row], path: Path) -> Path | None:
    plt = pyplot()
    if plt is None or not rows:
        return None
    ns = sorted({r.n for r in rows})
    fig, axes = plt.subplots(1, len(ns), figsize=(5 * len(ns), 4), squeeze=False)
    for ax, n in zip(axes[0], ns):
        sel = [r for r in rows if r.n == n and r.us_per_event is not None]
        sel.sort(key=lambda r: -(r.us_per_event or 0))
        colors = ["tab:orange" if r.way.startswith("shmio") else "tab:blue" for r in sel]
        ax.barh([r.way for r in sel], [r.us_per_event or 0 for r in sel], color=colors)
        ax.set_xscale("log")
        ax.set_xlabel("µs per event, log (lower is better)")
        ax.set_title(f"N = {n} socket pairs, 1 active")
    fig.suptitle("Python event dispatch: shmio.Poller vs selectors")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

