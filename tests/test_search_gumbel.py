"""Gumbel MuZero search (Danihelka et al. 2022): Sequential Halving, completed Q, the deterministic
interior rule, on tabular models with hand-computed results."""

from __future__ import annotations

import numpy as np
import pytest
from test_search_puct import TabularModel, best_path_model

from muzero.config import SearchConfig
from muzero.search import GumbelMuZero, make_search, sequential_halving_schedule


def gumbel_search(model, states, num_simulations, seed=0, add_noise=False, discount=1.0, **kwargs):
    config = SearchConfig(algorithm="gumbel", num_simulations=num_simulations, **kwargs)
    searcher = make_search(config, model.next_state.shape[1], len(states), discount)
    return searcher.run(model.root(states), model, np.random.default_rng(seed), 1.0, add_noise)


def test_sequential_halving_schedule_matches_hand_computation():
    # k=4, n=8: log2(4) = 2 phases; phase 1 gives each of 4 one visit (8 // (2*4) = 1),
    # phase 2 gives each of the 2 survivors 8 // (2*2) = 2 more.
    np.testing.assert_array_equal(sequential_halving_schedule(4, 8), [0, 0, 0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(sequential_halving_schedule(2, 5), [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(sequential_halving_schedule(1, 4), [0, 1, 2, 3])
    # Fewer simulations than candidates: each simulation tries a new candidate.
    np.testing.assert_array_equal(sequential_halving_schedule(16, 5), [0, 0, 0, 0, 0])


def test_sequential_halving_keeps_the_best_half():
    # Four actions, priors 0.4, 0.3, 0.2, 0.1, all Q equal: the first round visits each once,
    # then the two with the best g + logits (no noise) get the remaining four simulations.
    model = TabularModel(
        [[1, 1, 1, 1], [1, 1, 1, 1]],
        np.zeros((2, 4)),
        [0.0, 0.0],
        np.log([[0.4, 0.3, 0.2, 0.1], [0.25] * 4]),
        terminal=[False, True],
    )
    result = gumbel_search(model, [0], num_simulations=8)
    np.testing.assert_array_equal(result.visit_counts, [[3, 3, 1, 1]])
    assert result.action[0] == 0


def test_policy_target_uses_completed_q_with_the_mixed_value():
    # Root: priors 0.5, 0.3, 0.2, value 0.4. Action 0 wins 1, action 1 wins 0 (both terminal).
    # With 2 candidates (no noise: actions 0 and 1) and 2 simulations, action 2 is never visited.
    next_state = [[1, 2, 3], [1, 1, 1], [2, 2, 2], [3, 3, 3]]
    reward = [[1.0, 0.0, 0.0]] + [[0.0] * 3] * 3
    model = TabularModel(
        next_state,
        reward,
        [0.4, 0, 0, 0],
        np.log([[0.5, 0.3, 0.2]] + [[1 / 3] * 3] * 3),
        terminal=[False, True, True, True],
    )
    result = gumbel_search(model, [0], num_simulations=2, max_considered_actions=2)
    np.testing.assert_array_equal(result.visit_counts, [[1, 1, 0]])
    # v_mix = (0.4 + 2 / (0.5 + 0.3) * (0.5 * 1 + 0.3 * 0)) / (1 + 2) = 0.55; Q bounds [0, 1], so
    # normalised completed Q = (1, 0, 0.55) and sigma = (50 + 1) * 0.1 * that = (5.1, 0, 2.805);
    # softmax(log prior + sigma) is proportional to (0.5 e^5.1, 0.3, 0.2 e^2.805).
    np.testing.assert_allclose(result.policy_target, [[0.9578887, 0.0035040, 0.0386073]], rtol=1e-5)
    np.testing.assert_allclose(result.q_values, [[1.0, 0.0, 0.0]])
    np.testing.assert_allclose(result.root_value, [(0.4 + 1.0 + 0.0) / 3], rtol=1e-6)
    assert result.action[0] == 0


def test_interior_nodes_use_the_deterministic_improved_policy_rule():
    # One candidate at the root (max_considered_actions=1), so every simulation goes through state 1,
    # which has priors (0.5, 0.5), value 0, and two terminal children: action 0 pays 1, action 1 pays 0.
    next_state = [[1, 1], [2, 3], [2, 2], [3, 3]]
    reward = [[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    model = TabularModel(
        next_state, reward, np.zeros(4), [[1.0, 0.0]] + [[0.0, 0.0]] * 3, terminal=[False, False, True, True]
    )
    result = gumbel_search(model, [0], num_simulations=5, max_considered_actions=1)
    # At state 1 the score is pi'(a) - N(a) / (1 + sum N), pi' = softmax(log prior + sigma(completed Q)),
    # sigma = (50 + max N) * 0.1 * Q_norm, Q bounds [0, 1], and the unvisited action's Q is
    # v_mix = (0 + sum N / 0.5 * 0.5 * 1) / (1 + sum N):
    # sim 2: nothing visited, pi' = (0.5, 0.5), tie                       -> action 0 (new, pays 1)
    # sim 3: N = (1, 0), v_mix 1/2, sigma (5.1, 2.55), pi' (0.928, 0.072)  -> 0.428 vs 0.072: action 0
    # sim 4: N = (2, 0), v_mix 2/3, sigma (5.2, 3.47), pi' (0.850, 0.150)  -> 0.183 vs 0.150: action 0
    # sim 5: N = (3, 0), v_mix 3/4, sigma (5.3, 3.98), pi' (0.790, 0.210)  -> 0.040 vs 0.210: action 1
    # Simulations 3 and 4 end on the terminal child, so they call no model at all.
    assert model.calls == [([0], [0]), ([1], [0]), ([1], [1])]
    np.testing.assert_array_equal(result.visit_counts, [[5, 0]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gumbel_search_finds_the_best_action_of_a_known_model(seed):
    model = best_path_model()
    result = gumbel_search(model, [0], num_simulations=30, seed=seed, add_noise=True)
    assert result.action[0] == 2
    assert result.policy_target[0, 2] > 0.5
    assert result.q_values[0, 2] > result.q_values[0, 0]


def test_gumbel_two_player_sign_rule():
    # As in the pUCT test: action 0 lets the opponent win, action 1 draws; the prior prefers 0.
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
    result = gumbel_search(model, [0], num_simulations=16)
    assert result.action[0] == 1
    assert result.q_values[0, 0] < 0
    assert result.policy_target[0, 1] > result.policy_target[0, 0]


def test_illegal_actions_are_never_considered():
    model = best_path_model()
    model.legal = np.tile([True, True, False], (model.legal.shape[0], 1))
    for seed in range(3):
        result = gumbel_search(model, [0], num_simulations=10, seed=seed, add_noise=True)
        assert result.visit_counts[0, 2] == 0 and result.policy_target[0, 2] == 0.0
        assert result.action[0] != 2
    assert all(a != 2 for _, actions in model.calls for a in actions)


def test_noise_off_is_deterministic_and_noise_on_varies_the_candidates():
    model = TabularModel([[1] * 8, [1] * 8], np.zeros((2, 8)), [0.0, 0.0], np.zeros((2, 8)), terminal=[False, True])
    quiet = [gumbel_search(model, [0], 4, seed=s, max_considered_actions=4).visit_counts for s in range(3)]
    assert all((v == quiet[0]).all() for v in quiet)
    np.testing.assert_array_equal(quiet[0], [[1, 1, 1, 1, 0, 0, 0, 0]])  # ties: lowest actions
    noisy = {
        tuple(gumbel_search(model, [0], 4, seed=s, add_noise=True, max_considered_actions=4).visit_counts[0])
        for s in range(6)
    }
    assert len(noisy) > 1


def test_gumbel_batched_roots_match_single_roots():
    model = best_path_model()
    together = gumbel_search(model, [0, 1, 3], num_simulations=12)
    for i, state in enumerate([0, 1, 3]):
        alone = gumbel_search(model, [state], num_simulations=12)
        np.testing.assert_array_equal(together.visit_counts[i], alone.visit_counts[0])
        np.testing.assert_allclose(together.policy_target[i], alone.policy_target[0], rtol=1e-6)
        assert together.action[i] == alone.action[0]


def test_gumbel_takes_only_the_callback_component():
    with pytest.raises(ValueError, match="score_fn"):
        make_search(SearchConfig(algorithm="gumbel"), 3, 1, 1.0, score_fn=None)
    seen = []
    searcher = make_search(
        SearchConfig(algorithm="gumbel", num_simulations=4), 3, 1, 1.0, on_search_finished=seen.append
    )
    assert isinstance(searcher, GumbelMuZero)
    model = best_path_model()
    result = searcher.run(model.root([0]), model, np.random.default_rng(0))
    assert seen == [result]
