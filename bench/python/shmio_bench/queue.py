"""Python-level queue throughput between two Python processes.

Each run starts a consumer process and a producer process (``spawn``); the producer sends
``n`` records of a given size as fast as it can, the consumer receives them and times from the
first record to the last, so process start-up is not counted. Every transport is bounded to a
comparable capacity (about 1024 records of 64 B, 64 records of 64 KiB) so that no one buffers
without limit. shmio runs in back-pressure mode: nothing is lost, as with the others.

A second comparison reads 1 MiB records with shmio's copying ``recv`` and with the zero-copy
``recv_view``; the producer there writes each record in place (``reserve``/``commit``) and
touches only its first and last byte, so that the consumer's cost is what is measured.

Optional peers (faster-fifo, posix_ipc, pyzmq, iceoryx2) run when they import; missing ones
are skipped with a note. iceoryx2 runs as a publish-subscribe service of byte slices: safe
overflow off and the publisher's ``RetryUntilDelivered`` back-pressure strategy, so nothing is
lost, and a subscriber buffer of the same capacity as the others'. Its Python subscriber has no
blocking receive (waiting would take a second, event service), so the consumer polls
``receive()`` in a loop: iceoryx2's quickest way to receive from Python, and a core kept busy.

Then, unless ``native`` is off, the native benchmark ``shmio-bench`` (Rust: shmio against
pipes, sockets, message queues and the other systems it knows, in-process threads and child
processes) runs with ``--json``; its rows are rendered as they come, whatever systems, patterns
and fields it reports, into a second table and ``queue-native.png``.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import platform
import shlex
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shmio

# The transports (CORE, OPTIONAL) live in _common, so that --help lists them without shmio.
from ._common import (
    CORE,
    KIB,
    MIB,
    OPTIONAL,
    MissingProgram,
    find_program,
    human,
    optional,
    progress,
    pyplot,
)
from .queue_native import native, native_markdown, native_plot




@dataclass
class Result:
    transport: str
    size: int
    count: int
    seconds: float

    @property
    def rate(self) -> float:
        return (self.count - 1) / self.seconds if self.seconds > 0 else float("inf")

    @property
    def mbps(self) -> float:
        return self.rate * self.size / 1e6


def _capacity(size: int) -> int:
    return 1024 if size <= 4 * KIB else 64 if size <= 256 * KIB else 16



# ---- processes (module-level functions, as the spawn start method requires) ---------------


def _time_calls(receive: Any, n: int) -> float:
    """Receives ``n`` records with ``receive()``: seconds from the first record to the last."""
    receive()
    t0 = time.perf_counter()
    for _ in range(n - 1):
        receive()
    return time.perf_counter() - t0


def _wait(cond: Any, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("peer did not show up")
        time.sleep(0.001)


def _producer(kind: str, chan: Any, size: int, n: int, mode: str) -> None:
    payload = bytes(size)
    if kind == "shmio":
        tx = shmio.Queue.create(
            chan, slots=_capacity(size), slot_size=size, policy="backpressure"
        )
        _wait(lambda: bool(shmio.Queue.stats(chan)["consumers"]))
        if mode == "in-place":
            for i in range(n):
                mv = tx.reserve(size)
                mv[0] = mv[-1] = i & 0xFF
                tx.commit()
        else:
            send = tx.send
            for _ in range(n):
                send(payload)
        tx.close()
    elif kind == "multiprocessing.Queue":
        put = chan.put
        for _ in range(n):
            put(payload)
        chan.close()
        chan.join_thread()
    elif kind == "multiprocessing.Pipe":
        send_bytes = chan.send_bytes
        for _ in range(n):
            send_bytes(payload)
        chan.close()
    elif kind == "faster-fifo":
        put = chan.put
        for _ in range(n):
            put(payload, timeout=60)
    elif kind == "posix_ipc":
        posix_ipc = optional("posix_ipc")

        mq = posix_ipc.MessageQueue(chan)
        for _ in range(n):
            mq.send(payload)
        mq.close()
    elif kind == "pyzmq":
        zmq = optional("zmq")

        ctx = zmq.Context()
        s = ctx.socket(zmq.PUSH)
        s.setsockopt(zmq.SNDHWM, _capacity(size))
        path = chan.removeprefix("ipc://")
        # Connect only once the consumer has bound: a PUSH that connects first and reconnects
        # when the socket appears lost tens of records out of 40,000 in about one run in three.
        _wait(lambda: os.path.exists(path))
        s.connect(chan)
        for _ in range(n):
            s.send(payload, copy=size < 64 * KIB)
        # Close only once the consumer has received every record and closed its end (its
        # bound socket's file goes with it). A linger of -1 does not deliver them: it keeps
        # the records still queued in the socket, but those libzmq's I/O thread has already
        # taken for the connection are dropped when the context terminates, so whenever the
        # consumer was behind at that moment it missed the last few dozen to few hundred
        # (libzmq issues 1922 and 4660). Nothing is left to send then: linger 0.
        _wait(lambda: not os.path.exists(path))
        s.close(linger=0)
        ctx.term()
    elif kind == "iceoryx2":
        iox = optional("iceoryx2")
        ctypes = optional("ctypes")

        node, svc = _iox_service(iox, chan, size)
        pub = (
            svc.publisher_builder()
            .initial_max_slice_len(size)
            .backpressure_strategy(iox.BackpressureStrategy.RetryUntilDelivered)
            .create()
        )
        _wait(lambda: svc.dynamic_config.number_of_subscribers >= 1)
        pub.update_connections()
        loan, memmove = pub.loan_slice_uninit, ctypes.memmove
        for _ in range(n):
            while True:
                sample = loan(size)
                memmove(sample.payload_ptr, payload, size)
                if sample.assume_init().send():  # the number of subscribers that got it
                    break
                # Nobody did: the subscriber counted in the service is not connected to this
                # publisher yet (seen under load). Connect and send the record again.
                pub.update_connections()
        # Samples live in this publisher's memory: stay until the subscriber is done.
        _wait(lambda: svc.dynamic_config.number_of_subscribers == 0)
        pub.delete()
        del svc, node
    else:
        raise ValueError(kind)


def _iox_service(iox: Any, name: str, size: int) -> tuple[Any, Any]:
    """An iceoryx2 node and the run's publish-subscribe service (byte slices), opened or
    created alike by both sides: no overflow (the publisher waits), no history, a subscriber
    buffer of the capacity every transport gets."""
    ctypes = optional("ctypes")
    iox.set_log_level(iox.LogLevel.Error)
    node = (
        iox.NodeBuilder.new()
        .signal_handling_mode(iox.SignalHandlingMode.Disabled)
        .create(iox.ServiceType.Ipc)
    )
    svc = (
        node.service_builder(iox.ServiceName.new(name))
        .publish_subscribe(iox.Slice[ctypes.c_uint8])
        .enable_safe_overflow(False)
        .history_size(0)
        .subscriber_max_buffer_size(_capacity(size))
        .max_publishers(1)
        .max_subscribers(1)
        .open_or_create()
    )
    return node, svc


def _consumer(kind: str, chan: Any, size: int, n: int, mode: str, result: Any) -> None:
    try:
        result.put(_consume(kind, chan, size, n, mode))
    except BaseException as e:  # report, so that the parent does not wait for ever
        result.put(f"{type(e).__name__}: {e}")
        raise


def _consume(kind: str, chan: Any, size: int, n: int, mode: str) -> float:
    if kind == "shmio":
        _wait(lambda: os.path.exists(os.path.join(os.environ.get("SHMIO_DIR") or "/dev/shm", chan)))
        rx = shmio.Queue.open(chan, start="oldest")
        if mode == "view":
            with rx.recv_view() as mv:
                check = mv[0] ^ mv[-1]
            t0 = time.perf_counter()
            for _ in range(n - 1):
                with rx.recv_view() as mv:
                    check ^= mv[0] ^ mv[-1]
        else:
            rec = rx.recv()
            check = rec[0] ^ rec[-1]
            recv = rx.recv
            t0 = time.perf_counter()
            for _ in range(n - 1):
                rec = recv()
                check ^= rec[0] ^ rec[-1]
        t1 = time.perf_counter()
        rx.close()
        return t1 - t0
    if kind == "multiprocessing.Queue":
        return _time_calls(chan.get, n)
    if kind == "multiprocessing.Pipe":
        return _time_calls(chan.recv_bytes, n)
    if kind == "faster-fifo":
        return _time_calls(functools.partial(chan.get, timeout=60), n)
    if kind == "posix_ipc":
        posix_ipc = optional("posix_ipc")

        mq = posix_ipc.MessageQueue(chan)
        mq.receive()
        t0 = time.perf_counter()
        for _ in range(n - 1):
            mq.receive()
        t = time.perf_counter() - t0
        mq.close()
        return t
    if kind == "pyzmq":
        zmq = optional("zmq")

        ctx = zmq.Context()
        s = ctx.socket(zmq.PULL)
        s.setsockopt(zmq.RCVHWM, _capacity(size))
        # A stalled run fails instead of hanging the benchmark (it would if records were
        # lost: the producer used to drop the last ones as it closed, see _producer).
        s.setsockopt(zmq.RCVTIMEO, 10_000)
        s.bind(chan)
        got = 0
        # "lagging": a consumer that falls behind now and then, as one on a loaded machine
        # does (the tests' way to check that the producer's close loses nothing).
        lag = 500 if mode == "lagging" else 0
        try:
            s.recv()
            got += 1
            t0 = time.perf_counter()
            for _ in range(n - 1):
                s.recv(copy=size < 64 * KIB)
                got += 1
                if lag and got % lag == 0:
                    time.sleep(0.002)
            t = time.perf_counter() - t0
        except zmq.Again:
            raise TimeoutError(f"pyzmq: no message for 10 s after {got} of {n}") from None
        finally:
            # Closing removes the socket's file, which tells the producer it may close.
            s.close(linger=0)
            ctx.term()
            Path(chan.removeprefix("ipc://")).unlink(missing_ok=True)
        return t
    if kind == "iceoryx2":
        iox = optional("iceoryx2")
        string_at = optional("ctypes").string_at

        node, svc = _iox_service(iox, chan, size)
        sub = svc.subscriber_builder().buffer_size(_capacity(size)).create()
        receive = sub.receive

        got = 0

        def get() -> bytes:
            nonlocal got
            idle = 0
            since = 0.0
            while True:  # no blocking receive in the Python API: poll
                sample = receive()
                if sample is not None:
                    data: bytes = string_at(sample.payload_ptr, sample.header.number_of_elements)
                    sample.delete()
                    got += 1
                    return data
                idle += 1
                if idle % 64 == 0:
                    # Let a producer that shares this core run (as shmio's waits do); give up
                    # rather than poll for ever if records went missing.
                    os.sched_yield()
                    if idle == 64:
                        since = time.monotonic()
                    elif idle % 65536 == 0 and time.monotonic() - since > 30:
                        raise TimeoutError(f"iceoryx2: no sample for 30 s after {got} of {n}")

        rec = get()
        check = rec[0] ^ rec[-1]
        t0 = time.perf_counter()
        for _ in range(n - 1):
            rec = get()
            check ^= rec[0] ^ rec[-1]
        t = time.perf_counter() - t0
        sub.delete()  # tells the publisher it may go
        del svc, node
        return t
    raise ValueError(kind)


# ---- orchestration ---------------------------------------------------------------------------


def _skip_reason(kind: str, size: int) -> str | None:
    mod = OPTIONAL.get(kind)
    if mod is not None:
        try:
            optional(mod)
        except ImportError:
            return f"{kind} is not installed (pip install {kind})"
    if kind == "posix_ipc":
        try:
            limit = int(Path("/proc/sys/fs/mqueue/msgsize_max").read_text())
        except OSError:
            limit = 8192
        if size > limit:
            return f"posix_ipc: {size} B exceeds the system's mqueue msgsize_max ({limit} B)"
    return None


def _run_one(ctx: Any, kind: str, size: int, n: int, mode: str = "copy") -> Result:
    tag = uuid.uuid4().hex[:8]
    cleanup: list[Any] = []
    if kind == "shmio":
        name = f"shmio_bench_{os.getpid()}_{tag}"
        prod_chan = cons_chan = name
        cleanup.append(lambda: _unlink_quietly(name))
    elif kind == "multiprocessing.Queue":
        prod_chan = cons_chan = ctx.Queue(maxsize=_capacity(size))
    elif kind == "multiprocessing.Pipe":
        cons_chan, prod_chan = ctx.Pipe(duplex=False)
    elif kind == "faster-fifo":
        faster_fifo = optional("faster_fifo")

        prod_chan = cons_chan = faster_fifo.Queue(max_size_bytes=_capacity(size) * (size + 64))
    elif kind == "posix_ipc":
        posix_ipc = optional("posix_ipc")

        mq = posix_ipc.MessageQueue(
            f"/shmio_bench_{tag}", posix_ipc.O_CREX, max_messages=10, max_message_size=size
        )
        prod_chan = cons_chan = mq.name
        cleanup.append(mq.unlink)
        cleanup.append(mq.close)
    elif kind == "pyzmq":
        path = f"/tmp/shmio_bench_{tag}.sock"
        prod_chan = cons_chan = f"ipc://{path}"
        cleanup.append(lambda: Path(path).unlink(missing_ok=True))
    elif kind == "iceoryx2":
        prod_chan = cons_chan = f"shmio_bench/{os.getpid()}/{tag}"  # a service name
    else:
        raise ValueError(kind)
    result = ctx.Queue()
    cons = ctx.Process(target=_consumer, args=(kind, cons_chan, size, n, mode, result))
    cons.start()
    prod_mode = "in-place" if mode in ("view", "copy-in-place") else "copy"
    prod = ctx.Process(target=_producer, args=(kind, prod_chan, size, n, prod_mode))
    prod.start()
    try:
        got = result.get(timeout=600)
    finally:
        prod.join(timeout=60)
        cons.join(timeout=60)
        for p in (prod, cons):
            if p.is_alive():
                p.kill()
        for f in reversed(cleanup):
            try:
                f()
            except Exception:
                pass
    if isinstance(got, str):
        raise RuntimeError(f"{kind} {size} B: consumer failed: {got}")
    return Result(kind, size, n, float(got))


def _unlink_quietly(name: str) -> None:
    try:
        shmio.Queue.unlink(name)
    except shmio.NotFound:
        pass


def run(
    out: Path,
    *,
    quick: bool = False,
    only: list[str] | None = None,
    repeat: int | None = None,
    native_too: bool = True,
    native_args: list[str] | None = None,
) -> list[Result]:
    """Runs the queue benchmark; writes ``queue.md`` (and ``queue.png``, ``queue-native.png``)
    into ``out``. Each Python-level run is repeated ``repeat`` times (default 1 with ``quick``,
    else 3) and the best one is kept. Then ``shmio-bench --json`` (with ``--quick`` if
    ``quick``, and ``native_args``), unless ``native_too`` is false; when it is not built, a
    note says how to build it and the Python-level part still runs."""
    repeat = repeat if repeat is not None else (1 if quick else 3)
    ctx = mp.get_context("spawn")
    scale = 1 if quick else 5
    counts = {64: 40_000 * scale, 64 * KIB: 4_000 * scale}
    zc_count = 400 * scale
    kinds = [k for k in CORE + list(OPTIONAL) if only is None or k in only]
    plan: list[tuple[str, int, int, str, str]] = []
    notes: list[str] = []
    for size, n in counts.items():
        for kind in kinds:
            reason = _skip_reason(kind, size)
            if reason:
                notes.append(reason)
                continue
            plan.append((kind, size, n, "copy", kind))
    if only is None or "shmio" in only:
        plan.append(("shmio", MIB, zc_count, "copy-in-place", "shmio recv (copy)"))
        plan.append(("shmio", MIB, zc_count, "view", "shmio recv_view (zero copy)"))
    prog: Path | None = None
    if native_too:
        try:
            prog = find_program("shmio-bench")
        except MissingProgram as e:
            notes.append(f"native table: {e}")
    for note in dict.fromkeys(notes):
        print(f"note: skipped: {note}", file=sys.stderr)
    if any(kind == "iceoryx2" for kind, *_ in plan):
        notes.append(
            "iceoryx2: a publish-subscribe service of byte slices, safe overflow off, the "
            "publisher's RetryUntilDelivered strategy (nothing is lost), a subscriber buffer of "
            "the same capacity as the others; its Python subscriber has no blocking receive, so "
            "the consumer polls receive() in a loop (a busy core)"
        )

    bar = progress(len(plan))
    results: list[Result] = []
    zero_copy: list[Result] = []
    failures: list[str] = []
    for i, (kind, size, n, mode, label) in enumerate(plan, 1):
        desc = f"{label} {human(size)} x {n}"
        if bar is not None:
            bar.set_description(desc)
        else:
            print(f"[{i}/{len(plan)}] {desc}", file=sys.stderr, flush=True)
        try:
            r = max(
                (_run_one(ctx, kind, size, n, mode) for _ in range(repeat)),
                key=lambda r: r.rate,
            )
        except Exception as e:
            failures.append(f"{desc}: {e}")
            print(f"note: {desc} failed: {e}", file=sys.stderr)
        else:
            r.transport = label
            (zero_copy if size == MIB else results).append(r)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    rows: list[dict[str, Any]] = []
    cmd = ""
    if prog is not None:
        args = [str(prog), "--json"] + (["--quick"] if quick else []) + (native_args or [])
        cmd = shlex.join(["shmio-bench"] + args[1:])
        print(f"running {cmd}", file=sys.stderr, flush=True)
        rows, problem = native(args)
        if problem:
            failures.append(f"{cmd}: {problem}")
            print(f"note: {problem}", file=sys.stderr)

    md = _markdown(results, zero_copy, list(dict.fromkeys(notes)) + failures, quick, repeat)
    if prog is not None:
        md += native_markdown(rows, cmd)
    (out / "queue.md").write_text(md)
    print(md)
    png = _plot(results, zero_copy, out / "queue.png")
    native_png = native_plot(rows, out / "queue-native.png") if rows else None
    pngs = [str(p) for p in (png, native_png) if p]
    print(f"wrote {out / 'queue.md'}"
          + (f" and {', '.join(pngs)}" if pngs else " (matplotlib not installed: no plot)"))
    return results + zero_copy


def _markdown(
    results: list[Result], zero_copy: list[Result], notes: list[str], quick: bool, repeat: int
) -> str:
    best = f", best of {repeat} runs" if repeat > 1 else ""
    lines = [
        "# shmio queue from Python: throughput between two processes",
        "",
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{'quick' if quick else 'full'} run, {time.strftime('%Y-%m-%d %H:%M:%S')}. "
        "Records per second received by a consumer process from a producer process, timed "
        f"from the first record to the last{best}. Figures from a shared machine: compare "
        "the ratios within a run, not absolute numbers across runs.",
        "",
        "| record | transport | records/s | MB/s | vs multiprocessing.Queue |",
        "|---|---|---:|---:|---:|",
    ]
    for size in sorted({r.size for r in results}):
        rows = [r for r in results if r.size == size]
        base = next((r.rate for r in rows if r.transport == "multiprocessing.Queue"), None)
        for r in sorted(rows, key=lambda r: -r.rate):
            ratio = f"{r.rate / base:.1f}x" if base else "-"
            lines.append(
                f"| {human(size)} | {r.transport} | {r.rate:,.0f} | {r.mbps:,.1f} | {ratio} |"
            )
    if zero_copy:
        lines += [
            "",
            "Reading 1 MiB records: shmio's copying `recv` against the zero-copy `recv_view` "
            "(the consumer reads two bytes of each record; the producer writes in place).",
            "",
            "| record | read | records/s | GB/s handed over | speed-up |",
            "|---|---|---:|---:|---:|",
        ]
        base = next((r.rate for r in zero_copy if "copy)" in r.transport), None)
        for r in zero_copy:
            ratio = f"{r.rate / base:.1f}x" if base else "-"
            lines.append(
                f"| 1 MiB | {r.transport} | {r.rate:,.0f} | {r.mbps / 1000:,.2f} | {ratio} |"
            )
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _plot(results: list[Result], zero_copy: list[Result], path: Path) -> Path | None:
    plt = pyplot()
    if plt is None:
        return None
    sizes = sorted({r.size for r in results})
    panels = len(sizes) + (1 if zero_copy else 0)
    if panels == 0:
        return None
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        rows = sorted((r for r in results if r.size == size), key=lambda r: r.rate)
        colors = ["tab:orange" if r.transport == "shmio" else "tab:blue" for r in rows]
        ax.barh([r.transport for r in rows], [r.rate for r in rows], color=colors)
        ax.set_xscale("log")
        ax.set_xlabel("records/s (log)")
        ax.set_title(f"{human(size)} records")
    if zero_copy:
        ax = axes[0][-1]
        ax.barh([r.transport for r in zero_copy], [r.rate for r in zero_copy], color="tab:green")
        ax.set_xscale("log")
        ax.set_xlabel("records/s (log)")
        ax.set_title("1 MiB: copy vs zero copy")
    fig.suptitle("shmio queue from Python, producer process -> consumer process")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
