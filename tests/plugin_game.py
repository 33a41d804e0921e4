"""A game defined outside muzero/, loaded through the config key env.plugins (tests/test_registry.py).

Nim, the subtraction game: 7 stones, each player in turn takes 1, 2 or 3, and
whoever takes the last stone wins. It is written one game at a time
(ScalarRules) and registered on a factory that wraps it for the vectorised
interface, as a newcomer would start (docs/new-environment.md).
"""

import numpy as np

from muzero.envs.registry import register_game
from muzero.envs.scalar import ScalarBoardGame

STONES = 7


class NimRules:
    """State: [stones left, player to move]; action k takes k + 1 stones."""

    name = "nim"
    num_actions = 3
    observation_shape = (STONES + 1,)  # one-hot stones left
    state_shape = (2,)

    def initial_state(self):
        return np.array([STONES, 0])

    def to_play(self, state):
        return int(state[1])

    def legal_actions(self, state):
        return [action for action in range(3) if action + 1 <= state[0]]

    def step(self, state, action):
        stones = int(state[0]) - (action + 1)
        return np.array([stones, 1 - state[1]]), float(stones == 0), stones == 0

    def observe(self, state):
        planes = np.zeros(self.observation_shape, dtype=np.float32)
        planes[int(state[0])] = 1.0
        return planes

    def render(self, state):
        return f"{int(state[0])} stones left; player {int(state[1])} to take 1, 2 or 3"


@register_game("test-nim", move_names=("1", "2", "3"))
def nim() -> ScalarBoardGame:
    return ScalarBoardGame(NimRules())
