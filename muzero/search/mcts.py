"""MuZero's batched pUCT search (Schrittwieser et al. 2020, Appendix B), and ``make_search``.

Each simulation is three steps for all B roots at once:

1. a numba descent picks, per root, the node to expand and the action to
   expand it with, by maximising ``score_fn`` (pUCT by default) over legal
   children, with Q min-max normalised by the root's tree-wide bounds and
   unvisited children valued at their parent's value;
2. one call ``step_fn(parent_embeddings, actions, parents_to_play)`` for the batch;
3. a numba kernel adds the new nodes and backs their values up with
   intermediate rewards, the discount and the two-player sign rule.

A root whose descent ends on a terminal node (or one with no legal action)
creates nothing and backs up the node's stored value (0 when terminal) again.
It still fills its row of the fixed-size step call, with the root's own
embedding and first legal action, and that row's output is discarded: the step
function is never called with a terminal node's embedding. When every root
ends that way the step call is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit
from numba.core.registry import CPUDispatcher

from muzero.config import SearchConfig
from muzero.search.components import DirichletNoise, puct_score, visit_count_action, visit_count_policy
from muzero.search.tree import (
    NO_CHILD,
    NO_EXPANSION,
    Kernel,
    SearchTree,
    finish_descent,
    masked_log_softmax,
    q_normalizer,
)
from muzero.search.types import RootInput, SearchResult, StepFn

RootNoise = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]
SelectAction = Callable[[np.ndarray, np.ndarray, np.ndarray, float, np.random.Generator], np.ndarray]
PolicyTarget = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
SearchCallback = Callable[[SearchResult], None]


@njit(cache=True, inline="always")
def descend(select_child, rule, tree, descent, batch, c1, c2):
    """Walk every root's tree, choosing children with ``select_child(rule, tree, b, node, c1, c2)``,
    to an unexpanded edge or a leaf that cannot be expanded; return how many roots need the model."""
    needs_model = 0
    for b in range(batch):
        node = 0
        while True:
            if not tree.nodes[b, node].expandable:
                needs_model += finish_descent(tree, descent, b, node, NO_EXPANSION)
                break
            action = select_child(rule, tree, b, node, c1, c2)
            child = tree.edges[b, node, action].child
            if child == NO_CHILD:
                needs_model += finish_descent(tree, descent, b, node, action)
                break
            node = child
    return needs_model


@njit(cache=True, inline="always")
def select_by_score_fn(score_fn, tree, b, node, c1, c2):
    """The legal child with the highest ``score_fn`` (ties: lowest action).

    An unvisited child's Q is taken to be the parent's current value V(s) (the
    mean of its own evaluation and the returns through it): neither the
    pessimism of Q_norm = 0 (MuZero's pseudocode), which in a two-player game
    reads as "this move loses" and keeps the search on the first child it tried,
    nor optimism.
    """
    edges = tree.edges
    offset, scale = q_normalizer(tree.q_min[b], tree.q_max[b])
    parent = tree.nodes[b, node]
    parent_visits = float(parent.visits)
    unvisited_q = min(max((parent.mean - offset) * scale, 0.0), 1.0)
    best_action = -1
    best_score = -np.inf
    for a in range(edges.shape[2]):
        edge = edges[b, node, a]
        if not edge.legal:
            continue
        if best_action < 0:
            best_action = a  # a legal fallback should every score be -inf or NaN
        q_normalized = min(max((edge.q - offset) * scale, 0.0), 1.0) if edge.visits > 0 else unvisited_q
        score = score_fn(float(edge.prior), parent_visits, float(edge.visits), q_normalized, c1, c2)
        if score > best_score:
            best_score = score
            best_action = a
    return best_action


@njit(cache=True, inline="always")
def select_by_puct(exploration, tree, b, node, c1, c2):
    """:func:`select_by_score_fn` with :func:`puct_score` written out and its parent-only
    factor looked up: ``exploration[n]`` = sqrt(n) * (c1 + log((n + c2 + 1) / c2)). The log
    and sqrt, once per child, were most of the descent's cost."""
    edges = tree.edges
    offset, scale = q_normalizer(tree.q_min[b], tree.q_max[b])
    parent = tree.nodes[b, node]
    factor = exploration[parent.visits]
    unvisited_q = min(max((parent.mean - offset) * scale, 0.0), 1.0)
    best_action = -1
    best_score = -np.inf
    for a in range(edges.shape[2]):
        edge = edges[b, node, a]
        if not edge.legal:
            continue
        if best_action < 0:
            best_action = a
        q_normalized = min(max((edge.q - offset) * scale, 0.0), 1.0) if edge.visits > 0 else unvisited_q
        score = q_normalized + edge.prior * factor / (1.0 + edge.visits)
        if score > best_score:
            best_score = score
            best_action = a
    return best_action


def puct_exploration_table(max_visits: int, c1: float, c2: float) -> np.ndarray:
    """sqrt(n) * (c1 + log((n + c2 + 1) / c2)) for n = 0 .. max_visits, float64."""
    n = np.arange(max_visits + 1, dtype=np.float64)
    return np.sqrt(n) * (c1 + np.log((n + c2 + 1.0) / c2))


@njit(cache=True)
def descend_puct(score_fn, tree, descent, batch, c1, c2):
    """The descent with a user's ``score_fn`` (compiled for it once per process)."""
    return descend(select_by_score_fn, score_fn, tree, descent, batch, c1, c2)


@njit(cache=True)
def descend_puct_default(exploration, tree, descent, batch, c1, c2):
    """The descent with MuZero's pUCT (``exploration`` from :func:`puct_exploration_table`);
    cached on disk, unlike a kernel that takes a function argument."""
    return descend(select_by_puct, exploration, tree, descent, batch, c1, c2)


class TreeSearcher:
    """What every searcher shares: one tree, allocated once for ``batch_size_max`` roots,
    and the sizes it was allocated for (read from the tree, never copied)."""

    def __init__(self, num_actions: int, batch_size_max: int, num_simulations: int, discount: float):
        self.tree = SearchTree(num_actions, batch_size_max, num_simulations, discount)

    @property
    def num_actions(self) -> int:
        return self.tree.num_actions

    @property
    def batch_size_max(self) -> int:
        return self.tree.batch_size_max

    @property
    def num_simulations(self) -> int:
        return self.tree.num_simulations

    @property
    def discount(self) -> float:
        return self.tree.discount


class MCTS(TreeSearcher):
    """Batched MuZero search with replaceable components (see :mod:`muzero.search.components`).

    Allocates the tree for ``batch_size_max`` roots once; every :meth:`run` reuses it.
    """

    def __init__(
        self,
        num_actions: int,
        batch_size_max: int,
        num_simulations: int,
        discount: float,
        pb_c_init: float = 1.25,
        pb_c_base: float = 19652.0,
        score_fn: Any = None,
        root_noise: RootNoise | None = None,
        select_action: SelectAction | None = None,
        policy_target: PolicyTarget | None = None,
        on_search_finished: SearchCallback | None = None,
    ):
        if score_fn is not None and not isinstance(score_fn, CPUDispatcher):
            raise TypeError(f"score_fn must be a numba @njit function, got {type(score_fn).__name__}")
        if not pb_c_init > 0 or not pb_c_base > 0:
            raise ValueError(f"pb_c_init and pb_c_base must be > 0, got {pb_c_init} and {pb_c_base}")
        components = {
            "root_noise": root_noise,
            "select_action": select_action,
            "policy_target": policy_target,
            "on_search_finished": on_search_finished,
        }
        for name, component in components.items():
            if component is not None and not callable(component):
                raise TypeError(f"{name} must be callable, got {type(component).__name__}")
        super().__init__(num_actions, batch_size_max, num_simulations, discount)
        self.pb_c_init = float(pb_c_init)
        self.pb_c_base = float(pb_c_base)
        self.score_fn = score_fn if score_fn is not None else puct_score
        # The descend kernel's first argument: the PUCT exploration table, or the user's jitted score function.
        self._selection_rule: np.ndarray | CPUDispatcher
        if score_fn is None:
            table = puct_exploration_table(self.tree.num_simulations + 1, self.pb_c_init, self.pb_c_base)
            self._descend_kernel, self._selection_rule = Kernel(descend_puct_default), table
        else:
            self._descend_kernel, self._selection_rule = Kernel(descend_puct), score_fn
        self.root_noise = root_noise if root_noise is not None else DirichletNoise(alpha=0.25, fraction=0.25)
        self.select_action = select_action if select_action is not None else visit_count_action
        self.policy_target = policy_target if policy_target is not None else visit_count_policy
        self.on_search_finished = on_search_finished

    def run(
        self,
        root: RootInput,
        step_fn: StepFn,
        rng: np.random.Generator,
        temperature: float = 1.0,
        add_noise: bool = True,
    ) -> SearchResult:
        """Search B <= batch_size_max roots with ``num_simulations`` simulations each.

        ``temperature`` shapes the final action choice (0: most visited);
        ``add_noise`` applies ``root_noise`` (off for evaluation).
        """
        check_run_arguments(rng, temperature)
        self.start(root, rng, add_noise)
        self.simulate(step_fn, self.num_simulations)
        return self.finish(rng, temperature)

    # A search in steps, for callers that stop on a clock or report as they go (the GTP
    # engine): start, simulate as often as wanted (up to num_simulations in all), then
    # statistics or finish. run() is these three in a row.

    def start(self, root: RootInput, rng: np.random.Generator, add_noise: bool = True) -> None:
        """Begin a search from ``root`` (B <= batch_size_max roots); no simulation yet."""
        tree = self.tree
        batch = tree.check_root(root)
        legal = root.legal_mask
        prior = np.exp(masked_log_softmax(root.prior_logits, legal))
        root_prior = prior
        if add_noise:
            root_prior = np.asarray(self.root_noise(prior, legal, rng))
            if root_prior.shape != prior.shape:
                raise ValueError(f"root_noise returned shape {root_prior.shape}, expected {prior.shape}")
        tree.reset(root, root_prior, batch)
        self._started = (batch, legal, prior)
        self.simulations_done = 0

    def simulate(self, step_fn: StepFn, count: int) -> int:
        """Run up to ``count`` more simulations (the tree holds num_simulations); returns how many ran."""
        batch, _, _ = self._current()
        count = max(0, min(int(count), self.num_simulations - self.simulations_done))
        for simulation in range(self.simulations_done, self.simulations_done + count):
            self.tree.simulate(batch, step_fn, self._descend, simulation)
        self.simulations_done += count
        return count

    def statistics(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(visit counts (B, A), Q values (B, A), root value (B,), prior (B, A)) so far."""
        batch, _, prior = self._current()
        visit_counts, q_values, root_value = self.tree.root_statistics(batch)
        return visit_counts, q_values, root_value, prior

    def principal_variation(self, root: int, action: int, max_length: int = 16) -> list[int]:
        """``action`` then, from the node it leads to, the most visited child, repeatedly."""
        self._current()
        return self.tree.principal_variation(root, action, max_length)

    def finish(self, rng: np.random.Generator, temperature: float = 1.0) -> SearchResult:
        """The search's result after the simulations run so far."""
        check_run_arguments(rng, temperature)
        _, legal, prior = self._current()
        visit_counts, q_values, root_value, _ = self.statistics()
        policy = np.asarray(self.policy_target(visit_counts, q_values, prior, legal), dtype=np.float32)
        if policy.shape != prior.shape:
            raise ValueError(f"policy_target returned shape {policy.shape}, expected {prior.shape}")
        action = np.asarray(self.select_action(visit_counts, q_values, legal, float(temperature), rng), dtype=np.int64)
        check_actions(action, legal)
        result = SearchResult(action, policy, visit_counts, q_values, root_value, self.simulations_done)
        if self.on_search_finished is not None:
            self.on_search_finished(result)
        return result

    def _current(self) -> tuple[int, np.ndarray, np.ndarray]:
        started = getattr(self, "_started", None)
        if started is None:
            raise RuntimeError("no search started: call start(root, rng) first")
        return started

    def _descend(self, batch: int, simulation: int) -> int:
        tree = self.tree
        return self._descend_kernel(
            self._selection_rule, tree.arrays, tree.descent, batch, self.pb_c_init, self.pb_c_base
        )


def check_run_arguments(rng: Any, temperature: float) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator (np.random.default_rng), got {type(rng).__name__}")
    if not (np.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be finite and >= 0, got {temperature}")


def check_actions(action: np.ndarray, legal: np.ndarray) -> None:
    """Raise if ``action`` is not one legal action per root."""
    batch, num_actions = legal.shape
    if action.shape != (batch,):
        raise ValueError(f"select_action returned shape {action.shape}, expected ({batch},)")
    ok = (action >= 0) & (action < num_actions)
    ok[ok] = legal[np.flatnonzero(ok), action[ok]]
    if not ok.all():
        raise ValueError(f"select_action chose an illegal action for roots {np.flatnonzero(~ok).tolist()}")


def make_search(config: SearchConfig, num_actions: int, batch_size: int, discount: float, **components: Any):
    """The searcher ``config.algorithm`` names, for up to ``batch_size`` roots.

    Components (keyword arguments) replace the defaults; see
    :mod:`muzero.search.components`. The Gumbel searcher takes only ``on_search_finished``.
    """
    from muzero.search.gumbel import GumbelMuZero  # gumbel imports from this module

    if config.algorithm == "gumbel":
        unused = sorted(set(components) - {"on_search_finished"})
        if unused:
            raise ValueError(f"algorithm='gumbel' has its own rules and does not take: {', '.join(unused)}")
        return GumbelMuZero(
            num_actions,
            batch_size,
            config.num_simulations,
            discount,
            max_considered_actions=config.max_considered_actions,
            gumbel_scale=config.gumbel_scale,
            c_visit=config.c_visit,
            c_scale=config.c_scale,
            **components,
        )
    if config.algorithm != "muzero":
        raise ValueError(f"search.algorithm must be 'muzero' or 'gumbel', got {config.algorithm!r}")
    known = {"score_fn", "root_noise", "select_action", "policy_target", "on_search_finished"}
    unknown = sorted(set(components) - known)
    if unknown:
        raise TypeError(f"make_search: unknown components {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    components.setdefault("root_noise", DirichletNoise(config.dirichlet_alpha, config.exploration_fraction))
    return MCTS(
        num_actions,
        batch_size,
        config.num_simulations,
        discount,
        pb_c_init=config.pb_c_init,
        pb_c_base=config.pb_c_base,
        **components,
    )
