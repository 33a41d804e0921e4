"""Go: vectorised Tromp-Taylor rules (numba), GTP coordinates.

``muzero/envs/games/go.py`` registers the board sizes as games ("go9", ...).
"""

from muzero.envs.go.coords import move_names, parse_vertex, vertex_name
from muzero.envs.go.rules import GoRules

__all__ = ["GoRules", "move_names", "parse_vertex", "vertex_name"]
