"""Environments: vectorised board games, gymnasium envs, and one vector interface over both.

Board games live one per file under ``muzero/envs/games/`` and register
themselves in :mod:`muzero.envs.registry`. Importing this package registers
``muzero/TicTacToe-v0`` with gymnasium.
"""

import gymnasium

from muzero.envs.base import BoardGame
from muzero.envs.games.connect4 import ConnectFour
from muzero.envs.games.tictactoe import TicTacToe, TicTacToeEnv
from muzero.envs.registry import GameSpec, game_ids, get_game, load_plugins, register_game
from muzero.envs.scalar import ScalarBoardGame, ScalarRules
from muzero.envs.vector import VectorEnv, VectorStep, make_board_game, make_vector_env

TICTACTOE_ENV_ID = "muzero/TicTacToe-v0"

# Guarded so that re-importing (e.g. importlib.reload in tests) does not warn about overriding.
if TICTACTOE_ENV_ID not in gymnasium.registry:
    gymnasium.register(id=TICTACTOE_ENV_ID, entry_point="muzero.envs.games.tictactoe:TicTacToeEnv")

__all__ = [
    "BoardGame",
    "ConnectFour",
    "GameSpec",
    "ScalarBoardGame",
    "ScalarRules",
    "TICTACTOE_ENV_ID",
    "TicTacToe",
    "TicTacToeEnv",
    "VectorEnv",
    "VectorStep",
    "game_ids",
    "get_game",
    "load_plugins",
    "make_board_game",
    "make_vector_env",
    "register_game",
]
