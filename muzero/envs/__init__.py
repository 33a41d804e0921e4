"""Environments: vectorised board games, gymnasium envs, and one vector interface over both.

Importing this package registers ``muzero/TicTacToe-v0`` with gymnasium.
"""

import gymnasium

from muzero.envs.base import BoardGame
from muzero.envs.tictactoe import TicTacToe, TicTacToeEnv
from muzero.envs.vector import BOARD_GAMES, VectorEnv, VectorStep, make_board_game, make_vector_env

TICTACTOE_ENV_ID = "muzero/TicTacToe-v0"

# Guarded so that re-importing (e.g. importlib.reload in tests) does not warn about overriding.
if TICTACTOE_ENV_ID not in gymnasium.registry:
    gymnasium.register(id=TICTACTOE_ENV_ID, entry_point="muzero.envs.tictactoe:TicTacToeEnv")

__all__ = [
    "BOARD_GAMES",
    "BoardGame",
    "TICTACTOE_ENV_ID",
    "TicTacToe",
    "TicTacToeEnv",
    "VectorEnv",
    "VectorStep",
    "make_board_game",
    "make_vector_env",
]
