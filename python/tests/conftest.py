"""Shared fixtures. The tests run against the installed package (pip install ./python)."""

from __future__ import annotations

import os
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


@pytest.fixture
def qname() -> Iterator[str]:
    """A fresh queue name; the file is removed afterwards."""
    name = f"shmio_pytest_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    yield name
    try:
        shmio.Queue.unlink(name)
    except shmio.NotFound:
        pass


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


@pytest.fixture
def rname() -> Iterator[str]:
    """A fresh region name; the file is removed afterwards."""
    name = f"shmio_pytest_region_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    yield name
    try:
        shmio.Region.unlink(name)
    except shmio.NotFound:
        pass
