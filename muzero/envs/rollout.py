"""A short rollout of uniformly random legal actions: what rewards and returns an env gives.

Used at start to size the value and reward supports (muzero/learning/supports.py)
before any network exists. Pure: it steps the env it is given and returns arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from muzero.envs.vector import VectorEnv


@dataclass(frozen=True)
class RandomRollout:
    rewards: np.ndarray
    """(steps * num_envs,) float64, every reward received, in order of steps."""
    episode_returns: np.ndarray
    """(E,) float64 discounted return, from its first step, of each episode that ended in the rollout."""
    episode_lengths: np.ndarray
    """(E,) int64 steps of those episodes."""
    max_episode_steps: int
    """The env's step limit (0: none known)."""

    @property
    def num_steps(self) -> int:
        return int(self.rewards.size)


EXTENSION = 10
"""The rollout goes on past ``num_steps`` until every env has ended an episode, for at most
this many times the lockstep steps asked for (an env that never ends cannot hold it forever)."""


def random_rollout(env: VectorEnv, num_steps: int, discount: float, seed: int) -> RandomRollout:
    """Step ``env`` (from a reset) with uniformly random legal actions for at least ``num_steps``
    env steps in all, i.e. ceil(num_steps / num_envs) lockstep steps, and then on until every
    env has ended an episode (at most EXTENSION times as many lockstep steps).

    Going on to the episodes' ends matters where the largest rewards come at the end: 1,000
    steps over 16 envs are 63 steps each, shorter than a random LunarLander episode, whose
    crash (-100) or landing (+100) the rollout would then never see.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0 < discount <= 1:
        raise ValueError(f"discount must be in (0, 1], got {discount}")
    rng = np.random.default_rng(seed)
    env.reset()
    n = env.num_envs
    rewards = []
    running_return = np.zeros(n)
    running_length = np.zeros(n, dtype=np.int64)
    ended_once = np.zeros(n, dtype=bool)
    returns, lengths = [], []
    asked = -(-num_steps // n)
    for done in range(asked * EXTENSION):
        if done >= asked and ended_once.all():
            break
        # Uniform over legal actions: the largest of uniform noise where legal.
        noise = np.where(env.legal_mask(), rng.random((n, env.num_actions)), -1.0)
        step = env.step(noise.argmax(axis=1))
        reward = step.reward.astype(np.float64)
        rewards.append(reward)
        running_return += discount**running_length * reward
        running_length += 1
        ended = step.terminated | step.truncated
        ended_once |= ended
        returns.extend(running_return[ended].tolist())
        lengths.extend(running_length[ended].tolist())
        running_return[ended] = 0.0
        running_length[ended] = 0
    return RandomRollout(
        rewards=np.concatenate(rewards),
        episode_returns=np.asarray(returns, dtype=np.float64),
        episode_lengths=np.asarray(lengths, dtype=np.int64),
        max_episode_steps=int(getattr(env, "max_episode_steps", 0) or 0),
    )
