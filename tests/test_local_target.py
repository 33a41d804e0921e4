"""Local mode's target return: the run stops once an evaluation reaches it, or after
``training.evals_after_target`` more evaluations (whether the level holds)."""

from pathlib import Path

import pytest

from muzero import config as config_module
from muzero.config import ConfigError
from muzero.operations.local import train
from muzero.operations.progress import Progress

# Any CartPole episode returns at least 1, so the first evaluation reaches the target.
SETTINGS = [
    "env.num_envs=4",
    "search.num_simulations=4",
    "training.train_ratio=0.25",
    "training.eval_interval=200",
    "training.eval_episodes=2",
    "training.max_env_steps=5000",
    "training.target_return=1.0",
    "replay.min_size=100",
    "network.support_probe_steps=0",
]


def run(tmp_path: Path, *overrides: str):
    config = config_module.load("cartpole", SETTINGS + list(overrides))
    return train(config, tmp_path / "run", Progress("target", interval_s=3600, live=False))


@pytest.mark.parametrize("after", [0, 3])
def test_the_run_stops_after_the_target_and_the_evaluations_asked_for(tmp_path: Path, after: int):
    result = run(tmp_path, f"training.evals_after_target={after}")
    assert result.reached_target_at == result.curve[0]
    assert len(result.curve) == 1 + after
    assert result.env_steps < 5000  # stopped by the target, not the env-step budget


def test_evals_after_target_must_not_be_negative():
    with pytest.raises(ConfigError, match="training.evals_after_target"):
        config_module.load("cartpole", ["training.evals_after_target=-1"])
