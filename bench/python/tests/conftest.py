"""The benchmark drivers' tests run against the installed shmio wheel (pip install ./python)
and the drivers in bench/python (on the path through pyproject.toml's pytest options)."""

from __future__ import annotations

import pytest

import shmio


@pytest.fixture(scope="session", autouse=True)
def _installed_package() -> None:
    # Importing the source tree instead of the wheel would test nothing that ships.
    assert "site-packages" in shmio.__file__, shmio.__file__
