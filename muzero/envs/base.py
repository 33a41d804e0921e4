"""The two-player board-game interface, vectorised over N games.

A game is a set of pure functions over a batch of states held in numpy
arrays: no per-game Python objects, so self-play, AlphaZero-style search and
evaluation all step thousands of positions per call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np


class BoardGame(Protocol):
    name: str
    num_actions: int
    observation_shape: tuple[int, ...]  # (C, H, W) planes, from the mover's point of view
    state_shape: tuple[int, ...]  # trailing shape of one state in ``states`` arrays

    def initial_states(self, n: int) -> np.ndarray:
        """(n, *state_shape) fresh games."""

    def to_play(self, states: np.ndarray) -> np.ndarray:
        """(n,) int8 player to move: 0 or 1."""

    def legal_mask(self, states: np.ndarray) -> np.ndarray:
        """(n, num_actions) bool; all False at terminal states."""

    def step(self, states: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Play one move in every game: (next_states, reward for the mover, terminal).

        The reward is +1 for a winning move, 0 otherwise (a draw ends at 0).
        Illegal actions raise ValueError naming the games.
        """

    def observe(self, states: np.ndarray) -> np.ndarray:
        """(n, *observation_shape) float32 planes from the point of view of the player to move."""

    def render(self, state: np.ndarray) -> str:
        """A human-readable board for one state."""


def refuse_illegal_moves(finished: Any, illegal: Any, describe: Callable[[np.ndarray], str], prefix: str = "") -> None:
    """Raise one ValueError naming every bad game of a batched step, or return if there is none.

    ``finished`` and ``illegal`` are (n,) bool arrays (illegal excludes finished games);
    ``describe(games)`` says what the ``illegal`` games did, e.g. "play on occupied cells [4]"."""
    if not finished.any() and not illegal.any():
        return
    problems = []
    if finished.any():
        problems.append(f"games {np.flatnonzero(finished).tolist()} are already finished")
    if illegal.any():
        games = np.flatnonzero(illegal)
        problems.append(f"games {games.tolist()} {describe(games)}")
    raise ValueError(prefix + "illegal moves: " + "; ".join(problems))
