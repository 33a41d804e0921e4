"""Training batches: examples assembled on demand from segments, never stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from muzero.learning.segment import SampleKeys, Segment, stack_frames
from muzero.learning.targets import BootstrapValueFn, unroll_targets


@dataclass(frozen=True)
class TorchBatch:
    """A :class:`Batch` as tensors on one device (observations keep their stored dtype)."""

    observations: torch.Tensor
    actions: torch.Tensor
    target_values: torch.Tensor
    target_rewards: torch.Tensor
    target_policies: torch.Tensor
    value_mask: torch.Tensor
    reward_mask: torch.Tensor
    policy_mask: torch.Tensor
    weights: torch.Tensor


@dataclass(frozen=True)
class Batch:
    observations: np.ndarray  # (B, *stacked_shape), the stored dtype
    actions: np.ndarray  # (B, K) int64
    target_values: np.ndarray  # (B, K+1) float32
    target_rewards: np.ndarray  # (B, K+1) float32
    target_policies: np.ndarray  # (B, K+1, A) float32
    value_mask: np.ndarray  # (B, K+1) bool
    reward_mask: np.ndarray  # (B, K+1) bool
    policy_mask: np.ndarray  # (B, K+1) bool
    weights: np.ndarray  # (B,) float32 importance weights
    keys: SampleKeys

    @property
    def size(self) -> int:
        return int(self.actions.shape[0])

    @property
    def unroll_steps(self) -> int:
        return int(self.actions.shape[1])

    def to_torch(self, device: torch.device | str = "cpu") -> TorchBatch:
        def tensor(array: np.ndarray) -> torch.Tensor:
            # Arrays decoded from the wire are read-only views of the message: torch needs its own.
            return torch.from_numpy(np.require(array, requirements=["C", "W"])).to(device)

        return TorchBatch(
            observations=tensor(self.observations),
            actions=tensor(self.actions),
            target_values=tensor(self.target_values),
            target_rewards=tensor(self.target_rewards),
            target_policies=tensor(self.target_policies),
            value_mask=tensor(self.value_mask),
            reward_mask=tensor(self.reward_mask),
            policy_mask=tensor(self.policy_mask),
            weights=tensor(self.weights),
        )


def make_batch(segments: Sequence[Segment], positions: np.ndarray, unroll_steps: int, td_steps: int, discount: float,
               frame_stack: int, rng: np.random.Generator, weights: np.ndarray | None = None,
               bootstrap_value_fn: BootstrapValueFn | None = None,
               observations: np.ndarray | None = None) -> Batch:
    """Assemble one example per (segments[b], positions[b]); ``weights`` defaults to 1.

    ``bootstrap_value_fn`` re-evaluates the values n-step targets bootstrap from
    (see :func:`~muzero.learning.targets.unroll_targets`). ``observations`` (B,
    *stacked_shape), when a store already read them, are used instead of the
    segments' frames."""
    positions = np.asarray(positions, dtype=np.int64)
    batch = len(segments)
    if batch == 0:
        raise ValueError("segments: need at least one example")
    if weights is None:
        weights = np.ones(batch, dtype=np.float32)
    weights = np.asarray(weights, dtype=np.float32)
    if weights.shape != (batch,):
        raise ValueError(f"weights: expected shape ({batch},), got {weights.shape}")
    targets = unroll_targets(segments, positions, unroll_steps, td_steps, discount, rng,  # checks positions
                             bootstrap_value_fn=bootstrap_value_fn)

    if observations is not None:
        if bootstrap_value_fn is not None:
            raise ValueError("observations: re-evaluating bootstrap values needs the segments' own frames")
        if observations.shape[0] != batch:
            raise ValueError(f"observations: expected {batch} examples, got shape {observations.shape}")
        return _batch(observations, targets, weights, segments, positions)
    frame_shape = segments[0].observations.shape[1:]
    frames = np.empty((batch, frame_stack, *frame_shape), dtype=segments[0].observations.dtype)
    for b, (segment, start) in enumerate(zip(segments, positions)):
        if segment.frame_stack != frame_stack or segment.observations.shape[1:] != frame_shape:
            raise ValueError(f"segments[{b}]: frames {segment.observations.shape[1:]} with frame_stack "
                             f"{segment.frame_stack}, expected {frame_shape} with frame_stack {frame_stack}")
        frames[b] = segment.observations[start : start + frame_stack]

    return _batch(stack_frames(frames), targets, weights, segments, positions)


def _batch(observations, targets, weights, segments, positions) -> Batch:
    return Batch(
        observations=observations,
        actions=targets.actions,
        target_values=targets.values,
        target_rewards=targets.rewards,
        target_policies=targets.policies,
        value_mask=targets.value_mask,
        reward_mask=targets.reward_mask,
        policy_mask=targets.policy_mask,
        weights=weights,
        keys=SampleKeys(segment_ids=np.array([s.segment_id for s in segments]), positions=positions.copy()),
    )
