"""What every replay store offers: the contract the in-memory and Redis backends share.

A store holds segments (the unit of insertion and eviction) and samples owned
transitions of them, proportionally to priority^alpha. Transitions are named
by :class:`~muzero.learning.segment.SampleKeys` (segment id, owned position), so
a priority update for a segment evicted since it was sampled is simply ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from muzero.learning.segment import SampleKeys, Segment
from muzero.storage.replay.rate_limiter import Counts


@dataclass(frozen=True)
class SampledBatch:
    """B examples: example b starts at ``positions[b]`` of ``segments[b]``.

    A store may hand out whole segments or *windows* of them (see
    :meth:`Segment.window`), whose targets at the position are the same;
    ``keys`` always name the stored transitions (for priority updates).
    """

    segments: list[Segment]  # (B,) the segment (or window) of each example, repeats allowed
    positions: np.ndarray  # (B,) int64 position of the example in segments[b]
    probabilities: np.ndarray  # (B,) float64 probability each transition had of being drawn
    weights: np.ndarray  # (B,) float32 importance weights (N P)^-beta / max over the batch (1 when uniform)
    keys: SampleKeys  # (segment id, owned position) of each example in the store
    observations: np.ndarray | None = None
    """(B, *stacked_shape) the stacked observation of each example, when the store read only
    those frames (``frames="stack"``): then the segments' other frames are stand-ins."""


MAX_POSITION = 2**31
"""No segment is longer; the Redis scripts compare positions as doubles, exact far beyond it."""


def checked_priorities(keys: SampleKeys, priorities: np.ndarray) -> np.ndarray:
    """``priorities`` as float64 (N,), or ValueError if they do not match ``keys`` or are not finite and >= 0."""
    priorities = np.asarray(priorities, dtype=np.float64)
    if priorities.shape != (len(keys),) or keys.segment_ids.shape != keys.positions.shape:
        raise ValueError(
            f"priorities: expected shape ({len(keys)},) matching keys, got {priorities.shape} "
            f"for keys of shapes {keys.segment_ids.shape} and {keys.positions.shape}"
        )
    if not np.isfinite(priorities).all() or (priorities < 0).any():
        raise ValueError("priorities: must be finite and >= 0")
    positions = np.asarray(keys.positions)
    if len(positions) and (positions.min() < 0 or positions.max() >= MAX_POSITION):
        raise ValueError(f"positions: must be in [0, 2^31), got {int(positions.min())}..{int(positions.max())}")
    return priorities


MAX_TARGETS_VERSION = 2**53
"""Targets versions travel through Redis' Lua numbers (doubles): above 2^53 they would round,
so two versions could compare equal, or come back negative."""


def checked_targets(
    segment_id: str, policies: np.ndarray, root_values: np.ndarray, model_version: int, num_actions: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reanalysed targets as float32 (T, A) and (T,), or ValueError naming what is wrong; checked
    in full whether or not the segment is still stored, so a bad writer hears of it either way."""
    if not isinstance(segment_id, str) or not segment_id or len(segment_id) > 128:
        raise ValueError(f"segment_id: expected 1-128 characters, got {len(segment_id or '')}")
    if not 0 <= model_version <= MAX_TARGETS_VERSION:
        raise ValueError(f"model_version: must be in [0, 2^53], got {model_version}")
    policies = np.asarray(policies, dtype=np.float32)
    root_values = np.asarray(root_values, dtype=np.float32)
    if policies.ndim != 2 or policies.shape[1] != num_actions:
        raise ValueError(f"policies: expected shape (T, {num_actions}), got {policies.shape}")
    if root_values.shape != policies.shape[:1]:
        raise ValueError(f"root_values: expected shape {policies.shape[:1]}, got {root_values.shape}")
    if not (np.isfinite(policies).all() and np.isfinite(root_values).all()):
        raise ValueError("policies, root_values: contain NaN or inf")
    if (policies < 0).any() or not np.allclose(policies.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("policies: each row must be a probability vector (>= 0, sums to 1)")
    return policies, root_values


@runtime_checkable
class ReplayStorage(Protocol):
    def insert(self, segment: Segment) -> bool:
        """Store ``segment``, evicting the oldest at capacity; True if stored. Re-inserting a
        stored (or recently evicted) ``segment_id`` is a no-op that returns False; an invalid
        segment raises ValueError and stores nothing."""

    def sample(
        self,
        batch_size: int,
        rng: np.random.Generator,
        *,
        uniform: bool = False,
        count: bool = True,
        frames: str = "window",
    ) -> SampledBatch:
        """Draw ``batch_size`` owned transitions with probability proportional to priority^alpha
        (or uniformly); training examples carry the freshest targets stored. ``count`` adds
        the draws to the sampled total (the rate limiter's). ``frames="stack"`` lets a store
        read only each example's stacked observation (into ``SampledBatch.observations``),
        for callers that do not re-evaluate bootstrap values from later frames."""

    def counts(self) -> Counts:
        """Transitions inserted and sampled so far, and stored now."""

    def update_priorities(self, keys: SampleKeys, priorities: np.ndarray) -> int:
        """Set new priorities (>= 0) of sampled transitions and return how many keys were
        ignored because their segment was evicted; a position outside its segment raises
        ValueError and changes nothing."""

    def read_segments(self, count: int, rng: np.random.Generator, *, uniform: bool = True) -> list[Segment]:
        """Whole stored segments, with frames and freshest targets, for reanalyze."""

    def write_targets(self, segment_id: str, policies: np.ndarray, root_values: np.ndarray, model_version: int) -> bool:
        """Reanalysed (T, A) policies and (T,) root values for a stored segment; False if it is
        gone or already holds targets of a newer model version."""

    @property
    def num_transitions(self) -> int:
        """Owned transitions stored."""

    @property
    def num_segments(self) -> int: ...

    def stats(self) -> dict[str, Any]:
        """JSON-able counters and gauges for logs and metrics."""

    def fsck(self) -> list[str]:
        """Consistency problems found; empty when the store is consistent."""
