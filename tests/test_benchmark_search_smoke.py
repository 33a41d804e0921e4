"""The search benchmark runs end to end with tiny settings and ends with its JSON line."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_search_benchmark_prints_its_figures_as_json():
    command = [sys.executable, "benchmarks/search.py", "--batch-sizes", "2", "--simulations", "3", "--repeats", "1",
               "--threads", "1", "--no-compile", "--lightzero-python", sys.executable]  # fmt: skip
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert set(figures) >= {"sims_per_s", "lightzero_ctree_sims_per_s"}
    assert set(figures["sims_per_s"]) == {"cpu", "cuda"}
    assert figures["sims_per_s"]["cpu"]["2"] > 0
    if importlib.util.find_spec("lzero") is None:  # no LightZero: the comparison says so and reports null
        assert figures["lightzero_ctree_sims_per_s"] is None
        assert any("LightZero comparison skipped" in line for line in lines)
