"""Command line: ``python -m shmio.bench {queue,all} [--quick] [--out DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m shmio.bench", description=__doc__)
    ap.add_argument("what", choices=["queue", "all"], help="which benchmark to run")
    ap.add_argument("--quick", action="store_true", help="short runs (about 30 s in all)")
    ap.add_argument("--out", type=Path, default=Path("bench-out"), help="output folder")
    ap.add_argument(
        "--repeat", type=int, default=None, help="runs per case, best kept (default 1 quick, 3 full)"
    )
    ap.add_argument(
        "--only", action="append", default=None, help="run only these transports (repeatable)"
    )
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from . import queue

    queue.run(args.out, quick=args.quick, only=args.only, repeat=args.repeat)
    if args.what == "all":
        print("note: region, poll and dirty benchmarks come with their bindings (not yet built)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
