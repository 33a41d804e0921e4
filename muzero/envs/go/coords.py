"""Go coordinates as GTP names them: column letters A-Z without I, rows from 1 at the bottom.

Action ``row * size + column`` is the point in column ``column`` (0 = "A") and
row ``row`` (0 = "1", the bottom row); action ``size * size`` is the pass.
"""

from __future__ import annotations

COLUMN_LETTERS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"
"""GTP's column letters: "I" is skipped, so 25 columns at most."""
MAX_SIZE = len(COLUMN_LETTERS)
PASS_NAME = "pass"


def check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 2 <= size <= MAX_SIZE:
        raise ValueError(f"board size must be an integer in [2, {MAX_SIZE}], got {size!r}")
    return size


def vertex_name(action: int, size: int) -> str:
    """GTP's name of ``action`` on a ``size`` board: "D4", ..., or "pass"."""
    points = size * size
    if not 0 <= action <= points:
        raise ValueError(f"action must be in [0, {points}] on a {size}x{size} board, got {action}")
    if action == points:
        return PASS_NAME
    row, column = divmod(action, size)
    return f"{COLUMN_LETTERS[column]}{row + 1}"


def parse_vertex(text: str, size: int) -> int:
    """The action GTP's vertex ``text`` names ("d4", "D4", "pass"; case ignored)."""
    word = str(text).strip().upper()
    if word == PASS_NAME.upper():
        return size * size
    if len(word) < 2 or word[0] not in COLUMN_LETTERS or not word[1:].isdigit():
        raise ValueError(
            f"{text!r} is not a vertex (a column letter A-{COLUMN_LETTERS[size - 1]} without I, a row number, or pass)"
        )
    column = COLUMN_LETTERS.index(word[0])
    row = int(word[1:]) - 1
    if column >= size or not 0 <= row < size:
        raise ValueError(f"{text!r} is off a {size}x{size} board")
    return row * size + column


def move_names(size: int) -> tuple[str, ...]:
    """The name of every action on a ``size`` board, in action order."""
    return tuple(vertex_name(action, size) for action in range(size * size + 1))
