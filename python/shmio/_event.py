"""The event type :meth:`shmio.Poller.poll` returns."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Event"]


class Event(NamedTuple):
    """One readiness event: the registration's ``token`` and what the fd is ready for.
    ``hangup`` (the peer closed) and ``error`` are always reported; ``select`` shows them as
    readable or writable instead."""

    token: int
    readable: bool
    writable: bool
    hangup: bool = False
    error: bool = False
