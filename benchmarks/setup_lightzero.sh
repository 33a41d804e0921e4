#!/usr/bin/env bash
# A separate virtual environment with LightZero 0.2.0 and its prebuilt C++ trees, for
#   python benchmarks/search.py --lightzero-python /opt/lzvenv/bin/python
# DI-engine 0.5.3 pins setuptools<=66.1.1 while torch 2.13.0 needs >=77, so a plain
# `pip install lightzero` would swap in a CUDA torch: LightZero and DI-engine go in
# with --no-deps and their other requirements are listed here (torch kept at 2.13.0).
set -euo pipefail
venv=${1:-/opt/lzvenv}
python3 -m venv "$venv"
pip=("$venv/bin/pip" --disable-pip-version-check -q)
"${pip[@]}" install torch==2.13.0
"${pip[@]}" install --no-deps lightzero==0.2.0 DI-engine==0.5.3
"${pip[@]}" install torch==2.13.0 \
  "gymnasium[atari]==0.28.0" "numpy<2,>=1.24.1" pympler minigrid moviepy pytest line_profiler xxhash einops openai \
  "yapf==0.29.0" "gym==0.25.1" "DI-treetensor>=0.4.0" "DI-toolkit>=0.1.0" trueskill "tensorboardX>=2.2" "wandb<=0.19.0" \
  matplotlib "easydict>=1.9" pyyaml enum-tools cloudpickle hickle tabulate "click>=7.0.0" "flask<=2.0.3" \
  "werkzeug<=2.0.3" requests responses URLObject pynng sniffio redis "mpire>=2.3.5"
"$venv/bin/python" -c "from lzero.mcts import MuZeroMCTSCtree; from lzero.model.muzero_model_mlp import MuZeroModelMLP; print('LightZero ready in $venv')"
