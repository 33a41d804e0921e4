"""Go games as SGF (FF[4]), through sgfmill: bytes in, bytes out, no files.

A :class:`GoRecord` is what training and the match runner need from a game: the
board size, komi, the moves as actions (``row * size + column``, row 0 at the
bottom, ``size * size`` for a pass), which moves were chosen at random (not worth
imitating), the result, and the players' names. Reading refuses what our rules
cannot replay: set-up stones, handicap, and two moves in a row by one colour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sgfmill import sgf

RANDOM_MOVE_COMMENT = "random opening move"
"""The comment that marks a move played at random (warm-start openings)."""


@dataclass(frozen=True)
class GoRecord:
    size: int
    komi: float
    moves: tuple[int, ...]
    result: str = ""
    """SGF's RE: "B+3.5", "W+R", "0" (a draw), or "" when unknown."""
    random_moves: frozenset[int] = field(default_factory=frozenset)
    """Indices into ``moves`` of the moves chosen at random."""
    black: str = ""
    white: str = ""
    comment: str = ""

    @property
    def winner(self) -> int | None:
        """0 Black, 1 White, -1 a draw, None when the result does not say."""
        text = self.result.strip().upper()
        if text in ("0", "DRAW", "JIGO"):
            return -1
        if text.startswith("B+"):
            return 0
        if text.startswith("W+"):
            return 1
        return None


def record_to_sgf(record: GoRecord) -> bytes:
    """The game as SGF bytes; rules named "Tromp-Taylor" (ours)."""
    game = sgf.Sgf_game(size=record.size)
    root = game.get_root()
    root.set("KM", float(record.komi))
    root.set("RU", "Tromp-Taylor")
    if record.result:
        root.set("RE", record.result)
    if record.black:
        root.set("PB", record.black)
    if record.white:
        root.set("PW", record.white)
    if record.comment:
        root.set("GC", record.comment)
    pass_action = record.size * record.size
    for index, action in enumerate(record.moves):
        node = game.extend_main_sequence()
        color = "b" if index % 2 == 0 else "w"
        node.set_move(color, None if action == pass_action else divmod(int(action), record.size))
        if index in record.random_moves:
            node.set("C", RANDOM_MOVE_COMMENT)
    return game.serialise()


def record_from_sgf(data: bytes) -> GoRecord:
    """The main line of an SGF game; ValueError naming what our rules cannot replay."""
    try:
        game = sgf.Sgf_game.from_bytes(data)
    except ValueError as error:
        raise ValueError(f"not an SGF game: {error}") from None
    root = game.get_root()
    size = game.get_size()
    if root.has_property("AB") or root.has_property("AW") or root.has_property("AE"):
        raise ValueError("set-up stones (AB/AW/AE) are not supported: the game must start from an empty board")
    if root.has_property("HA") and int(root.get("HA") or 0) > 1:
        raise ValueError(f"handicap games are not supported (HA[{root.get('HA')}])")
    moves: list[int] = []
    random_moves: set[int] = set()
    for node in game.get_main_sequence()[1:]:
        color, point = node.get_move()
        if color is None:
            if any(node.has_property(p) for p in ("AB", "AW", "AE")):
                raise ValueError(f"move {len(moves) + 1}: set-up stones in the middle of a game are not supported")
            continue
        expected = "b" if len(moves) % 2 == 0 else "w"
        if color != expected:
            raise ValueError(f"move {len(moves) + 1}: {color.upper()} plays out of turn (expected {expected.upper()})")
        if node.has_property("C") and RANDOM_MOVE_COMMENT in node.get("C"):
            random_moves.add(len(moves))
        moves.append(size * size if point is None else point[0] * size + point[1])
    return GoRecord(
        size=size,
        komi=float(game.get_komi()),
        moves=tuple(moves),
        result=root.get("RE") if root.has_property("RE") else "",
        random_moves=frozenset(random_moves),
        black=game.get_player_name("b") or "",
        white=game.get_player_name("w") or "",
        comment=root.get("GC") if root.has_property("GC") else "",
    )
