"""The README's and docs/python.md's whole Python examples type-check under `mypy --strict` against
the installed package's stubs (so the stubs fit what the documentation tells users to write)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "docs" / "python.md"]


def snippets() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)):
            code = textwrap.dedent(block)
            # Whole examples (they import shmio); fragments continuing one and doctest sessions
            # (run as doctests) are not checked on their own.
            if "import" in code and "shmio" in code and ">>>" not in code:
                out.append((f"{doc.stem}_{i}", code))
    return out


def test_the_docs_have_python_examples() -> None:
    assert len(snippets()) >= 2


def test_the_examples_pass_mypy_strict(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    files = []
    for name, code in snippets():
        f = tmp_path / f"{name}.py"
        f.write_text(code)
        files.append(str(f))
    # Outside the source tree: only the installed package (and its stubs) is visible.
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *files],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
