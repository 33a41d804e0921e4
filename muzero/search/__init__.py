"""Batched MCTS over B roots at once: MuZero pUCT and Gumbel MuZero.

Build a searcher with :func:`make_search` (from a :class:`muzero.config.SearchConfig`)
and call ``searcher.run(root, step_fn, rng, temperature, add_noise)``; the rules
it is made of are replaceable (:mod:`muzero.search.components`).
"""

from muzero.search.components import (
    DirichletNoise,
    puct_score,
    visit_count_action,
    visit_count_policy,
)
from muzero.search.gumbel import GumbelMuZero, sequential_halving_schedule
from muzero.search.mcts import MCTS, make_search
from muzero.search.types import RootInput, SearchResult, StepFn, StepOutput

__all__ = [
    "DirichletNoise",
    "GumbelMuZero",
    "MCTS",
    "RootInput",
    "SearchResult",
    "StepFn",
    "StepOutput",
    "make_search",
    "puct_score",
    "sequential_halving_schedule",
    "visit_count_action",
    "visit_count_policy",
]
