"""Where each field of a Go state lives in its int64 row, and the bitboards' geometry.

The board is two bitboards (Black's stones, White's) of ``words`` 64-bit words
each. Point (row, column) is bit ``row * stride + column`` with ``stride = size
+ 1``: the spare column of zeros at the right edge stops a shift by one from
wrapping a stone onto the next row, so a group's neighbours are four shifts.
Rows count from the bottom (GTP's "1"); point ``row * size + column`` is the
action that plays there.

One game's state is one row of ``state_length`` int64 values, so a batch is an
(n, L) array that copies, gathers and stores like any other board game's:

======================  =====================================================
``BLACK``, ``WHITE``    ``words`` words each: the bitboards
``ATARI``               ``words`` words for Black, then White: the stones of
                        each colour whose group has exactly one liberty (kept
                        by every move, so a legal-move mask needs no group
                        search to find captures and suicides)
``TO_PLAY``             0 Black, 1 White
``PASSES``              consecutive passes just played (2 ends the game)
``MOVES``               moves played so far, passes included
``KO``                  the point simple ko forbids to the player to move, or -1
``STATUS``              kernels.PLAYING, ENDED_BY_PASSES, ENDED_AT_MOVE_CAP,
                        BLACK_RESIGNED or WHITE_RESIGNED
``HASH``                Zobrist hash of the board (stones only: positional)
``CAPTURES``            2 values: stones Black has captured, stones White has
``LAST_MOVES``          the last HISTORY_MOVES moves, newest first: a point,
                        P (size * size) for a pass, -1 before the game's start
``BLOOM``               BLOOM_WORDS words: a Bloom filter of the hashes below,
                        so the superko test rarely scans the history
``HISTORY``             move_cap + 1 hashes: the board after move 0, 1, ...
======================  =====================================================

The history has room for every position of a game (it ends at the move cap),
so positional superko is exact, not a window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

HISTORY_MOVES = 5
"""Moves of history a state keeps (and the network sees as planes), as KataGo's input does."""
BLOOM_WORDS = 16
"""1,024 filter bits: a 9x9 game's 162 positions fill under 15% of them."""
FIELDS_AFTER_BOARD = 8
"""TO_PLAY, PASSES, MOVES, KO, STATUS, HASH and the two CAPTURES."""


def board_words(size: int) -> int:
    """64-bit words in one bitboard of a ``size`` board."""
    return (size * (size + 1) + 63) // 64


@dataclass(frozen=True)
class Layout:
    size: int
    move_cap: int
    words: int = field(init=False)
    offsets: dict[str, int] = field(init=False)
    length: int = field(init=False)

    def __post_init__(self) -> None:
        words = board_words(self.size)
        fields = 4 * words
        last_moves = fields + FIELDS_AFTER_BOARD
        bloom = last_moves + HISTORY_MOVES
        offsets = {
            "BLACK": 0,
            "WHITE": words,
            "ATARI": 2 * words,
            "TO_PLAY": fields,
            "PASSES": fields + 1,
            "MOVES": fields + 2,
            "KO": fields + 3,
            "STATUS": fields + 4,
            "HASH": fields + 5,
            "CAPTURES": fields + 6,
            "LAST_MOVES": last_moves,
            "BLOOM": bloom,
            "HISTORY": bloom + BLOOM_WORDS,
        }
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "length", offsets["HISTORY"] + self.move_cap + 1)

    @property
    def stride(self) -> int:
        return self.size + 1

    def bit_of_point(self) -> np.ndarray:
        """(P,) int64: the bit index of each point."""
        rows, columns = np.divmod(np.arange(self.size * self.size), self.size)
        return (rows * self.stride + columns).astype(np.int64)

    def point_of_bit(self) -> np.ndarray:
        """(words * 64,) int64: the point of each bit, -1 for bits off the board."""
        table = np.full(self.words * 64, -1, dtype=np.int64)
        table[self.bit_of_point()] = np.arange(self.size * self.size)
        return table

    def on_board(self) -> np.ndarray:
        """(words,) uint64: the bits that are points."""
        bits = np.zeros(self.words * 64, dtype=bool)
        bits[self.bit_of_point()] = True
        return np.packbits(bits, bitorder="little").view(np.uint64)
