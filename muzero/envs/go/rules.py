"""Go's rules over N boards at once: Tromp-Taylor with komi and positional superko.

The rules (https://tromp.github.io/go.html), with the options named:

- Players alternate, Black first; a move is a stone on an empty point or a pass.
- After a stone is placed, opponent groups without liberties are removed, then
  the mover's own; removing one's own stones (suicide) is illegal unless
  ``suicide=True``.
- ``superko="positional"`` (default): no move may recreate a board that occurred
  before in the game (Tromp-Taylor's rule; simple ko is the shortest case).
  ``superko="simple"``: only the immediate recapture of a single stone is
  forbidden (OpenSpiel's and GNU Go's default; used to compare with them).
- The game ends after two consecutive passes, or after ``move_cap`` moves
  (default 2 * size * size, passes counted), or when a player resigns.
- Score: each player's stones plus the empty regions reaching only their
  stones; White adds ``komi`` (default 7.5). The higher score wins; equal is a
  draw (only with an integer komi).

States are int64 rows laid out as :mod:`muzero.envs.go.layout` says (two
bitboards, the game's counters, the history of positions); actions
are points ``row * size + column`` (row 0 at the bottom) and ``size * size`` for
a pass. ``step``'s reward goes to the mover of the final move: +1 if that player
won, -1 if they lost, 0 for a draw and before the end.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from muzero.envs.base import refuse_illegal_moves
from muzero.envs.go import kernels
from muzero.envs.go.coords import COLUMN_LETTERS, check_size, vertex_name
from muzero.envs.go.layout import BLOOM_WORDS, HISTORY_MOVES, Layout

SUPERKO_RULES = ("positional", "simple")
NUM_PLANES = 7 + HISTORY_MOVES
"""Observation planes: see :meth:`GoRules.observe`."""
KOMI_SCALE = 15.0
"""Komi enters the network divided by this, as KataGo scales it (about one unit)."""

_ERROR_REASONS = {
    kernels.ERR_OCCUPIED: "play on an occupied point",
    kernels.ERR_SUICIDE: "play suicide (suicide=False)",
    kernels.ERR_KO: "retake a ko at once",
    kernels.ERR_SUPERKO: "repeat an earlier position (positional superko)",
}


def zobrist_table(points: int) -> np.ndarray:
    """(points, 2) int64 random keys, one per point and colour (Black, White); fixed per size."""
    rng = np.random.default_rng(0x60 + points)
    return rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, size=(points, 2), dtype=np.int64)


def _groups(board: np.ndarray) -> list[tuple[int, list[tuple[int, int]], int]]:
    """(colour, stones, liberty count) of every group of ``board`` (set-up positions only)."""
    size = board.shape[0]
    seen = np.zeros(board.shape, dtype=bool)
    found = []
    for start in zip(*np.nonzero(board)):
        if seen[start]:
            continue
        color, stack, stones, liberties = board[start], [start], [], set()
        seen[start] = True
        while stack:
            row, column = stack.pop()
            stones.append((int(row), int(column)))
            for r, c in ((row - 1, column), (row + 1, column), (row, column - 1), (row, column + 1)):
                if 0 <= r < size and 0 <= c < size:
                    if board[r, c] == 0:
                        liberties.add((r, c))
                    elif board[r, c] == color and not seen[r, c]:
                        seen[r, c] = True
                        stack.append((r, c))
        found.append((int(color), stones, len(liberties)))
    return found


def _board_ownership(board: np.ndarray) -> np.ndarray:
    """(size, size) of 0/1/2 -> float32 +1 where Black owns the point under Tromp-Taylor
    (a stone, or empty and reaching Black only), -1 for White, 0 for neither."""
    size = board.shape[0]
    owner = np.where(board == 1, 1.0, np.where(board == 2, -1.0, 0.0)).astype(np.float32)
    seen = board != 0
    for start in zip(*np.nonzero(board == 0)):
        if seen[start]:
            continue
        region, stack, reaches = [start], [start], set()
        seen[start] = True
        while stack:
            row, column = stack.pop()
            for r, c in ((row - 1, column), (row + 1, column), (row, column - 1), (row, column + 1)):
                if 0 <= r < size and 0 <= c < size:
                    if board[r, c] != 0:
                        reaches.add(int(board[r, c]))
                    elif not seen[r, c]:
                        seen[r, c] = True
                        stack.append((r, c))
                        region.append((r, c))
        if len(reaches) == 1:
            value = 1.0 if reaches == {1} else -1.0
            rows, columns = zip(*region)
            owner[list(rows), list(columns)] = value
    return owner


class GoRules:
    """Go on ``size`` x ``size`` boards as pure functions over batches of states (BoardGame)."""

    def __init__(
        self,
        size: int = 9,
        komi: float = 7.5,
        *,
        suicide: bool = False,
        superko: str = "positional",
        move_cap: int | None = None,
    ):
        self.size = check_size(size)
        if isinstance(komi, bool) or not isinstance(komi, (int, float)) or not math.isfinite(komi):
            raise ValueError(f"komi must be a finite number, got {komi!r}")
        if superko not in SUPERKO_RULES:
            raise ValueError(f"superko must be one of {', '.join(SUPERKO_RULES)}, got {superko!r}")
        if not isinstance(suicide, bool):
            raise ValueError(f"suicide must be true or false, got {suicide!r}")
        self.points = self.size * self.size
        if move_cap is None:
            move_cap = 2 * self.points
        if isinstance(move_cap, bool) or not isinstance(move_cap, int) or move_cap < 1:
            raise ValueError(f"move_cap must be an integer >= 1, got {move_cap!r}")
        self.komi = float(komi)
        self.suicide = suicide
        self.superko = superko
        self.move_cap = move_cap
        self.name = f"go{self.size}"
        self.num_actions = self.points + 1
        self.pass_action = self.points
        self.observation_shape: tuple[int, ...] = (NUM_PLANES, self.size, self.size)
        self.layout = Layout(self.size, move_cap)
        self.state_shape: tuple[int, ...] = (self.layout.length,)
        self.fields = self.layout.offsets
        self._words = self.layout.words
        self._on_board = self.layout.on_board()
        self._bit_of_point = self.layout.bit_of_point()
        self._point_of_bit = self.layout.point_of_bit()
        self._zobrist = zobrist_table(self.points)
        self._zobrist_bits = np.zeros((self._words * 64, 2), dtype=np.int64)
        self._zobrist_bits[self._bit_of_point] = self._zobrist

    def __repr__(self) -> str:
        return (
            f"GoRules(size={self.size}, komi={self.komi}, suicide={self.suicide}, "
            f"superko={self.superko!r}, move_cap={self.move_cap})"
        )

    # --- checking input ----------------------------------------------------------------

    def check_states(self, states: Any, argument: str = "states") -> np.ndarray:
        """``states`` as a C-contiguous (n, L) int64 array, or raise naming what is wrong."""
        if not isinstance(states, np.ndarray):
            raise TypeError(f"{argument} must be a numpy array, got {type(states).__name__}")
        if states.ndim != 2 or states.shape[1:] != self.state_shape:
            raise ValueError(f"{argument} must have shape (n, {self.state_shape[0]}) for {self!r}, got {states.shape}")
        if not np.issubdtype(states.dtype, np.integer):
            raise TypeError(f"{argument} must have an integer dtype, got {states.dtype}")
        states = np.ascontiguousarray(states, dtype=np.int64)
        check = kernels.first_invalid_parallel if states.shape[0] >= kernels.PARALLEL_FROM else kernels.first_invalid
        if check(states, self._words, self._on_board, self.move_cap, self.points) >= 0:
            self._name_invalid(states, argument)
        return states

    def _name_invalid(self, states: np.ndarray, argument: str) -> None:
        """Raise ValueError naming what is wrong with ``states`` and in which games."""
        f = self.fields
        words = self._words
        bitboards = states[:, : 2 * words].view(np.uint64).reshape(-1, 2, words)
        off_board = (bitboards & ~self._on_board).any(axis=(1, 2))
        overlap = (bitboards[:, 0] & bitboards[:, 1]).any(axis=1)
        atari = states[:, 2 * words : 4 * words].view(np.uint64).reshape(-1, 2, words)
        stoneless_atari = (atari & ~bitboards).any(axis=(1, 2))
        for bad, what in (
            (off_board, "stones on bits that are not points"),
            (overlap, "points both Black and White"),
            (stoneless_atari, "atari bits where that colour has no stone"),
        ):
            if bad.any():
                raise ValueError(f"{argument}: games {np.flatnonzero(bad).tolist()} have {what}")
        checks = (
            ("the player to move must be 0 or 1", states[:, f["TO_PLAY"]], 0, 1),
            ("consecutive passes must be 0, 1 or 2", states[:, f["PASSES"]], 0, 2),
            (f"moves played must be in [0, {self.move_cap}]", states[:, f["MOVES"]], 0, self.move_cap),
            (f"the ko point must be in [-1, {self.points})", states[:, f["KO"]], -1, self.points - 1),
            ("the status must be in [0, 4]", states[:, f["STATUS"]], 0, 4),
        )
        for what, values, low, high in checks:
            bad = (values < low) | (values > high)
            if bad.any():
                raise ValueError(f"{argument}: {what}; games {np.flatnonzero(bad).tolist()} are not valid Go states")
        raise AssertionError("first_invalid found a bad state that no check names")  # the two checks disagree

    def _check_actions(self, actions: Any, n: int) -> np.ndarray:
        actions = np.asarray(actions)
        if actions.shape != (n,):
            raise ValueError(f"actions must have shape ({n},) to match states, got {actions.shape}")
        if actions.size and not np.issubdtype(actions.dtype, np.integer):
            raise TypeError(f"actions must have an integer dtype, got {actions.dtype}")
        out_of_range = (actions < 0) | (actions > self.points)
        if out_of_range.any():
            games = np.flatnonzero(out_of_range)
            raise ValueError(
                f"actions must be points in [0, {self.points}) or the pass {self.points}; "
                f"games {games.tolist()} got {actions[games].tolist()}"
            )
        return actions.astype(np.int64, copy=False)

    # --- the BoardGame interface ---------------------------------------------------------

    def initial_states(self, n: int) -> np.ndarray:
        """(n, L) empty boards, Black to move."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        states = np.zeros((n, self.state_shape[0]), dtype=np.int64)
        f = self.fields
        states[:, f["KO"]] = -1
        states[:, f["LAST_MOVES"] : f["LAST_MOVES"] + HISTORY_MOVES] = -1
        self._record_position(states)
        return states

    def _record_position(self, states: np.ndarray) -> None:
        """Set HASH from the board and make it the history's position after move MOVES
        (the start of a game, or a position set up by hand)."""
        f = self.fields
        boards = self._cells(states)
        keys = np.where(boards == 1, self._zobrist[:, 0], np.where(boards == 2, self._zobrist[:, 1], 0))
        hashes = np.bitwise_xor.reduce(keys, axis=1)
        states[:, f["HASH"]] = hashes
        rows = np.arange(states.shape[0])
        states[rows, f["HISTORY"] + states[:, f["MOVES"]]] = hashes
        for shift in kernels.BLOOM_SHIFTS:
            bits = (hashes >> shift) & (BLOOM_WORDS * 64 - 1)
            states[rows, f["BLOOM"] + (bits >> 6)] |= np.left_shift(np.int64(1), bits & 63)

    def to_play(self, states: np.ndarray) -> np.ndarray:
        """(n,) int8 player to move: 0 Black, 1 White."""
        return self.check_states(states)[:, self.fields["TO_PLAY"]].astype(np.int8)

    def legal_mask(self, states: np.ndarray) -> np.ndarray:
        """(n, points + 1) bool: empty points that are neither suicide (unless allowed) nor
        a repetition the ko rule forbids, and the pass; all False once a game is over."""
        states = self.check_states(states)
        masks = np.empty((states.shape[0], self.num_actions), dtype=np.bool_)
        kernel = kernels.legal_kernel_parallel if states.shape[0] >= kernels.PARALLEL_FROM else kernels.legal_kernel
        kernel(
            states,
            masks,
            self._words,
            self.layout.stride,
            self._on_board,
            self._point_of_bit,
            self._zobrist_bits,
            self.suicide,
            self.superko == "positional",
        )
        return masks

    def step(self, states: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Play one move in every game: (next_states, reward for the mover, terminal).

        Raises ValueError naming every game whose move is illegal (and why) or whose
        game is over; ``states`` is never modified."""
        states = self.check_states(states)
        n = states.shape[0]
        actions = self._check_actions(actions, n)
        out = np.empty_like(states)
        errors = np.empty(n, dtype=np.int64)
        rewards = np.empty(n, dtype=np.float32)
        kernel = kernels.step_kernel_parallel if n >= kernels.PARALLEL_FROM else kernels.step_kernel
        kernel(
            states,
            actions,
            out,
            errors,
            rewards,
            self._words,
            self.layout.stride,
            self._on_board,
            self._bit_of_point,
            self._point_of_bit,
            self._zobrist_bits,
            self.suicide,
            self.superko == "positional",
            self.move_cap,
            self.komi,
        )
        if errors.any():
            finished = errors == kernels.ERR_FINISHED
            illegal = errors > kernels.ERR_FINISHED

            def describe(games: np.ndarray) -> str:
                parts = []
                for code, reason in _ERROR_REASONS.items():
                    moves = [vertex_name(int(actions[g]), self.size) for g in games[errors[games] == code]]
                    if moves:
                        parts.append(f"{reason} ({', '.join(moves)})")
                return "; ".join(parts)

            refuse_illegal_moves(finished, illegal, describe, prefix=f"{self.name}: ")
        return out, rewards, out[:, self.fields["STATUS"]] != kernels.PLAYING

    def observe(self, states: np.ndarray) -> np.ndarray:
        """(n, NUM_PLANES, size, size) float32 planes from the point of view of the player to move:

        0. the mover's stones;  1. the opponent's stones;
        2 .. 2 + HISTORY_MOVES - 1. the point of each of the last moves, newest first
           (all zero for a pass or before the start);
        then: the simple-ko point; ones (the board's extent, for zero-padded convolutions);
        the mover is White (constant); komi from the mover's side / KOMI_SCALE (constant:
        + for White, - for Black); the last move was a pass (constant).
        """
        states = self.check_states(states)
        f = self.fields
        n, size, points = states.shape[0], self.size, self.points
        planes = np.zeros((n, NUM_PLANES, points), dtype=np.float32)
        mover = states[:, f["TO_PLAY"], None]
        boards = self._cells(states)
        planes[:, 0] = boards == mover + 1
        planes[:, 1] = boards == 2 - mover
        rows = np.arange(n)
        for i in range(HISTORY_MOVES):
            move = states[:, f["LAST_MOVES"] + i]
            on_board = (move >= 0) & (move < points)
            planes[rows[on_board], 2 + i, move[on_board]] = 1.0
        ko = states[:, f["KO"]]
        planes[rows[ko >= 0], 2 + HISTORY_MOVES, ko[ko >= 0]] = 1.0
        planes[:, 3 + HISTORY_MOVES] = 1.0
        white = mover[:, 0] == 1
        planes[:, 4 + HISTORY_MOVES] = white[:, None]
        planes[:, 5 + HISTORY_MOVES] = np.where(white, self.komi, -self.komi)[:, None] / KOMI_SCALE
        planes[:, 6 + HISTORY_MOVES] = (states[:, f["LAST_MOVES"]] == points)[:, None]
        return planes.reshape(n, NUM_PLANES, size, size)

    # --- Go's own questions --------------------------------------------------------------

    def _cells(self, states: np.ndarray) -> np.ndarray:
        """(n, points) int8 of checked states: 0 empty, 1 Black, 2 White."""
        words = np.ascontiguousarray(states[:, : 2 * self._words])
        bits = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")
        black = bits[:, self._bit_of_point]
        white = bits[:, self._words * 64 + self._bit_of_point]
        return (black + 2 * white).astype(np.int8)

    def _set_cells(self, states: np.ndarray, cells: np.ndarray, at: int = 0) -> None:
        """Write (n, points) cells (0/1/2) into the Black and White bitboards of ``states``
        that start at column ``at`` (the board's, or ATARI's)."""
        n = states.shape[0]
        bits = np.zeros((n, 2, self._words * 64), dtype=np.uint8)
        bits[:, 0, self._bit_of_point] = cells == 1
        bits[:, 1, self._bit_of_point] = cells == 2
        packed = np.packbits(bits.reshape(n, -1), axis=1, bitorder="little")
        states[:, at : at + 2 * self._words] = packed.view(np.int64)

    def boards(self, states: np.ndarray) -> np.ndarray:
        """(n, size, size) int8 boards, row 0 at the bottom: 0 empty, 1 Black, 2 White."""
        return self._cells(self.check_states(states)).reshape(-1, self.size, self.size)

    def is_terminal(self, states: np.ndarray) -> np.ndarray:
        return self.check_states(states)[:, self.fields["STATUS"]] != kernels.PLAYING

    def status(self, states: np.ndarray) -> np.ndarray:
        """(n,) int64 kernels.PLAYING, ENDED_BY_PASSES, ENDED_AT_MOVE_CAP, BLACK_RESIGNED or WHITE_RESIGNED."""
        return self.check_states(states)[:, self.fields["STATUS"]].copy()

    def area_difference(self, states: np.ndarray) -> np.ndarray:
        """(n,) int64 Tromp-Taylor area of Black minus White's, without komi."""
        states = self.check_states(states)
        differences = np.empty(states.shape[0], dtype=np.int64)
        kernel = kernels.area_kernel_parallel if states.shape[0] >= kernels.PARALLEL_FROM else kernels.area_kernel
        kernel(states, differences, self._words, self.layout.stride, self._on_board)
        return differences

    def ownership(self, states: np.ndarray) -> np.ndarray:
        """(n, size * size) float32, points in action order: +1 where Black owns the point
        under Tromp-Taylor, -1 White, 0 neither (KataGo's ownership target at a game's end;
        it sums to :meth:`area_difference`). Plain Python: for finished games, not the hot path."""
        boards = self.boards(states)
        return np.stack([_board_ownership(board).reshape(-1) for board in boards]).astype(np.float32)

    def black_margin(self, states: np.ndarray) -> np.ndarray:
        """(n,) float64 Black's area minus White's minus komi: > 0 Black leads."""
        return self.area_difference(states) - self.komi

    def winner(self, states: np.ndarray) -> np.ndarray:
        """(n,) int8 winner of each finished game (0 Black, 1 White), -1 for a draw or a game
        still being played. A resigned game is won by the other player."""
        states = self.check_states(states)
        status = states[:, self.fields["STATUS"]]
        margin = self.black_margin(states)
        by_score = np.where(margin > 0, 0, np.where(margin < 0, 1, -1))
        result = np.where(status == kernels.BLACK_RESIGNED, 1, np.where(status == kernels.WHITE_RESIGNED, 0, by_score))
        return np.where(status == kernels.PLAYING, -1, result).astype(np.int8)

    def resign(self, states: np.ndarray, games: np.ndarray | None = None) -> np.ndarray:
        """New states where the player to move in ``games`` (an (n,) bool mask; default all)
        has resigned; ValueError if one of those games is already over."""
        states = self.check_states(states)
        n = states.shape[0]
        games = np.ones(n, dtype=bool) if games is None else np.asarray(games, dtype=bool)
        if games.shape != (n,):
            raise ValueError(f"games must be an ({n},) bool mask, got shape {games.shape}")
        f = self.fields
        over = games & (states[:, f["STATUS"]] != kernels.PLAYING)
        if over.any():
            raise ValueError(f"{self.name}: games {np.flatnonzero(over).tolist()} are already over")
        out = states.copy()
        out[games, f["STATUS"]] = kernels.BLACK_RESIGNED + states[games, f["TO_PLAY"]]
        return out

    def prisoners(self, states: np.ndarray) -> np.ndarray:
        """(n, 2) int64 stones captured by Black and by White."""
        c = self.fields["CAPTURES"]
        return self.check_states(states)[:, c : c + 2].copy()

    def from_board(self, board: Any, to_play: int = 0) -> np.ndarray:
        """A (1, L) state with ``board`` ((size, size) of 0/1/2, row 0 at the bottom) and
        ``to_play`` to move, its history starting there (for set-up positions)."""
        board = np.asarray(board)
        if board.shape != (self.size, self.size):
            raise ValueError(f"board must have shape ({self.size}, {self.size}), got {board.shape}")
        if not np.isin(board, (0, 1, 2)).all():
            raise ValueError("board points must be 0 (empty), 1 (Black) or 2 (White)")
        if to_play not in (0, 1):
            raise ValueError(f"to_play must be 0 (Black) or 1 (White), got {to_play!r}")
        groups = _groups(board)
        breathless = [stones[0] for _, stones, liberties in groups if liberties == 0]
        if breathless:
            names = ", ".join(vertex_name(row * self.size + column, self.size) for row, column in breathless)
            raise ValueError(f"board is not a position of play: the groups of {names} have no liberty")
        in_atari = np.zeros(self.points, dtype=np.int8)
        for color, stones, liberties in groups:
            if liberties == 1:
                for row, column in stones:
                    in_atari[row * self.size + column] = color
        state = self.initial_states(1)
        f = self.fields
        state[0, f["HISTORY"]] = 0
        state[0, f["BLOOM"] : f["BLOOM"] + BLOOM_WORDS] = 0
        self._set_cells(state, board.reshape(1, -1))
        self._set_cells(state, in_atari.reshape(1, -1), at=f["ATARI"])
        state[0, f["TO_PLAY"]] = to_play
        self._record_position(state)
        return state

    def score_text(self, state: np.ndarray) -> str:
        """GTP's result of one finished or running game: "B+3.5", "W+R", "0" (a draw)."""
        states = self.check_states(np.asarray(state).reshape(1, -1), "state")
        status = int(states[0, self.fields["STATUS"]])
        if status in (kernels.BLACK_RESIGNED, kernels.WHITE_RESIGNED):
            return "W+R" if status == kernels.BLACK_RESIGNED else "B+R"
        margin = float(self.black_margin(states)[0])
        if margin == 0:
            return "0"
        return f"{'B' if margin > 0 else 'W'}+{abs(margin):g}"

    def render(self, state: np.ndarray) -> str:
        """One board as text, top row first: X Black, O White, . empty, the last move in
        parentheses; column letters underneath; then who moves or how the game ended."""
        states = self.check_states(np.asarray(state).reshape(1, -1), "state")
        row_state = states[0]
        board_cells = self._cells(states)[0]
        f = self.fields
        size = self.size
        last = int(row_state[f["LAST_MOVES"]])
        marks = {0: ".", 1: "X", 2: "O"}
        width = len(str(size))
        lines = []
        for row in reversed(range(size)):
            cells = ""
            for column in range(size):
                point = row * size + column
                mark = marks[int(board_cells[point])]
                cells += f"({mark})" if point == last else f" {mark} "
            lines.append(f"{row + 1:>{width}} {cells.rstrip()}")
        lines.append(" " * (width + 1) + "".join(f" {letter} " for letter in COLUMN_LETTERS[:size]).rstrip())
        captured = row_state[f["CAPTURES"] : f["CAPTURES"] + 2]
        lines.append(f"captures: Black {int(captured[0])}, White {int(captured[1])}; komi {self.komi:g}")
        if row_state[f["STATUS"]] == kernels.PLAYING:
            lines.append(f"{'Black' if row_state[f['TO_PLAY']] == 0 else 'White'} to move")
        else:
            lines.append(f"game over: {self.score_text(row_state)}")
        return "\n".join(lines)
