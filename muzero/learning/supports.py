"""Value and reward supports that fit the env, sized at start from a short random rollout.

A categorical support of half-width n covers scalars x with |h(x)| <= n (see
muzero/nn/support.py); a target outside it is clipped to the edge bin and the
network can never predict it. So before the network is built:

- the reward support must cover the largest |reward| the rollout saw;
- the value support must cover the largest |value| a policy could reach: that
  reward earned on every step until the episode's step limit, discounted,
  r_max * (1 - discount^T) / (1 - discount) (T = infinity without a limit).
  Random play ends episodes early, so its own returns would underestimate what
  a trained policy earns (CartPole: ~20 against 500).

``network.supports = "auto"`` widens a support that does not cover its bound to
ceil((1 + MARGIN) * h(bound)) and keeps one that does (so a preset that was
sized by hand, like cartpole's, is unchanged); ``"fixed"`` raises a ConfigError
naming the key instead. What remains uncovered shows up in training as the
loss's ``value_targets_clipped`` / ``reward_targets_clipped``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from muzero.config import ConfigError, ExperimentConfig
from muzero.envs.rollout import RandomRollout, random_rollout
from muzero.envs.vector import make_vector_env
from muzero.nn.support import h, h_inverse

MARGIN = 0.25
"""Headroom of a widened support, as a fraction of the bound's h: the rollout saw random play only."""


@dataclass(frozen=True)
class SupportFit:
    """What :func:`adapt_to_env` measured and decided; ``summary()`` is the line to log."""

    env_id: str
    value_support: int
    """Half-widths in use (after any widening)."""
    reward_support: int
    widened: tuple[str, ...] = ()
    """Keys that were widened, e.g. ("network.value_support",)."""
    probe_steps: int = 0
    max_abs_reward: float = 0.0
    value_bound: float = 0.0
    horizon: str = ""
    """How the value bound was reached, for the log line."""
    skipped: str = ""
    """Why no rollout was made ("" when one was)."""

    def summary(self) -> str:
        if self.skipped:
            return (
                f"supports for {self.env_id}: value_support {self.value_support}, reward_support "
                f"{self.reward_support} as set ({self.skipped})"
            )
        decided = ", ".join(self.widened) + " widened" if self.widened else "kept"
        return (
            f"supports for {self.env_id}: |reward| <= {self.max_abs_reward:,.4g} in {self.probe_steps:,} random "
            f"steps, |value| <= {self.value_bound:,.4g} ({self.horizon}): value_support {self.value_support}, "
            f"reward_support {self.reward_support} ({decided})"
        )


def covered_scalar(half_width: int) -> float:
    """The largest |x| a support of ``half_width`` represents: h^-1(n)."""
    return float(h_inverse(torch.tensor(float(half_width), dtype=torch.float64)))


def needed_half_width(bound: float) -> float:
    """h(bound): the half-width a support needs to represent +-bound."""
    return float(h(torch.tensor(float(bound), dtype=torch.float64)))


def value_bound(rollout: RandomRollout, discount: float) -> tuple[float, str]:
    """(the largest |value| to expect, how it was reached) from what ``rollout`` saw."""
    max_reward = float(abs(rollout.rewards).max()) if rollout.rewards.size else 0.0
    seen = float(abs(rollout.episode_returns).max()) if rollout.episode_returns.size else 0.0
    limit = rollout.max_episode_steps
    if limit > 0:
        steps = (1 - discount**limit) / (1 - discount) if discount < 1 else float(limit)
        how = f"{limit:,}-step limit, discount {discount:g}"
    elif discount < 1:
        steps = 1 / (1 - discount)
        how = f"no step limit, discount {discount:g}"
    else:
        # Undiscounted with no limit has no bound: take the longest play the rollout saw.
        steps = float(max(rollout.episode_lengths.max(initial=0), 1))
        how = "no step limit, discount 1: the longest episode seen"
    return max(max_reward * steps, seen), how


def fit_supports(config: ExperimentConfig, rollout: RandomRollout) -> tuple[ExperimentConfig, SupportFit]:
    """``config`` with supports that cover what ``rollout`` measured (see the module doc).

    Raises ConfigError naming network.value_support / network.reward_support when
    ``network.supports = "fixed"`` and a support is too narrow.
    """
    network = config.network
    max_reward = float(abs(rollout.rewards).max()) if rollout.rewards.size else 0.0
    bound, how = value_bound(rollout, config.training.discount)
    needs = {
        "value_support": (bound, needed_half_width(bound), "values"),
        "reward_support": (max_reward, needed_half_width(max_reward), "rewards"),
    }
    sizes = {"value_support": network.value_support, "reward_support": network.reward_support}
    too_narrow = [key for key, (_, need, _) in needs.items() if sizes[key] < need - 1e-9]
    if too_narrow and network.supports == "fixed":
        clauses = [
            f"{sizes[key]} covers {needs[key][2]} up to +-{covered_scalar(sizes[key]):,.4g}, but "
            f"{config.env.id} can reach +-{needs[key][0]:,.4g}: set network.{key} >= "
            f"{math.ceil(needs[key][1] - 1e-9)}"
            for key in too_narrow
        ]
        clauses[1:] = [f"network.{key} {clause}" for key, clause in zip(too_narrow[1:], clauses[1:])]
        raise ConfigError(
            f"network.{too_narrow[0]}: "
            + "; ".join(clauses)
            + f" (rewards up to +-{max_reward:,.4g} in {rollout.num_steps:,} random steps; {how}),"
            f' or set network.supports = "auto"'
        )
    for key in too_narrow:
        sizes[key] = max(1, math.ceil((1 + MARGIN) * needs[key][1]))
    if too_narrow:
        config = dataclasses.replace(
            config,
            network=dataclasses.replace(
                network, value_support=sizes["value_support"], reward_support=sizes["reward_support"]
            ),
        )
        config.validate()
    return config, SupportFit(
        env_id=config.env.id,
        value_support=sizes["value_support"],
        reward_support=sizes["reward_support"],
        widened=tuple(f"network.{key}" for key in too_narrow),
        probe_steps=rollout.num_steps,
        max_abs_reward=max_reward,
        value_bound=bound,
        horizon=how,
    )


def adapt_to_env(config: ExperimentConfig, seed: int | None = None) -> tuple[ExperimentConfig, SupportFit]:
    """Run the random rollout on ``config.env`` and fit the supports to it.

    Call once at start, before the network is built, and use (and record) the
    config it returns. Deterministic given (config, seed); ``seed`` defaults to
    training.seed. Board games keep their supports (their outcomes are bounded by
    the rules), as does ``network.support_probe_steps = 0``. Raises ConfigError
    (see :func:`fit_supports`), and ValueError for an env that cannot be made.
    """
    network = config.network
    seed = config.training.seed if seed is None else seed

    def kept(reason: str) -> tuple[ExperimentConfig, SupportFit]:
        return config, SupportFit(
            env_id=config.env.id,
            value_support=network.value_support,
            reward_support=network.reward_support,
            skipped=reason,
        )

    if network.support_probe_steps == 0:
        return kept("network.support_probe_steps = 0")
    env = make_vector_env(config.env.id, config.env.num_envs, seed, config.env.max_episode_steps, config.env.wrappers)
    try:
        if env.num_players != 1:
            return kept("a board game")
        rollout = random_rollout(env, network.support_probe_steps, config.training.discount, seed)
    finally:
        env.close()
    return fit_supports(config, rollout)
