"""Temporally-extended exploration for self-play (``search.explore_epsilon``).

εz-greedy (Dabney, Ostrovski & Barreto, "Temporally-Extended ε-Greedy Exploration",
ICLR 2021): at each step an env that is not already exploring starts, with probability
ε, an *option*: one uniformly random legal action repeated for n steps, n drawn from a
zeta (Zipf) distribution with exponent μ (the paper's μ = 2), capped. Repeating an
action is what reaches the goal of tasks whose reward says nothing until the goal
(Acrobot, MountainCar): their random walks of independent actions stay near the start,
and so does a search whose values are still flat (its choice is close to uniform).

The search still runs on every step: its visit policy is the policy target whichever
action was played, and the played action is what the segment stores.
"""

from __future__ import annotations

import numpy as np

from muzero.envs.players import sample_from_mask


class RepeatedRandomActions:
    def __init__(self, num_envs: int, epsilon: float, mu: float, max_repeat: int, rng: np.random.Generator):
        """The settings are search.ez_greedy_*, checked by SearchConfig.validate."""
        self.epsilon = epsilon
        self.mu = mu
        self.max_repeat = max_repeat
        self.rng = rng
        self.action = np.zeros(num_envs, dtype=np.int64)
        self.left = np.zeros(num_envs, dtype=np.int64)
        """Steps each env still repeats its random action (0: it plays the search's)."""
        self.exploring_steps = 0

    def choose(self, searched: np.ndarray, legal: np.ndarray) -> np.ndarray:
        """The actions to play: the search's, or an option's random action where one runs."""
        n = len(searched)
        start = (self.left == 0) & (self.rng.random(n) < self.epsilon)
        if start.any():
            index = np.flatnonzero(start)
            self.action[index] = sample_from_mask(legal[index], self.rng)
            self.left[index] = np.minimum(self.rng.zipf(self.mu, len(index)), self.max_repeat)
        running = self.left > 0
        # An option ends early if its action became illegal (board games) rather than play it.
        running &= legal[np.arange(n), self.action]
        self.left[~running] = 0
        self.left[running] -= 1
        self.exploring_steps += int(running.sum())
        return np.where(running, self.action, searched)

    def end_episodes(self, ended: np.ndarray) -> None:
        """An option does not outlive its episode."""
        self.left[ended] = 0
