"""Inputs and outputs of a batched search: plain arrays in frozen dataclasses.

The tree is data, not objects. Everything here is batched over B roots. Values
and rewards follow one sign convention for one- and two-player games alike:

- ``value`` of a state is from the point of view of the player to move there;
- ``reward`` of a transition is received by the player who acted (the parent's
  player to move);
- so Q(s, a) = reward + discount * sign * value(child), sign = +1 when the child
  has the same player to move as s, -1 otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class RootInput:
    prior_logits: np.ndarray  # (B, A) float32
    value: np.ndarray  # (B,) float32, for the player to move at the root
    embedding: Any  # (B, ...) torch.Tensor or np.ndarray; opaque to the search
    legal_mask: np.ndarray  # (B, A) bool
    to_play: np.ndarray  # (B,) int8; all 0 for single-player environments


@dataclass(frozen=True)
class StepOutput:
    """What a step function returns for B (embedding, action) pairs."""

    reward: np.ndarray  # (B,) float32, received by the player who acted
    value: np.ndarray  # (B,) float32, for the player to move at the new state
    prior_logits: np.ndarray  # (B, A) float32
    embedding: Any  # (B, ...) same type and trailing shape as RootInput.embedding
    to_play: np.ndarray  # (B,) int8
    legal_mask: np.ndarray  # (B, A) bool; a learned model returns all True
    terminal: np.ndarray  # (B,) bool; a learned model returns all False


class StepFn(Protocol):
    """The model the search runs in: the learned dynamics, or a game's true rules."""

    def __call__(self, embedding: Any, action: np.ndarray, to_play: np.ndarray) -> StepOutput:
        """Step B parents: ``to_play`` (B,) int8 is the player to move at each parent
        (a learned two-player model needs it to say who moves next)."""


@dataclass(frozen=True)
class SearchResult:
    action: np.ndarray  # (B,) int64, the action to play
    policy_target: np.ndarray  # (B, A) float32, what training distils
    visit_counts: np.ndarray  # (B, A) int32, root children
    q_values: np.ndarray  # (B, A) float32, root children (0 where unvisited)
    root_value: np.ndarray  # (B,) float32, search value for the root's player to move
    num_simulations: int
