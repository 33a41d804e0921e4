"""Gumbel MuZero (Danihelka et al. 2022, "Policy improvement by planning with Gumbel").

Root: sample Gumbel noise g, consider the top k = min(max_considered_actions,
legal actions) of g + logits, and split the simulation budget among them by
Sequential Halving, always visiting the candidate with the best
g + logits + sigma(q) among those with the fewest visits of the current round.
The action played is the best survivor by the same score; the policy target is
softmax(logits + sigma(completed Q)). Inside the tree, the deterministic rule
argmax_a pi'(a) - N(a) / (1 + sum_b N(b)) with pi' = softmax(logits + sigma(completed Q)).

- sigma(q) = (c_visit + max_b N(b)) * c_scale * q, with q min-max normalised to
  [0, 1] by the root's tree-wide bounds (the same bounds pUCT uses; mctx instead
  rescales each node's completed Q by their own min and max).
- Completed Q: Q(a) for visited actions, the mixed value v_mix (paper, eq. 33)
  for unvisited ones:
  v_mix = (v_hat + sum_b N(b) / sum_{b visited} pi(b) * sum_{a visited} pi(a) Q(a)) / (1 + sum_b N(b)).
- No Dirichlet noise. ``run(..., add_noise=False)`` sets g = 0 (evaluation);
  ``temperature`` is not used: the Gumbel sample is the exploration.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from muzero.search.mcts import SearchCallback, TreeSearcher, check_actions, check_run_arguments
from muzero.search.tree import (
    NO_CHILD,
    NO_EXPANSION,
    Kernel,
    finish_descent,
    masked_log_softmax,
    q_normalizer,
)
from muzero.search.types import RootInput, SearchResult, StepFn


def sequential_halving_schedule(num_considered: int, num_simulations: int) -> np.ndarray:
    """Visit count the root's next candidate must have at each simulation, (num_simulations,) int32.

    Sequential Halving over ceil(log2(k)) phases: each phase gives every remaining
    candidate max(1, n // (phases * remaining)) more visits, then halves the
    candidates (never below 2). Selecting, at simulation i, the best-scoring
    candidate among those with exactly ``schedule[i]`` visits plays this out
    without tracking phases. One candidate simply takes every simulation.
    """
    if num_considered < 1 or num_simulations < 1:
        raise ValueError(f"need num_considered >= 1 and num_simulations >= 1, got {num_considered}, {num_simulations}")
    if num_considered == 1:
        return np.arange(num_simulations, dtype=np.int32)
    phases = math.ceil(math.log2(num_considered))
    schedule: list[int] = []
    remaining, level = num_considered, 0
    while len(schedule) < num_simulations:
        for _ in range(max(1, num_simulations // (phases * remaining))):
            schedule.extend([level] * remaining)
            level += 1
        remaining = max(2, remaining // 2)
    return np.asarray(schedule[:num_simulations], dtype=np.int32)


@njit(cache=True)
def completed_q_sigma(tree, b, node, c_visit, c_scale, out):
    """out[a] = sigma(normalised completed Q(node, a)) for every legal a (0 at illegal ones)."""
    edges = tree.edges
    num_actions = edges.shape[2]
    sum_visits = 0.0
    max_visits = 0.0
    visited_prior = 0.0
    weighted_q = 0.0
    for a in range(num_actions):
        edge = edges[b, node, a]
        if edge.visits > 0:
            sum_visits += edge.visits
            max_visits = max(max_visits, float(edge.visits))
            visited_prior += edge.prior
            weighted_q += edge.prior * edge.q
    # The mixed value (Danihelka et al. 2022, eq. 33) stands in for unvisited actions' Q.
    v_mix = tree.nodes[b, node].value
    if sum_visits > 0.0 and visited_prior > 0.0:
        v_mix = (v_mix + sum_visits * weighted_q / visited_prior) / (1.0 + sum_visits)
    sigma_scale = (c_visit + max_visits) * c_scale
    offset, scale = q_normalizer(tree.q_min[b], tree.q_max[b])
    for a in range(num_actions):
        edge = edges[b, node, a]
        if not edge.legal:
            out[a] = 0.0
        else:
            q = edge.q if edge.visits > 0 else v_mix
            out[a] = sigma_scale * min(max((q - offset) * scale, 0.0), 1.0)


@njit(cache=True)
def root_action(tree, b, wanted_visits, root_score, sigma):
    """Sequential Halving's pick at root b: the best g + log prior + sigma among the
    candidates with ``wanted_visits`` visits (or among all candidates, should none have them)."""
    action = -1
    fallback = -1
    best = -np.inf
    best_any = -np.inf
    for a in range(tree.edges.shape[2]):
        if root_score[b, a] == -np.inf:
            continue  # not a candidate
        score = root_score[b, a] + sigma[a]
        if fallback < 0 or score > best_any:
            best_any = score
            fallback = a
        if tree.edges[b, 0, a].visits == wanted_visits and (action < 0 or score > best):
            best = score
            action = a
    return action if action >= 0 else fallback


@njit(cache=True)
def interior_action(tree, b, node, c_visit, c_scale, scratch):
    """argmax over legal a of pi'(a) - N(a) / (1 + sum_b N(b)) (ties: lowest action),
    pi' = softmax(log prior + sigma(completed Q)). ``scratch`` is an (A,) buffer."""
    edges = tree.edges
    num_actions = edges.shape[2]
    completed_q_sigma(tree, b, node, c_visit, c_scale, scratch)
    max_logit = -np.inf
    for a in range(num_actions):
        edge = edges[b, node, a]
        if edge.legal:
            scratch[a] += math.log(edge.prior) if edge.prior > 0.0 else -np.inf
            max_logit = max(max_logit, scratch[a])
    total = 0.0
    for a in range(num_actions):
        if edges[b, node, a].legal:
            scratch[a] = math.exp(scratch[a] - max_logit)
            total += scratch[a]
    visits_after = float(tree.nodes[b, node].visits)  # 1 + sum_b N(b)
    action = -1
    best = -np.inf
    for a in range(num_actions):
        edge = edges[b, node, a]
        if not edge.legal:
            continue
        score = scratch[a] / total - edge.visits / visits_after
        if action < 0 or score > best:
            best = score
            action = a
    return action


@njit(cache=True)
def descend_gumbel(tree, descent, batch, simulation, c_visit, c_scale, root_score, num_considered, schedule):
    """Sequential Halving at the root, the deterministic pi' rule below it; return how many
    roots need the model. ``root_score`` is g + log prior, -inf for actions not considered."""
    scratch = np.empty(tree.edges.shape[2])
    column = min(simulation, schedule.shape[1] - 1)
    needs_model = 0
    for b in range(batch):
        completed_q_sigma(tree, b, 0, c_visit, c_scale, scratch)
        action = root_action(tree, b, schedule[num_considered[b], column], root_score, scratch)
        node = 0
        while True:
            child = tree.edges[b, node, action].child
            if child == NO_CHILD:
                needs_model += finish_descent(tree, descent, b, node, action)
                break
            node = child
            if not tree.nodes[b, node].expandable:
                needs_model += finish_descent(tree, descent, b, node, NO_EXPANSION)
                break
            action = interior_action(tree, b, node, c_visit, c_scale, scratch)
    return needs_model


@njit(cache=True)
def root_sigma(tree, batch, c_visit, c_scale, out):
    """out[b] = sigma(normalised completed Q) at every root, (B, A)."""
    for b in range(batch):
        completed_q_sigma(tree, b, 0, c_visit, c_scale, out[b])


class GumbelMuZero(TreeSearcher):
    """Batched Gumbel MuZero search; same ``run`` interface as :class:`muzero.search.mcts.MCTS`."""

    def __init__(
        self,
        num_actions: int,
        batch_size_max: int,
        num_simulations: int,
        discount: float,
        max_considered_actions: int = 16,
        gumbel_scale: float = 1.0,
        c_visit: float = 50.0,
        c_scale: float = 0.1,
        on_search_finished: SearchCallback | None = None,
    ):
        if max_considered_actions < 1:
            raise ValueError(f"max_considered_actions must be >= 1, got {max_considered_actions}")
        if not gumbel_scale >= 0:
            raise ValueError(f"gumbel_scale must be >= 0, got {gumbel_scale}")
        if not c_visit >= 0 or not c_scale >= 0:
            raise ValueError(f"c_visit and c_scale must be >= 0, got {c_visit} and {c_scale}")
        if on_search_finished is not None and not callable(on_search_finished):
            raise TypeError(f"on_search_finished must be callable, got {type(on_search_finished).__name__}")
        super().__init__(num_actions, batch_size_max, num_simulations, discount)
        self.max_considered_actions = int(max_considered_actions)
        self.gumbel_scale = float(gumbel_scale)
        self.c_visit = float(c_visit)
        self.c_scale = float(c_scale)
        self.on_search_finished = on_search_finished
        # schedule[k] is the Sequential Halving schedule for k candidates (row 0 unused).
        largest = min(self.max_considered_actions, self.num_actions)
        self.schedule = np.zeros((largest + 1, self.num_simulations), dtype=np.int32)
        for k in range(1, largest + 1):
            self.schedule[k] = sequential_halving_schedule(k, self.num_simulations)
        # Per-root candidates, rewritten by every run: g + log prior (-inf if not considered), and k.
        self._root_score = np.full((self.batch_size_max, self.num_actions), -np.inf)
        self._num_considered = np.zeros(self.batch_size_max, dtype=np.int64)
        self._descend_kernel = Kernel(descend_gumbel)

    def run(
        self,
        root: RootInput,
        step_fn: StepFn,
        rng: np.random.Generator,
        temperature: float = 1.0,
        add_noise: bool = True,
    ) -> SearchResult:
        """Search B <= batch_size_max roots. ``add_noise=False`` turns the Gumbel noise
        off (deterministic evaluation); ``temperature`` is accepted and ignored."""
        check_run_arguments(rng, temperature)
        tree = self.tree
        batch = tree.check_root(root)
        legal = root.legal_mask
        log_prior = masked_log_softmax(root.prior_logits, legal)
        prior = np.exp(log_prior)
        gumbel = np.zeros(legal.shape)
        if add_noise and self.gumbel_scale > 0:
            gumbel = self.gumbel_scale * rng.gumbel(size=legal.shape)
        score = np.where(legal, gumbel + log_prior, -np.inf)
        # Gumbel-top-k: rank every action by score, keep the k best legal ones.
        num_considered = np.minimum(self.max_considered_actions, legal.sum(axis=1))
        rank = np.empty(legal.shape, dtype=np.int64)
        rank[np.arange(batch)[:, None], np.argsort(-score, axis=1, kind="stable")] = np.arange(self.num_actions)
        considered = (rank < num_considered[:, None]) & legal
        self._root_score[:batch] = np.where(considered, score, -np.inf)
        self._num_considered[:batch] = num_considered

        tree.reset(root, prior, batch)
        for simulation in range(self.num_simulations):
            tree.simulate(batch, step_fn, self._descend, simulation)

        visit_counts, q_values, root_value = tree.root_statistics(batch)
        sigma = np.zeros(legal.shape)
        root_sigma(tree.arrays, batch, self.c_visit, self.c_scale, sigma)
        improved = np.where(legal, log_prior + sigma, -np.inf)
        improved = np.exp(improved - improved.max(axis=1, keepdims=True))
        policy = (improved / improved.sum(axis=1, keepdims=True)).astype(np.float32)
        # The action played: the best survivor, i.e. the best-scoring most-visited candidate.
        most_visited = np.where(considered, visit_counts, -1).max(axis=1, keepdims=True)
        survivors = considered & (visit_counts == most_visited)
        action = np.where(survivors, self._root_score[:batch] + sigma, -np.inf).argmax(axis=1)
        check_actions(action, legal)
        result = SearchResult(action.astype(np.int64), policy, visit_counts, q_values, root_value, self.num_simulations)
        if self.on_search_finished is not None:
            self.on_search_finished(result)
        return result

    def _descend(self, batch: int, simulation: int) -> int:
        tree = self.tree
        return self._descend_kernel(
            tree.arrays,
            tree.descent,
            batch,
            simulation,
            self.c_visit,
            self.c_scale,
            self._root_score,
            self._num_considered,
            self.schedule,
        )
