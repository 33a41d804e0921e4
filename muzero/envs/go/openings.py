"""Random openings: a few random legal moves from the empty board, so that games differ.

Used where near-deterministic players would otherwise repeat one game (the warm
start's GNU Go self-play, the match against GNU Go in ``benchmarks/go.py``).
"""

from __future__ import annotations

import numpy as np

from muzero.envs.go.rules import GoRules
from muzero.envs.players import sample_from_mask


def random_opening(rules: GoRules, moves: int, rng: np.random.Generator) -> tuple[int, ...]:
    """``moves`` uniformly random legal moves, never a pass, from the empty board."""
    state = rules.initial_states(1)
    played = []
    for _ in range(moves):
        legal = rules.legal_mask(state)
        legal[:, rules.size * rules.size] = False
        action = sample_from_mask(legal, rng)  # ValueError if the board has no point left
        state, _, _ = rules.step(state, action)
        played.append(int(action[0]))
    return tuple(played)
