"""The embedded replay store: segments in memory, prioritised sampling by a sum tree.

Layout: every owned transition is a leaf of one sum tree. Segments take
contiguous leaf ranges in a ring of 2 x capacity leaves, in insertion order; a
segment that does not fit before the ring's end starts again at leaf 0. Evicting
oldest-first until the new segment fits the capacity also frees its leaf range:
when the write position wraps, the previous lap ended past leaf capacity (the
segment that wrapped had at most capacity transitions), so the live data of that
lap starts after the new range ends.

Priorities (Schaul et al. 2016, proportional variant): a transition with
priority p is drawn with probability P = (p + eps)^alpha / sum, and its
importance weight is (N P)^-beta divided by the batch's largest weight.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from muzero.config import ReplayConfig
from muzero.learning.segment import SampleKeys, Segment
from muzero.storage.replay.protocol import SampledBatch, checked_priorities, checked_targets
from muzero.storage.replay.rate_limiter import Counts
from muzero.storage.replay.sum_tree import SumTree

TOMBSTONES = 100_000  # evicted ids remembered, so that a late re-send stays a no-op


@dataclass
class _Stored:
    segment: Segment
    first_leaf: int
    serial: int
    targets_version: int = -1  # model version of reanalysed targets, -1: none


class MemoryReplay:
    """In-process :class:`~muzero.storage.replay.protocol.ReplayStorage` (the local-mode default)."""

    def __init__(self, config: ReplayConfig, *, num_actions: int, observation_shape: tuple[int, ...], frame_stack: int):
        config.validate()
        self.config = config
        self.num_actions = num_actions
        self.observation_shape = tuple(observation_shape)
        self.frame_stack = frame_stack
        self._ring_size = 2 * config.capacity
        self._tree = SumTree(self._ring_size)
        self._leaf_serial = np.full(self._ring_size, -1, dtype=np.int64)  # owner of each leaf, -1 free
        self._fifo: deque[_Stored] = deque()
        self._by_id: dict[str, _Stored] = {}
        self._by_serial: dict[int, _Stored] = {}
        self._evicted_ids: OrderedDict[str, None] = OrderedDict()
        self._next_leaf = 0
        self._next_serial = 0
        self._num_transitions = 0
        self._counters = {
            "inserted_segments_total": 0,
            "inserted_transitions_total": 0,
            "duplicate_inserts_total": 0,
            "evicted_segments_total": 0,
            "sampled_transitions_total": 0,
            "priority_updates_total": 0,
            "stale_priority_updates_total": 0,
        }

    @property
    def num_transitions(self) -> int:
        return self._num_transitions

    @property
    def num_segments(self) -> int:
        return len(self._fifo)

    def __contains__(self, segment_id: str) -> bool:
        return segment_id in self._by_id

    def insert(self, segment: Segment) -> bool:
        if not isinstance(segment, Segment):
            raise TypeError(f"segment: expected a Segment, got {type(segment).__name__}")
        if segment.segment_id in self._by_id or segment.segment_id in self._evicted_ids:
            self._counters["duplicate_inserts_total"] += 1
            return False
        segment.validate(self.num_actions, self.observation_shape, self.frame_stack)
        length = segment.length
        if length > self.config.capacity:
            raise ValueError(f"segment.length: {length} transitions exceed the store's capacity {self.config.capacity}")
        if self._next_leaf + length > self._ring_size:
            self._next_leaf = 0
        while self._num_transitions + length > self.config.capacity:
            self._evict_oldest()
        if (self._leaf_serial[self._next_leaf : self._next_leaf + length] >= 0).any():
            raise RuntimeError("replay ring invariant broken: the next leaf range is still in use")

        stored = _Stored(segment, self._next_leaf, self._next_serial)
        leaves = np.arange(stored.first_leaf, stored.first_leaf + length)
        self._leaf_serial[leaves] = stored.serial
        self._tree.set(leaves, self._leaf_values(segment.priorities))
        self._fifo.append(stored)
        self._by_id[segment.segment_id] = stored
        self._by_serial[stored.serial] = stored
        self._next_leaf += length
        self._next_serial += 1
        self._num_transitions += length
        self._counters["inserted_segments_total"] += 1
        self._counters["inserted_transitions_total"] += length
        return True

    def counts(self) -> Counts:
        return Counts(
            inserted=self._counters["inserted_transitions_total"],
            sampled=self._counters["sampled_transitions_total"],
            stored=self._num_transitions,
        )

    def sample(
        self,
        batch_size: int,
        rng: np.random.Generator,
        *,
        uniform: bool = False,
        count: bool = True,
        frames: str = "window",
    ) -> SampledBatch:
        """See the protocol; segments are handed out whole, so ``frames`` changes nothing here."""
        if frames not in ("window", "stack"):
            raise ValueError(f"frames: must be 'window' or 'stack', got {frames!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        if self._num_transitions == 0:
            raise ValueError("cannot sample from an empty replay store")
        if uniform:
            leaves = rng.choice(np.flatnonzero(self._leaf_serial >= 0), size=batch_size)
            probabilities = np.full(batch_size, 1.0 / self._num_transitions)
        else:
            leaves = self._tree.stratified_sample(batch_size, rng)
            probabilities = self._tree.get(leaves) / self._tree.total
        stored = [self._by_serial[serial] for serial in self._leaf_serial[leaves]]
        positions = leaves - np.array([s.first_leaf for s in stored], dtype=np.int64)
        beta = 0.0 if uniform else self.config.priority_beta
        weights = (self._num_transitions * probabilities) ** -beta
        weights = (weights / weights.max()).astype(np.float32)
        segments = [s.segment for s in stored]
        if count:
            self._counters["sampled_transitions_total"] += batch_size
        keys = SampleKeys(segment_ids=np.array([s.segment_id for s in segments]), positions=positions)
        return SampledBatch(
            segments=segments, positions=positions, probabilities=probabilities, weights=weights, keys=keys
        )

    def update_priorities(self, keys: SampleKeys, priorities: np.ndarray) -> int:
        priorities = checked_priorities(keys, priorities)
        leaves, values, stale = [], [], 0
        for segment_id, position, priority in zip(keys.segment_ids, keys.positions, priorities):
            stored = self._by_id.get(str(segment_id))
            if stored is None:  # evicted since it was sampled
                stale += 1
                continue
            if not 0 <= position < stored.segment.length:
                raise ValueError(
                    f"keys.positions: {position} is not an owned position of segment {segment_id} "
                    f"(length {stored.segment.length})"
                )
            leaves.append(stored.first_leaf + int(position))
            values.append(priority)
        self._tree.set(np.array(leaves, dtype=np.int64), self._leaf_values(np.array(values)))
        self._counters["priority_updates_total"] += len(leaves)
        self._counters["stale_priority_updates_total"] += stale
        return stale

    def read_segments(self, count: int, rng: np.random.Generator, *, uniform: bool = True) -> list[Segment]:
        """``count`` stored segments (drawn through their transitions), for reanalyze."""
        return list(self.sample(count, rng, uniform=uniform, count=False).segments)

    def write_targets(self, segment_id: str, policies: np.ndarray, root_values: np.ndarray, model_version: int) -> bool:
        """Replace a stored segment's policies and root values with reanalysed ones; False if
        it was evicted or already holds targets of this or a newer version (the first write
        of a version wins)."""
        policies, root_values = checked_targets(segment_id, policies, root_values, model_version, self.num_actions)
        stored = self._by_id.get(segment_id)
        if stored is None or stored.targets_version >= model_version:
            return False
        fresh = replace(
            stored.segment,
            policies=np.asarray(policies, dtype=np.float32),
            root_values=np.asarray(root_values, dtype=np.float32),
        )
        fresh.validate(self.num_actions, self.observation_shape, self.frame_stack)
        stored.segment = fresh
        stored.targets_version = model_version
        self._counters["reanalysed_writes_total"] = self._counters.get("reanalysed_writes_total", 0) + 1
        self._counters["reanalysed_transitions_total"] = (
            self._counters.get("reanalysed_transitions_total", 0) + fresh.length
        )
        return True

    def targets_versions(self) -> dict[str, int]:
        """Each stored segment's targets version: the model version of its reanalysed targets,
        or -1 where it still holds the targets it was played with."""
        return {stored.segment.segment_id: stored.targets_version for stored in self._fifo}

    def fsck(self) -> list[str]:
        """Problems in the store's bookkeeping; empty when consistent."""
        problems = []
        live = np.flatnonzero(self._leaf_serial >= 0)
        if live.size != self._num_transitions:
            problems.append(f"{live.size} owned leaves, {self._num_transitions} transitions counted")
        owned = sum(s.segment.length for s in self._fifo)
        if owned != self._num_transitions:
            problems.append(f"segments own {owned} transitions, {self._num_transitions} counted")
        free_mass = self._tree.get(np.flatnonzero(self._leaf_serial < 0)).sum() if live.size < self._ring_size else 0
        if free_mass != 0:
            problems.append(f"free leaves hold priority mass {free_mass}")
        return problems

    def stats(self) -> dict[str, Any]:
        return {
            "num_segments": self.num_segments,
            "num_transitions": self._num_transitions,
            "capacity": self.config.capacity,
            "priority_mass": self._tree.total,
            **self._counters,
        }

    def segments(self) -> list[Segment]:
        """Stored segments, oldest first."""
        return [stored.segment for stored in self._fifo]

    def _leaf_values(self, priorities: np.ndarray) -> np.ndarray:
        return (np.asarray(priorities, dtype=np.float64) + self.config.priority_eps) ** self.config.priority_alpha

    def _evict_oldest(self) -> None:
        stored = self._fifo.popleft()
        length = stored.segment.length
        leaves = np.arange(stored.first_leaf, stored.first_leaf + length)
        self._tree.set(leaves, 0.0)
        self._leaf_serial[leaves] = -1
        del self._by_id[stored.segment.segment_id]
        del self._by_serial[stored.serial]
        self._evicted_ids[stored.segment.segment_id] = None
        if len(self._evicted_ids) > TOMBSTONES:
            self._evicted_ids.popitem(last=False)
        self._num_transitions -= length
        self._counters["evicted_segments_total"] += 1
