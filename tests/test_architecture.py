"""The layering of docs/architecture.md holds, and a wrong import would fail the suite.

The contracts live in pyproject.toml ([tool.importlinter]); import-linter checks them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} missing: install the test extras (bash scripts/bootstrap.sh --test)")
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


def test_every_import_contract_is_kept():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


def copy_of_the_code(tmp_path: Path) -> Path:
    for name in ("muzero", "services"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize(
    "module, line, contract",
    [
        ("muzero/search/wrong.py", "from muzero.operations import local", "Layers"),
        ("muzero/storage/wrong.py", "from muzero.transport import replay_client", "Layers"),
        ("muzero/operations/wrong.py", "import services.learner.main", "never imports the services"),
        ("muzero/learning/wrong.py", "import threading", "no I/O"),
        ("muzero/acting/wrong.py", "import grpc", "no I/O"),
    ],
)
def test_a_wrong_import_breaks_a_contract(tmp_path, module, line, contract):
    root = copy_of_the_code(tmp_path)
    (root / module).write_text(f'"""A deliberate violation."""\n\n{line}\n')
    done = lint_imports(root)
    assert done.returncode != 0
    broken = [text for text in done.stdout.splitlines() if text.endswith("BROKEN") or "BROKEN" in text]
    assert broken, done.stdout[-3000:]
    assert contract in done.stdout.split("Broken contracts")[-1], done.stdout[-3000:]
