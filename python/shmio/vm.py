"""Dirty-page observability: the six ``vm.dirty_*`` knobs, the thresholds they imply,
system-wide Dirty/Writeback, and a file's page-cache state.

>>> import shmio
>>> shmio.vm.knobs()["dirty_ratio"] == int(open("/proc/sys/vm/dirty_ratio").read())
True

Note that tmpfs (``/dev/shm``) pages never count as Dirty: only files on a disk file system
show dirty pages.
"""

from __future__ import annotations

import os

from . import _shmio

__all__ = [
    "KNOBS",
    "knobs",
    "knob",
    "set_knob",
    "thresholds",
    "system",
    "file_cache",
    "page_size",
]

#: The six knobs, in the note's order.
KNOBS: tuple[str, ...] = (
    "dirty_background_ratio",
    "dirty_background_bytes",
    "dirty_ratio",
    "dirty_bytes",
    "dirty_writeback_centisecs",
    "dirty_expire_centisecs",
)


def knobs() -> dict[str, int]:
    """The six knobs, read from ``/proc/sys/vm``, by name."""
    return _shmio.vm_knobs()


def knob(name: str) -> int:
    """One knob's value (:class:`shmio.InvalidArgument` for an unknown name)."""
    return _shmio.vm_knob(name)


def set_knob(name: str, value: int) -> int:
    """Sets a knob and returns its previous value. Needs privilege
    (:class:`shmio.PermissionDenied` otherwise). The kernel couples each ratio with its bytes
    counterpart: setting one resets the other to 0."""
    return _shmio.vm_set_knob(name, value)


def thresholds() -> dict[str, int | None]:
    """The thresholds the knobs imply now, in bytes: ``dirtyable_bytes``,
    ``background_bytes`` (background writeback starts), ``dirty_bytes`` (writers are
    throttled), and the kernel's own ``kernel_background_bytes`` / ``kernel_dirty_bytes``
    from ``/proc/vmstat`` (None if absent)."""
    return _shmio.vm_thresholds()


def system() -> dict[str, int]:
    """System-wide ``dirty_bytes`` and ``writeback_bytes`` (``/proc/meminfo``), and
    ``nr_dirty`` / ``nr_writeback`` pages (``/proc/vmstat``)."""
    return _shmio.vm_system()


def file_cache(path: str | os.PathLike[str]) -> dict[str, int]:
    """The page-cache state of the file at ``path`` (``cachestat(2)``): ``page_size``,
    ``cached``, ``dirty``, ``writeback``, ``evicted``, ``recently_evicted`` (pages).
    :class:`shmio.Unsupported` before Linux 6.5."""
    return _shmio.vm_file_cache(os.fspath(path))


def page_size() -> int:
    """The system page size in bytes."""
    return _shmio.vm_page_size()
