"""Connect Four on the standard 6 x 7 board, vectorised over N games.

State encoding: ``states`` is an (n, 6, 7) int8 array, one board per game,
``states[i, row, column]`` with row 0 at the bottom (stones fall towards it):

- 0: empty, 1: a stone of player 0 (X), 2: a stone of player 1 (O).

Player 0 moves first, so the player to move follows from the stone count, and
a column's height is its stone count: the state is the board and nothing else.

Actions are columns 0-6, named "a" to "g" (the letters under the rendered
board). A move into a full column, out of range or in a finished game raises
ValueError naming the games. A player who completes four in a row
(horizontally, vertically or diagonally) wins and the move pays +1; a full
board with no line is a draw.

Observation: (n, 3, 6, 7) float32 planes from the point of view of the player
to move: [mover's stones, opponent's stones, a constant plane equal to the
mover's index], as for tic-tac-toe.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from muzero.envs.base import refuse_illegal_moves
from muzero.envs.registry import register_game

ROWS, COLUMNS = 6, 7
EMPTY, PLAYER0_STONE, PLAYER1_STONE = 0, 1, 2
NO_WINNER = -1
COLUMN_NAMES = "abcdefg"


# Four in a row is found on bitboards (John Tromp's layout): bit 7 * column + row holds
# a player's stone, bit 7 * column + 6 stays empty so no line wraps from one column
# to the next. A line of four along a direction of bit step d exists where
# b & b>>d & b>>2d & b>>3d is non-zero: vertical d = 1, horizontal 7, diagonals 6 and 8.
_BIT_OF_CELL = (np.int64(1) << (7 * np.arange(COLUMNS)[None, :] + np.arange(ROWS)[:, None])).reshape(-1)
_LINE_STEPS = np.array([1, 7, 6, 8], dtype=np.int64)[:, None]  # (4, 1): all four directions in one pass


def check_states(states: Any, argument: str = "states") -> np.ndarray:
    """Return ``states`` as an (n, 6, 7) array, or raise naming what is wrong and which games."""
    if not isinstance(states, np.ndarray):
        raise TypeError(f"{argument} must be a numpy array, got {type(states).__name__}")
    if states.ndim != 3 or states.shape[1:] != (ROWS, COLUMNS):
        raise ValueError(f"{argument} must have shape (n, {ROWS}, {COLUMNS}), got {states.shape}")
    if not np.issubdtype(states.dtype, np.integer):
        raise TypeError(f"{argument} must have an integer dtype, got {states.dtype}")
    if not states.size:
        return states
    # Cheap whole-batch checks first; the per-game ones only to name the games at fault.
    if states.min() < EMPTY or states.max() > PLAYER1_STONE:
        bad = ((states < EMPTY) | (states > PLAYER1_STONE)).any(axis=(1, 2))
        raise ValueError(f"{argument}: cells must be 0, 1 or 2; games {np.flatnonzero(bad).tolist()} are not")
    cells = states.reshape(states.shape[0], ROWS * COLUMNS)
    lead = (cells == PLAYER0_STONE).sum(axis=1) - (cells == PLAYER1_STONE).sum(axis=1)
    bad = (lead != 0) & (lead != 1)
    if bad.any():
        raise ValueError(
            f"{argument}: games {np.flatnonzero(bad).tolist()} are not positions of play "
            "(X stones minus O stones must be 0 or 1)"
        )
    occupied = states != EMPTY
    floating = occupied[:, 1:] & ~occupied[:, :-1]  # a stone above an empty cell
    if floating.any():
        games = np.flatnonzero(floating.any(axis=(1, 2)))
        raise ValueError(f"{argument}: games {games.tolist()} have stones above empty cells")
    return states


# Unchecked rules, shared by the public methods (which validate their input once).


def _to_play(states: np.ndarray) -> np.ndarray:
    return (np.count_nonzero(states, axis=(1, 2)) % 2).astype(np.int8)


def _has_line(states: np.ndarray, stone: np.ndarray | int) -> np.ndarray:
    """(n,) bool: the player whose stone code is ``stone`` (scalar or (n,)) has four in a row."""
    stone = np.asarray(stone).reshape(-1, 1)
    bits = (states.reshape(states.shape[0], ROWS * COLUMNS) == stone) @ _BIT_OF_CELL  # (n,) int64 bitboards
    pairs = bits & (bits >> _LINE_STEPS)  # (4, n)
    return ((pairs & (pairs >> (2 * _LINE_STEPS))) != 0).any(axis=0)


def _outcome(states: np.ndarray) -> np.ndarray:
    player0_won = _has_line(states, PLAYER0_STONE)
    player1_won = _has_line(states, PLAYER1_STONE)
    return np.where(player0_won, 0, np.where(player1_won, 1, NO_WINNER)).astype(np.int8)


def _board_full(states: np.ndarray) -> np.ndarray:
    return (states[:, ROWS - 1] != EMPTY).all(axis=1)  # stones stack, so a full top row is a full board


def _is_terminal(states: np.ndarray) -> np.ndarray:
    return (_outcome(states) != NO_WINNER) | _board_full(states)


@register_game("connect4", aliases=("connect_four",), move_names=tuple(COLUMN_NAMES))
class ConnectFour:
    """The rules of Connect Four as pure functions over batches of states (BoardGame)."""

    name = "connect4"
    num_actions = COLUMNS
    observation_shape: tuple[int, ...] = (3, ROWS, COLUMNS)
    state_shape: tuple[int, ...] = (ROWS, COLUMNS)

    def initial_states(self, n: int) -> np.ndarray:
        """(n, 6, 7) int8 empty boards."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return np.zeros((n, ROWS, COLUMNS), dtype=np.int8)

    def to_play(self, states: np.ndarray) -> np.ndarray:
        """(n,) int8 player to move: 0 when the stone count is even, else 1."""
        return _to_play(check_states(states))

    def outcome(self, states: np.ndarray) -> np.ndarray:
        """(n,) int8: the winner's index (0 or 1), or -1 when nobody has four in a row
        (a draw or an unfinished game; tell them apart with :meth:`is_terminal`)."""
        return _outcome(check_states(states))

    def is_terminal(self, states: np.ndarray) -> np.ndarray:
        """(n,) bool: somebody has four in a row or the board is full."""
        return _is_terminal(check_states(states))

    def legal_mask(self, states: np.ndarray) -> np.ndarray:
        """(n, 7) bool: columns with room left in unfinished games (all False once a game is over)."""
        states = check_states(states)
        return (states[:, ROWS - 1] == EMPTY) & ~_is_terminal(states)[:, None]

    def step(self, states: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Drop one stone in every game.

        Returns (next_states (n, 6, 7) int8, reward (n,) float32 for the mover: +1
        for a winning move, 0 otherwise, terminal (n,) bool). Raises ValueError
        naming the games whose move is out of range, into a full column, or in a
        finished game; ``states`` is never modified.
        """
        states = check_states(states)
        actions = np.asarray(actions)
        n = states.shape[0]
        if actions.shape != (n,):
            raise ValueError(f"actions must have shape ({n},) to match states, got {actions.shape}")
        if actions.size and not np.issubdtype(actions.dtype, np.integer):
            raise TypeError(f"actions must have an integer dtype, got {actions.dtype}")
        out_of_range = (actions < 0) | (actions >= COLUMNS)
        if out_of_range.any():
            games = np.flatnonzero(out_of_range)
            raise ValueError(
                f"actions must be columns in [0, {COLUMNS}); games {games.tolist()} got {actions[games].tolist()}"
            )
        games = np.arange(n)
        heights = np.count_nonzero(states, axis=1)  # (n, 7) stones per column
        landing_row = heights[games, actions]
        finished = _is_terminal(states)
        full = (landing_row >= ROWS) & ~finished
        refuse_illegal_moves(finished, full, lambda g: f"play into full columns {actions[g].tolist()}")

        mover = _to_play(states)
        next_states = states.astype(np.int8, copy=True)
        next_states[games, landing_row, actions] = mover + 1  # the mover's stone code
        # The position before was not won, so only the mover can have a line now.
        won = _has_line(next_states, mover + 1)
        reward = won.astype(np.float32)
        terminal = won | _board_full(next_states)
        return next_states, reward, terminal

    def observe(self, states: np.ndarray) -> np.ndarray:
        """(n, 3, 6, 7) float32 planes: [mover's stones, opponent's stones, mover index]."""
        states = check_states(states)
        mover = _to_play(states)[:, None, None]
        planes = np.empty((states.shape[0], 3, ROWS, COLUMNS), dtype=np.float32)
        planes[:, 0] = states == mover + 1
        planes[:, 1] = states == 2 - mover
        planes[:, 2] = mover
        return planes

    def render(self, state: np.ndarray) -> str:
        """The board of one (6, 7) state, top row first: X, O and . for empty, the
        column names a-g (what a player types) underneath, then who is to move or
        how the game ended."""
        state = np.asarray(state)
        if state.shape != (ROWS, COLUMNS):
            raise ValueError(f"state must have shape ({ROWS}, {COLUMNS}), got {state.shape}")
        batch = check_states(state[None], "state")
        marks = {EMPTY: ".", PLAYER0_STONE: "X", PLAYER1_STONE: "O"}
        lines = [" " + " ".join(marks[int(cell)] for cell in state[row]) for row in reversed(range(ROWS))]
        lines.append(" " + " ".join(COLUMN_NAMES))
        winner = int(_outcome(batch)[0])
        if winner != NO_WINNER:
            lines.append(f"{'XO'[winner]} wins")
        elif _board_full(batch)[0]:
            lines.append("draw")
        else:
            lines.append(f"{'XO'[int(_to_play(batch)[0])]} to play")
        return "\n".join(lines)
