"""Command line: ``python -m shmio_bench {queue,region,poll,dirty,all} [--quick] [--out DIR]``.

queue: Python-level queue throughput between two processes against multiprocessing and
peers, then the native shmio-bench (--json; --quick when quick). region: shmio-region-bench and Python-level 1 KiB region reads/writes. poll:
shmio-poll-bench and Python-level shmio.Poller against selectors. dirty: writes at a steady
rate to a file on disk and plots dirty pages over time with the vm.dirty_* thresholds.
all: the four in sequence.

The native programs are looked up under $SHMIO_REPO, then the current directory, then the
checkout this package sits in (target/release/...); build them with
`cargo build --release --workspace`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ._common import CORE, OPTIONAL, MissingProgram, find_program

WHAT = ["queue", "region", "poll", "dirty", "all"]


def _queue_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("queue")
    g.add_argument(
        "--repeat", type=int, default=None, help="runs per case, best kept (default 1 quick, 3 full)"
    )
    g.add_argument(
        "--only", action="append", default=None, choices=CORE + list(OPTIONAL),
        metavar="TRANSPORT",
        help="run only these transports (repeatable): " + ", ".join(CORE + list(OPTIONAL)),
    )
    g.add_argument(
        "--native-args", default="", metavar="ARGS",
        help="extra arguments for shmio-bench, as one string "
        "(e.g. --native-args='--sizes 64 --systems shmio-bp,pipe')",
    )


def _region_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("region")
    g.add_argument(
        "--disk-dir", type=Path, default=None,
        help="directory on a disk file system for the O_SYNC and flush runs (default .)",
    )


def _dirty_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("dirty")
    g.add_argument("--rate", type=float, default=1.0, help="MiB written per second (default 1)")
    g.add_argument(
        "--seconds", type=float, default=None, help="how long to write (default 60, quick 4)"
    )
    g.add_argument("--interval", type=float, default=0.5, help="sampling period in s (0.5)")
    g.add_argument(
        "--file", type=Path, default=None,
        help="file to write, on a disk file system (default ./shmio-dirty-bench-PID.dump; removed)",
    )
    g.add_argument(
        "--writer", choices=["python", "c"], default="python",
        help="who writes: a Python thread, or examples-c/build/dirty_writer (make -C examples-c)",
    )


def parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per benchmark, each with its own ``--help``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quick", action="store_true", help="short runs")
    common.add_argument("--out", type=Path, default=Path("bench-out"), help="output folder")
    native = argparse.ArgumentParser(add_help=False)
    native.add_argument(
        "--no-native",
        action="store_true",
        help="skip the native programs (shmio-bench, shmio-region-bench, shmio-poll-bench): "
        "Python level only. queue runs its Python-level part even when shmio-bench is not "
        "built (a note says how to build it); region and poll stop with that advice",
    )
    ap = argparse.ArgumentParser(
        prog="python -m shmio_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="what", required=True, metavar="{" + ",".join(WHAT) + "}")
    helps = {
        "queue": "queue throughput between two processes, shmio against its peers",
        "region": "region reads and writes, native and from Python",
        "poll": "shmio.Poller against selectors, and the native dispatch benchmark",
        "dirty": "dirty pages over time while a file is written at a steady rate",
        "all": "the four in sequence",
    }
    for what in WHAT:
        parents = [common] if what == "dirty" else [common, native]
        p = sub.add_parser(what, parents=parents, help=helps[what], description=helps[what])
        if what in ("queue", "all"):
            _queue_args(p)
        if what in ("region", "all"):
            _region_args(p)
        if what in ("dirty", "all"):
            _dirty_args(p)
        # Every attribute `main` reads, for the subcommands that do not take it.
        p.set_defaults(
            **{
                k: v
                for k, v in dict(
                    repeat=None, only=None, native_args="", no_native=False, disk_dir=None,
                    rate=1.0, seconds=None, interval=0.5, file=None, writer="python",
                ).items()
                if not any(a.dest == k for a in p._actions)
            }
        )
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    todo = WHAT[:-1] if args.what == "all" else [args.what]
    try:
        if not args.no_native:  # fail before any long run, not half-way through "all"
            for what, prog in (("region", "shmio-region-bench"), ("poll", "shmio-poll-bench")):
                if what in todo:
                    find_program(prog)
        if "dirty" in todo and args.writer == "c":
            find_program("dirty_writer")
    except MissingProgram as e:
        print(f"error: {e}\n(or pass --no-native to run the Python-level part only)",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for what in todo:
        if len(todo) > 1:
            print(f"\n=== {what} ===", file=sys.stderr, flush=True)
        if what == "queue":
            from . import queue

            queue.run(args.out, quick=args.quick, only=args.only, repeat=args.repeat,
                      native_too=not args.no_native, native_args=shlex.split(args.native_args))
        elif what == "region":
            from . import region

            region.run(args.out, quick=args.quick, native_too=not args.no_native,
                       disk_dir=args.disk_dir)
        elif what == "poll":
            from . import poll

            poll.run(args.out, quick=args.quick, native_too=not args.no_native)
        elif what == "dirty":
            from . import dirty

            dirty.run(args.out, quick=args.quick, rate=args.rate, seconds=args.seconds,
                      interval=args.interval, file=args.file, writer_kind=args.writer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
