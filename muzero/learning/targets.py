"""Training targets from stored play: n-step values, rewards, policies and masks.

Pure numpy, vectorised over a batch of (segment, position) examples. Sign
convention (see ``muzero/search/types.py``): a value is for the player to move,
a reward for the player who acted. From the point of view of the player to move
at position t, a later reward or value counts with sign s = +1 if the same
player moves there, else -1. The n-step target (MuZero, Schrittwieser et al.
2020, eq. 4, extended with that sign for two-player games) is

    z_t = sum_{j<n} discount^j s_j r_{t+j} + discount^n s_n v_{t+n}

cut at the segment's end T: if the episode terminated, nothing follows (the
state after the last step is absorbing, value 0); otherwise the segment's
``bootstrap_value`` (the value of the state at T) replaces v.

Unrolled positions t+k past the end:

- terminated episode: value and reward targets 0 (trained: the model learns the
  absorbing state), policy masked;
- otherwise (time limit, or the data simply stops): the state at T still has a
  known value (the bootstrap) and the reward leading to it is known; beyond it
  everything is masked.

Actions past the end are random indices (the model must be fed something; no
target depends on them except the absorbing-state ones).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from muzero.learning.segment import Segment


def n_step_value_targets(
    rewards: np.ndarray,
    root_values: np.ndarray,
    to_play: np.ndarray,
    steps_left: np.ndarray,
    terminated: np.ndarray,
    bootstrap_value: np.ndarray,
    bootstrap_to_play: np.ndarray,
    num_positions: int,
    td_steps: int,
    discount: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Value targets for the first ``num_positions`` positions of B windows of play.

    Each row of ``rewards``, ``root_values``, ``to_play`` (B, W) is a window of
    one segment starting at an example's position, with W >= num_positions +
    td_steps; entries at or beyond ``steps_left`` (B,) (= T - position) are
    padding and never read as data. ``terminated``, ``bootstrap_value`` and
    ``bootstrap_to_play`` (B,) describe the segment's end.

    Returns (targets (B, P) float32, valid (B, P) bool): a position past the end
    of an episode that did not terminate has no target.
    """
    batch, width = rewards.shape
    if width < num_positions + td_steps:
        raise ValueError(
            f"windows of width {width} are too short for {num_positions} positions "
            f"and td_steps {td_steps} (need {num_positions + td_steps})"
        )
    for name, array in (("root_values", root_values), ("to_play", to_play)):
        if array.shape != (batch, width):
            raise ValueError(f"{name}: expected shape {(batch, width)}, got {array.shape}")
    for name, array in (
        ("steps_left", steps_left),
        ("terminated", terminated),
        ("bootstrap_value", bootstrap_value),
        ("bootstrap_to_play", bootstrap_to_play),
    ):
        if np.shape(array) != (batch,):
            raise ValueError(f"{name}: expected shape ({batch},), got {np.shape(array)}")

    k = np.arange(num_positions)
    j = np.arange(td_steps)
    later = k[:, None] + j[None, :]  # (P, n) window index of step t+k+j
    left = np.asarray(steps_left, dtype=np.int64)[:, None]  # (B, 1)
    terminated = np.asarray(terminated, dtype=bool)[:, None]
    mover = to_play[:, :num_positions]  # (B, P)

    def sign(players: np.ndarray, of: np.ndarray) -> np.ndarray:
        return np.where(players == of, 1.0, -1.0)

    real = later[None] < left[:, :, None]  # (B, P, n)
    discounted = (discount**j) * sign(to_play[:, later], mover[:, :, None]) * rewards[:, later].astype(np.float64)
    reward_sum = np.where(real, discounted, 0.0).sum(axis=2)  # (B, P)

    value_index = k + td_steps  # (P,)
    value_inside = value_index[None] < left
    inside = discount**td_steps * sign(to_play[:, value_index], mover) * root_values[:, value_index]
    # Past the end: nothing after a terminal state; else the bootstrap, discounted from T.
    exponent = np.maximum(left - k[None], 0)
    outside = np.where(
        terminated,
        0.0,
        discount**exponent
        * sign(np.asarray(bootstrap_to_play)[:, None], mover)
        * np.asarray(bootstrap_value, dtype=np.float64)[:, None],
    )
    values = reward_sum + np.where(value_inside, inside, outside)

    # The state at T itself (k == T - t): its value is the bootstrap (for its own player), or 0.
    at_end = k[None] == left
    end_value = np.where(terminated, 0.0, np.asarray(bootstrap_value, dtype=np.float64)[:, None])
    values = np.where(at_end, end_value, values)
    past_end = k[None] > left
    values = np.where(past_end, 0.0, values)
    valid = ~past_end | terminated
    return values.astype(np.float32), valid


def segment_value_targets(segment: Segment, td_steps: int, discount: float) -> np.ndarray:
    """(length,) n-step value targets of a segment's owned positions."""
    length, steps = segment.length, segment.num_steps
    width = length + td_steps

    def window(array: np.ndarray) -> np.ndarray:
        out = np.zeros((1, width), dtype=array.dtype)
        used = min(width, steps)
        out[0, :used] = array[:used]
        return out

    values, _ = n_step_value_targets(
        window(segment.rewards),
        window(segment.root_values),
        window(segment.to_play),
        np.array([steps]),
        np.array([segment.terminated]),
        np.array([segment.bootstrap_value]),
        np.array([segment.bootstrap_to_play]),
        length,
        td_steps,
        discount,
    )
    return values[0]


@dataclass(frozen=True)
class UnrollTargets:
    """Targets of B examples unrolled K steps (K + 1 positions, k = 0 the root)."""

    actions: np.ndarray  # (B, K) int64, fed to the dynamics
    values: np.ndarray  # (B, K+1) float32
    rewards: np.ndarray  # (B, K+1) float32; k: reward of the action at t+k-1 (k = 0: none)
    policies: np.ndarray  # (B, K+1, A) float32
    value_mask: np.ndarray  # (B, K+1) bool
    reward_mask: np.ndarray  # (B, K+1) bool; always False at k = 0
    policy_mask: np.ndarray  # (B, K+1) bool


BootstrapValueFn = Callable[[np.ndarray], np.ndarray]
"""(M, *stacked_obs_shape) observations -> (M,) values for the player to move there."""


def unroll_targets(
    segments: Sequence[Segment],
    positions: np.ndarray,
    unroll_steps: int,
    td_steps: int,
    discount: float,
    rng: np.random.Generator,
    bootstrap_value_fn: BootstrapValueFn | None = None,
) -> UnrollTargets:
    """Targets for examples starting at ``positions[b]`` (owned) of ``segments[b]``.

    With ``bootstrap_value_fn``, the values bootstrapped from (at t+k+n) are
    recomputed from the stored observations by that function (e.g. a recent
    target network) instead of the root values stored when the step was played.
    Stored values come from the network of that time and go stale as it improves;
    re-evaluating them is the cheap half of reanalyze (muzero-general's
    "use_last_model_value", EfficientZero's target-network values).
    """
    positions = np.asarray(positions, dtype=np.int64)
    batch = len(segments)
    if positions.shape != (batch,):
        raise ValueError(f"positions: expected shape ({batch},), got {positions.shape}")
    if batch == 0:
        raise ValueError("segments: need at least one example")
    if unroll_steps < 1 or td_steps < 1:
        raise ValueError(f"unroll_steps and td_steps must be >= 1, got {unroll_steps} and {td_steps}")
    num_actions = segments[0].policies.shape[1]
    num_positions = unroll_steps + 1
    width = num_positions + td_steps

    rewards = np.zeros((batch, width), dtype=np.float32)
    root_values = np.zeros((batch, width), dtype=np.float32)
    to_play = np.zeros((batch, width), dtype=np.int8)
    policies = np.zeros((batch, num_positions, num_actions), dtype=np.float32)
    actions = rng.integers(0, num_actions, size=(batch, unroll_steps), dtype=np.int64)
    steps_left = np.zeros(batch, dtype=np.int64)
    terminated = np.zeros(batch, dtype=bool)
    bootstrap_value = np.zeros(batch, dtype=np.float64)
    bootstrap_to_play = np.zeros(batch, dtype=np.int64)
    for b, (segment, start) in enumerate(zip(segments, positions)):
        if segment.policies.shape[1] != num_actions:
            raise ValueError(f"segments[{b}]: has {segment.policies.shape[1]} actions, segments[0] has {num_actions}")
        if not 0 <= start < segment.length:
            raise ValueError(f"positions[{b}] = {start}: not an owned position of a segment of length {segment.length}")
        left = segment.num_steps - start
        used = min(width, left)
        rewards[b, :used] = segment.rewards[start : start + used]
        root_values[b, :used] = segment.root_values[start : start + used]
        to_play[b, :used] = segment.to_play[start : start + used]
        played = min(num_positions, left)
        policies[b, :played] = segment.policies[start : start + played]
        acted = min(unroll_steps, left)
        actions[b, :acted] = segment.actions[start : start + acted]
        steps_left[b] = left
        terminated[b] = segment.terminated
        bootstrap_value[b] = segment.bootstrap_value
        bootstrap_to_play[b] = segment.bootstrap_to_play

    if bootstrap_value_fn is not None:
        _refresh_bootstrap_values(
            segments, positions, steps_left, root_values, num_positions, td_steps, bootstrap_value_fn
        )
    values, value_mask = n_step_value_targets(
        rewards,
        root_values,
        to_play,
        steps_left,
        terminated,
        bootstrap_value,
        bootstrap_to_play,
        num_positions,
        td_steps,
        discount,
    )
    k = np.arange(num_positions)[None]
    left = steps_left[:, None]
    # Reward at k is of the action at t+k-1: real while k-1 < T - t; past a terminal it is 0.
    reward_targets = np.zeros((batch, num_positions), dtype=np.float32)
    reward_targets[:, 1:] = rewards[:, :unroll_steps]
    reward_real = (k - 1) < left
    reward_targets = np.where(reward_real, reward_targets, 0.0).astype(np.float32)
    reward_mask = (reward_real | terminated[:, None]) & (k >= 1)
    # A step searched too briefly to teach the policy (playout cap randomisation) stores zeros.
    policy_mask = (k < left) & (policies.sum(axis=2) > 0)
    return UnrollTargets(
        actions=actions,
        values=values,
        rewards=reward_targets,
        policies=policies,
        value_mask=value_mask,
        reward_mask=reward_mask,
        policy_mask=policy_mask,
    )


def _refresh_bootstrap_values(
    segments: Sequence[Segment],
    positions: np.ndarray,
    steps_left: np.ndarray,
    root_values: np.ndarray,
    num_positions: int,
    td_steps: int,
    value_fn: BootstrapValueFn,
) -> None:
    """Overwrite root_values[b, k + n] with value_fn of the stored observation there, in one call."""
    window_index = np.arange(num_positions) + td_steps  # (P,)
    rows, columns = np.nonzero(window_index[None] < steps_left[:, None])
    if rows.size == 0:
        return
    columns = window_index[columns]
    observations = np.stack(
        [segments[int(b)].stacked_observation(int(positions[b]) + int(c)) for b, c in zip(rows, columns)]
    )
    values = np.asarray(value_fn(observations), dtype=np.float32)
    if values.shape != (rows.size,):
        raise ValueError(f"bootstrap_value_fn: expected {rows.size} values, got shape {values.shape}")
    root_values[rows, columns] = values


@dataclass(frozen=True)
class BootstrapTerms:
    """Where value targets bootstrap from a stored root value, and how much it weighs.

    ``target = stored_target + scale * (v - stored_value)`` wherever ``mask``: so a
    learner that receives ready targets (from the replay service) can swap in the
    value ``v`` its target network gives ``observations`` (the cheap half of
    reanalyze) without the segments."""

    mask: np.ndarray  # (B, K+1) bool: position k's target reads the root value at t+k+n
    scale: np.ndarray  # (B, K+1) float32: discount^n times the two-player sign
    stored_values: np.ndarray  # (B, K+1) float32: the root value it read
    observations: np.ndarray  # (B, K+1, *stacked_shape): the stacked observation at t+k+n (zeros off mask)


def bootstrap_terms(
    segments: Sequence[Segment], positions: np.ndarray, unroll_steps: int, td_steps: int, discount: float
) -> BootstrapTerms:
    positions = np.asarray(positions, dtype=np.int64)
    batch, num_positions = len(segments), unroll_steps + 1
    stacked_shape = segments[0].stacked_observation(0).shape
    mask = np.zeros((batch, num_positions), dtype=bool)
    scale = np.zeros((batch, num_positions), dtype=np.float32)
    stored = np.zeros((batch, num_positions), dtype=np.float32)
    observations = np.zeros((batch, num_positions, *stacked_shape), dtype=segments[0].observations.dtype)
    offsets = np.arange(num_positions)
    for b, (segment, start) in enumerate(zip(segments, positions)):
        # Unroll positions k whose bootstrap step t + k + n is inside the segment, all at once.
        valid = min(num_positions, max(segment.num_steps - int(start) - td_steps, 0))
        if valid == 0:
            continue
        at = int(start) + td_steps + offsets[:valid]
        mask[b, :valid] = True
        same_player = segment.to_play[at] == segment.to_play[at - td_steps]
        scale[b, :valid] = np.where(same_player, discount**td_steps, -(discount**td_steps))
        stored[b, :valid] = segment.root_values[at]
        frames = segment.observations[at[:, None] + np.arange(segment.frame_stack)]  # (valid, fs, *obs_shape)
        observations[b, :valid] = frames.reshape(valid, *stacked_shape)  # frames stacked on the first axis
    return BootstrapTerms(mask=mask, scale=scale, stored_values=stored, observations=observations)
