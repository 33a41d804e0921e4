"""The rules of MCTS a user can replace without forking the search.

A pUCT searcher (``algorithm = "muzero"``) takes five components, each with a
default that implements MuZero (Schrittwieser et al. 2020, Appendix B):

- ``score_fn``: a numba ``@njit`` function
  ``(prior, parent_visits, child_visits, q_normalized, c1, c2) -> float``; the
  descent takes the legal child with the highest score (ties: lowest action).
  ``q_normalized`` is Q min-max normalised to [0, 1] by the root's tree-wide bounds; an
  unvisited child gets the parent's value V(s), normalised. Default: :func:`puct_score`.
- ``root_noise``: ``(prior_probs (B, A), legal (B, A), rng) -> prior_probs (B, A)``,
  applied when ``run(..., add_noise=True)``. Default: :class:`DirichletNoise`.
- ``select_action``: ``(visit_counts, q_values, legal, temperature, rng) -> actions (B,)``.
  Default: :func:`visit_count_action`.
- ``policy_target``: ``(visit_counts, q_values, prior, legal) -> (B, A)`` where
  ``prior`` is the network's root prior without noise. Default: :func:`visit_count_policy`.
- ``on_search_finished``: ``(SearchResult) -> None`` or None, called after every search.

The Gumbel searcher (``algorithm = "gumbel"``) has its own selection, action and
target rules (see :mod:`muzero.search.gumbel`) and takes only ``on_search_finished``.

Example: a UCT-like score with a constant exploration weight, and greedy play::

    import numpy as np
    from numba import njit
    from muzero.config import SearchConfig
    from muzero.search import make_search

    @njit(cache=True)
    def flat_score(prior, parent_visits, child_visits, q_normalized, c1, c2):
        return q_normalized + c1 * prior * np.sqrt(parent_visits) / (1 + child_visits)

    def greedy(visit_counts, q_values, legal, temperature, rng):
        return np.where(legal, q_values, -np.inf).argmax(axis=1)

    search = make_search(SearchConfig(num_simulations=50), num_actions=2, batch_size=16,
                         discount=0.997, score_fn=flat_score, select_action=greedy)
    result = search.run(root, step_fn, np.random.default_rng(0), temperature=1.0)

A custom ``score_fn`` is compiled into the descent on the searcher's first run
(about a second per process). The default runs in a kernel cached on disk that
computes pUCT's parent-only factor once per node rather than once per child.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit


@njit(cache=True)
def puct_score(prior, parent_visits, child_visits, q_normalized, c1, c2):
    """MuZero's pUCT (Appendix B, eq. 2):
    Q_norm + P * sqrt(N(s)) / (1 + N(s, a)) * (c1 + log((N(s) + c2 + 1) / c2))."""
    exploration = c1 + math.log((parent_visits + c2 + 1.0) / c2)
    return q_normalized + prior * math.sqrt(parent_visits) / (1.0 + child_visits) * exploration


@dataclass(frozen=True)
class DirichletNoise:
    """Mix Dir(alpha) noise into the root prior over legal actions only (AlphaZero):
    prior' = (1 - fraction) * prior + fraction * noise."""

    alpha: float
    fraction: float

    def __post_init__(self) -> None:
        if not self.alpha > 0:
            raise ValueError(f"DirichletNoise.alpha must be > 0, got {self.alpha}")
        if not 0 <= self.fraction <= 1:
            raise ValueError(f"DirichletNoise.fraction must be in [0, 1], got {self.fraction}")

    def __call__(self, prior: np.ndarray, legal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # A Dirichlet sample is a vector of Gamma(alpha) draws, normalised; drawing the
        # whole (B, A) block at once and zeroing illegal entries gives Dir over legal actions.
        noise = rng.gamma(self.alpha, 1.0, size=prior.shape) * legal
        total = noise.sum(axis=1, keepdims=True)
        uniform = legal / legal.sum(axis=1, keepdims=True)
        noise = np.where(total > 0, noise / np.where(total > 0, total, 1.0), uniform)
        return (1.0 - self.fraction) * prior + self.fraction * noise


def visit_count_action(
    visit_counts: np.ndarray, q_values: np.ndarray, legal: np.ndarray, temperature: float, rng: np.random.Generator
) -> np.ndarray:
    """Sample a_b with probability proportional to N(a)^(1/temperature) over legal actions.

    Temperature 0 plays the most visited action, breaking ties uniformly at random.
    """
    counts = np.where(legal, visit_counts, 0).astype(np.float64)
    counts = np.where(counts.sum(axis=1, keepdims=True) > 0, counts, legal.astype(np.float64))
    if temperature == 0:
        best = (counts == counts.max(axis=1, keepdims=True)) & legal
        return np.where(best, rng.random(counts.shape), -1.0).argmax(axis=1)
    with np.errstate(divide="ignore"):
        logits = np.log(counts) / temperature
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(probs, axis=1)
    u = rng.random((counts.shape[0], 1)) * cdf[:, -1:]
    # First index whose cumulative mass exceeds u: zero-mass (illegal) actions are never it.
    return (cdf <= u).sum(axis=1)


def visit_count_policy(
    visit_counts: np.ndarray, q_values: np.ndarray, prior: np.ndarray, legal: np.ndarray
) -> np.ndarray:
    """MuZero's policy target: root visit counts, normalised."""
    counts = np.where(legal, visit_counts, 0).astype(np.float64)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
