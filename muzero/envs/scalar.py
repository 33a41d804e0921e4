"""Run one-game-at-a-time rules through the vectorised BoardGame interface.

Writing vectorised numpy rules is the fast path, but not the easy first step.
A newcomer writes a :class:`ScalarRules` class — plain Python over one state —
wraps it in :class:`ScalarBoardGame`, and registers that; self-play, search,
evaluation and ``muzero play`` then work unchanged. The adapter loops over the
batch in Python, so it is slower by the batch size; vectorise the hot game
later (muzero/envs/games/connect4.py shows how).

States stay object-free: every scalar state *is* a small numeric numpy array
of ``state_shape`` (a tuple or list of numbers converts), so a batch is an
(n, *state_shape) array like any vectorised game's, and copies, masks and
search trees work on it directly. A scalar class whose natural state is an
object encodes it into such an array (OpenSpiel's adapter stores the move
history, see muzero/envs/openspiel.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from muzero.envs.base import refuse_illegal_moves


class ScalarRules(Protocol):
    """The rules of a two-player game over one state at a time.

    Player 0 moves first. ``legal_actions`` is empty exactly when the game is
    over. ``step`` returns the reward for the player who moved (+1 for a
    winning move, 0 otherwise) and whether the game ended; it never sees an
    illegal move (the adapter refuses those first). The methods must not
    modify the state they are given.
    """

    name: str
    num_actions: int
    observation_shape: tuple[int, ...]
    state_shape: tuple[int, ...]
    """Shape of the numeric array every state is; ``state_dtype`` (default int64) its dtype."""

    def initial_state(self) -> np.ndarray:
        """The starting position."""

    def to_play(self, state: np.ndarray) -> int:
        """0 or 1: the player to move."""

    def legal_actions(self, state: np.ndarray) -> Sequence[int]:
        """The actions allowed here; empty once the game is over."""

    def step(self, state: np.ndarray, action: int) -> tuple[np.ndarray, float, bool]:
        """(next state, reward for the mover, terminal) after playing ``action``."""

    def observe(self, state: np.ndarray) -> np.ndarray:
        """``observation_shape`` float planes from the point of view of the player to move."""

    def render(self, state: np.ndarray) -> str:
        """A human-readable board."""


class ScalarBoardGame:
    """A :class:`ScalarRules` game behind the vectorised BoardGame interface."""

    def __init__(self, rules: ScalarRules):
        self.rules = rules
        self.name = rules.name
        self.num_actions = int(rules.num_actions)
        self.observation_shape = tuple(rules.observation_shape)
        self.state_shape = tuple(rules.state_shape)
        self.state_dtype = np.dtype(getattr(rules, "state_dtype", np.int64))

    def _state(self, value, where: str) -> np.ndarray:
        state = np.asarray(value, dtype=self.state_dtype)
        if state.shape != self.state_shape:
            raise ValueError(f"{self.name}: {where} must be a state of shape {self.state_shape}, got {state.shape}")
        return state

    def _check(self, states: np.ndarray) -> np.ndarray:
        if not isinstance(states, np.ndarray):
            raise TypeError(f"states must be a numpy array, got {type(states).__name__}")
        if states.shape[1:] != self.state_shape:
            raise ValueError(f"states must have shape (n, {', '.join(map(str, self.state_shape))}), got {states.shape}")
        return states

    def initial_states(self, n: int) -> np.ndarray:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        first = self._state(self.rules.initial_state(), "initial_state()")
        return np.repeat(first[None], n, axis=0)

    def to_play(self, states: np.ndarray) -> np.ndarray:
        states = self._check(states)
        return np.array([self.rules.to_play(state.copy()) for state in states], dtype=np.int8)

    def legal_mask(self, states: np.ndarray) -> np.ndarray:
        states = self._check(states)
        mask = np.zeros((states.shape[0], self.num_actions), dtype=bool)
        for i, state in enumerate(states):
            mask[i, list(self.rules.legal_actions(state.copy()))] = True
        return mask

    def step(self, states: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        states = self._check(states)
        actions = np.asarray(actions)
        n = states.shape[0]
        if actions.shape != (n,):
            raise ValueError(f"actions must have shape ({n},) to match states, got {actions.shape}")
        if actions.size and not np.issubdtype(actions.dtype, np.integer):
            raise TypeError(f"actions must have an integer dtype, got {actions.dtype}")
        legal = self.legal_mask(states)
        finished = ~legal.any(axis=1)
        in_range = (actions >= 0) & (actions < self.num_actions)
        illegal = ~finished & ~(in_range & legal[np.arange(n), np.clip(actions, 0, self.num_actions - 1)])
        refuse_illegal_moves(
            finished, illegal, lambda g: f"play {actions[g].tolist()}, not legal there", prefix=f"{self.name}: "
        )
        next_states = np.empty_like(states)
        reward = np.zeros(n, dtype=np.float32)
        terminal = np.zeros(n, dtype=bool)
        for i in range(n):
            state, reward[i], terminal[i] = self.rules.step(states[i].copy(), int(actions[i]))
            next_states[i] = self._state(state, f"step() of game {i}")
        return next_states, reward, terminal

    def observe(self, states: np.ndarray) -> np.ndarray:
        states = self._check(states)
        planes = np.empty((states.shape[0], *self.observation_shape), dtype=np.float32)
        for i, state in enumerate(states):
            planes[i] = self.rules.observe(state.copy())
        return planes

    def render(self, state: np.ndarray) -> str:
        return self.rules.render(self._state(state, "state"))
