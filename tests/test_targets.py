"""n-step value targets, unroll targets and masks, checked against hand-computed values."""

import numpy as np
import pytest

from muzero.learning.batch import make_batch
from muzero.learning.segment import Segment
from muzero.learning.targets import segment_value_targets, unroll_targets

NUM_ACTIONS = 3


def make_segment(
    rewards,
    root_values,
    to_play=None,
    length=None,
    terminated=False,
    bootstrap_value=0.0,
    bootstrap_to_play=0,
    actions=None,
    frame_stack=1,
):
    steps = len(rewards)
    if to_play is None:
        to_play = np.zeros(steps)
    if actions is None:
        actions = np.arange(steps) % NUM_ACTIONS
    policies = np.zeros((steps, NUM_ACTIONS), dtype=np.float32)
    policies[np.arange(steps), np.arange(steps) % NUM_ACTIONS] = 1.0
    length = steps if length is None else length
    return Segment(
        observations=np.arange(frame_stack - 1 + steps, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32),
        actions=np.asarray(actions, dtype=np.int64),
        rewards=np.asarray(rewards, dtype=np.float32),
        to_play=np.asarray(to_play, dtype=np.int8),
        legal_masks=np.ones((steps, NUM_ACTIONS), dtype=bool),
        policies=policies,
        root_values=np.asarray(root_values, dtype=np.float32),
        length=length,
        terminated=terminated,
        bootstrap_value=bootstrap_value,
        bootstrap_to_play=bootstrap_to_play,
        priorities=np.ones(length, dtype=np.float32),
        model_version=0,
    )


def test_mid_segment_targets_bootstrap_from_stored_root_values():
    segment = make_segment([1, 2, 3, 4, 5, 6], [10, 20, 30, 40, 50, 60], length=2, bootstrap_value=1e6)
    values = segment_value_targets(segment, td_steps=2, discount=0.5)
    # z_0 = 1 + 0.5 * 2 + 0.25 * 30;  z_1 = 2 + 0.5 * 3 + 0.25 * 40
    np.testing.assert_allclose(values, [9.5, 13.5])


def test_terminated_episode_has_nothing_after_its_end():
    segment = make_segment([1, 1, 1], [5, 5, 5], terminated=True)
    values = segment_value_targets(segment, td_steps=3, discount=0.9)
    np.testing.assert_allclose(values, [1 + 0.9 + 0.81, 1 + 0.9, 1.0], rtol=1e-6)


def test_truncated_episode_bootstraps_from_the_state_after_its_end():
    segment = make_segment([1, 1, 1], [5, 5, 5], terminated=False, bootstrap_value=10.0)
    values = segment_value_targets(segment, td_steps=3, discount=0.9)
    expected = [1 + 0.9 + 0.81 + 0.729 * 10, 1 + 0.9 + 0.81 * 10, 1 + 0.9 * 10]
    np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_two_player_rewards_count_against_the_opponent():
    # Players alternate; player 1's last move wins (+1 for the mover).
    segment = make_segment([0, 0, 0, 1], [0, 0, 0, 0], to_play=[0, 1, 0, 1], terminated=True)
    values = segment_value_targets(segment, td_steps=4, discount=1.0)
    np.testing.assert_allclose(values, [-1, 1, -1, 1])


def test_two_player_bootstrap_values_take_the_sign_of_their_player():
    segment = make_segment([0.5, 0.25], [0.0, 0.3], to_play=[0, 1], bootstrap_value=0.4, bootstrap_to_play=0)
    values = segment_value_targets(segment, td_steps=1, discount=1.0)
    # z_0 = r_0 - v_1 (player 1 moves at step 1);  z_1 = r_1 - bootstrap (player 0 moves after the end)
    np.testing.assert_allclose(values, [0.5 - 0.3, 0.25 - 0.4], rtol=1e-6)


def test_two_player_truncated_bootstrap_discount_counts_steps_to_the_end():
    segment = make_segment([1.0, 2.0], [0.0, 0.0], to_play=[0, 1], bootstrap_value=3.0, bootstrap_to_play=0)
    values = segment_value_targets(segment, td_steps=5, discount=0.5)
    # z_0 = 1 - 0.5 * 2 + 0.25 * 3 (player 0 moves again after the end)
    np.testing.assert_allclose(values, [1 - 1 + 0.75, 2 - 0.5 * 3], rtol=1e-6)


def unroll(segment, position, unroll_steps, td_steps, discount=1.0, seed=0):
    return unroll_targets(
        [segment], np.array([position]), unroll_steps, td_steps, discount, np.random.default_rng(seed)
    )


def test_unroll_past_a_terminal_state_trains_an_absorbing_state():
    segment = make_segment([1, 2, 3, 4], [9, 9, 9, 9], terminated=True, actions=[0, 1, 2, 1])
    targets = unroll(segment, position=2, unroll_steps=3, td_steps=2)
    np.testing.assert_allclose(targets.values[0], [3 + 4, 4, 0, 0])
    np.testing.assert_array_equal(targets.value_mask[0], [True, True, True, True])
    np.testing.assert_allclose(targets.rewards[0], [0, 3, 4, 0])
    np.testing.assert_array_equal(targets.reward_mask[0], [False, True, True, True])
    np.testing.assert_array_equal(targets.policy_mask[0], [True, True, False, False])
    np.testing.assert_array_equal(targets.policies[0, :2], segment.policies[2:4])
    np.testing.assert_array_equal(targets.actions[0, :2], [2, 1])
    assert 0 <= targets.actions[0, 2] < NUM_ACTIONS


def test_unroll_past_a_truncated_end_masks_all_but_the_bootstrapped_state():
    segment = make_segment([1, 2, 3, 4], [9, 9, 9, 9], terminated=False, bootstrap_value=5.0)
    targets = unroll(segment, position=2, unroll_steps=3, td_steps=2)
    np.testing.assert_allclose(targets.values[0, :3], [3 + 4 + 5, 4 + 5, 5])
    np.testing.assert_array_equal(targets.value_mask[0], [True, True, True, False])
    np.testing.assert_array_equal(targets.reward_mask[0], [False, True, True, False])
    np.testing.assert_array_equal(targets.policy_mask[0], [True, True, False, False])
    np.testing.assert_allclose(targets.rewards[0, :3], [0, 3, 4])


def test_unroll_inside_context_needs_no_bootstrap():
    unroll_steps, td_steps, length = 2, 3, 2
    steps = length + unroll_steps + td_steps
    rewards = np.arange(1, steps + 1, dtype=np.float32)
    root_values = 100 * np.arange(1, steps + 1, dtype=np.float32)
    segment = make_segment(rewards, root_values, length=length, bootstrap_value=1e6)
    targets = unroll(segment, position=length - 1, unroll_steps=unroll_steps, td_steps=td_steps)
    for k in range(unroll_steps + 1):
        q = length - 1 + k
        expected = rewards[q] + rewards[q + 1] + rewards[q + 2] + root_values[q + 3]
        assert targets.values[0, k] == pytest.approx(expected)
    assert targets.value_mask.all() and targets.policy_mask.all()
    np.testing.assert_array_equal(targets.reward_mask[0], [False, True, True])


def test_unroll_rejects_positions_outside_the_owned_steps():
    segment = make_segment([1, 2, 3], [0, 0, 0], length=2)
    with pytest.raises(ValueError, match="positions"):
        unroll(segment, position=2, unroll_steps=1, td_steps=1)


def test_make_batch_stacks_frames_and_carries_keys_and_weights():
    segment = make_segment([1, 2, 3, 4], [0, 0, 0, 0], frame_stack=3)
    rng = np.random.default_rng(0)
    batch = make_batch([segment, segment], np.array([0, 2]), 2, 1, 1.0, 3, rng, weights=np.array([0.5, 1.0]))
    # Frame f of the segment is (f, f); step t sees frames t, t+1, t+2 (oldest first).
    np.testing.assert_array_equal(batch.observations[0], [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(batch.observations[1], [2, 2, 3, 3, 4, 4])
    assert batch.actions.shape == (2, 2) and batch.target_policies.shape == (2, 3, NUM_ACTIONS)
    np.testing.assert_array_equal(batch.keys.positions, [0, 2])
    assert list(batch.keys.segment_ids) == [segment.segment_id] * 2
    np.testing.assert_allclose(batch.weights, [0.5, 1.0])
    torch_batch = batch.to_torch("cpu")
    assert tuple(torch_batch.observations.shape) == (2, 6)
    with pytest.raises(ValueError, match="frame_stack"):
        make_batch([segment], np.array([0]), 2, 1, 1.0, 2, rng)


def test_bootstrap_terms_rebuild_the_target_network_targets():
    """Ready targets + scale * (v - stored) equal targets computed with the value function."""
    from muzero.learning.learner import refreshed_targets
    from muzero.learning.targets import bootstrap_terms
    from tests.factories import random_segment

    rng = np.random.default_rng(0)
    segments = [
        random_segment(
            rng,
            num_actions=3,
            frame_shape=(2,),
            frame_stack=2,
            steps=int(rng.integers(3, 15)),
            terminated=bool(rng.integers(2)),
        )
        for _ in range(20)
    ]
    positions = np.array([rng.integers(0, s.length) for s in segments])

    def value_fn(observations):
        return observations.reshape(len(observations), -1).sum(axis=1).astype(np.float32)

    K, n, discount = 3, 4, 0.9
    plain = unroll_targets(segments, positions, K, n, discount, np.random.default_rng(1))
    refreshed = unroll_targets(
        segments, positions, K, n, discount, np.random.default_rng(1), bootstrap_value_fn=value_fn
    )
    terms = bootstrap_terms(segments, positions, K, n, discount)
    assert terms.mask.any() and not terms.mask.all()
    rebuilt = refreshed_targets(plain.values, terms, value_fn)  # what the learner does with ready targets
    np.testing.assert_allclose(rebuilt, refreshed.values, rtol=1e-5, atol=1e-5)
    assert not np.allclose(plain.values, refreshed.values)
