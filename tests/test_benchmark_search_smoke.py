"""The search benchmark runs end to end with tiny settings and ends with its JSON line."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmark_modules import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


def test_search_benchmark_prints_its_figures_as_json():
    command = [
        sys.executable,
        "benchmarks/search.py",
        "--batch-sizes",
        "2",
        "--simulations",
        "3",
        "--repeats",
        "1",
        "--threads",
        "1",
        "--no-compile",
        "--lightzero-python",
        sys.executable,
    ]
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


LIGHTZERO_PYTHON = os.environ.get("LIGHTZERO_PYTHON", "/opt/lzvenv/bin/python")


@pytest.mark.skipif(not Path(LIGHTZERO_PYTHON).exists(), reason="no LightZero venv (see benchmarks/search.py)")
def test_lightzero_comparison_runs_in_the_lightzero_venv():
    search_benchmark = load_benchmark("search")
    rates = search_benchmark.lightzero_sims_per_s(LIGHTZERO_PYTHON, [1, 3], simulations=4, repeats=1, threads=1)
    assert rates is not None and set(rates) == {"1", "3"} and all(rate > 0 for rate in rates.values())
