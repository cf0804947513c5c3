"""shmio.Poller over every backend."""

from __future__ import annotations

import threading

import pytest

import shmio
from shmio import Poller

from conftest import assert_ctrl_c_interrupts

BACKENDS = ["auto", "select", "poll", "epoll", "epoll-et", "rtsig", "rtsig-onefd"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_socketpair_readable(backend: str, pair) -> None:
    a, b = pair
    with Poller(backend) as p:
        assert p.backend == ("epoll" if backend == "auto" else backend)
        p.register(a, 7)  # an object with fileno()
        assert p.poll(0) == []
        b.send(b"x")
        events = p.poll(30)
        assert [(e.token, e.readable) for e in events] == [(7, True)]
        token, readable, writable, hangup, error = events[0]
        assert (token, readable, writable, error) == (7, True, False, False)
        assert a.recv(1) == b"x"
        p.modify(a.fileno(), 8, readable=True, writable=True)  # an int fd
        assert any(e.token == 8 and e.writable for e in p.poll(30))
        p.unregister(a)
        assert p.stats()["waits"] >= 3
    assert p.closed
    with pytest.raises(shmio.InvalidArgument):
        p.poll(0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_waker_from_another_thread(backend: str) -> None:
    with Poller(backend) as p:
        w = p.waker(99)
        assert w.token == 99
        t = threading.Thread(target=w.wake)
        t.start()
        events = p.poll(30)
        t.join()
        assert [e.token for e in events] == [99]


@pytest.mark.parametrize("backend", ["select", "poll", "epoll", "rtsig"])
def test_queue_consumer_is_pollable(backend: str, qname: str) -> None:
    with shmio.Queue.create(qname) as tx, shmio.Queue.open(qname) as rx, Poller(backend) as p:
        p.register(rx, 1)
        assert rx.try_recv() is None  # arms the fd
        assert p.poll(0) == []
        tx.send(b"hello")
        assert [e.token for e in p.poll(30)] == [1]
        assert rx.try_recv() == b"hello"


def test_timeout_returns_empty_and_oneshot(pair) -> None:
    a, b = pair
    with Poller() as p:
        p.register(a, 1, oneshot=True)
        assert p.poll(0.01) == []
        b.send(b"xx")
        assert len(p.poll(30)) == 1
        assert p.poll(0) == []  # oneshot: disabled until modify
        p.modify(a, 1, oneshot=True)
        assert len(p.poll(30)) == 1


def test_registration_errors(pair) -> None:
    a, _ = pair
    with Poller("poll") as p:
        p.register(a, 1)
        with pytest.raises(shmio.AlreadyRegistered):
            p.register(a, 2)
        p.unregister(a)
        with pytest.raises(shmio.NotRegistered):
            p.unregister(a)
        with pytest.raises(shmio.InvalidArgument):
            p.register(-1, 1)
        with pytest.raises(TypeError):
            p.register("nope", 1)  # type: ignore[arg-type]
    with pytest.raises(shmio.InvalidArgument):
        Poller("kqueue")


def test_rtsig_poller_is_bound_to_its_thread(pair) -> None:
    a, b = pair
    with Poller("rtsig") as p:
        p.register(a, 1)
        errors: list[BaseException] = []

        def other() -> None:
            # Registering and modifying arm a file for the owner: any thread. Waiting takes
            # the owner's signals: only the owner.
            p.register(b, 2)
            p.modify(a, 3)
            try:
                p.poll(0)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert len(errors) == 1 and isinstance(errors[0], shmio.WrongThread), errors
        with pytest.raises(shmio.RtSigInUse):
            Poller("rtsig")


@pytest.mark.parametrize("backend", ["epoll", "rtsig"])
def test_a_poller_has_one_waker(backend: str) -> None:
    with Poller(backend) as p:
        w = p.waker(5)
        again = p.waker(5)  # the same waker, another handle
        with pytest.raises(shmio.WakerExists) as e:
            p.waker(6)
        assert e.value.token == 5
        again.wake()
        assert [ev.token for ev in p.poll(30)] == [5]
        w.wake()
        assert [ev.token for ev in p.poll(30)] == [5]


@pytest.mark.parametrize("backend", ["rtsig", "rtsig-onefd"])
def test_a_socket_in_another_threads_rt_poller_is_refused(backend: str, pair) -> None:
    a, b = pair
    ready = threading.Event()
    done = threading.Event()
    heard: list[list[int]] = []

    def first() -> None:
        with Poller(backend) as p:
            p.register(a, 1)
            ready.set()
            done.wait(30)
            heard.append([ev.token for ev in p.poll(30)])

    t = threading.Thread(target=first)
    t.start()
    assert ready.wait(30)
    try:
        with Poller(backend) as p2, pytest.raises(shmio.FileInUse) as e:
            p2.register(a, 2)
        assert e.value.fd == a.fileno()
    finally:
        b.send(b"x")
        done.set()
        t.join(30)
    assert heard == [[1]], "the first poller no longer hears its socket"


BLOCKED_POLL = """
import socket, sys, shmio
a, b = socket.socketpair()
p = shmio.Poller(sys.argv[1])
p.register(a, 1)
try:
    print("blocking", flush=True)
    p.poll()
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(42)
"""


@pytest.mark.parametrize("backend", ["select", "epoll", "rtsig", "rtsig-onefd"])
def test_ctrl_c_interrupts_a_blocked_poll(backend: str) -> None:
    assert_ctrl_c_interrupts(BLOCKED_POLL, backend)
