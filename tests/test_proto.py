"""The generated wire modules are the ones the .proto files produce today."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


GENERATOR_VERSION = re.compile(r"^GRPC_GENERATED_VERSION = '[0-9.]+'$", re.MULTILINE)
"""The grpcio-tools release that wrote a *_pb2_grpc.py file: newer tools write a newer
number (and the module then demands that grpcio at import), not other code. Compared
without it, so a new grpcio-tools on PyPI does not read as a changed .proto."""


def _code(path: Path) -> str:
    return GENERATOR_VERSION.sub("GRPC_GENERATED_VERSION = <any>", path.read_text())


def test_generated_modules_are_current(tmp_path):
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_proto.sh"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*"))
    assert generated, "protoc produced nothing"
    for path in generated:
        assert _code(tmp_path / path) == _code(ROOT / path), (
            f"{path} is stale: run scripts/gen_proto.sh and commit the result"
        )
