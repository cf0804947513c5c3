"""The value types :class:`shmio.Region` returns about replication and its claimed writer."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ReplicaState", "RegionWriter"]


class ReplicaState(NamedTuple):
    """A replica region's replication state (:meth:`shmio.Region.replica`), read from its
    header: its bridge writes it, any process reads it.

    ``source`` is the primary's incarnation; ``applied`` the primary version the replica holds
    every change up to; ``seen`` the newest primary version heard of; ``lag`` their difference.
    ``heard`` is how many seconds ago the primary (or its bridge) was last heard, ``staleness``
    how many seconds ago the replica was last known to hold the primary's newest version (an
    upper bound on how old what a reader reads here is, plus the network's one-way delay);
    ``None``: never. ``primary_alive``: the primary's bridge lives (its Zenoh liveliness
    token). ``writer_alive``: the primary region's claimed writer lives (``None``: none
    claimed it). ``catching_up``: the bridge is fetching a snapshot (fresh reads refuse)."""

    source: int
    applied: int
    seen: int
    lag: int
    heard: float | None
    staleness: float | None
    primary_alive: bool
    writer_alive: bool | None
    catching_up: bool


class RegionWriter(NamedTuple):
    """A region's claimed writer (:meth:`shmio.Region.writer`): the ``pid`` that made the last
    claim (in its PID namespace) and whether it still holds it (``alive``)."""

    pid: int
    alive: bool
