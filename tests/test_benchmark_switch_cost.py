"""The switch-cost benchmark runs end to end with tiny settings and ends with its JSON line;
bad arguments are refused with a parser error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmark_modules import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


def test_switch_cost_benchmark_prints_its_figures_as_json():
    command = [
        sys.executable,
        "benchmarks/switch_cost.py",
        "--rounds",
        "1",
        "--seconds",
        "0.05",
        "--warmup",
        "1",
        "--simulations",
        "4",
        "--threads",
        "1",
        "--set",
        "env.num_envs=4",
        "--set",
        "training.batch_size=8",
    ]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    assert (figures["num_envs"], figures["simulations"], figures["batch_size"]) == (4, 4, 8)
    assert set(figures["selfplay_env_steps_per_s"]) == {"off", "rules_heads"}
    assert set(figures["search_sims_per_s"]) == {"off", "rules_heads"}
    assert set(figures["learner_updates_per_s"]) == {"off", "rules_heads", "consistency", "both"}
    for key in ("selfplay_env_steps_per_s", "search_sims_per_s", "learner_updates_per_s"):
        assert all(rate > 0 for rate in figures[key].values()), figures[key]
    expected = {
        "selfplay": {"rules_heads"},
        "search": {"rules_heads"},
        "learner": {"rules_heads", "consistency", "both"},
    }
    for key in ("ratio_to_off", "slowdown_pct"):
        assert {part: set(by) for part, by in figures[key].items()} == expected, figures[key]
    assert all(ratio > 0 for by in figures["ratio_to_off"].values() for ratio in by.values())
    assert {part: set(by) for part, by in figures["within_bar"].items()} == {
        "selfplay": {"rules_heads"},
        "search": {"rules_heads"},
    }
    assert figures["torch_threads"] == 1 and {"machine", "python", "date"} <= set(figures)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rounds", "0"], "--rounds"),
        (["--seconds", "0"], "--seconds"),
        (["--simulations", "0"], "--simulations"),
        (["--set", "network.no_such_key=1"], "no_such_key"),
        (["--preset", "no-such-preset"], "no-such-preset"),
    ],
)
def test_bad_arguments_are_a_parser_error(argv, message, capsys):
    switch_cost = load_benchmark("switch_cost")
    with pytest.raises(SystemExit) as exit_info:
        switch_cost.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
