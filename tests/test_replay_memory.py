"""The sum tree and the embedded replay store: eviction, idempotence, prioritised sampling."""

import numpy as np
import pytest

from muzero.config import ReplayConfig
from muzero.learning.segment import SampleKeys, Segment
from muzero.storage.replay.memory import MemoryReplay
from muzero.storage.replay.protocol import ReplayStorage
from muzero.storage.replay.sum_tree import SumTree

NUM_ACTIONS = 2
OBS_SHAPE = (3,)


def make_segment(length, priorities=None, context=0, segment_id=None):
    steps = length + context
    priorities = np.ones(length) if priorities is None else np.asarray(priorities)
    kwargs = {} if segment_id is None else {"segment_id": segment_id}
    return Segment(
        observations=np.zeros((steps, *OBS_SHAPE), dtype=np.float32),
        actions=np.zeros(steps, dtype=np.int64),
        rewards=np.zeros(steps, dtype=np.float32),
        to_play=np.zeros(steps, dtype=np.int8),
        legal_masks=np.ones((steps, NUM_ACTIONS), dtype=bool),
        policies=np.full((steps, NUM_ACTIONS), 0.5, dtype=np.float32),
        root_values=np.zeros(steps, dtype=np.float32),
        length=length,
        terminated=False,
        bootstrap_value=0.0,
        bootstrap_to_play=0,
        priorities=priorities.astype(np.float32),
        model_version=0,
        **kwargs,
    )


def make_replay(capacity=100, alpha=1.0, beta=1.0, eps=1e-9):
    config = ReplayConfig(capacity=capacity, min_size=1, priority_alpha=alpha, priority_beta=beta, priority_eps=eps)
    return MemoryReplay(config, num_actions=NUM_ACTIONS, observation_shape=OBS_SHAPE, frame_stack=1)


# --- sum tree -----------------------------------------------------------------------------


def test_sum_tree_find_matches_a_cumulative_sum_search():
    rng = np.random.default_rng(0)
    values = rng.random(13) * (rng.random(13) > 0.3)
    tree = SumTree(13)
    tree.set(np.arange(13), values)
    assert tree.total == pytest.approx(values.sum())
    mass = rng.random(1000) * values.sum()
    expected = np.searchsorted(np.cumsum(values), mass, side="right")
    np.testing.assert_array_equal(tree.find(mass), expected)


def test_sum_tree_never_returns_an_empty_leaf_and_last_write_wins():
    tree = SumTree(8)
    tree.set(np.array([3, 3, 5]), np.array([1.0, 0.0, 2.0]))
    assert tree.get(np.array([3]))[0] == 0.0 and tree.total == 2.0
    leaves = tree.find(np.array([0.0, 1.0, 2.0, 1e9]))
    np.testing.assert_array_equal(leaves, [5, 5, 5, 5])
    with pytest.raises(ValueError, match="finite"):
        tree.set(np.array([0]), np.array([np.nan]))


# --- the store ----------------------------------------------------------------------------


def test_memory_replay_satisfies_the_protocol():
    assert isinstance(make_replay(), ReplayStorage)


def test_oldest_segments_are_evicted_first_at_capacity():
    replay = make_replay(capacity=10)
    segments = [make_segment(4) for _ in range(4)]
    for segment in segments[:2]:
        replay.insert(segment)
    assert replay.num_transitions == 8
    replay.insert(segments[2])
    assert segments[0].segment_id not in replay and segments[1].segment_id in replay
    replay.insert(segments[3])
    assert [s.segment_id for s in replay.segments()] == [s.segment_id for s in segments[2:]]
    assert replay.num_transitions == 8 and replay.num_segments == 2
    assert replay.stats()["evicted_segments_total"] == 2


def test_ring_wraparound_keeps_every_live_transition_sampleable():
    rng = np.random.default_rng(1)
    replay = make_replay(capacity=50)
    for _ in range(200):
        length = int(rng.integers(1, 20))
        segment = make_segment(length, priorities=rng.random(length) + 0.5)
        replay.insert(segment)
        live = replay.segments()
        assert replay.num_transitions == sum(s.length for s in live) <= 50
        # The tree holds exactly the live priorities: nothing leaked from evicted segments.
        assert replay.stats()["priority_mass"] == pytest.approx(sum(s.priorities.sum() for s in live))
        sample = replay.sample(16, rng)
        ids = {s.segment_id for s in live}
        assert all(s.segment_id in ids for s in sample.segments)
        assert all(0 <= p < s.length for s, p in zip(sample.segments, sample.positions))


def test_insert_is_idempotent_by_segment_id():
    replay = make_replay()
    segment = make_segment(5)
    replay.insert(segment)
    replay.insert(segment)
    assert replay.num_segments == 1 and replay.num_transitions == 5


def test_invalid_segments_are_rejected_with_nothing_stored():
    replay = make_replay(capacity=10)
    bad = make_segment(3, priorities=[1.0, np.nan, 1.0])
    with pytest.raises(ValueError, match="priorities"):
        replay.insert(bad)
    with pytest.raises(ValueError, match="capacity"):
        replay.insert(make_segment(11))
    with pytest.raises(TypeError):
        replay.insert("not a segment")
    assert replay.num_segments == 0 and replay.num_transitions == 0
    with pytest.raises(ValueError, match="empty"):
        replay.sample(1, np.random.default_rng(0))


def test_importance_weights_match_hand_computed_values():
    replay = make_replay(alpha=1.0, beta=1.0)
    low, high = make_segment(1, priorities=[1.0]), make_segment(1, priorities=[3.0])
    replay.insert(low)
    replay.insert(high)
    sample = replay.sample(64, np.random.default_rng(0))
    by_id = {low.segment_id: (0.25, 1.0), high.segment_id: (0.75, 1 / 3)}  # P; (2P)^-1 / max = (2, 2/3) / 2
    for segment, probability, weight in zip(sample.segments, sample.probabilities, sample.weights):
        assert probability == pytest.approx(by_id[segment.segment_id][0])
        assert weight == pytest.approx(by_id[segment.segment_id][1], rel=1e-6)


def test_sampling_frequencies_follow_priorities():
    replay = make_replay(alpha=1.0)
    priorities = np.array([1.0, 2.0, 3.0, 4.0])
    replay.insert(make_segment(4, priorities=priorities, context=2))
    rng = np.random.default_rng(0)
    counts = np.zeros(4)
    for _ in range(100):
        sample = replay.sample(100, rng)
        counts += np.bincount(sample.positions, minlength=4)
    expected = priorities / priorities.sum() * counts.sum()
    chi_square = ((counts - expected) ** 2 / expected).sum()
    assert chi_square < 16.27  # 99.9% quantile of chi-square with 3 degrees of freedom


def test_alpha_zero_samples_uniformly():
    replay = make_replay(alpha=0.0)
    replay.insert(make_segment(4, priorities=[0.0, 1.0, 10.0, 100.0]))
    sample = replay.sample(4000, np.random.default_rng(0))
    np.testing.assert_array_equal(np.bincount(sample.positions, minlength=4), [1000] * 4)  # stratified
    np.testing.assert_allclose(sample.weights, 1.0)


def test_priority_updates_change_sampling_and_ignore_evicted_segments():
    replay = make_replay(capacity=4)
    first, second = make_segment(2), make_segment(2)
    replay.insert(first)
    replay.insert(second)
    replay.update_priorities(
        SampleKeys(np.array([first.segment_id] * 2 + [second.segment_id] * 2), np.array([0, 1, 0, 1])),
        np.array([0.0, 0.0, 0.0, 5.0]),
    )
    sample = replay.sample(32, np.random.default_rng(0))
    assert {s.segment_id for s in sample.segments} == {second.segment_id}
    assert set(sample.positions.tolist()) == {1}

    replay.insert(make_segment(2))  # evicts `first`
    before = replay.stats()["priority_mass"]
    replay.update_priorities(SampleKeys(np.array([first.segment_id]), np.array([0])), np.array([100.0]))
    assert replay.stats()["priority_mass"] == before
    assert replay.stats()["stale_priority_updates_total"] == 1
    with pytest.raises(ValueError, match="positions"):
        replay.update_priorities(SampleKeys(np.array([second.segment_id]), np.array([2])), np.array([1.0]))
    with pytest.raises(ValueError, match="priorities"):
        replay.update_priorities(SampleKeys(np.array([second.segment_id]), np.array([0])), np.array([-1.0]))


def test_sample_keys_round_trip_into_priority_updates():
    replay = make_replay()
    replay.insert(make_segment(3, priorities=[1.0, 1.0, 1.0]))
    sample = replay.sample(3, np.random.default_rng(0))
    replay.update_priorities(sample.keys, np.full(3, 2.0))
    assert replay.stats()["priority_mass"] == pytest.approx(
        2.0 * len(set(sample.positions.tolist())) + 1.0 * (3 - len(set(sample.positions.tolist())))
    )
