"""Replaceable search components, their defaults, and the errors bad input gets."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from test_search_puct import TabularModel, best_path_model, tree_model

from muzero.config import SearchConfig
from muzero.search import (
    MCTS,
    DirichletNoise,
    RootInput,
    StepOutput,
    make_search,
    puct_score,
    visit_count_action,
    visit_count_policy,
)


@njit(cache=True)
def least_visited_score(prior, parent_visits, child_visits, q_normalized, c1, c2):
    """Ignores priors and values: visits children round-robin."""
    return -child_visits


def skewed_model():
    """Two levels, three actions, a prior that strongly prefers action 0, nothing to win."""
    return tree_model(3, 2, reward_of=lambda p, a: 0.0, logits_of=lambda p: [4.0, 0.0, 0.0])


def run(searcher, model, states, temperature=0.0, add_noise=False, seed=0):
    return searcher.run(model.root(states), model, np.random.default_rng(seed), temperature, add_noise)


# --- replacing components ---------------------------------------------------------------------


def test_a_custom_score_fn_changes_the_descent():
    model = skewed_model()
    default = run(make_search(SearchConfig(num_simulations=30), 3, 1, 1.0), model, [0])
    assert default.visit_counts[0, 0] > 20  # pUCT follows the prior
    custom = run(make_search(SearchConfig(num_simulations=30), 3, 1, 1.0, score_fn=least_visited_score), model, [0])
    np.testing.assert_array_equal(custom.visit_counts, [[10, 10, 10]])


def test_the_default_kernel_agrees_with_the_generic_one_running_puct_score():
    model = best_path_model()
    states = [0, 1, 2, 3]
    fast = run(make_search(SearchConfig(num_simulations=25), 3, 4, 0.9), model, states)
    generic = run(make_search(SearchConfig(num_simulations=25), 3, 4, 0.9, score_fn=puct_score), model, states)
    np.testing.assert_array_equal(fast.visit_counts, generic.visit_counts)
    np.testing.assert_allclose(fast.root_value, generic.root_value)


def test_a_custom_select_action_and_policy_target_are_used():
    def last_legal(visit_counts, q_values, legal, temperature, rng):
        return legal.shape[1] - 1 - np.argmax(legal[:, ::-1], axis=1)

    def uniform_target(visit_counts, q_values, prior, legal):
        return legal / legal.sum(axis=1, keepdims=True)

    model = skewed_model()
    searcher = make_search(
        SearchConfig(num_simulations=10), 3, 2, 1.0, select_action=last_legal, policy_target=uniform_target
    )
    result = run(searcher, model, [0, 0])
    np.testing.assert_array_equal(result.action, [2, 2])
    np.testing.assert_allclose(result.policy_target, np.full((2, 3), 1 / 3))


def test_custom_root_noise_and_the_callback():
    def all_on_action_two(prior, legal, rng):
        return np.where(np.arange(prior.shape[1]) == 2, 1.0, 0.0) * np.ones_like(prior)

    finished = []
    model = skewed_model()
    searcher = make_search(
        SearchConfig(num_simulations=12), 3, 1, 1.0, root_noise=all_on_action_two, on_search_finished=finished.append
    )
    noisy = run(searcher, model, [0], add_noise=True)
    assert noisy.visit_counts[0, 2] > noisy.visit_counts[0, 0]
    quiet = run(searcher, model, [0], add_noise=False)  # noise off: the prior's favourite again
    assert quiet.visit_counts[0, 0] > quiet.visit_counts[0, 2]
    assert finished == [noisy, quiet]


def test_a_selector_that_picks_an_illegal_action_is_an_error():
    model = skewed_model()
    model.legal[0] = [True, True, False]
    searcher = make_search(
        SearchConfig(num_simulations=4), 3, 1, 1.0, select_action=lambda n, q, legal, t, rng: np.array([2])
    )
    with pytest.raises(ValueError, match="illegal action for roots \\[0\\]"):
        run(searcher, model, [0])


# --- defaults ---------------------------------------------------------------------------------


def test_dirichlet_noise_stays_on_legal_actions_and_mixes_by_fraction():
    rng = np.random.default_rng(0)
    legal = np.array([[True, False, True, True], [False, True, False, False]])
    prior = legal / legal.sum(axis=1, keepdims=True)
    mixed = DirichletNoise(alpha=0.3, fraction=0.25)(prior, legal, rng)
    assert (mixed[~legal] == 0).all()
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0)
    np.testing.assert_allclose(mixed[1], [0, 1, 0, 0])  # one legal action: noise cannot move it
    assert not np.allclose(mixed[0], prior[0])
    # At least 1 - fraction of each action's prior survives the mix.
    assert (mixed[0][legal[0]] >= 0.75 * prior[0][legal[0]] - 1e-12).all()
    np.testing.assert_allclose(DirichletNoise(0.3, 0.0)(prior, legal, rng), prior)
    with pytest.raises(ValueError, match="alpha"):
        DirichletNoise(alpha=0.0, fraction=0.25)


def test_root_noise_never_gives_illegal_actions_visits():
    model = skewed_model()
    model.legal[0] = [False, True, True]
    searcher = make_search(SearchConfig(num_simulations=20, dirichlet_alpha=0.1, exploration_fraction=1.0), 3, 8, 1.0)
    result = run(searcher, model, [0] * 8, temperature=1.0, add_noise=True)
    assert (result.visit_counts[:, 0] == 0).all()


def test_visit_count_action_and_policy():
    visits = np.array([[0, 5, 5, 0], [1, 0, 9, 0]])
    legal = np.array([[True, True, True, True], [True, True, True, False]])
    rng = np.random.default_rng(0)
    greedy = np.array([visit_count_action(visits, None, legal, 0.0, rng) for _ in range(50)])
    assert set(greedy[:, 0]) == {1, 2}  # ties broken at random
    assert (greedy[:, 1] == 2).all()
    sampled = np.array([visit_count_action(visits, None, legal, 1.0, rng) for _ in range(400)])
    assert set(sampled[:, 1]) == {0, 2}
    assert 0.03 < np.mean(sampled[:, 1] == 0) < 0.2  # 1 in 10 expected
    np.testing.assert_allclose(visit_count_policy(visits, None, None, legal), [[0, 0.5, 0.5, 0], [0.1, 0, 0.9, 0]])


# --- errors -----------------------------------------------------------------------------------


def valid_root(batch=2, num_actions=3):
    return RootInput(
        np.zeros((batch, num_actions), np.float32),
        np.zeros(batch, np.float32),
        np.zeros((batch, 1), np.int64),
        np.ones((batch, num_actions), bool),
        np.zeros(batch, np.int8),
    )


def with_field(root, **changes):
    fields = dict(
        prior_logits=root.prior_logits,
        value=root.value,
        embedding=root.embedding,
        legal_mask=root.legal_mask,
        to_play=root.to_play,
    )
    fields.update(changes)
    return RootInput(**fields)


@pytest.mark.parametrize(
    "changes, error, message",
    [
        (dict(prior_logits=np.zeros((2, 4), np.float32)), ValueError, r"root.prior_logits: expected shape \(2, 3\)"),
        (dict(value=np.zeros(3, np.float32)), ValueError, r"root.value: expected shape \(2,\), got \(3,\)"),
        (dict(legal_mask=np.ones((2, 3), np.int8)), TypeError, "root.legal_mask must be a bool array"),
        (dict(legal_mask=np.array([[True] * 3, [False] * 3])), ValueError, r"roots \[1\] have no legal action"),
        (dict(embedding=np.zeros((3, 1))), ValueError, "root.embedding: expected leading dimension 2"),
        (dict(embedding=[[0], [0]]), TypeError, "root.embedding must be a torch.Tensor or np.ndarray"),
        (dict(prior_logits=np.full((2, 3), np.nan, np.float32)), ValueError, "NaN or inf"),
    ],
)
def test_bad_roots_are_rejected_with_the_field_named(changes, error, message):
    searcher = MCTS(3, batch_size_max=2, num_simulations=2, discount=1.0)
    with pytest.raises(error, match=message):
        searcher.run(with_field(valid_root(), **changes), skewed_model(), np.random.default_rng(0))


def test_too_many_roots_and_bad_arguments_are_rejected():
    searcher = MCTS(3, batch_size_max=2, num_simulations=2, discount=1.0)
    model = skewed_model()
    with pytest.raises(ValueError, match="batch 3 is outside"):
        searcher.run(model.root([0, 0, 0]), model, np.random.default_rng(0))
    with pytest.raises(ValueError, match="temperature"):
        searcher.run(model.root([0]), model, np.random.default_rng(0), temperature=-1.0)
    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        searcher.run(model.root([0]), model, 0)
    with pytest.raises(ValueError, match="discount"):
        MCTS(3, 2, 2, discount=0.0)
    with pytest.raises(TypeError, match="score_fn must be a numba @njit function"):
        MCTS(3, 2, 2, 1.0, score_fn=lambda *args: 0.0)
    with pytest.raises(TypeError, match="unknown components"):
        make_search(SearchConfig(), 3, 2, 1.0, scorefn=None)


def test_bad_step_outputs_are_rejected_with_the_field_named():
    model = skewed_model()

    def short_reward(embedding, action, to_play):
        out = model(embedding, action, to_play)
        return StepOutput(
            out.reward[:1], out.value, out.prior_logits, out.embedding, out.to_play, out.legal_mask, out.terminal
        )

    def float_embedding(embedding, action, to_play):
        out = model(embedding, action, to_play)
        return StepOutput(
            out.reward, out.value, out.prior_logits, out.embedding[:, :0], out.to_play, out.legal_mask, out.terminal
        )

    searcher = MCTS(3, batch_size_max=2, num_simulations=2, discount=1.0)
    with pytest.raises(ValueError, match=r"step output reward: expected shape \(2,\), got \(1,\)"):
        searcher.run(model.root([0, 0]), short_reward, np.random.default_rng(0))
    with pytest.raises(ValueError, match="step output embedding: expected shape"):
        searcher.run(model.root([0, 0]), float_embedding, np.random.default_rng(0))
    with pytest.raises(TypeError, match="must return a StepOutput"):
        searcher.run(model.root([0, 0]), lambda e, a, p: None, np.random.default_rng(0))


def test_tabular_helper_rejects_illegal_steps():
    # The tests above rely on TabularModel failing loudly on an illegal step.
    model = TabularModel([[0, 0]], [[0.0, 0.0]], [0.0], [[0.0, 0.0]], legal=[[True, False]])
    with pytest.raises(AssertionError, match="illegal action"):
        model(np.zeros((1, 1), np.int64), np.array([1]), np.zeros(1, np.int8))
