"""Go on 5x5 to 19x19 boards: Tromp-Taylor rules with komi 7.5 and positional superko.

The rules live in :mod:`muzero.envs.go` (vectorised on bitboards, numba); this
file registers the board sizes people play, with GTP's move names ("D4",
"pass"), so ``env.id = "go9"`` trains, evaluates and plays like any board game.
"""

from __future__ import annotations

from muzero.envs.go import GoRules, move_names
from muzero.envs.registry import register_game

SIZES = (5, 7, 9, 13, 19)


def _register(size: int) -> None:
    def rules() -> GoRules:
        return GoRules(size)

    rules.__qualname__ = f"go{size}"  # the registry tells sources apart by module and name
    register_game(f"go{size}", move_names=move_names(size))(rules)


for _size in SIZES:
    _register(_size)
