#!/usr/bin/env bash
# Set up everything muzero needs on a fresh machine with Python 3.11, idempotently.
#   scripts/bootstrap.sh         the runtime: a virtual environment in .venv with muzero in it
#   scripts/bootstrap.sh --test  the runtime plus what the test suite needs
# CPU torch 2.13.0 is installed first, on its own: anything that depends on torch
# installed before it would make pip fetch a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1
python=${PYTHON:-python3}
venv=${MUZERO_VENV:-.venv}

log() { printf '[bootstrap] %s\n' "$*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
  log "creating virtual environment $venv ($($python --version))"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)

if ! "$venv/bin/python" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null; then
  log "installing CPU torch 2.13.0"
  "${pip[@]}" install "torch==2.13.0"
fi

extras=""
[ "$want_test" = 1 ] && extras="[test]"
stamp="$venv/.muzero-installed$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log "installing muzero$extras and its dependencies"
  "${pip[@]}" install -e ".$extras"
  touch "$stamp"
fi
if [ "$want_test" = 1 ] && ! command -v redis-server >/dev/null && [ ! -x /usr/bin/redis-server ]; then
  log "installing redis-server (the tests start their own)"
  if [ "$(id -u)" = 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
  "${apt_get[@]}" install -y -q redis-server >/dev/null || { "${apt_get[@]}" update -q >/dev/null && "${apt_get[@]}" install -y -q redis-server >/dev/null; }
  # The suite starts its own servers on free ports; the distribution's service is not needed.
  (command -v systemctl >/dev/null && systemctl disable --now redis-server >/dev/null 2>&1) || true
fi
if [ "$want_test" = 1 ]; then
  # helm, hadolint, kubernetes-validate and prometheus for the deployment tests (helm chart, Dockerfile, metrics).
  MUZERO_VENV="$venv" bash scripts/install_tools.sh
fi
log "ready: $venv"
