"""The linter, the formatter and the type checker, run from the repository root with the
configuration in pyproject.toml ([tool.ruff], [tool.mypy]): the suite fails when any of them does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_tool(name: str, *args: str) -> None:
    tool = Path(sys.executable).with_name(name)
    if not tool.exists():
        pytest.fail(f"{name} is not next to {sys.executable}: install the test extra (pip install -e .[test])")
    result = subprocess.run([str(tool), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = (result.stdout + result.stderr).strip()
    command = " ".join([name, *args])
    assert result.returncode == 0, f"`{command}` exited {result.returncode}:\n{output}"


def test_ruff_check():
    _run_tool("ruff", "check", ".")


def test_ruff_format():
    _run_tool("ruff", "format", "--check", ".")


def test_mypy():
    """The algorithm layer type-checks (the files are [tool.mypy] files in pyproject.toml)."""
    _run_tool("mypy")
