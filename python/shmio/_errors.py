"""The exception hierarchy of shmio: one class per error of the core library.

Every exception raised by shmio derives from :class:`ShmioError`; where a builtin exception
means the same thing, the class derives from it too (``Timeout`` is a ``TimeoutError``,
``NotFound`` a ``FileNotFoundError``, ...), so generic handlers keep working.
"""

from __future__ import annotations

__all__ = [
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


class ShmioError(Exception):
    """Root of every exception raised by shmio."""


class InvalidArgument(ShmioError, ValueError):
    """An argument was out of range or malformed (or the handle is closed)."""


class AlreadyExists(ShmioError, FileExistsError):
    """``Queue.create`` found a file at that path already."""


class NotFound(ShmioError, FileNotFoundError):
    """No queue at that name or path."""


class PermissionDenied(ShmioError, PermissionError):
    """The queue file's permissions refuse us."""


class Corrupt(ShmioError):
    """The file is not a valid queue or region (bad magic, sizes, indices or length). From
    ``unlink``: the file at the path is not that kind of shmio file (it was left alone)."""


class VersionMismatch(ShmioError):
    """The file was made by an incompatible layout version (``found``, ``expected``)."""

    found: int
    expected: int


class NoSpace(ShmioError, OSError):
    """``create``: the file system cannot hold the queue or region file (``needed`` bytes,
    ``available`` free; ``errno`` is ``ENOSPC``, ``filename`` the path). Nothing is left behind.
    The blocks are reserved at creation, so an object that was created never runs out of space
    later (no SIGBUS)."""

    needed: int
    available: int


class WouldBlock(ShmioError, BlockingIOError):
    """Nothing to read, or no space in a back-pressure queue, right now (raised by the core's
    non-blocking calls; in Python the ``try_`` calls return None instead, and a zero
    ``timeout`` raises :class:`Timeout` as any timeout that runs out does)."""


class Timeout(ShmioError, TimeoutError):
    """A blocking call's timeout expired."""


class Interrupted(ShmioError, InterruptedError):
    """A signal interrupted a wait (shmio retries these itself; rarely seen)."""


class ProducerDead(ShmioError):
    """The producer died; every record it committed has been delivered."""


class Closed(ShmioError):
    """The producer closed the queue; every record it committed has been delivered. Also
    raised by a call waiting on a handle that another thread closed."""


class ProducerExists(ShmioError):
    """A live producer (in process ``pid``) already holds the queue."""

    pid: int


class TooManyConsumers(ShmioError):
    """All ``max`` consumer slots are held by live consumers."""

    max: int


class TooLarge(ShmioError, ValueError):
    """A record of ``len`` bytes is larger than the slot size ``max``."""

    len: int
    max: int


class BufferTooSmall(ShmioError, ValueError):
    """The buffer cannot hold the next record of ``needed`` bytes (it was not consumed)."""

    needed: int


class Overrun(ShmioError):
    """Overwrite mode: the record viewed in place was overwritten meanwhile (counted lost)."""


class Unsupported(ShmioError):
    """The kernel lacks something shmio needs."""


class SyscallError(ShmioError, OSError):
    """A system call failed (``errno`` tells which error)."""


class OutOfBounds(ShmioError, IndexError):
    """A region range of ``len`` bytes at ``offset`` reaches past its ``size`` bytes."""

    offset: int
    len: int
    size: int


class Torn(ShmioError):
    """The region range read overlaps bytes ``offset``..``offset + len`` whose last writer died
    (or failed) mid-write; they are refused until rewritten."""

    offset: int
    len: int


class FdTooLarge(ShmioError, ValueError):
    """The ``select`` backend cannot watch ``fd`` (at or above ``FD_SETSIZE``, ``limit``)."""

    fd: int
    limit: int


class AlreadyRegistered(ShmioError, KeyError):
    """The fd is registered with this poller already."""

    fd: int


class NotRegistered(ShmioError, KeyError):
    """The fd is not registered with this poller."""

    fd: int


class WrongThread(ShmioError):
    """An RT-signal poller was used from a thread other than its creator (``owner``)."""

    owner: int
    caller: int


class RtSigInUse(ShmioError):
    """This thread already has an RT-signal poller (they would share the signal)."""


class FileInUse(ShmioError):
    """RT-signal backends: the file behind ``fd`` is signal-driven already (another RT-signal
    poller has it: in another thread or process, or this one through a ``dup``); registering
    it would silently take all of its signals from that poller."""

    fd: int


class WakerExists(ShmioError):
    """The poller has a waker already, with another ``token``: a poller has one waker (ask
    for it again with the same token)."""

    token: int


class ReentrantCall(ShmioError, RuntimeError):
    """A thread called a handle it is already inside a call on: a signal handler (or a
    finalizer) started a second blocking call (``recv``, ``send``, ``poll``, ...) on the handle
    whose call it interrupted, or used a handle whose lock its thread holds. Raised instead of
    deadlocking. From a signal handler, non-blocking calls and ``close()`` work (the interrupted
    call then raises :class:`Closed`)."""


class Stale(ShmioError):
    """``Region.read_fresh`` / ``check_fresh``: the region is a replica last known in sync
    with its primary longer ago than ``max_staleness`` seconds (``staleness`` seconds ago, or
    ``None``: never), or it is catching up. ``applied`` is the primary version it holds every
    change up to, ``seen`` the newest it heard of. Nothing was read."""

    staleness: float | None
    max_staleness: float
    applied: int
    seen: int


class ReadOnly(ShmioError):
    """A local write (or touch) to a replica region: only its bridge writes it (see
    ``Region.promote``)."""


class WriterExists(ShmioError):
    """``Region.claim_writer``: a live process (``pid``, in its PID namespace) claimed the
    region's writer role already."""

    pid: int
