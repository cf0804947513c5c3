"""Zero-copy sending: a file, memory or a shared cache to a socket without a copy through a
user-space buffer.

* :func:`sendfile` / :class:`SendFile`: a file's range to a socket (``sendfile(2)``; a copy
  through ``pread`` + ``send`` where the kernel refuses).
* :class:`Splicer`: bytes in memory to sockets with ``vmsplice`` + ``splice`` through one
  reused pipe (a plain ``send`` where refused). The bytes must not change until a send is done.
* :class:`ZeroCopy`: ``send(MSG_ZEROCOPY)`` with completions reaped from the socket's error
  queue: send (a sequence number), then ``wait(seq)`` or ``reap()`` until
  ``is_complete(seq)``, and only then rewrite the buffer. ``state()[3]`` counts completions
  the kernel copied after all (loopback does). A Unix socket refuses ``SO_ZEROCOPY``: plain
  sends, complete at once.
* :class:`Cache`: files loaded once into a named region, read in place by every serving
  process, sent with a splicer or ``MSG_ZEROCOPY``.

Sockets and files are ints or objects with ``fileno()``; they must stay open during a call.
Every send works on non-blocking sockets: it returns when the socket is full, with
``remaining`` bytes left; call again when it is writable. A vanished peer raises
:class:`shmio.SyscallError` (``errno`` ``EPIPE`` or ``ECONNRESET``), never ``SIGPIPE``; a file
that shrinks during a send raises :class:`shmio.OutOfBounds`. Results say which path was taken
(``method``: ``"sendfile"``, ``"splice"``, ``"zerocopy"`` or ``"copy"``).

>>> import socket, tempfile
>>> a, b = socket.socketpair()
>>> with tempfile.TemporaryFile() as f:
...     _ = f.write(b"hello, world"); f.flush()
...     sendfile(a, f, 7, 5)
Progress(sent=5, remaining=0, method='sendfile')
>>> b.recv(5)
b'world'
"""

from __future__ import annotations

import os
from typing import NamedTuple, Protocol

from . import _shmio
from ._shmio import ZC_MAX_KEY, Cache, Splicer, ZeroCopy

__all__ = [
    "Progress",
    "sendfile",
    "SendFile",
    "Splicer",
    "ZeroCopy",
    "Cache",
    "MAX_KEY",
]

#: The longest cache key, in bytes.
MAX_KEY: int = ZC_MAX_KEY


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


class Progress(NamedTuple):
    """What a send did: bytes sent by this call, bytes still to send, the path taken."""

    sent: int
    remaining: int
    method: str

    @property
    def done(self) -> bool:
        """Whether everything is sent."""
        return self.remaining == 0


def _fd(x: int | _HasFileno) -> int:
    return x if isinstance(x, int) else x.fileno()


def sendfile(
    sock: int | _HasFileno, file: int | _HasFileno, offset: int = 0, count: int | None = None
) -> Progress:
    """Sends ``count`` bytes (default: to the end) of ``file`` from ``offset`` to ``sock``.
    Blocking socket: all of it; non-blocking: until the socket is full (use :class:`SendFile`
    to go on from there). A range past the end raises :class:`shmio.OutOfBounds`."""
    if count is None:
        count = max(os.fstat(_fd(file)).st_size - offset, 0)
    return Progress(*_shmio.zc_sendfile(sock, file, offset, count))


class SendFile:
    """A file send in progress, for an event loop: call :meth:`progress` each time the socket
    is writable until :attr:`done`."""

    def __init__(self, file: int | _HasFileno, offset: int = 0, count: int | None = None) -> None:
        size = os.fstat(_fd(file)).st_size
        if count is None:
            count = max(size - offset, 0)
        if offset < 0 or count < 0 or offset + count > size:
            from ._errors import OutOfBounds

            raise OutOfBounds(f"range {offset}+{count} reaches past the end of the file ({size} bytes)")
        self.file = file
        self.offset = offset
        self.remaining = count
        self.sent = 0
        self.method = "sendfile"

    @property
    def done(self) -> bool:
        """Whether everything is sent."""
        return self.remaining == 0

    def progress(self, sock: int | _HasFileno) -> Progress:
        """Sends more, from where the last call stopped. A file that shrank below the rest of
        the range raises :class:`shmio.OutOfBounds` (what was sent stays sent)."""
        p = Progress(*_shmio.zc_sendfile(sock, self.file, self.offset, self.remaining))
        self.offset += p.sent
        self.sent += p.sent
        self.remaining = p.remaining
        self.method = p.method
        return p
