"""Segments with random but valid content, for replay tests."""

from __future__ import annotations

import itertools

import numpy as np

from muzero.learning.segment import Segment

_versions = itertools.count()


def random_segment(
    rng: np.random.Generator,
    *,
    num_actions: int,
    frame_shape: tuple[int, ...],
    frame_stack: int,
    steps: int = 12,
    length: int | None = None,
    terminated: bool = True,
    priority: float | None = None,
    frames: np.ndarray | None = None,
) -> Segment:
    length = steps if length is None else length
    policies = rng.random((steps, num_actions)).astype(np.float32) + 0.1
    if frames is None:
        frames = rng.standard_normal((frame_stack - 1 + steps, *frame_shape)).astype(np.float32)
    priorities = (
        np.full(length, priority, dtype=np.float32) if priority is not None else rng.random(length).astype(np.float32)
    )
    ends = terminated and length == steps
    return Segment(
        observations=frames,
        actions=rng.integers(0, num_actions, steps).astype(np.int64),
        rewards=rng.standard_normal(steps).astype(np.float32),
        to_play=(np.arange(steps) % 2).astype(np.int8),
        legal_masks=np.ones((steps, num_actions), dtype=bool),
        policies=(policies / policies.sum(axis=1, keepdims=True)).astype(np.float32),
        root_values=rng.standard_normal(steps).astype(np.float32),
        length=length,
        terminated=ends,
        bootstrap_value=0.0 if ends else 0.5,
        bootstrap_to_play=0,
        priorities=priorities,
        model_version=next(_versions),
    )
