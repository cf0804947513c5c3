"""Shared fixtures. The tests run against the installed package (pip install ./python)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import shmio

REPO = Path(__file__).resolve().parents[2]
C_BUILD = REPO / "examples-c" / "build"


def pytest_report_header() -> str:
    return f"shmio from {shmio.__file__}"


@pytest.fixture(scope="session", autouse=True)
def _installed_package() -> None:
    # Importing the source tree instead of the wheel would test nothing that ships.
    assert "site-packages" in shmio.__file__, shmio.__file__


def _fresh_name(prefix: str, unlink: Callable[[str], None]) -> Iterator[str]:
    """A name no other test uses; `unlink` removes its file afterwards, if there is one."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    yield name
    try:
        unlink(name)
    except shmio.NotFound:
        pass


@pytest.fixture
def qname() -> Iterator[str]:
    """A fresh queue name; the file is removed afterwards."""
    yield from _fresh_name("shmio_pytest", shmio.Queue.unlink)


@pytest.fixture
def rname() -> Iterator[str]:
    """A fresh region name; the file is removed afterwards."""
    yield from _fresh_name("shmio_pytest_region", shmio.Region.unlink)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected pair of sockets, closed afterwards."""
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def run_script(script: str, *args: str, timeout: float = 20) -> str:
    """Runs `script` in a fresh interpreter and asserts that it exits 0; returns its stdout. A
    hang fails the test after `timeout` seconds."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), *args],
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the scenario hung ({timeout} s); stderr: {e.stderr!r}")
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


def assert_ctrl_c_interrupts(script: str, *args: str) -> None:
    """Runs `script` in a fresh interpreter; once it printed `blocking` and had a moment to
    reach its wait, sends it SIGINT: it must print `KeyboardInterrupt` and exit 42."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"blocking\n"
        time.sleep(0.3)  # let it reach the wait
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 42, err.decode()
    assert out == b"KeyboardInterrupt\n"


def wait_until(cond: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Polls `cond` until it holds. The limit only bounds a failing test; passing runs never
    depend on it."""
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def consumers_attached(name: str, n: int = 1) -> Callable[[], bool]:
    def cond() -> bool:
        try:
            return len(shmio.Queue.stats(name)["consumers"]) >= n
        except shmio.NotFound:
            return False

    return cond


def queue_exists(name: str) -> Callable[[], bool]:
    return lambda: os.path.exists(f"/dev/shm/{name}")
