"""MuZero pUCT search: the rules of Appendix B on tiny tabular models with hand-computed results."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from muzero.config import SearchConfig
from muzero.search import MCTS, RootInput, StepOutput, make_search, puct_score
from muzero.search.tree import normalize_q

C1, C2 = 1.25, 19652.0


class TabularModel:
    """A step function over a finite model given as tables indexed by state.

    The embedding is the (B, 1) int64 state index. Every call is recorded, and a
    call with a terminal parent or an action illegal at its parent fails the test.
    """

    def __init__(self, next_state, reward, value, logits, to_play=None, legal=None, terminal=None):
        self.next_state = np.asarray(next_state, dtype=np.int64)
        num_states, num_actions = self.next_state.shape
        self.reward = np.asarray(reward, dtype=np.float32)
        self.value = np.asarray(value, dtype=np.float32)
        self.logits = np.asarray(logits, dtype=np.float32)
        self.to_play = np.zeros(num_states, np.int8) if to_play is None else np.asarray(to_play, np.int8)
        self.legal = np.ones((num_states, num_actions), bool) if legal is None else np.asarray(legal, bool)
        self.terminal = np.zeros(num_states, bool) if terminal is None else np.asarray(terminal, bool)
        self.calls: list[tuple[list[int], list[int]]] = []
        self.zero_terminal_values = True  # False: report the table's value even at terminal states

    def root(self, states) -> RootInput:
        states = np.asarray(states, dtype=np.int64)
        return RootInput(
            self.logits[states], self.value[states], states[:, None].copy(), self.legal[states], self.to_play[states]
        )

    def __call__(self, embedding, action, to_play):
        states = np.asarray(embedding)[:, 0]
        self.calls.append((states.tolist(), np.asarray(action).tolist()))
        assert not self.terminal[states].any(), f"stepped from a terminal state: {states}"
        assert self.legal[states, action].all(), f"illegal action {action} at {states}"
        assert (np.asarray(to_play) == self.to_play[states]).all()
        nxt = self.next_state[states, action]
        value = self.value[nxt]
        if self.zero_terminal_values:
            value = np.where(self.terminal[nxt], 0.0, value).astype(np.float32)
        return StepOutput(
            self.reward[states, action],
            value,
            self.logits[nxt],
            nxt[:, None],
            self.to_play[nxt],
            self.legal[nxt],
            self.terminal[nxt],
        )


def tree_model(num_actions, depth, reward_of, logits_of=None, value_of=None, to_play_of=None):
    """A deterministic tree of the given depth: states are action paths; leaves are terminal.

    ``reward_of(path, a)``, ``logits_of(path)``, ``value_of(path)`` and ``to_play_of(path)``
    give the tables (defaults: uniform logits, value 0, player 0).
    """
    paths = [p for d in range(depth + 1) for p in itertools.product(range(num_actions), repeat=d)]
    index = {p: i for i, p in enumerate(paths)}
    size = len(paths)
    next_state = np.zeros((size, num_actions), np.int64)
    reward = np.zeros((size, num_actions))
    for p in paths:
        for a in range(num_actions):
            if len(p) < depth:
                next_state[index[p], a] = index[p + (a,)]
                reward[index[p], a] = reward_of(p, a)
            else:
                next_state[index[p], a] = index[p]
    logits = [logits_of(p) if logits_of else [0.0] * num_actions for p in paths]
    value = [value_of(p) if value_of else 0.0 for p in paths]
    to_play = [to_play_of(p) if to_play_of else 0 for p in paths]
    terminal = [len(p) == depth for p in paths]
    return TabularModel(next_state, reward, value, logits, to_play, None, terminal)


def search(model, states, num_simulations, discount=1.0, seed=0, temperature=0.0, add_noise=False, **kwargs):
    config = SearchConfig(num_simulations=num_simulations, **kwargs)
    searcher = make_search(config, model.next_state.shape[1], len(states), discount)
    return searcher.run(model.root(states), model, np.random.default_rng(seed), temperature, add_noise)


# --- the score and its normalisation -----------------------------------------------------------


def test_puct_score_matches_hand_computation():
    # 0.25 + 0.5 * sqrt(4) / (1 + 1) * (1.25 + log((4 + 19652 + 1) / 19652)) = 0.25 + 0.5 * 1.2502544
    assert puct_score(0.5, 4.0, 1.0, 0.25, C1, C2) == pytest.approx(0.8751272, abs=1e-7)
    # An unvisited child of a once-visited parent: prior * 1 * (1.25 + log(19654 / 19652)).
    assert puct_score(0.3, 1.0, 0.0, 0.0, C1, C2) == pytest.approx(0.3 * 1.2501018, abs=1e-7)


def test_q_normalisation_uses_the_trees_bounds_and_clips():
    assert normalize_q(0.5, 0.0, 2.0) == pytest.approx(0.25)
    assert normalize_q(-1.0, -3.0, 1.0) == pytest.approx(0.5)
    assert normalize_q(3.0, 0.0, 2.0) == 1.0
    assert normalize_q(0.7, 0.7, 0.7) == 0.0  # no spread yet
    assert normalize_q(0.7, math.inf, -math.inf) == 0.0  # no Q seen yet


def test_selection_order_on_a_tiny_tree_matches_hand_computation():
    # Root (state 0) with priors [0.5, 0.3, 0.2] and value 0.4; its children 1, 2, 3 have values
    # 0.0, 1.0, 0.5 and uniform priors; state 2's children (4, 5, 6) have value 0.2.
    next_state = [[1, 2, 3], [7, 7, 7], [4, 5, 6], [7, 7, 7], [7, 7, 7], [7, 7, 7], [7, 7, 7], [7, 7, 7]]
    logits = np.log([[0.5, 0.3, 0.2]] + [[1 / 3] * 3] * 7)
    value = [0.4, 0.0, 1.0, 0.5, 0.2, 0.2, 0.2, 0.0]
    model = TabularModel(next_state, np.zeros((8, 3)), value, logits)
    result = search(model, [0], num_simulations=4)
    # c = 1.25 + log((N + c2 + 1) / c2) is 1.2501 to 4 digits for N = 1..4; scores below are (a0, a1, a2).
    # An unvisited child's Q is the parent's mean value V, normalised like any Q.
    # sim 1: N=1, no Q seen, all Q_norm 0: prior * c           -> a0 (0.625, 0.375, 0.250); Q(a0) = 0
    # sim 2: N=2, one Q value, no spread: all Q_norm 0
    #        a0 0.5*1.414/2*c, a1 0.3*1.414*c, a2 0.2*1.414*c = (0.442, 0.530, 0.354)
    #                                                          -> a1; Q(a1) = 1, bounds [0, 1]
    # sim 3: N=3, V = (0.4 + 0 + 1) / 3 = 0.467:
    #        a0 0 + 0.5*1.732/2*c = 0.541, a1 1 + 0.3*1.732/2*c = 1.325, a2 0.467 + 0.2*1.732*c = 0.900
    #        -> a1, then in state 2 (unvisited children all at V = 1, uniform priors) the lowest action 0:
    #        state 4, value 0.2, so Q(a1) = 0.6 and V = (0.4 + 0 + 1 + 0.2) / 4 = 0.4
    # sim 4: N=4: a0 0 + 0.5*2/2*c = 0.625, a1 0.6 + 0.3*2/3*c = 0.850, a2 0.4 + 0.2*2*c = 0.900 -> a2
    assert model.calls == [([0], [0]), ([0], [1]), ([2], [0]), ([0], [2])]
    np.testing.assert_array_equal(result.visit_counts, [[1, 2, 1]])
    np.testing.assert_allclose(result.q_values, [[0.0, (1.0 + 0.2) / 2, 0.5]], rtol=1e-6)
    # Root value: its own 0.4 plus the four returns 0, 1, 0.2, 0.5, over five visits.
    np.testing.assert_allclose(result.root_value, [(0.4 + 0.0 + 1.0 + 0.2 + 0.5) / 5], rtol=1e-6)
    np.testing.assert_allclose(result.policy_target, [[0.25, 0.5, 0.25]])


def test_unvisited_children_are_valued_at_the_parents_value_not_as_losses():
    # Root (player 0) has one legal move, to state 1 where player 1 moves (value 0.5 for player 1).
    # Player 1's replies end the game: 0 and 1 draw, 2 wins. Priors are uniform.
    next_state = [[1, 1, 1], [2, 3, 4], [2, 2, 2], [3, 3, 3], [4, 4, 4]]
    reward = np.zeros((5, 3))
    reward[1, 2] = 1.0
    legal = [[True, False, False]] + [[True] * 3] * 4
    model = TabularModel(
        next_state,
        reward,
        [0.0, 0.5, 0, 0, 0],
        np.zeros((5, 3)),
        to_play=[0, 1, 0, 0, 0],
        legal=legal,
        terminal=[False, False, True, True, True],
    )
    result = search(model, [0], num_simulations=4)
    # sim 1 expands state 1: root Q -0.5. sim 2: no Q spread, reply 0 (draw): Q 0, bounds [-0.5, 0].
    # sim 3 at state 1 (N=2, V = (0.5 + 0) / 2 = 0.25, normalised and clipped to 1):
    #   reply 0: 1 + (1/3)*1.414/2*c = 1.29; unvisited: 1 + (1/3)*1.414*c = 1.59      -> reply 1
    # sim 4 (N=3, V = 1/6 -> 1): replies 0, 1: 1 + (1/3)*1.732/2*c = 1.36; reply 2: 1.72 -> reply 2
    # Scoring unvisited replies as the worst Q instead would repeat reply 0 until simulation 9.
    assert model.calls == [([0], [0]), ([1], [0]), ([1], [1]), ([1], [2])]
    np.testing.assert_allclose(result.q_values[0, 0], (-0.5 + 0.0 + 0.0 - 1.0) / 4, rtol=1e-6)


# --- backups: discount, intermediate rewards, terminal nodes -----------------------------------


def test_root_value_on_a_chain_matches_hand_computed_discounted_returns():
    # One action; states 0 -> 1 -> 2 -> 3 with rewards 1, 2, 3 and values 0.5, 1, 2, 4.
    model = TabularModel([[1], [2], [3], [3]], [[1.0], [2.0], [3.0], [0.0]], [0.5, 1.0, 2.0, 4.0], np.zeros((4, 1)))
    result = search(model, [0], num_simulations=3, discount=0.9)
    # Simulation i reaches depth i + 1, so the returns at the root are
    #   1 + 0.9 * 1 = 1.9;  1 + 0.9 * 2 + 0.81 * 2 = 4.42;  1 + 0.9 * 2 + 0.81 * 3 + 0.729 * 4 = 8.146
    np.testing.assert_allclose(result.q_values, [[(1.9 + 4.42 + 8.146) / 3]], rtol=1e-6)
    np.testing.assert_allclose(result.root_value, [(0.5 + 1.9 + 4.42 + 8.146) / 4], rtol=1e-6)


def test_terminal_nodes_back_up_their_reward_and_are_never_stepped_from():
    # 0 --(r=1)--> 1 --(r=2)--> 2 (terminal; the model's value 9 must be ignored).
    model = TabularModel(
        [[1], [2], [2]], [[1.0], [2.0], [0.0]], [0.5, 1.0, 9.0], np.zeros((3, 1)), terminal=[False, False, True]
    )
    model.zero_terminal_values = False
    result = search(model, [0], num_simulations=5, discount=0.9)
    # Two model calls make nodes 1 and 2; the other three simulations end on terminal node 2
    # (the only root, so the step call is skipped) and back up 1 + 0.9 * 2 + 0.81 * 0 = 2.8.
    assert model.calls == [([0], [0]), ([1], [0])]
    returns = [1 + 0.9 * 1.0] + [2.8] * 4
    np.testing.assert_allclose(result.q_values, [[np.mean(returns)]], rtol=1e-6)
    np.testing.assert_allclose(result.root_value, [(0.5 + sum(returns)) / 6], rtol=1e-6)


def test_a_root_on_a_terminal_node_fills_its_step_row_with_its_own_root_and_is_ignored():
    # Root 0 reaches terminal state 1 at once; root 2 has a long chain. Searching both
    # together keeps one step call per simulation; root 0's rows are placeholders.
    next_state = [[1], [1], [3], [4], [5], [5]]
    reward = [[1.0], [0.0], [0.0], [0.0], [0.0], [0.0]]
    model = TabularModel(
        next_state, reward, np.zeros(6), np.zeros((6, 1)), terminal=[False, True, False, False, False, True]
    )
    result = search(model, [0, 2], num_simulations=3, discount=1.0)
    assert model.calls == [([0, 2], [0, 0]), ([0, 3], [0, 0]), ([0, 4], [0, 0])]
    np.testing.assert_allclose(result.q_values, [[1.0], [0.0]])
    np.testing.assert_array_equal(result.visit_counts, [[3], [3]])


# --- the rules at work ------------------------------------------------------------------------


def best_path_model():
    """Depth-3 tree, 3 actions: only the path 2, 0, 1 pays (1 per step on it); priors favour 0."""
    best = (2, 0, 1)
    return tree_model(
        3, 3, reward_of=lambda p, a: float(p + (a,) == best[: len(p) + 1]), logits_of=lambda p: [1.0, 0.0, 0.0]
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_search_finds_the_best_action_of_a_known_model(seed):
    model = best_path_model()
    result = search(model, [0], num_simulations=40, seed=seed, add_noise=True, temperature=0.0)
    assert result.action[0] == 2
    assert result.policy_target[0, 2] > 0.6
    assert result.q_values[0, 2] > result.q_values[0, 0]


def test_two_player_sign_rule_avoids_the_move_that_lets_the_opponent_win():
    # Player 0 at the root. Action 0 -> state 1 (player 1 to move), where player 1's action 0
    # wins (+1 to player 1). Action 1 -> state 2, where every reply draws. The prior prefers 0.
    next_state = [[1, 2], [3, 4], [5, 6], [3, 3], [4, 4], [5, 5], [6, 6]]
    reward = np.zeros((7, 2))
    reward[1, 0] = 1.0
    model = TabularModel(
        next_state,
        reward,
        np.zeros(7),
        [[2.0, 0.0]] + [[0.0, 0.0]] * 6,
        to_play=[0, 1, 1, 0, 0, 0, 0],
        terminal=[False] * 3 + [True] * 4,
    )
    result = search(model, [0], num_simulations=30)
    assert result.action[0] == 1
    assert result.q_values[0, 0] < -0.3  # bad for the root player, whose opponent wins
    assert result.q_values[0, 1] == 0.0


def test_illegal_actions_are_never_visited_at_the_root_or_below():
    # Root legal mask [T, F, T]; the children's masks forbid action 0. TabularModel fails on illegal steps.
    legal = np.array([[True, False, True]] + [[False, True, True]] * 12)
    model = tree_model(3, 2, reward_of=lambda p, a: 0.0, logits_of=lambda p: [5.0, 5.0, 0.0])
    model.legal = legal
    for seed in range(3):
        result = search(model, [0], num_simulations=12, seed=seed, add_noise=True, temperature=1.0)
        assert result.visit_counts[0, 1] == 0 and result.policy_target[0, 1] == 0.0
        assert result.action[0] != 1
    stepped_below_root = [a for states, actions in model.calls for s, a in zip(states, actions) if s != 0]
    assert stepped_below_root and 0 not in stepped_below_root


def test_batched_roots_get_the_same_results_as_each_alone():
    model = best_path_model()
    roots = [0, 1, 3]  # the root, and two depth-1 states
    together = search(model, roots, num_simulations=20)
    for i, state in enumerate(roots):
        alone = search(model, [state], num_simulations=20)
        np.testing.assert_array_equal(together.visit_counts[i], alone.visit_counts[0])
        np.testing.assert_allclose(together.q_values[i], alone.q_values[0])
        np.testing.assert_allclose(together.root_value[i], alone.root_value[0])
        np.testing.assert_allclose(together.policy_target[i], alone.policy_target[0])


def test_a_searcher_is_reused_across_calls_and_batch_sizes():
    model = best_path_model()
    searcher = MCTS(3, batch_size_max=4, num_simulations=15, discount=1.0)
    rng = np.random.default_rng(0)
    first = searcher.run(model.root([0]), model, rng, temperature=0.0, add_noise=False)
    searcher.run(model.root([1, 2, 3, 0]), model, rng, temperature=0.0, add_noise=False)
    again = searcher.run(model.root([0]), model, rng, temperature=0.0, add_noise=False)
    np.testing.assert_array_equal(first.visit_counts, again.visit_counts)
    np.testing.assert_allclose(first.root_value, again.root_value)


def test_torch_embeddings_give_the_same_search_as_numpy():
    numpy_model = best_path_model()

    def torch_step(embedding, action, to_play):
        assert isinstance(embedding, torch.Tensor)
        out = numpy_model(embedding.numpy(), action, to_play)
        return StepOutput(
            out.reward,
            out.value,
            out.prior_logits,
            torch.from_numpy(out.embedding),
            out.to_play,
            out.legal_mask,
            out.terminal,
        )

    root = numpy_model.root([0, 1])
    torch_root = RootInput(
        root.prior_logits, root.value, torch.from_numpy(root.embedding), root.legal_mask, root.to_play
    )
    searcher = make_search(SearchConfig(num_simulations=20), 3, 2, 1.0)
    expected = searcher.run(root, numpy_model, np.random.default_rng(0), 0.0, add_noise=False)
    got = searcher.run(torch_root, torch_step, np.random.default_rng(0), 0.0, add_noise=False)
    np.testing.assert_array_equal(got.visit_counts, expected.visit_counts)
    np.testing.assert_allclose(got.root_value, expected.root_value)


def test_temperature_samples_in_proportion_to_visits_and_zero_is_greedy():
    model = best_path_model()
    searcher = make_search(SearchConfig(num_simulations=30), 3, 64, 1.0)
    root = model.root([0] * 64)
    greedy = searcher.run(root, model, np.random.default_rng(0), temperature=0.0, add_noise=False)
    assert (greedy.action == np.argmax(greedy.visit_counts[0])).all()
    sampled = searcher.run(root, model, np.random.default_rng(0), temperature=1.0, add_noise=False)
    assert len(set(sampled.action.tolist())) > 1  # visits are spread, so sampling is too
    assert (sampled.visit_counts[np.arange(64), sampled.action] > 0).all()
