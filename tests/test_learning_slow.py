"""Learning tests: a short local run must do clearly better than chance. Marked slow."""

import pytest

from muzero import config as config_module
from muzero.operations.local import train
from muzero.operations.progress import Progress


@pytest.mark.slow
def test_cartpole_learns_beyond_random_play(tmp_path):
    # Random play averages ~22 steps; a learning agent passes 100 within a few thousand steps.
    # Early curves are noisy (one seed went 59, 31, 135, 66 at 2k-step intervals), so the
    # run evaluates often and stops at the first evaluation that passes.
    config = config_module.load(
        "cartpole",
        [
            "training.max_env_steps=16000",
            "training.eval_interval=2000",
            "training.eval_episodes=20",
            "training.target_return=100.0",
            "training.seed=1",
        ],
    )
    result = train(config, tmp_path / "run", Progress("slow-test", interval_s=60, live=False))
    best = max(point.eval_mean_return for point in result.curve)
    assert best >= 100, [point.eval_mean_return for point in result.curve]
