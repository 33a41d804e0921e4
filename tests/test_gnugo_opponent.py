"""GNU Go as an evaluation opponent of the Go games (muzero/transport/gtp_players.py)."""

import numpy as np
import pytest

from muzero.envs.go import GoRules
from muzero.envs.players import RandomPlayer, play_match
from muzero.envs.registry import get_game
from muzero.transport.gtp_client import find_gnugo
from muzero.transport.gtp_players import GnuGoPlayer, register_gnugo

pytestmark = pytest.mark.skipif(find_gnugo() is None, reason="GNU Go is not installed (scripts/install_tools.sh)")


def test_gnugo_becomes_the_go_games_evaluation_opponent():
    assert register_gnugo()
    spec = get_game("go5")
    assert "gnugo" in spec.opponents and spec.eval_opponent == "gnugo"
    assert {"uct", "random"} <= set(spec.opponents)
    assert "gnugo" not in get_game("tictactoe").opponents


def test_gnugo_beats_random_play_and_plays_only_legal_moves():
    game = GoRules(5)
    gnugo = GnuGoPlayer(game, level=1)
    try:
        result = play_match(game, gnugo, RandomPlayer(game), 4, np.random.default_rng(0), a_first=True)
        assert result["wins"] >= 3, result
    finally:
        gnugo.close()


def test_gnugo_refuses_other_games():
    with pytest.raises(TypeError, match="GNU Go plays Go"):
        GnuGoPlayer(get_game("tictactoe").make())
