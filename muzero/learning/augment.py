"""Symmetry augmentation of training examples (``training.augment = "d4"``).

Go's rules do not change when the board is rotated or reflected, so every
example stands for eight (the dihedral group D4). AlphaGo Zero and KataGo train
on a random one of the eight each time an example is drawn; so does this: each
example of a batch gets its own transform, applied to its observation planes,
its unrolled actions, its policy and legal-move targets, its ownership target and the
observations of its unrolled positions alike (values
and rewards do not change). Actions are the points of the board, row-major like the planes, with a
pass last that maps to itself.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np

from muzero.learning.batch import Batch

NUM_TRANSFORMS = 8
"""Rotations by 0, 90, 180 and 270 degrees, then the same after a left-right mirror."""


def transform_planes(planes: np.ndarray, transform: int) -> np.ndarray:
    """(..., H, W) -> the planes rotated by ``transform % 4`` quarter turns, mirrored first
    when ``transform >= 4``."""
    if not 0 <= transform < NUM_TRANSFORMS:
        raise ValueError(f"transform must be in [0, {NUM_TRANSFORMS}), got {transform}")
    if transform >= 4:
        planes = planes[..., ::-1]
    return np.rot90(planes, transform % 4, axes=(-2, -1))


@lru_cache(maxsize=16)
def point_sources(size: int) -> np.ndarray:
    """(8, size*size) int64: for each transform, the original point at each new point, so
    ``new = old[..., sources[t]]`` moves per-point values (policies) with the board."""
    grid = np.arange(size * size, dtype=np.int64).reshape(size, size)
    sources = np.stack([transform_planes(grid, t).reshape(-1) for t in range(NUM_TRANSFORMS)])
    sources.setflags(write=False)
    return sources


@lru_cache(maxsize=16)
def point_targets(size: int) -> np.ndarray:
    """(8, size*size) int64: for each transform, where each original point goes
    (``new_action = targets[t][old_action]``), the inverse of :func:`point_sources`."""
    sources = point_sources(size)
    targets = np.empty_like(sources)
    rows = np.arange(NUM_TRANSFORMS)[:, None]
    targets[rows, sources] = np.arange(size * size)
    targets.setflags(write=False)
    return targets


def check_d4(observation_shape: tuple[int, ...], num_actions: int) -> None:
    """Raise ValueError unless the env's observations are square boards whose actions are
    their points, plus at most a pass."""
    if len(observation_shape) != 3 or observation_shape[1] != observation_shape[2]:
        raise ValueError(
            f"training.augment = 'd4' needs square board planes (C, N, N), got observations of shape "
            f"{tuple(observation_shape)}"
        )
    points = observation_shape[1] * observation_shape[2]
    if num_actions not in (points, points + 1):
        raise ValueError(
            f"training.augment = 'd4' needs one action per point ({points}) plus at most a pass, "
            f"got {num_actions} actions"
        )


def augment_d4(batch: Batch[np.ndarray], rng: np.random.Generator) -> Batch[np.ndarray]:
    """The batch with each example under a random symmetry of the square board."""
    observations = batch.observations
    check_d4(observations.shape[1:], batch.target_policies.shape[-1])
    size = observations.shape[-1]
    points = size * size
    sources, targets = point_sources(size), point_targets(size)
    chosen = rng.integers(0, NUM_TRANSFORMS, size=batch.size)
    new_observations = observations.copy()
    actions = batch.actions.copy()
    policies = batch.target_policies.copy()
    ownership = None if batch.target_ownership is None else batch.target_ownership.copy()
    following = None if batch.next_observations is None else batch.next_observations.copy()
    legal = None if batch.target_legal is None else batch.target_legal.copy()
    for t in range(1, NUM_TRANSFORMS):  # 0 is the identity: those rows stay as copied
        rows = np.flatnonzero(chosen == t)
        if not rows.size:
            continue
        new_observations[rows] = transform_planes(observations[rows], t)
        moved = actions[rows]
        on_board = moved < points
        moved[on_board] = targets[t][moved[on_board]]
        actions[rows] = moved
        policies[rows, :, :points] = policies[rows][:, :, sources[t]]
        if ownership is not None:
            ownership[rows] = ownership[rows][:, sources[t]]
        if legal is not None:
            legal[rows, :, :points] = legal[rows][:, :, sources[t]]
        if following is not None and batch.next_observations is not None:
            following[rows] = transform_planes(batch.next_observations[rows], t)
    return replace(
        batch,
        observations=new_observations,
        actions=actions,
        target_policies=policies,
        target_ownership=ownership,
        next_observations=following,
        target_legal=legal,
    )
