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


@dataclass(frozen=True)
class SampledBatch:
    segments: list[Segment]  # (B,) the segment of each example (repeats allowed)
    positions: np.ndarray  # (B,) int64 owned position in its segment
    probabilities: np.ndarray  # (B,) float64 probability each transition had of being drawn
    weights: np.ndarray  # (B,) float32 importance weights (N P)^-beta / max over the batch
    keys: SampleKeys  # for update_priorities


@runtime_checkable
class ReplayStorage(Protocol):
    def insert(self, segment: Segment) -> None:
        """Store ``segment``, evicting the oldest at capacity. Re-inserting a stored
        ``segment_id`` is a no-op; an invalid segment raises ValueError and stores nothing."""

    def sample(self, batch_size: int, rng: np.random.Generator) -> SampledBatch:
        """Draw ``batch_size`` owned transitions with probability proportional to priority^alpha."""

    def update_priorities(self, keys: SampleKeys, priorities: np.ndarray) -> None:
        """Set new priorities (>= 0) of sampled transitions; keys of evicted segments are ignored."""

    @property
    def num_transitions(self) -> int:
        """Owned transitions stored."""

    @property
    def num_segments(self) -> int: ...

    def stats(self) -> dict[str, Any]:
        """JSON-able counters and gauges for logs and metrics."""
