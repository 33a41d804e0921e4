"""Training batches: examples assembled on demand from segments, never stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Generic, TypeVar

import numpy as np
import torch

from muzero.config import TrainingConfig
from muzero.learning.segment import SampleKeys, Segment, stack_frames
from muzero.learning.targets import BootstrapTerms, BootstrapValueFn, bootstrap_terms, unroll_targets

Array = TypeVar("Array", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class Batch(Generic[Array]):
    """B training examples: numpy arrays as assembled (``Batch[np.ndarray]``), or the same
    fields as tensors on one device (``Batch[torch.Tensor]``, from :meth:`to_torch`).

    This class is the one declaration of a batch's fields: the wire codec
    (``muzero.wire.codec``) sends exactly :data:`BATCH_ARRAYS`, and the learner
    and the loss read them by these names."""

    observations: Array  # (B, *stacked_shape), the stored dtype
    actions: Array  # (B, K) int64
    target_values: Array  # (B, K+1) float32
    target_rewards: Array  # (B, K+1) float32
    target_policies: Array  # (B, K+1, A) float32
    value_mask: Array  # (B, K+1) bool
    reward_mask: Array  # (B, K+1) bool
    policy_mask: Array  # (B, K+1) bool
    weights: Array  # (B,) float32 importance weights
    keys: SampleKeys | None = None
    """The stored transition of each example, for priority updates."""
    model_versions: np.ndarray | None = None
    """(B,) int64: the model version that produced each example's segment."""
    bootstrap: BootstrapTerms | None = None
    """What a learner's target network needs to re-value bootstrap targets (when asked for)."""
    target_ownership: Array | None = None
    """(B, P) float32: who owns each point at the end of the example's episode, from the view
    of the player to move at its first position (+1 that player); zeros where unknown.
    Present when any example's segment knows it (``Segment.final_ownership``)."""
    ownership_mask: Array | None = None
    """(B,) bool: the examples whose ``target_ownership`` is known."""
    next_observations: Array | None = None
    """(B, K, *stacked_shape): the stacked observation at each unrolled position t+1..t+K, the
    target of the consistency loss (``training.consistency_loss_weight``); when asked for."""
    next_observation_mask: Array | None = None
    """(B, K) bool: the unrolled positions whose observation exists (before the segment's end)."""
    target_legal: Array | None = None
    """(B, K+1, A) bool: the legal actions at each unrolled position (none past a terminal
    end), the target of ``network.rules_heads``; when asked for."""
    target_terminal: Array | None = None
    """(B, K+1) bool: whether the episode has ended at each unrolled position."""
    rules_mask: Array | None = None
    """(B, K+1) bool: the positions whose rules targets are known (past the end of a segment
    whose episode goes on, they are not)."""

    @property
    def size(self) -> int:
        return int(self.actions.shape[0])

    @property
    def unroll_steps(self) -> int:
        return int(self.actions.shape[1])

    def to_torch(self, device: torch.device | str = "cpu") -> Batch[torch.Tensor]:
        """The arrays as tensors on ``device`` (observations keep their stored dtype)."""

        def tensor(array: np.ndarray) -> torch.Tensor:
            # Arrays decoded from the wire are read-only views of the message: torch needs its own.
            return torch.from_numpy(np.require(array, requirements=["C", "W"])).to(device)

        # Keyword arguments by field name: Any, as mypy cannot match a dict's keys to the fields.
        arrays: dict[str, Any] = {name: tensor(getattr(self, name)) for name in BATCH_ARRAYS}
        for name in OPTIONAL_ARRAYS:
            if getattr(self, name) is not None:
                arrays[name] = tensor(np.asarray(getattr(self, name)))
        return Batch(**arrays, keys=self.keys, model_versions=self.model_versions)


BATCH_ARRAYS: tuple[str, ...] = tuple(f.name for f in fields(Batch) if f.type == "Array")
"""The per-example arrays of a batch, in declaration order."""
OPTIONAL_ARRAYS: tuple[str, ...] = tuple(f.name for f in fields(Batch) if f.type == "Array | None")
"""The per-example arrays a batch carries when its config asks for them."""

TorchBatch = Batch[torch.Tensor]


def make_batch(
    segments: Sequence[Segment],
    positions: np.ndarray,
    unroll_steps: int,
    td_steps: int,
    discount: float,
    frame_stack: int,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
    bootstrap_value_fn: BootstrapValueFn | None = None,
    observations: np.ndarray | None = None,
    next_observations: bool = False,
    rules: bool = False,
) -> Batch:
    """Assemble one example per (segments[b], positions[b]); ``weights`` defaults to 1.

    ``bootstrap_value_fn`` re-evaluates the values n-step targets bootstrap from
    (see :func:`~muzero.learning.targets.unroll_targets`). ``observations`` (B,
    *stacked_shape), when a store already read them, are used instead of the
    segments' frames. ``next_observations`` adds the observations of the unrolled
    positions (:func:`next_observation_targets`), read from the segments' frames;
    ``rules`` the legal moves and episode ends there (:func:`rules_targets`)."""
    positions = np.asarray(positions, dtype=np.int64)
    batch = len(segments)
    if batch == 0:
        raise ValueError("segments: need at least one example")
    if weights is None:
        weights = np.ones(batch, dtype=np.float32)
    weights = np.asarray(weights, dtype=np.float32)
    if weights.shape != (batch,):
        raise ValueError(f"weights: expected shape ({batch},), got {weights.shape}")
    targets = unroll_targets(
        segments,
        positions,
        unroll_steps,
        td_steps,
        discount,
        rng,  # checks positions
        bootstrap_value_fn=bootstrap_value_fn,
    )

    if observations is not None:
        if bootstrap_value_fn is not None:
            raise ValueError("observations: re-evaluating bootstrap values needs the segments' own frames")
        if next_observations:
            raise ValueError("observations: the observations of unrolled positions need the segments' own frames")
        if observations.shape[0] != batch:
            raise ValueError(f"observations: expected {batch} examples, got shape {observations.shape}")
        return _batch(observations, targets, weights, segments, positions)
    frame_shape = segments[0].observations.shape[1:]
    frames = np.empty((batch, frame_stack, *frame_shape), dtype=segments[0].observations.dtype)
    for b, (segment, start) in enumerate(zip(segments, positions)):
        if segment.frame_stack != frame_stack or segment.observations.shape[1:] != frame_shape:
            raise ValueError(
                f"segments[{b}]: frames {segment.observations.shape[1:]} with frame_stack "
                f"{segment.frame_stack}, expected {frame_shape} with frame_stack {frame_stack}"
            )
        frames[b] = segment.observations[start : start + frame_stack]

    batch_out = _batch(stack_frames(frames), targets, weights, segments, positions)
    if rules:
        batch_out = _with_rules(batch_out, segments, positions, unroll_steps)
    if next_observations:
        following, mask = next_observation_targets(segments, positions, unroll_steps)
        batch_out = replace(batch_out, next_observations=following, next_observation_mask=mask)
    return batch_out


def _with_rules(batch: Batch, segments: Sequence[Segment], positions: np.ndarray, unroll_steps: int) -> Batch:
    legal, ended, known = rules_targets(segments, positions, unroll_steps)
    return replace(batch, target_legal=legal, target_terminal=ended, rules_mask=known)


def rules_targets(
    segments: Sequence[Segment], positions: np.ndarray, unroll_steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The targets of ``network.rules_heads`` at positions t..t+K of each example: legal
    actions (B, K+1, A), episode ended (B, K+1) and the (B, K+1) mask of those known.
    Inside the segment they are the stored legal masks and "not ended"; past the end of
    an episode that terminated, the state is absorbing: ended, with no legal action;
    past the end of one that goes on (a time limit, or the next segment), unknown."""
    positions = np.asarray(positions, dtype=np.int64)
    num_actions = segments[0].legal_masks.shape[1]
    legal = np.zeros((len(segments), unroll_steps + 1, num_actions), dtype=bool)
    ended = np.zeros((len(segments), unroll_steps + 1), dtype=bool)
    known = np.zeros((len(segments), unroll_steps + 1), dtype=bool)
    offsets = np.arange(unroll_steps + 1)
    for b, (segment, start) in enumerate(zip(segments, positions)):
        at = int(start) + offsets
        inside = at < segment.num_steps
        legal[b, inside] = segment.legal_masks[at[inside]]
        known[b] = inside | segment.terminated
        ended[b] = ~inside & segment.terminated
    return legal, ended, known


def next_observation_targets(
    segments: Sequence[Segment], positions: np.ndarray, unroll_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """(B, K, *stacked_shape) stacked observations at positions t+1..t+K of each example and
    the (B, K) mask of those inside the segment. The observation after a segment's last step
    is not stored (the state there is terminal or the next segment's), so it is masked, as
    every later one; masked rows are zeros."""
    positions = np.asarray(positions, dtype=np.int64)
    stacked_shape = segments[0].stacked_observation(0).shape
    following = np.zeros((len(segments), unroll_steps, *stacked_shape), dtype=segments[0].observations.dtype)
    mask = np.zeros((len(segments), unroll_steps), dtype=bool)
    offsets = np.arange(1, unroll_steps + 1)
    for b, (segment, start) in enumerate(zip(segments, positions)):
        at = int(start) + offsets
        at = at[at < segment.num_steps]
        if not at.size:
            continue
        frames = segment.observations[at[:, None] + np.arange(segment.frame_stack)]  # (n, fs, *obs_shape)
        following[b, : at.size] = frames.reshape(at.size, *stacked_shape)
        mask[b, : at.size] = True
    return following, mask


def batch_from_sample(
    sampled,
    training: TrainingConfig,
    frame_stack: int,
    rng: np.random.Generator,
    bootstrap_observations: bool = False,
    rules: bool = False,
) -> Batch[np.ndarray]:
    """The training batch of a store's draw (a ``SampledBatch``), the same wherever it is made:
    in the replay service for the wire, in local mode for the learner directly.

    ``bootstrap_observations`` adds the terms a learner's target network needs to
    re-value the bootstrap targets (``training.bootstrap = "target_network"``).
    ``training.consistency_loss_weight > 0`` adds the unrolled positions' observations,
    ``rules`` (``network.rules_heads``) their legal moves and episode ends.
    ``training.augment = "d4"`` puts each example under a random board symmetry
    (the bootstrap terms stay as stored: a value does not change with it)."""
    batch = make_batch(
        sampled.segments,
        sampled.positions,
        training.unroll_steps,
        training.td_steps,
        training.discount,
        frame_stack,
        rng,
        weights=sampled.weights,
        observations=sampled.observations,
        next_observations=training.consistency_loss_weight > 0,
        rules=rules,
    )
    terms = None
    if bootstrap_observations:
        terms = bootstrap_terms(
            sampled.segments, sampled.positions, training.unroll_steps, training.td_steps, training.discount
        )
    versions = np.array([s.model_version for s in sampled.segments], dtype=np.int64)
    batch = replace(batch, keys=sampled.keys, model_versions=versions, bootstrap=terms)
    if training.augment == "d4":
        from muzero.learning.augment import augment_d4  # it builds on Batch

        batch = augment_d4(batch, rng)
    return batch


def ownership_targets(segments: Sequence[Segment], positions: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(B, P) ownership targets from the view of the player to move at each example's start,
    and the (B,) mask of those known; None when no segment knows its episode's end."""
    known = [s.final_ownership is not None for s in segments]
    if not any(known):
        return None
    points = next(s.final_ownership for s in segments if s.final_ownership is not None).shape[0]
    ownership = np.zeros((len(segments), points), dtype=np.float32)
    for b, (segment, start) in enumerate(zip(segments, positions)):
        if segment.final_ownership is not None:
            sign = 1.0 if segment.to_play[start] == 0 else -1.0
            ownership[b] = sign * segment.final_ownership
    return ownership, np.array(known, dtype=bool)


def _batch(observations, targets, weights, segments, positions) -> Batch:
    ownership = ownership_targets(segments, positions)
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
        target_ownership=None if ownership is None else ownership[0],
        ownership_mask=None if ownership is None else ownership[1],
    )
