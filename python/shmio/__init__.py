"""shmio: shared-memory IPC for Linux.

A broadcast queue in shared memory: one producer, any number of consumer processes, each with
its own cursor; zero copy both ways; blocking waits that release the GIL and honour Ctrl-C.
Also: :class:`Region` (a named shared mapping with consistent reads and writes, change
notification and the buffer protocol), :mod:`shmio.vm` (dirty-page knobs and statistics) and
:class:`Poller` (select, poll, epoll, RT signals behind one API) and :mod:`shmio.zc`
(zero-copy sending: sendfile, splice, MSG_ZEROCOPY, a shared cache).

>>> import shmio
>>> with shmio.Queue.create("demo_doctest") as tx, shmio.Queue.open("demo_doctest") as rx:
...     seq = tx.send(b"hello")
...     rx.recv()
b'hello'
>>> shmio.Queue.unlink("demo_doctest")

Conventions:

* ``timeout`` is ``None`` (wait as long as needed) or seconds; when it expires,
  :class:`Timeout` (a ``TimeoutError``) is raised.
* ``try_send`` / ``try_recv`` never wait: they return ``None`` when they would have to
  (no exception), so polling loops stay cheap.
* Handles are context managers; ``close()`` is idempotent; using a closed handle raises
  :class:`InvalidArgument` (a ``ValueError``, as for closed files). ``close()`` from another
  thread ends a call waiting on the handle, which raises :class:`Closed`.
* Queue handles and pollers do not survive ``fork()``: in a forked child, ``close()`` does
  nothing and any other use raises :class:`InvalidArgument`.
* Threads and signals: calls on one handle are serialised by a fair lock; a signal handler may
  close the handle its thread is blocked on; a second blocking call on it from the handler
  raises :class:`ReentrantCall`; a :class:`Poller` accepts ``register`` and the like while
  another thread waits in ``poll``. See ``shmio/_shmio.pyi`` for the whole contract.
* ``BACKSTOP`` (seconds): the longest a wait sleeps before it re-checks its peers' liveness.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from ._errors import (
    AlreadyExists,
    AlreadyRegistered,
    FdTooLarge,
    NotRegistered,
    OutOfBounds,
    RtSigInUse,
    FileInUse,
    WakerExists,
    ReentrantCall,
    ReadOnly,
    Stale,
    Torn,
    WrongThread,
    BufferTooSmall,
    Closed,
    Corrupt,
    Interrupted,
    NoSpace,
    InvalidArgument,
    NotFound,
    Overrun,
    PermissionDenied,
    ProducerDead,
    ProducerExists,
    ShmioError,
    SyscallError,
    Timeout,
    TooLarge,
    TooManyConsumers,
    Unsupported,
    VersionMismatch,
    WouldBlock,
    WriterExists,
)
from . import _shmio, aio, vm, zc
from ._event import Event
from ._region import RegionWriter, ReplicaState
from ._shmio import (
    BACKSTOP,
    LAYOUT_VERSION,
    QUEUE_LAYOUT_VERSION,
    REGION_MAX_SIZE,
    Poller,
    Region,
    Waker,
    WriterClaim,
    MAX_CONSUMERS,
    MAX_SLOT_SIZE,
    MAX_SLOTS,
    Consumer,
    Producer,
    RecordView,
)

aio._install()  # the handles' async methods: Consumer.arecv, async for, Producer.asend, ...

__version__ = _shmio.__version__  # the workspace Cargo.toml's version, compiled in

__all__ = [
    "Queue",
    "Producer",
    "Consumer",
    "RecordView",
    "Region",
    "ReplicaState",
    "RegionWriter",
    "WriterClaim",
    "Poller",
    "Waker",
    "Event",
    "vm",
    "aio",
    "zc",
    "REGION_MAX_SIZE",
    "QUEUE_LAYOUT_VERSION",
    "LAYOUT_VERSION",
    "BACKSTOP",
    "MAX_CONSUMERS",
    "MAX_SLOT_SIZE",
    "MAX_SLOTS",
    # The error names again (not `+= _errors.__all__`): mypy and stubtest read only a
    # literal list.
    "ShmioError",
    "InvalidArgument",
    "AlreadyExists",
    "NotFound",
    "PermissionDenied",
    "Corrupt",
    "VersionMismatch",
    "NoSpace",
    "WouldBlock",
    "Timeout",
    "Interrupted",
    "ProducerDead",
    "Closed",
    "ProducerExists",
    "TooManyConsumers",
    "TooLarge",
    "BufferTooSmall",
    "Overrun",
    "Unsupported",
    "SyscallError",
    "OutOfBounds",
    "Torn",
    "FdTooLarge",
    "AlreadyRegistered",
    "NotRegistered",
    "WrongThread",
    "RtSigInUse",
    "FileInUse",
    "WakerExists",
    "ReentrantCall",
    "Stale",
    "ReadOnly",
    "WriterExists",
]

Name = str | os.PathLike[str]


class Queue:
    """Entry points for queues. A queue is named: a bare name (1-200 bytes, no ``/``, not
    ``.`` or ``..``) lives in ``/dev/shm`` (or ``$SHMIO_DIR``); a path starts with ``/``,
    ``./`` or ``../``. Any other name with a ``/`` raises :class:`InvalidArgument` rather
    than being taken as a relative path (write ``"./a/b"``, or an absolute path, for that).
    Regions follow the same rule."""

    def __init__(self) -> None:
        raise TypeError("use Queue.create(...) or Queue.open(...)")

    @staticmethod
    def create(
        name: Name,
        *,
        slots: int = 1024,
        slot_size: int = 256,
        policy: Literal["overwrite", "backpressure"] = "overwrite",
        max_consumers: int = 64,
        mode: int = 0o600,
    ) -> Producer:
        """Creates a queue (failing with :class:`AlreadyExists` if the file exists) and
        returns its producer. ``slots`` is rounded up to a power of two; ``slot_size`` is the
        largest record in bytes. ``policy``: ``"overwrite"`` (the producer never waits; slow
        consumers lose records and are told how many) or ``"backpressure"`` (the producer
        waits for the slowest live consumer). The file's blocks are reserved here: a file
        system too small for the queue raises :class:`NoSpace` (nothing is left behind)."""
        return _shmio.create(
            os.fspath(name),
            _int(slots, "slots"),
            _int(slot_size, "slot_size"),
            policy,
            _int(max_consumers, "max_consumers"),
            _int(mode, "mode"),
        )

    @staticmethod
    def open(
        name: Name,
        *,
        start: Literal["newest", "oldest"] | int = "newest",
        resume: Literal["near-oldest", "half-ring", "newest", "oldest"] | int = "near-oldest",
    ) -> Consumer:
        """Joins a queue as a new consumer. ``start``: ``"newest"`` (the most recent record,
        as the original demo), ``"oldest"`` (the oldest record still held) or a sequence
        number. ``resume``: where the consumer resumes after the producer lapped it
        (overwrite mode): ``"near-oldest"`` (an eighth of a ring after the oldest record still
        held), ``"half-ring"`` (half a ring behind the head), ``"newest"`` (the
        newest committed record), ``"oldest"`` (the oldest still held, which the producer
        overwrites next) or a count of records behind the head; every record skipped is
        counted in ``lost``."""
        return _shmio.open(os.fspath(name), start, resume)

    @staticmethod
    def take_over(name: Name) -> Producer:
        """Becomes the producer of a queue whose producer closed or died
        (:class:`ProducerExists` while a live one holds it)."""
        return _shmio.take_over(os.fspath(name))

    @staticmethod
    def unlink(name: Name) -> None:
        """Removes the queue file; processes that have it open keep using it. Only a queue
        file is removed: anything else at the path (a region, a text file, a symbolic link)
        raises :class:`Corrupt` and is left alone. (The file is checked, then unlinked: a file
        put there in between by another process would be removed.)"""
        _shmio.unlink(os.fspath(name))

    @staticmethod
    def stats(name: Name) -> dict[str, Any]:
        """A snapshot of a queue's state without joining it: ``path``, ``policy``, ``slots``,
        ``slot_size``, ``max_consumers``, ``head`` (records committed so far), ``oldest``
        (oldest sequence still held), ``producer`` (``"alive"``, ``"dead"`` or ``"none"``),
        ``producer_pid``, ``producer_generation``, and ``consumers``: a list of dicts with
        ``index``, ``pid``, ``position``, ``lag``, ``lost``, ``received``."""
        return _shmio.stats(os.fspath(name))


def _int(value: int, what: str) -> int:
    """Range-checks an integer argument so that mistakes raise InvalidArgument."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value < 2**32:
        raise InvalidArgument(f"{what} out of range: {value}")
    return value
