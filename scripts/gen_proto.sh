#!/usr/bin/env bash
# Regenerate the Python modules of proto/muzero/v1/*.proto into muzero/v1/.
# The generated files are committed (tests/test_proto.py checks they are current).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
out=${1:-.}
"$python" -m grpc_tools.protoc -Iproto --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" proto/muzero/v1/*.proto
