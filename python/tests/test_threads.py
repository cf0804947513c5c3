"""The handles' threading contract: a signal handler or another thread cannot deadlock or starve
a handle, close() ends a blocked call, a poller accepts registrations while another thread waits
in poll(), a re-entrant call raises ReentrantCall, and a fork leaves inert handles in the child.

Every scenario is bounded: the ones that could hang run in a subprocess with a timeout, the
others wait at most BOUND seconds, so a regression fails instead of hanging the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import shmio
from shmio import Poller, Queue

from conftest import run_script

BACKENDS = ["select", "poll", "epoll", "epoll-et", "rtsig", "rtsig-onefd"]
# The longest a blocked call in these tests waits by itself: a fixed build ends it at once.
BOUND = 5.0


# ---------------------------------------------------------------------------------------------
# A signal handler that closes the handle the main thread is blocked on

SIGNAL_CLOSE = """
import signal, socket, sys, shmio
kind, name = sys.argv[1], sys.argv[2]
if kind == "recv":
    tx = shmio.Queue.create(name)
    h = shmio.Queue.open(name)
    call = h.recv  # no timeout: only the close can end it
elif kind == "send":
    tx = shmio.Queue.create(name, slots=2, policy="backpressure")
    rx = shmio.Queue.open(name)  # never reads: the third send waits for space
    tx.send(b"1"); tx.send(b"2")
    h = tx
    call = lambda: tx.send(b"3")
else:
    a, b = socket.socketpair()
    h = shmio.Poller(kind)
    h.register(a, 1)
    call = h.poll
signal.signal(signal.SIGALRM, lambda *_: h.close())
signal.setitimer(signal.ITIMER_REAL, 0.1)
try:
    call()
except shmio.Closed as e:
    assert "closed" in str(e), e
    print("Closed")
assert h.closed
if kind in ("recv", "send"):
    shmio.Queue.unlink(name)
print("ok")
"""


@pytest.mark.parametrize("kind", ["recv", "send", *BACKENDS])
def test_signal_handler_closes_the_handle_being_waited_on(kind: str, qname: str) -> None:
    # Before: the handler spun for ever on the lock its own thread held across the wait.
    assert run_script(SIGNAL_CLOSE, kind, qname) == "Closed\nok\n"


# ---------------------------------------------------------------------------------------------
# A re-entrant call from a signal handler

REENTRANT = """
import signal, socket, sys, shmio
kind, name = sys.argv[1], sys.argv[2]
if kind == "recv":
    tx = shmio.Queue.create(name)
    h = shmio.Queue.open(name)
    call, again = h.recv, lambda: h.recv(timeout=0)
else:
    a, b = socket.socketpair()
    h = shmio.Poller(kind)
    h.register(a, 1)
    call, again = h.poll, lambda: h.poll(0)
got = []
def handler(*_):
    try:
        again()
    except RuntimeError as e:
        got.append(e)
    # Other calls work from the handler; the last one ends the outer call.
    assert not h.closed
    h.close()
signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.1)
try:
    call()
except shmio.Closed:
    pass
(e,) = got
assert isinstance(e, shmio.ReentrantCall) and isinstance(e, shmio.ShmioError), repr(e)
assert "re-entrant" in str(e), e
if kind == "recv":
    tx.close()
    shmio.Queue.unlink(name)
print("ok")
"""


@pytest.mark.parametrize("kind", ["recv", "epoll", "rtsig"])
def test_reentrant_call_from_a_signal_handler_raises(kind: str, qname: str) -> None:
    # Before: the handler's call spun for ever on the lock its own thread held.
    assert run_script(REENTRANT, kind, qname) == "ok\n"


# ---------------------------------------------------------------------------------------------
# Registration while another thread waits in poll()


class PollThread:
    """A thread that creates a poller (RT-signal pollers must be waited on by their creator),
    runs `setup` on it, then waits once in poll(BOUND)."""

    def __init__(self, backend: str, setup: Callable[[Poller], None] = lambda p: None) -> None:
        self.ready = threading.Event()
        self.poller: Poller | None = None
        self.result: list[shmio.Event] | BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(backend, setup))
        self.thread.start()
        assert self.ready.wait(BOUND)
        assert self.poller is not None
        time.sleep(0.02)  # most likely inside the wait now (the outcome does not depend on it)

    def _run(self, backend: str, setup: Callable[[Poller], None]) -> None:
        try:
            p = self.poller = Poller(backend)
            setup(p)
        finally:
            self.ready.set()
        try:
            self.result = p.poll(BOUND)
        except BaseException as e:  # noqa: BLE001 - reported to the test
            self.result = e
        finally:
            p.close()

    def join(self) -> list[shmio.Event] | BaseException | None:
        self.thread.join(BOUND * 2)
        assert not self.thread.is_alive()
        return self.result


@pytest.mark.parametrize("backend", BACKENDS)
def test_register_during_poll_is_picked_up(backend: str, pair) -> None:
    a, b = pair
    b.send(b"x")  # `a` is readable before it is registered
    t = PollThread(backend)
    assert t.poller is not None
    t.poller.register(a, 7)  # before: waited for the poll to time out
    ev = t.join()
    assert isinstance(ev, list) and [(e.token, e.readable) for e in ev] == [(7, True)], ev


@pytest.mark.parametrize("backend", BACKENDS)
def test_modify_during_poll_is_picked_up(backend: str, pair) -> None:
    a, _ = pair
    t = PollThread(backend, lambda p: p.register(a, 1))  # idle: not readable
    assert t.poller is not None
    t.poller.modify(a, 5, readable=False, writable=True)
    ev = t.join()
    assert isinstance(ev, list) and [(e.token, e.writable) for e in ev] == [(5, True)], ev


@pytest.mark.parametrize("backend", BACKENDS)
def test_unregister_and_waker_during_poll(backend: str, pair) -> None:
    a, b = pair
    t = PollThread(backend, lambda p: p.register(a, 1))
    assert t.poller is not None
    t.poller.unregister(a)
    w = t.poller.waker(99)  # before: could not be made while the other thread polled
    b.send(b"x")  # `a` is readable now, but no longer registered
    w.wake()
    ev = t.join()
    assert isinstance(ev, list) and [e.token for e in ev] == [99], ev


@pytest.mark.parametrize("backend", BACKENDS)
def test_close_during_poll_ends_it(backend: str, pair) -> None:
    a, _ = pair
    t = PollThread(backend, lambda p: p.register(a, 1))
    assert t.poller is not None
    t.poller.close()  # before: waited until the poll timed out
    assert t.poller.closed
    exc = t.join()
    assert isinstance(exc, shmio.Closed), exc
    assert "closed by another thread" in str(exc)


def test_the_internal_token_is_reserved(pair) -> None:
    a, _ = pair
    with Poller() as p:
        for call in (
            lambda: p.register(a, 2**64 - 1),
            lambda: p.waker(2**64 - 1),
        ):
            with pytest.raises(shmio.InvalidArgument, match="reserved"):
                call()
        p.register(a, 2**64 - 2)
        with pytest.raises(shmio.InvalidArgument, match="reserved"):
            p.modify(a, 2**64 - 1)


def test_close_during_recv_without_timeout_ends_it(qname: str) -> None:
    with Queue.create(qname) as tx, Queue.open(qname) as rx:
        # Without a prompt wake-up the record ends the recv after BOUND seconds instead.
        timer = threading.Timer(BOUND, lambda: tx.send(b"late"))
        timer.start()
        out: list[object] = []

        def run() -> None:
            try:
                out.append(rx.recv())
            except BaseException as e:  # noqa: BLE001
                out.append(e)

        t = threading.Thread(target=run)
        t.start()
        time.sleep(0.05)
        rx.close()
        t.join(BOUND * 2)
        timer.cancel()
        assert not t.is_alive()
        assert len(out) == 1 and isinstance(out[0], shmio.Closed), out


# ---------------------------------------------------------------------------------------------
# Fairness: a caller is not starved by another thread's loop of short waits


def _not_starved(loop_call: Callable[[], object], other_call: Callable[[], object]) -> None:
    """Runs `loop_call` in a loop in a thread (for at most 4 * BOUND seconds) while this thread
    makes 30 calls of `other_call`; they must all be done while the loop is still going."""
    stop = threading.Event()
    ran_out = threading.Event()

    def loop() -> None:
        deadline = time.monotonic() + 4 * BOUND
        while not stop.is_set():
            if time.monotonic() > deadline:
                ran_out.set()
                return
            loop_call()

    t = threading.Thread(target=loop)
    t.start()
    try:
        time.sleep(0.05)
        for _ in range(30):
            other_call()
        assert not ran_out.is_set(), "starved until the other thread's loop ended"
    finally:
        stop.set()
        t.join(8 * BOUND)


@pytest.mark.parametrize("backend", ["poll", "epoll"])
def test_register_is_not_starved_by_a_poll_loop(backend: str, pair) -> None:
    a, _ = pair
    with Poller(backend) as p:
        fd = a.fileno()

        def other() -> None:
            p.register(fd, 1)
            p.unregister(fd)

        _not_starved(lambda: p.poll(0.02), other)


def test_consumer_calls_are_not_starved_by_a_recv_loop(qname: str) -> None:
    with Queue.create(qname) as tx, Queue.open(qname) as rx:

        def recv() -> None:
            try:
                rx.recv(timeout=0.02)
            except shmio.Timeout:
                pass

        _not_starved(recv, lambda: rx.position)


QUEUED_SIGNAL = """
import signal, sys, threading, time, shmio
name = sys.argv[1]
tx = shmio.Queue.create(name)
rx = shmio.Queue.open(name)
out = []
def recv():
    try:
        rx.recv(timeout=10)
    except BaseException as e:
        out.append(e)
t = threading.Thread(target=recv)  # holds rx's lock while it waits
t.start()
time.sleep(0.1)
class Stop(Exception):
    pass
def handler(*_):
    raise Stop
signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.1)
try:
    rx.stats()  # queued behind the recv
except Stop:
    assert t.is_alive()  # the handler ran while queued, not after the recv gave up
    print("Stop")
rx.close()
t.join(20)
assert len(out) == 1 and isinstance(out[0], shmio.Closed), out
tx.close()
shmio.Queue.unlink(name)
print("ok")
"""


def test_a_thread_queued_for_a_handle_runs_signal_handlers(qname: str) -> None:
    assert run_script(QUEUED_SIGNAL, qname) == "Stop\nok\n"


# ---------------------------------------------------------------------------------------------
# fork

FORK_POLLER = """
import fcntl, gc, os, signal, socket, sys, threading, time, shmio
a, b = socket.socketpair()
rt = shmio.Poller("rtsig")  # an RT-signal poller of this thread, watching `a`
rt.register(a, 1)
assert fcntl.fcntl(a, fcntl.F_GETFL) & os.O_ASYNC
ep = shmio.Poller("epoll")  # a poller another thread is blocked in at the fork
c, d = socket.socketpair()
ep.register(c, 2)
w = ep.waker(9)
got = []
t = threading.Thread(target=lambda: got.append(ep.poll(30)))
t.start()
time.sleep(0.2)
pid = os.fork()
if pid == 0:
    signal.alarm(10)  # a hang fails the child instead of the test run
    code = 0
    try:
        for p in (rt, ep):
            for call in (
                lambda: p.poll(0),
                lambda: p.register(d, 5),
                lambda: p.modify(a, 6),
                lambda: p.unregister(a),
                lambda: p.waker(3),
                lambda: p.stats(),
                lambda: p.closed,
            ):
                try:
                    call()
                except shmio.InvalidArgument as e:
                    assert "fork" in str(e), e
                else:
                    print("child: no fork error", file=sys.stderr, flush=True)
                    code = 3
            p.close()  # does nothing: the poller belongs to the parent
            p.close()
        try:
            w.wake()
        except shmio.InvalidArgument as e:
            assert "fork" in str(e), e
        else:
            code = 3
        del p, rt, ep, w
        gc.collect()  # dropping the pollers must leave the parent's files alone
    except BaseException as e:
        print("child:", repr(e), file=sys.stderr, flush=True)
        code = 4
    sys.exit(code)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert fcntl.fcntl(a, fcntl.F_GETFL) & os.O_ASYNC, "the child cleared O_ASYNC"
b.send(b"x")
assert [e.token for e in rt.poll(10)] == [1]
w.wake()
t.join(30)
assert [[e.token for e in evs] for evs in got] == [[9]], got
rt.close()
ep.close()
print("ok")
"""


def test_a_poller_is_inert_in_a_forked_child() -> None:
    # Before: the child's calls worked (or spun on the lock the parent's thread held), and its
    # drop of the RT-signal poller cleared O_ASYNC on the socket it shares with the parent.
    assert run_script(FORK_POLLER, timeout=40) == "ok\n"
