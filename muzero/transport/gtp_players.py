"""GNU Go as an opponent of board-game evaluation (``muzero eval --opponents gnugo``, local training).

:class:`GnuGoPlayer` is a :class:`muzero.envs.players.Player`: for each position
of a batch it sets the board up in one GNU Go process over GTP (stones placed one
by one: Tromp-Taylor positions of play have no group without a liberty, so none
is captured on the way) and asks for a move. A set-up board forgets the game's
history, so GNU Go may choose a ko retake or a repetition the game forbids; such a
move, which our rules refuse, becomes a pass and is counted in ``refused``.

:func:`register_gnugo` adds the opponent "gnugo" to every registered Go game when
GNU Go is installed, and makes it the one local training's evaluations play.
"""

from __future__ import annotations

import numpy as np

from muzero.envs.go import GoRules, parse_vertex, vertex_name
from muzero.envs.registry import add_opponent, game_ids, get_game
from muzero.transport.gtp_client import GtpClient, find_gnugo, gnugo_command

DEFAULT_LEVEL = 1
"""GNU Go's level as an evaluation opponent: about 12 ms a move on 9x9 here."""


class GnuGoPlayer:
    """GNU Go at ``level`` playing positions of ``game`` (GoRules), one process for all of them."""

    def __init__(self, game: GoRules, level: int = DEFAULT_LEVEL):
        if not isinstance(game, GoRules):
            raise TypeError(f"GNU Go plays Go; got {type(game).__name__}")
        self.game = game
        self.level = level
        self.refused = 0
        self._client: GtpClient | None = None

    def _engine(self) -> GtpClient:
        if self._client is None:
            self._client = GtpClient(gnugo_command(self.game.size, self.level, self.game.komi, positional_superko=True))
        return self._client

    def act(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        game = self.game
        boards = game.boards(states).reshape(len(states), -1)
        movers = game.to_play(states)
        legal = game.legal_mask(states)
        engine = self._engine()
        actions = np.empty(len(states), dtype=np.int64)
        for i, (board, mover) in enumerate(zip(boards, movers)):
            engine.command("clear_board")
            engine.command(f"komi {game.komi:g}")
            for color, code in (("black", 1), ("white", 2)):
                for point in np.flatnonzero(board == code):
                    engine.command(f"play {color} {vertex_name(int(point), game.size)}")
            vertex = engine.command(f"genmove {'black' if mover == 0 else 'white'}")
            action = game.pass_action if vertex.lower() in ("pass", "resign") else parse_vertex(vertex, game.size)
            if not legal[i, action]:
                self.refused += 1
                action = game.pass_action
            actions[i] = action
        return actions

    def close(self) -> None:
        client = getattr(self, "_client", None)  # None too when __init__ refused its game
        if client is not None:
            client.close()
            self._client = None

    def __del__(self) -> None:
        self.close()


_registered: set[str] = set()
"""Game ids already given "gnugo" (local training asks at every evaluation)."""


def register_gnugo(level: int = DEFAULT_LEVEL) -> bool:
    """Add "gnugo" to the opponents of every Go game not yet given it (and make it their
    evaluation opponent) when GNU Go is installed; returns whether it is."""
    if find_gnugo() is None:
        return False

    def factory(game) -> GnuGoPlayer:
        return GnuGoPlayer(game, level)

    for game_id in game_ids():
        spec = get_game(game_id)
        if spec.id == game_id and game_id not in _registered and isinstance(spec.make(), GoRules):
            add_opponent(game_id, "gnugo", factory, evaluate_with=True)
            _registered.add(game_id)
    return True
