"""The native queue benchmark, driven from Python: runs ``shmio-bench --json``, collects its
rows as they come, and renders them as Markdown tables and a plot (``queue-native.png``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from ._common import human, progress, pyplot

#: Fields of a shmio-bench JSON row that identify it (every other field is a measurement).
KEYS = ("system", "pattern", "size")
#: Measurements shown first when present; any others follow in the order they appear.
FIRST = ("records_per_s", "gbps", "p50_ns", "p99_ns", "p999_ns")


def native(args: list[str], timeout: float = 1800) -> tuple[list[dict[str, Any]], str | None]:
    """Runs ``shmio-bench --json ...`` and collects its rows (one JSON object per line) as
    they come, with a progress bar (the number of rows is not known in advance). Returns the
    rows and, if the program failed or printed something that is not a row, what went wrong:
    the rows gathered before a failure are kept."""
    rows: list[dict[str, Any]] = []
    junk: list[str] = []
    bar = progress(0, unit="row")
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    row = None
                if not isinstance(row, dict) or not all(k in row for k in KEYS):
                    junk.append(line)
                    continue
                rows.append(row)
                desc = f"shmio-bench {row['system']} {row['pattern']} {human(int(row['size']))}"
                if bar is not None:
                    bar.set_description(desc)
                    bar.update(1)
                else:
                    print(f"[{len(rows)}] {desc}", file=sys.stderr, flush=True)
            rc = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if bar is not None:
                bar.close()
        err.seek(0)
        stderr = err.read().strip()
    problem = None
    if rc != 0:
        frame = re.compile(r"\s*(\d+:|at |stack backtrace|note: )")  # Rust's backtrace
        last = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not frame.match(ln)]
        why = f"killed after {timeout:.0f} s" if rc == -9 else f"exited with {rc}"
        problem = (f"shmio-bench {why} after {len(rows)} rows"
                   + (f": {' / '.join(last[:3])[:500]}" if last else ""))
    elif junk:
        problem = f"shmio-bench printed {len(junk)} lines that are not rows: {junk[0][:200]}"
    return rows, problem


def _cell(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 1000:
        return f"{int(v):,}"
    return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}" if abs(v) < 1000 else f"{v:,.0f}"


def native_markdown(rows: list[dict[str, Any]], cmd: str) -> str:
    """The native rows as Markdown: one table per record size, rows grouped by pattern (in the
    order the program printed them), one row per system, a column for every field seen."""
    lines = ["", "## Native: " + (f"`{cmd}`" if cmd else "shmio-bench"), ""]
    if not rows:
        return "\n".join(lines + ["No rows (see the notes above).", ""])
    lines += [
        "The Rust benchmark program, as it reported itself (one JSON row per system, pattern "
        "and record size; `1toN`: one producer to N consumer processes, `rtt…`: round trips "
        "(`-spin`, `-block`: how the sides wait), pattern `1`: one core's memcpy). Fields are "
        "the program's own.",
    ]
    for size in dict.fromkeys(int(r["size"]) for r in rows):
        group = [r for r in rows if int(r["size"]) == size]
        seen = list(dict.fromkeys(k for r in group for k in r if k not in KEYS))
        fields = [f for f in FIRST if f in seen] + [f for f in seen if f not in FIRST]
        patterns = list(dict.fromkeys(str(r["pattern"]) for r in group))
        lines += ["", f"### {human(size)} records", ""]
        lines.append("| pattern | system | " + " | ".join(fields) + " |")
        lines.append("|---|---|" + "---:|" * len(fields))
        for pat in patterns:
            for r in (r for r in group if str(r["pattern"]) == pat):
                cells = [_cell(r[f]) if f in r else "" for f in fields]
                lines.append(f"| {pat} | {r['system']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def native_plot(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """records/s of every (system, pattern) that has them, one panel per record size."""
    plt = pyplot()
    rated = [r for r in rows if isinstance(r.get("records_per_s"), (int, float))]
    sizes = list(dict.fromkeys(int(r["size"]) for r in rated))
    if plt is None or not sizes:
        return None
    tallest = max(sum(1 for r in rated if int(r["size"]) == s) for s in sizes)
    fig, axes = plt.subplots(
        1, len(sizes), figsize=(6 * len(sizes), 1.2 + 0.28 * tallest), squeeze=False
    )
    for ax, size in zip(axes[0], sizes):
        group = sorted(
            (r for r in rated if int(r["size"]) == size), key=lambda r: r["records_per_s"]
        )
        labels = [f"{r['system']} ({r['pattern']})" for r in group]
        colors = [
            "tab:orange" if str(r["system"]).startswith("shmio") else "tab:blue" for r in group
        ]
        ax.barh(labels, [r["records_per_s"] for r in group], color=colors)
        ax.set_xscale("log")
        ax.set_xlabel("records/s (log)")
        ax.set_title(f"{human(size)} records")
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle("shmio-bench (native): records/s by system")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
