"""A sum tree over numpy arrays: O(log N) prefix-sum search, vectorised over a batch.

Node 1 is the root, node i has children 2i and 2i+1, leaf j is node P + j with
P the leaf count rounded up to a power of two. Parents are always recomputed
from their children (never updated by deltas), so sums do not drift.
"""

from __future__ import annotations

import numpy as np


class SumTree:
    def __init__(self, num_leaves: int):
        if num_leaves < 1:
            raise ValueError(f"num_leaves must be >= 1, got {num_leaves}")
        self.num_leaves = num_leaves
        self._first_leaf = 1 << max(0, (num_leaves - 1).bit_length())
        self._depth = self._first_leaf.bit_length() - 1
        self._nodes = np.zeros(2 * self._first_leaf, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self._nodes[1])

    def get(self, leaves: np.ndarray) -> np.ndarray:
        return self._nodes[self._first_leaf + self._check_leaves(leaves)]

    def set(self, leaves: np.ndarray, values: np.ndarray) -> None:
        """Set leaf values (>= 0, finite); with repeated leaves the last value wins."""
        leaves = self._check_leaves(leaves)
        values = np.broadcast_to(np.asarray(values, dtype=np.float64), leaves.shape)
        if leaves.size == 0:
            return
        if not np.isfinite(values).all() or (values < 0).any():
            raise ValueError("sum tree values must be finite and >= 0")
        # np.unique keeps the first occurrence; reverse so that it is the last one written.
        unique, first = np.unique(leaves[::-1], return_index=True)
        nodes = unique + self._first_leaf
        self._nodes[nodes] = values[::-1][first]
        while nodes[0] > 1:
            nodes = np.unique(nodes >> 1)
            self._nodes[nodes] = self._nodes[2 * nodes] + self._nodes[2 * nodes + 1]

    def find(self, targets: np.ndarray) -> np.ndarray:
        """For each target mass u in [0, total), the leaf whose prefix-sum interval holds u.

        Never returns a leaf of value 0: where rounding would step into an empty
        subtree, the descent takes the non-empty sibling.
        """
        if self.total <= 0:
            raise ValueError("cannot search an empty sum tree (total is 0)")
        mass = np.asarray(targets, dtype=np.float64).copy()
        nodes = np.ones(mass.shape, dtype=np.int64)
        for _ in range(self._depth):
            left = 2 * nodes
            left_sum = self._nodes[left]
            right_sum = self._nodes[left + 1]
            go_right = ((mass >= left_sum) & (right_sum > 0)) | (left_sum <= 0)
            mass = np.where(go_right, mass - left_sum, mass)
            nodes = left + go_right
        return nodes - self._first_leaf

    def stratified_sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """``batch_size`` leaves drawn proportionally to their values, one from each of
        ``batch_size`` equal slices of the total mass (lower variance than i.i.d.)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        total = self.total
        mass = (np.arange(batch_size) + rng.random(batch_size)) * (total / batch_size)
        return self.find(np.minimum(mass, np.nextafter(total, 0.0)))

    def _check_leaves(self, leaves: np.ndarray) -> np.ndarray:
        leaves = np.asarray(leaves, dtype=np.int64)
        if leaves.size and (leaves.min() < 0 or leaves.max() >= self.num_leaves):
            raise ValueError(f"leaf index out of range [0, {self.num_leaves})")
        return leaves
