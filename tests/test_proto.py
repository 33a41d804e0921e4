"""The generated wire modules are the ones the .proto files produce today."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_modules_are_current(tmp_path):
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_proto.sh"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*"))
    assert generated, "protoc produced nothing"
    for path in generated:
        assert filecmp.cmp(tmp_path / path, ROOT / path, shallow=False), (
            f"{path} is stale: run scripts/gen_proto.sh and commit the result"
        )
