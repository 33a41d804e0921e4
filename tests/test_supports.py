"""Supports that fit the env: a random rollout sizes them, 'fixed' stops naming the key, the loss counts clipping."""

import io
import math

import gymnasium
import numpy as np
import pytest
import torch

from muzero import config as config_module
from muzero.acting.selfplay import SelfPlay
from muzero.config import ConfigError, NetworkConfig
from muzero.envs import make_vector_env
from muzero.envs.rollout import EXTENSION, random_rollout
from muzero.learning.batch import TorchBatch, make_batch
from muzero.learning.loss import muzero_loss
from muzero.learning.segment import stacked_observation_shape
from muzero.learning.supports import adapt_to_env, covered_scalar, fit_supports, needed_half_width
from muzero.nn.networks import build_network
from muzero.nn.support import h
from muzero.operations.progress import Progress

HUNDRED_ENV_ID = "muzero-test/HundredPerStep-v0"
EPISODE_STEPS = 10
DISCOUNT = 0.99  # fixed here, whatever the cartpole preset uses


class StepCountingEnv(gymnasium.Env):
    """Two floats observed, two actions, its steps counted: the test envs differ only in ``step``."""

    observation_space = gymnasium.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
    action_space = gymnasium.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        return self._obs(), {}

    def _obs(self):
        return np.zeros(2, dtype=np.float32)


class HundredPerStepEnv(StepCountingEnv):
    """Reward 100 on every step, 10 steps an episode: far outside the cartpole preset's supports."""

    def _obs(self):
        return np.array([self.steps / EPISODE_STEPS, 0.0], dtype=np.float32)

    def step(self, action):
        self.steps += 1
        return self._obs(), 100.0, self.steps >= EPISODE_STEPS, False, {}


if HUNDRED_ENV_ID not in gymnasium.registry:
    gymnasium.register(id=HUNDRED_ENV_ID, entry_point=HundredPerStepEnv, max_episode_steps=EPISODE_STEPS)


def hundred_config(*overrides):
    return config_module.load(
        "cartpole",
        [
            f"env.id={HUNDRED_ENV_ID}",
            "env.num_envs=2",
            "network.support_probe_steps=40",
            f"training.discount={DISCOUNT}",
            "network.value_support=10",
            "network.reward_support=2",
            *overrides,
        ],
    )


def real_batch(config, network, steps=30):
    """A training batch of real targets: self-play on the env, segments, examples at every position."""
    selfplay = SelfPlay(config, network, seed=0)
    segments = []
    for _ in range(steps):
        segments += selfplay.step()[0]
    segments += selfplay.flush()
    examples = [(segment, t) for segment in segments for t in range(segment.length)]
    training = config.training
    batch = make_batch(
        [s for s, _ in examples],
        np.array([t for _, t in examples]),
        training.unroll_steps,
        training.td_steps,
        training.discount,
        config.env.frame_stack,
        np.random.default_rng(0),
    )
    return batch.to_torch()


def network_for(config):
    torch.manual_seed(0)
    shape = stacked_observation_shape((2,), config.env.frame_stack)
    return build_network(config.network, shape, 2)


def test_the_cartpole_preset_keeps_its_supports_on_cartpole():
    config = config_module.load("cartpole")
    discount = config.training.discount
    adapted, fit = adapt_to_env(config)
    assert adapted == config and fit.widened == ()
    assert (fit.value_support, fit.reward_support) == (config.network.value_support, config.network.reward_support)
    assert fit.max_abs_reward == 1.0 and fit.value_bound == pytest.approx((1 - discount**500) / (1 - discount))


def test_auto_widens_supports_to_cover_an_env_with_rewards_of_100():
    config = hundred_config()
    adapted, fit = adapt_to_env(config)
    # the largest value: 100 on each of 10 steps, discounted
    bound = 100 * (1 - DISCOUNT**EPISODE_STEPS) / (1 - DISCOUNT)
    assert fit.value_bound == pytest.approx(bound)
    assert fit.widened == ("network.value_support", "network.reward_support")
    assert covered_scalar(adapted.network.value_support) >= bound
    assert covered_scalar(adapted.network.reward_support) >= 100
    assert "widened" in fit.summary() and HUNDRED_ENV_ID in fit.summary()
    # recorded in the config; adapting the adapted config changes nothing
    assert config_module.from_dict(adapted.to_dict()) == adapted
    assert adapt_to_env(adapted)[0] == adapted


def test_adapted_supports_leave_no_real_target_clipped_and_the_preset_ones_do():
    config = hundred_config("search.num_simulations=2")
    adapted, _ = adapt_to_env(config)
    batch = real_batch(adapted, network_for(adapted))
    assert float(batch.target_rewards[batch.reward_mask].max()) == 100.0
    assert float(batch.target_values[batch.value_mask].max()) > 900  # 10 steps of 100 ahead

    parts = muzero_loss(network_for(adapted), batch, 0.25).parts
    assert parts["value_targets_clipped"] == 0.0 and parts["reward_targets_clipped"] == 0.0
    parts = muzero_loss(network_for(config), batch, 0.25).parts  # supports 10 and 2
    # rewards of 100 are past reward_support 2 (h^-1(2) ~ 8), values past 117 past value_support 10
    rewards, values = batch.target_rewards[batch.reward_mask], batch.target_values[batch.value_mask]
    assert parts["reward_targets_clipped"] == pytest.approx(float((rewards == 100).float().mean()))
    assert parts["value_targets_clipped"] == pytest.approx(float((values.abs() > 117.5).float().mean()))
    assert parts["reward_targets_clipped"] > 0.5 and parts["value_targets_clipped"] > 0.5


def test_fixed_supports_stop_at_start_naming_the_keys():
    config = hundred_config("network.supports=fixed")
    with pytest.raises(ConfigError) as error:
        adapt_to_env(config)
    message = str(error.value)
    assert message.startswith(
        "network.value_support: 10 covers values up to +-117.4, but "
        f"{HUNDRED_ENV_ID} can reach +-956.2: set network.value_support >= 31; "
    )
    assert "network.reward_support 2 covers rewards up to +-7.952" in message
    assert "set network.reward_support >= 10" in message and "\n" not in message
    # the sizes it asks for are enough
    enough = hundred_config("network.supports=fixed", "network.value_support=31", "network.reward_support=10")
    assert adapt_to_env(enough)[0] == enough
    # wide enough fixed supports pass unchanged
    wide = hundred_config("network.supports=fixed", "network.value_support=40", "network.reward_support=10")
    assert adapt_to_env(wide)[0] == wide


def test_fit_supports_is_a_pure_function_of_the_rollout():
    env = make_vector_env(HUNDRED_ENV_ID, num_envs=2, seed=0)
    rollout = random_rollout(env, num_steps=25, discount=DISCOUNT, seed=0)
    assert rollout.num_steps == 26  # 13 lockstep steps of 2 envs
    assert np.all(rollout.rewards == 100.0) and rollout.max_episode_steps == EPISODE_STEPS
    assert rollout.episode_lengths.tolist() == [EPISODE_STEPS] * 2
    np.testing.assert_allclose(rollout.episode_returns, 100 * (1 - DISCOUNT**10) / (1 - DISCOUNT))
    config = hundred_config()
    adapted, fit = fit_supports(config, rollout)
    assert adapted.network.value_support == math.ceil(1.25 * needed_half_width(fit.value_bound))
    assert adapted.network.reward_support == math.ceil(1.25 * needed_half_width(100.0))
    assert config.network.value_support == 10  # the input is not changed


def test_board_games_and_a_zero_probe_keep_their_supports():
    config = config_module.load("tictactoe")
    assert adapt_to_env(config) == (config, adapt_to_env(config)[1])
    assert "board game" in adapt_to_env(config)[1].summary()
    skipped = hundred_config("network.support_probe_steps=0", "network.supports=fixed")
    assert adapt_to_env(skipped)[0] == skipped


def test_the_support_keys_are_checked():
    with pytest.raises(ConfigError, match=r"^network\.supports: must be one of 'auto', 'fixed'"):
        config_module.load("cartpole", ["network.supports=wide"])
    with pytest.raises(ConfigError, match=r"^network\.support_probe_steps: must be >= 0"):
        config_module.load("cartpole", ["network.support_probe_steps=-1"])


def test_the_loss_counts_masked_targets_outside_the_support():
    config = NetworkConfig(value_support=2, reward_support=1)  # covers |value| <= 7.95, |reward| <= 2.99
    network = build_network(config, (2,), 2)
    values = torch.tensor([[1.0, 50.0, -50.0], [0.0, 2.0, 1000.0]])
    rewards = torch.tensor([[0.0, 5.0, 1.0], [0.0, -1.0, 2.0]])
    value_mask = torch.tensor([[True, True, True], [True, True, False]])  # 1000 is masked: not counted
    reward_mask = torch.tensor([[False, True, True], [False, True, True]])
    batch = TorchBatch(
        observations=torch.zeros(2, 2),
        actions=torch.zeros(2, 2, dtype=torch.int64),
        target_values=values,
        target_rewards=rewards,
        target_policies=torch.full((2, 3, 2), 0.5),
        value_mask=value_mask,
        reward_mask=reward_mask,
        policy_mask=torch.ones(2, 3, dtype=torch.bool),
        weights=torch.ones(2),
    )
    parts = muzero_loss(network, batch, 0.25).parts
    assert parts["value_targets_clipped"] == pytest.approx(2 / 5)  # 50 and -50 of 5 masked values
    assert parts["reward_targets_clipped"] == pytest.approx(1 / 4)  # 5 of 4 masked rewards
    assert float(h(torch.tensor(2.99))) <= 1.0 + 1e-3  # the edge itself is not clipped


def test_the_progress_panel_shows_clipped_targets_only_when_some_are():
    stream = io.StringIO()
    progress = Progress("run", stream=stream, live=False)
    progress.update(force=True, env_steps=10, value_targets_clipped=0.0, reward_targets_clipped=0.0)
    assert "clipped" not in stream.getvalue()
    progress.update(force=True, value_targets_clipped=0.003, reward_targets_clipped=0.0)
    assert "clipped targets=value 0.3%, reward 0%" in stream.getvalue().splitlines()[-1]
    progress.update(force=True, value_targets_clipped=0.00012)
    assert "value 0.012%" in stream.getvalue().splitlines()[-1]


LATE_ENV_ID = "muzero-test/LateReward-v0"
LATE_STEPS = 30


class LateRewardEnv(StepCountingEnv):
    """Reward 0 for 29 steps, then 100 as the episode ends: the largest reward comes last."""

    def step(self, action):
        self.steps += 1
        ended = self.steps >= LATE_STEPS
        return self._obs(), 100.0 if ended else 0.0, ended, False, {}


class NeverEndsEnv(StepCountingEnv):
    def step(self, action):
        return self._obs(), 1.0, False, False, {}


for _id, _entry in ((LATE_ENV_ID, LateRewardEnv), ("muzero-test/NeverEnds-v0", NeverEndsEnv)):
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point=_entry)


def test_the_rollout_goes_on_until_every_env_has_ended_an_episode():
    # 40 steps over 4 envs are 10 each, a third of an episode: the end's reward of 100
    # would be missed, and the reward support sized for 0.
    env = make_vector_env(LATE_ENV_ID, num_envs=4, seed=0)
    rollout = random_rollout(env, num_steps=40, discount=DISCOUNT, seed=0)
    assert rollout.num_steps == 4 * LATE_STEPS
    assert rollout.rewards.max() == 100.0 and rollout.episode_lengths.tolist() == [LATE_STEPS] * 4
    # an env that never ends holds it for at most EXTENSION (10) times the lockstep steps asked for
    never = make_vector_env("muzero-test/NeverEnds-v0", num_envs=4, seed=0)
    assert random_rollout(never, num_steps=40, discount=DISCOUNT, seed=0).num_steps == 4 * 10 * EXTENSION
