"""asyncio support: await records, space and changes without blocking the event loop.

The functions here are also the handles' async methods (``await consumer.arecv()``,
``async for record in consumer``, ``await producer.asend(data)``,
``await region.await_changed(seen)``):

* :func:`arecv` waits on the consumer's descriptor (:meth:`Consumer.fileno`) with the running
  loop's reader: no thread, and no CPU at all while no record comes. A record is consumed only
  by the ``try_recv`` that follows a wake-up, so a cancelled ``arecv`` loses nothing and leaves
  the consumer usable.
* :func:`asend` sends at once when there is room; in a full back-pressure queue it waits for
  space by polling ``try_send`` with a backoff from 50 µs to 2 ms (a producer has no
  descriptor to wait on), so a waiting ``asend`` costs at most a few hundred wake-ups a second
  and notices space within 2 ms. Cancelled, it has sent nothing.
* :func:`await_changed` polls the region's version the same way.

One task at a time may await a given consumer (a second raises ``RuntimeError``): the loop
has one reader per descriptor.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, TypeVar

from ._errors import Closed, Timeout

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from ._shmio import Consumer, Producer, Region

__all__ = ["arecv", "aiter_records", "asend", "await_changed"]

_T = TypeVar("_T")

# The polls' backoff (seconds): first and longest pause.
_FIRST_PAUSE = 50e-6
_LONGEST_PAUSE = 2e-3

# Descriptors some task awaits now, per loop.
_awaited: dict[int, set[int]] = {}


def _deadline(loop: asyncio.AbstractEventLoop, timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if not timeout >= 0:  # also NaN
        from ._errors import InvalidArgument

        raise InvalidArgument(f"timeout must be None or a number >= 0, not {timeout}")
    return loop.time() + timeout


def _left(loop: asyncio.AbstractEventLoop, deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - loop.time()
    if left <= 0:
        raise Timeout("timed out")
    return left


async def arecv(consumer: Consumer, timeout: float | None = None) -> bytes:
    """The next record, awaited without blocking the loop; :class:`Timeout` after
    ``timeout`` seconds (None: no limit), ``Closed`` or ``ProducerDead`` once the producer is
    gone and everything was received."""
    rec = consumer.try_recv()
    if rec is not None:
        return rec
    loop = asyncio.get_running_loop()
    deadline = _deadline(loop, timeout)
    fd = consumer.fileno()
    busy = _awaited.setdefault(id(loop), set())
    if fd in busy:
        raise RuntimeError("another task is already awaiting this consumer")
    busy.add(fd)
    try:
        while True:
            ready = loop.create_future()
            loop.add_reader(fd, _wake, ready)
            try:
                left = _left(loop, deadline)
                if left is None:
                    await ready
                else:
                    try:
                        await asyncio.wait_for(ready, left)
                    except TimeoutError:
                        pass
            finally:
                loop.remove_reader(fd)
            rec = consumer.try_recv()
            if rec is not None:
                return rec
    finally:
        busy.discard(fd)
        if not busy:
            _awaited.pop(id(loop), None)


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def aiter_records(consumer: Consumer) -> AsyncIterator[bytes]:
    """Every record, awaited one by one (``async for record in consumer``); ends when the
    producer closed the queue (``ProducerDead`` is raised if it died)."""
    while True:
        try:
            rec = await arecv(consumer)
        except Closed:
            return
        yield rec


async def _poll(attempt: Callable[[], _T | None], timeout: float | None) -> _T:
    """``attempt()`` until it returns something other than None, pausing between tries with the
    backoff of the module; :class:`Timeout` after ``timeout`` seconds (None: no limit)."""
    got = attempt()
    if got is not None:
        return got
    loop = asyncio.get_running_loop()
    deadline = _deadline(loop, timeout)
    pause = _FIRST_PAUSE
    while True:
        left = _left(loop, deadline)
        await asyncio.sleep(pause if left is None else min(pause, left))
        got = attempt()
        if got is not None:
            return got
        pause = min(pause * 2, _LONGEST_PAUSE)


async def asend(producer: Producer, data: Buffer, timeout: float | None = None) -> int:
    """Sends a record; in a full back-pressure queue waits for space without blocking the loop
    (see the module); returns its sequence number. :class:`Timeout` after ``timeout`` seconds
    (None: no limit)."""
    return await _poll(lambda: producer.try_send(data), timeout)


async def await_changed(region: Region, seen: int, timeout: float | None = None) -> int:
    """Waits until the region's version differs from ``seen`` without blocking the loop (see
    the module); returns the new version. :class:`Timeout` after ``timeout`` seconds (None:
    no limit)."""

    def changed() -> int | None:
        v = region.version
        return v if v != seen else None

    return await _poll(changed, timeout)


async def _arecv(self: Consumer, timeout: float | None = None) -> bytes:
    return await arecv(self, timeout)


def _aiter(self: Consumer) -> AsyncIterator[bytes]:
    return aiter_records(self)


async def _asend(self: Producer, data: Buffer, timeout: float | None = None) -> int:
    return await asend(self, data, timeout)


async def _await_changed(self: Region, seen: int, timeout: float | None = None) -> int:
    return await await_changed(self, seen, timeout)


def _install() -> None:
    """Makes the functions above the handles' async methods (declared in ``_shmio.pyi``)."""
    from ._shmio import Consumer, Producer, Region

    for cls, name, method, doc in (
        (Consumer, "arecv", _arecv, arecv),
        (Consumer, "__aiter__", _aiter, aiter_records),
        (Producer, "asend", _asend, asend),
        (Region, "await_changed", _await_changed, await_changed),
    ):
        method.__doc__ = doc.__doc__
        setattr(cls, name, method)
