"""Tic-tac-toe: vectorised rules, a perfect minimax player, and a single-game gymnasium Env.

State encoding: ``states`` is an (n, 9) int8 array, one row per game, cells in
row-major order (cell ``3 * row + col`` is action ``3 * row + col``):

- 0: empty, 1: a stone of player 0 (X), 2: a stone of player 1 (O).

Player 0 moves first, so the player to move follows from the piece count
(even: player 0, odd: player 1). The state carries nothing else: every
function here is a pure function of the board.

Observation: (n, 3, 3, 3) float32 planes from the point of view of the player
to move: [mover's stones, opponent's stones, a constant plane equal to the
mover's index (0.0 or 1.0)]. The third plane lets a network tell X from O,
which matters because the first player has the initiative.

Moves are named by their cell number, "0" to "8", as the board shows them.
Opponents: "minimax" (perfect play, also what local mode evaluates against)
besides the free "random" and "uct".
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np

from muzero.envs.base import BoardGame, refuse_illegal_moves
from muzero.envs.players import sample_from_mask
from muzero.envs.registry import register_game

NUM_CELLS = 9
EMPTY, PLAYER0_STONE, PLAYER1_STONE = 0, 1, 2

LINES = np.array(
    [
        [0, 1, 2],
        [3, 4, 5],
        [6, 7, 8],  # rows
        [0, 3, 6],
        [1, 4, 7],
        [2, 5, 8],  # columns
        [0, 4, 8],
        [2, 4, 6],  # diagonals
    ],
    dtype=np.intp,
)
"""(8, 3) cell indices of every winning line."""

NO_WINNER = -1


def check_states(states: Any, argument: str = "states") -> np.ndarray:
    """Return ``states`` as an (n, 9) array, or raise naming what is wrong."""
    if not isinstance(states, np.ndarray):
        raise TypeError(f"{argument} must be a numpy array, got {type(states).__name__}")
    if states.ndim != 2 or states.shape[1] != NUM_CELLS:
        raise ValueError(f"{argument} must have shape (n, {NUM_CELLS}), got {states.shape}")
    if not np.issubdtype(states.dtype, np.integer):
        raise TypeError(f"{argument} must have an integer dtype, got {states.dtype}")
    if states.size and (states.min() < EMPTY or states.max() > PLAYER1_STONE):
        bad = np.flatnonzero(((states < EMPTY) | (states > PLAYER1_STONE)).any(axis=1))
        raise ValueError(f"{argument}: cells must be 0, 1 or 2; games {bad.tolist()} are not")
    lead = (states == PLAYER0_STONE).sum(axis=1) - (states == PLAYER1_STONE).sum(axis=1)
    if ((lead != 0) & (lead != 1)).any():
        bad = np.flatnonzero((lead != 0) & (lead != 1))
        raise ValueError(
            f"{argument}: games {bad.tolist()} are not positions of play (X stones minus O stones must be 0 or 1)"
        )
    return states


# Unchecked rules, shared by the public methods (which validate their input once).


def _to_play(states: np.ndarray) -> np.ndarray:
    return (np.count_nonzero(states, axis=1) % 2).astype(np.int8)


def _outcome(states: np.ndarray) -> np.ndarray:
    cells = states[:, LINES]  # (n, 8, 3)
    player0_won = (cells == PLAYER0_STONE).all(axis=2).any(axis=1)
    player1_won = (cells == PLAYER1_STONE).all(axis=2).any(axis=1)
    return np.where(player0_won, 0, np.where(player1_won, 1, NO_WINNER)).astype(np.int8)


def _is_terminal(states: np.ndarray) -> np.ndarray:
    return (_outcome(states) != NO_WINNER) | (states != EMPTY).all(axis=1)


@register_game(
    "tictactoe",
    aliases=("muzero/TicTacToe-v0",),
    opponents={"minimax": lambda game: MinimaxPlayer(game)},  # a lambda: MinimaxPlayer is defined below
    eval_opponent="minimax",
    move_names=tuple(str(cell) for cell in range(NUM_CELLS)),
)
class TicTacToe:
    """The rules of tic-tac-toe as pure functions over batches of states (BoardGame)."""

    name = "tictactoe"
    num_actions = NUM_CELLS
    observation_shape: tuple[int, ...] = (3, 3, 3)
    state_shape: tuple[int, ...] = (NUM_CELLS,)

    def initial_states(self, n: int) -> np.ndarray:
        """(n, 9) int8 empty boards."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return np.zeros((n, NUM_CELLS), dtype=np.int8)

    def to_play(self, states: np.ndarray) -> np.ndarray:
        """(n,) int8 player to move: 0 when the stone count is even, else 1."""
        return _to_play(check_states(states))

    def outcome(self, states: np.ndarray) -> np.ndarray:
        """(n,) int8: the winner's index (0 or 1), or -1 when nobody has a line
        (a draw or an unfinished game; tell them apart with :meth:`is_terminal`)."""
        return _outcome(check_states(states))

    def is_terminal(self, states: np.ndarray) -> np.ndarray:
        """(n,) bool: somebody has a line or the board is full."""
        return _is_terminal(check_states(states))

    def legal_mask(self, states: np.ndarray) -> np.ndarray:
        """(n, 9) bool: empty cells of unfinished games (all False once a game is over)."""
        states = check_states(states)
        return (states == EMPTY) & ~_is_terminal(states)[:, None]

    def step(self, states: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Play one move in every game.

        Returns (next_states (n, 9) int8, reward (n,) float32 for the mover: +1 for
        a winning move, 0 otherwise, terminal (n,) bool). Raises ValueError naming
        the games whose move is out of range, on an occupied cell, or in a finished
        game; ``states`` is never modified.
        """
        states = check_states(states)
        actions = np.asarray(actions)
        if actions.shape != (states.shape[0],):
            raise ValueError(f"actions must have shape ({states.shape[0]},) to match states, got {actions.shape}")
        if actions.size and not np.issubdtype(actions.dtype, np.integer):
            raise TypeError(f"actions must have an integer dtype, got {actions.dtype}")
        out_of_range = (actions < 0) | (actions >= NUM_CELLS)
        if out_of_range.any():
            games = np.flatnonzero(out_of_range)
            raise ValueError(
                f"actions must be in [0, {NUM_CELLS}); games {games.tolist()} got {actions[games].tolist()}"
            )
        rows = np.arange(states.shape[0])
        finished = _is_terminal(states)
        occupied = states[rows, actions] != EMPTY
        refuse_illegal_moves(finished, occupied & ~finished, lambda g: f"play on occupied cells {actions[g].tolist()}")

        mover = _to_play(states)
        next_states = states.astype(np.int8, copy=True)
        next_states[rows, actions] = mover + 1  # the mover's stone code
        winner = _outcome(next_states)
        reward = (winner == mover).astype(np.float32)
        terminal = (winner != NO_WINNER) | (next_states != EMPTY).all(axis=1)
        return next_states, reward, terminal

    def observe(self, states: np.ndarray) -> np.ndarray:
        """(n, 3, 3, 3) float32 planes: [mover's stones, opponent's stones, mover index]."""
        states = check_states(states)
        mover = _to_play(states)
        own_stone = (mover + 1)[:, None]
        opponent_stone = (2 - mover)[:, None]
        planes = np.empty((states.shape[0], 3, NUM_CELLS), dtype=np.float32)
        planes[:, 0] = states == own_stone
        planes[:, 1] = states == opponent_stone
        planes[:, 2] = mover[:, None]
        return planes.reshape(states.shape[0], 3, 3, 3)

    def render(self, state: np.ndarray) -> str:
        """The board of one (9,) state: X and O stones, empty cells show their action
        number, then a line saying who is to move or how the game ended."""
        state = np.asarray(state)
        if state.shape != (NUM_CELLS,):
            raise ValueError(f"state must have shape ({NUM_CELLS},), got {state.shape}")
        batch = check_states(state[None], "state")
        marks = [("X" if c == PLAYER0_STONE else "O" if c == PLAYER1_STONE else str(i)) for i, c in enumerate(state)]
        rows = [" " + " | ".join(marks[r * 3 : (r + 1) * 3]) for r in range(3)]
        winner = int(_outcome(batch)[0])
        if winner != NO_WINNER:
            status = f"{'XO'[winner]} wins"
        elif _is_terminal(batch)[0]:
            status = "draw"
        else:
            status = f"{'XO'[int(_to_play(batch)[0])]} to play"
        return "\n---+---+---\n".join(rows) + "\n" + status


# --- minimax ---------------------------------------------------------------------------

_CELL_WEIGHTS = 3 ** np.arange(NUM_CELLS, dtype=np.int64)
_NUM_CODES = 3**NUM_CELLS


def _board_codes(states: np.ndarray) -> np.ndarray:
    """(n,) int64 base-3 code of each board: a unique index into the solved tables."""
    return states.astype(np.int64) @ _CELL_WEIGHTS


@dataclass(frozen=True)
class _SolvedTicTacToe:
    """Game-theoretic values and optimal moves of every reachable position, indexed by board code."""

    reachable: np.ndarray  # (3**9,) bool
    value: np.ndarray  # (3**9,) int8, for the player to move; 0 at terminal positions
    optimal: np.ndarray  # (3**9, 9) bool; all False at terminal positions


@functools.lru_cache(maxsize=1)
def _solve_tictactoe() -> _SolvedTicTacToe:
    """Enumerate reachable positions layer by layer (a layer = a stone count), then
    back values up from the last layer: Q(s, a) = reward - value(child), negamax."""
    game = TicTacToe()
    layers = [game.initial_states(1)]
    while True:
        layer = layers[-1]
        parents, actions = np.nonzero(game.legal_mask(layer))
        if parents.size == 0:
            break
        children, _, _ = game.step(layer[parents], actions)
        _, first = np.unique(_board_codes(children), return_index=True)
        layers.append(children[first])

    reachable = np.zeros(_NUM_CODES, dtype=bool)
    value = np.zeros(_NUM_CODES, dtype=np.int8)
    optimal = np.zeros((_NUM_CODES, NUM_CELLS), dtype=bool)
    for layer in reversed(layers):  # children (one more stone) are always solved first
        legal = game.legal_mask(layer)
        q = np.full(legal.shape, -2, dtype=np.int8)  # -2: below any real value, marks illegal moves
        parents, actions = np.nonzero(legal)
        if parents.size:
            children, reward, _ = game.step(layer[parents], actions)
            q[parents, actions] = reward.astype(np.int8) - value[_board_codes(children)]
        best = np.where(legal.any(axis=1), q.max(axis=1), 0).astype(np.int8)
        codes = _board_codes(layer)
        reachable[codes] = True
        value[codes] = best
        optimal[codes] = legal & (q == best[:, None])
    for table in (reachable, value, optimal):
        table.setflags(write=False)
    return _SolvedTicTacToe(reachable, value, optimal)


class MinimaxPlayer:
    """Perfect tic-tac-toe: a uniformly random choice among all value-optimal moves.

    Values follow the search convention (see ``muzero/search/types.py``): the
    return still to come for the player to move, so +1 for a forced win, -1 for
    a forced loss, 0 for a draw, and 0 at finished positions (the winning move's
    reward was already paid).
    """

    def __init__(self, game: BoardGame | None = None):
        game = TicTacToe() if game is None else game
        if not isinstance(game, TicTacToe):
            raise TypeError(f"MinimaxPlayer solves tic-tac-toe only, got {type(game).__name__}")
        self.game = game
        self._solved = _solve_tictactoe()

    def _codes(self, states: np.ndarray) -> np.ndarray:
        codes = _board_codes(check_states(states))
        unreachable = ~self._solved.reachable[codes]
        if unreachable.any():
            raise ValueError(f"states {np.flatnonzero(unreachable).tolist()} cannot arise in play")
        return codes

    def values(self, states: np.ndarray) -> np.ndarray:
        """(n,) float32 game-theoretic value for the player to move."""
        return self._solved.value[self._codes(states)].astype(np.float32)

    def optimal_moves(self, states: np.ndarray) -> np.ndarray:
        """(n, 9) bool: every move that achieves the position's value."""
        return self._solved.optimal[self._codes(states)]

    def act(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return sample_from_mask(self.optimal_moves(states), rng)


class TicTacToeEnv(gymnasium.Env):
    """One game of tic-tac-toe for gymnasium: both players act through ``step``.

    ``step(action)`` places a stone for the player to move and returns that
    mover's reward (+1 for a winning move, else 0). ``info`` carries
    ``to_play`` (who moves next) and ``legal_mask`` (9,) bool. An illegal action
    (an occupied cell, or any move after the game ended) raises ValueError
    rather than being silently punished: self-play must never produce one.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.game = TicTacToe()
        self.observation_space = gymnasium.spaces.Box(0.0, 1.0, shape=self.game.observation_shape, dtype=np.float32)
        self.action_space = gymnasium.spaces.Discrete(NUM_CELLS)
        self._state = self.game.initial_states(1)

    def _info(self) -> dict[str, Any]:
        return {"to_play": int(self.game.to_play(self._state)[0]), "legal_mask": self.game.legal_mask(self._state)[0]}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._state = self.game.initial_states(1)
        return self.game.observe(self._state)[0], self._info()

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an integer in [0, {NUM_CELLS}), got {action!r}")
        self._state, reward, terminal = self.game.step(self._state, np.array([int(action)]))
        return self.game.observe(self._state)[0], float(reward[0]), bool(terminal[0]), False, self._info()

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self.game.render(self._state[0])
        return None
