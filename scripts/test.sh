#!/usr/bin/env bash
# Install what the suite needs, then run it. Extra arguments go to pytest.
# pytest's exit code 5 (no tests collected) is a failure here, never a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test || exit 1
venv=${MUZERO_VENV:-.venv}
"$venv/bin/python" -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "scripts/test.sh: pytest collected no tests; failing" >&2
  exit 1
fi
exit "$status"
