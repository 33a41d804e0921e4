"""An OpenSpiel two-player game behind the BoardGame interface (needs ``pip install open_spiel``).

    from muzero.envs.openspiel import openspiel_game
    game = openspiel_game("connect_four")  # a BoardGame: self-play, search, evaluation

Only deterministic, sequential, perfect-information two-player games with an
observation tensor fit. OpenSpiel states are C++ objects, so a state here is
its move history, (1 + max_game_length,) int64: [number of moves, action 1,
action 2, ..., -1 padding]; the game replays it to answer. That is slow (each
call replays every state) but object-free and exact: useful to check
vectorised rules against OpenSpiel, or to try a game before writing fast rules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from muzero.envs.scalar import ScalarBoardGame

PADDING = -1


class OpenSpielRules:
    """ScalarRules over an OpenSpiel game; states are move histories (see the module docstring)."""

    def __init__(self, game: Any):
        import pyspiel  # optional: imported only when an OpenSpiel game is asked for

        self.game = pyspiel.load_game(game) if isinstance(game, str) else game
        kind = self.game.get_type()
        problems = []
        if self.game.num_players() != 2:
            problems.append(f"{self.game.num_players()} players")
        if kind.dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
            problems.append("simultaneous moves")
        if kind.chance_mode != pyspiel.GameType.ChanceMode.DETERMINISTIC:
            problems.append("chance nodes")
        if kind.information != pyspiel.GameType.Information.PERFECT_INFORMATION:
            problems.append("imperfect information")
        if not kind.provides_observation_tensor:
            problems.append("no observation tensor")
        if problems:
            raise ValueError(
                f"OpenSpiel game {kind.short_name!r} does not fit a two-player board game: " + ", ".join(problems)
            )
        self.name = f"openspiel:{kind.short_name}"
        self.num_actions = self.game.num_distinct_actions()
        self.observation_shape: tuple[int, ...] = tuple(self.game.observation_tensor_shape())
        self.state_shape: tuple[int, ...] = (1 + self.game.max_game_length(),)

    def _replay(self, history: np.ndarray) -> tuple[Any, int]:
        """(OpenSpiel state, player who made the last move, or -1 at the start)."""
        state = self.game.new_initial_state()
        last_mover = -1
        for action in history[1 : 1 + int(history[0])]:
            last_mover = state.current_player()
            state.apply_action(int(action))
        return state, last_mover

    def initial_state(self) -> np.ndarray:
        history = np.full(self.state_shape, PADDING, dtype=np.int64)
        history[0] = 0
        return history

    def to_play(self, history: np.ndarray) -> int:
        state, last_mover = self._replay(history)
        if state.is_terminal():  # nobody moves; by convention, the one who would have been next
            return 1 - last_mover if last_mover >= 0 else 0
        return int(state.current_player())

    def legal_actions(self, history: np.ndarray) -> list[int]:
        state, _ = self._replay(history)
        return [] if state.is_terminal() else list(state.legal_actions())

    def step(self, history: np.ndarray, action: int) -> tuple[np.ndarray, float, bool]:
        state, _ = self._replay(history)
        mover = state.current_player()
        state.apply_action(action)
        length = int(history[0])
        next_history = history.copy()
        next_history[0] = length + 1
        next_history[1 + length] = action
        return next_history, float(state.rewards()[mover]), bool(state.is_terminal())

    def observe(self, history: np.ndarray) -> np.ndarray:
        state, _ = self._replay(history)
        player = self.to_play(history)
        return np.asarray(state.observation_tensor(player), dtype=np.float32).reshape(self.observation_shape)

    def render(self, history: np.ndarray) -> str:
        state, _ = self._replay(history)
        return str(state)


def openspiel_game(name: str) -> ScalarBoardGame:
    """The OpenSpiel game ``name`` (e.g. "connect_four", "tic_tac_toe") as a BoardGame."""
    return ScalarBoardGame(OpenSpielRules(name))
