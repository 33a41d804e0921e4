#!/usr/bin/env bash
# Regenerate the Python modules of proto/muzero/v1/*.proto into muzero/wire/v1/.
# protoc names the modules after the .proto paths (muzero.v1); they live in the wire layer
# (muzero.wire.v1), so their imports of each other are rewritten to that package.
# The generated files are committed (tests/test_proto.py checks they are current).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
out=${1:-.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m grpc_tools.protoc -Iproto --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" proto/muzero/v1/*.proto
mkdir -p "$out/muzero/wire/v1"
for file in "$tmp"/muzero/v1/*; do
  sed -e 's/^from muzero\.v1 import /from muzero.wire.v1 import /' \
      -e "s/'muzero\.v1\.\([a-z_]*_pb2\)'/'muzero.wire.v1.\1'/" "$file" > "$out/muzero/wire/v1/$(basename "$file")"
done
