"""The replay storage contract: every backend (memory; Redis with 1 and 3 shards) passes it."""

from __future__ import annotations

import uuid
from dataclasses import replace

import numpy as np
import pytest

from muzero.config import ReplayConfig
from muzero.learning.batch import make_batch
from muzero.learning.segment import SampleKeys, Segment
from muzero.storage.replay.memory import MemoryReplay
from muzero.storage.replay.protocol import ReplayStorage
from muzero.storage.replay.redis_store import RedisReplay
from tests.factories import random_segment

NUM_ACTIONS = 3
FRAME_SHAPE = (2, 3)
FRAME_STACK = 2
UNROLL, TD = 2, 3
WINDOW = UNROLL + TD + 1
# redis-N: the front's default cache (small frames: cached segments keep theirs assembled);
# -framecache: a cache too small for that, so frames are cached one by one and evicted;
# -nocache: every read goes to Redis.
BACKENDS = ["memory", "redis-1", "redis-3", "redis-1-framecache", "redis-3-nocache"]
CACHE_BYTES = {"": 256 * 2**20, "framecache": 4096, "nocache": 0}


def make_store(backend: str, redis_shards, capacity: int = 200, **overrides) -> ReplayStorage:
    config = ReplayConfig(
        capacity=capacity, min_size=1, segment_length=10, priority_alpha=1.0, priority_beta=1.0, **overrides
    )
    if backend == "memory":
        return MemoryReplay(config, num_actions=NUM_ACTIONS, observation_shape=FRAME_SHAPE, frame_stack=FRAME_STACK)
    _, shards, *variant = backend.split("-")
    config = replace(config, cache_bytes=CACHE_BYTES["".join(variant)])
    store = RedisReplay(
        config,
        experiment=f"test-{uuid.uuid4().hex[:8]}",
        num_actions=NUM_ACTIONS,
        observation_shape=FRAME_SHAPE,
        frame_stack=FRAME_STACK,
        window_steps=WINDOW,
        observation_dtype=np.float32,
        clients=[s.client() for s in redis_shards[: int(shards)]],
    )
    return store


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def store(backend, redis_shards):
    store = make_store(backend, redis_shards)
    yield store
    if isinstance(store, RedisReplay):
        store.clear()


def make_segment(
    rng: np.random.Generator,
    steps: int = 12,
    length: int | None = None,
    terminated: bool = True,
    priority: float | None = None,
    frames: np.ndarray | None = None,
) -> Segment:
    return random_segment(
        rng,
        num_actions=NUM_ACTIONS,
        frame_shape=FRAME_SHAPE,
        frame_stack=FRAME_STACK,
        steps=steps,
        length=length,
        terminated=terminated,
        priority=priority,
        frames=frames,
    )


def test_backends_implement_the_protocol(store):
    assert isinstance(store, ReplayStorage)


def test_insert_counts_and_duplicate_is_a_no_op(store):
    rng = np.random.default_rng(0)
    segment = make_segment(rng, steps=12, length=9, terminated=False)
    assert store.insert(segment) is True
    assert store.insert(segment) is False
    assert store.num_segments == 1 and store.num_transitions == 9
    assert store.stats()["duplicate_inserts_total"] == 1
    assert store.fsck() == []


def test_examples_have_the_targets_of_the_stored_segment(store):
    """Whatever a backend hands out (segments or windows), the examples are the same."""
    rng = np.random.default_rng(1)
    segments = {}
    for _ in range(6):
        segment = make_segment(rng, steps=int(rng.integers(3, 14)), terminated=bool(rng.integers(2)))
        segment = (
            make_segment(rng, steps=segment.num_steps, length=max(1, segment.num_steps - 2), terminated=False)
            if not segment.terminated
            else segment
        )
        if segment.terminated and rng.integers(2):  # who owns each point at the end (Go)
            ownership = rng.integers(-1, 2, FRAME_SHAPE[0] * FRAME_SHAPE[1]).astype(np.float32)
            segment = replace(segment, final_ownership=ownership)
        segments[segment.segment_id] = segment
        store.insert(segment)
    sampled = store.sample(64, np.random.default_rng(2))
    got = make_batch(sampled.segments, sampled.positions, UNROLL, TD, 0.9, FRAME_STACK, np.random.default_rng(3))
    originals = [segments[str(i)] for i in sampled.keys.segment_ids]
    want = make_batch(originals, sampled.keys.positions, UNROLL, TD, 0.9, FRAME_STACK, np.random.default_rng(3))
    np.testing.assert_array_equal(got.observations, want.observations)
    for name in ("target_values", "target_rewards", "target_policies", "value_mask", "reward_mask", "policy_mask"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), err_msg=name)
    assert want.ownership_mask is not None and want.ownership_mask.any() and not want.ownership_mask.all()
    np.testing.assert_array_equal(got.ownership_mask, want.ownership_mask)
    np.testing.assert_array_equal(got.target_ownership, want.target_ownership)
    played = want.policy_mask[:, 1:].copy()
    np.testing.assert_array_equal(got.actions[played[:, :UNROLL]], want.actions[played[:, :UNROLL]])
    # Reading only the stacked frames gives the same examples.
    lean = store.sample(64, np.random.default_rng(2), frames="stack")
    lean_batch = make_batch(
        lean.segments,
        lean.positions,
        UNROLL,
        TD,
        0.9,
        FRAME_STACK,
        np.random.default_rng(3),
        observations=lean.observations,
    )
    np.testing.assert_array_equal(lean.keys.segment_ids, sampled.keys.segment_ids)
    np.testing.assert_array_equal(lean_batch.observations, want.observations)
    np.testing.assert_allclose(lean_batch.target_values, want.target_values)


def test_oldest_segments_are_evicted_first(backend, redis_shards):
    store = make_store(backend, redis_shards, capacity=60)
    rng = np.random.default_rng(4)
    inserted = [make_segment(rng, steps=10) for _ in range(20)]
    for segment in inserted:
        store.insert(segment)
    assert store.num_transitions <= 60 + (10 if backend == "redis-3" else 0)
    assert store.stats()["evicted_segments_total"] >= 12
    remaining = {s.segment_id for s in store.read_segments(200, rng)}
    assert inserted[-1].segment_id in remaining
    assert inserted[0].segment_id not in remaining
    assert store.insert(inserted[0]) is False, "an evicted segment re-sent must stay a no-op"
    assert store.fsck() == []
    if isinstance(store, RedisReplay):
        store.clear()


def test_sampling_follows_priorities_and_updates(store):
    rng = np.random.default_rng(5)
    low = make_segment(rng, steps=10, priority=0.0)
    high = make_segment(rng, steps=10, priority=1.0)
    store.insert(low)
    store.insert(high)
    sampled = store.sample(400, rng)
    drawn_low = int((sampled.keys.segment_ids == low.segment_id).sum())
    assert drawn_low == 0, "a segment of priority 0 (mass eps^alpha) is next to never drawn"
    np.testing.assert_allclose(sampled.probabilities, 1.0 / 10, rtol=1e-4)
    np.testing.assert_allclose(sampled.weights, 1.0, rtol=1e-4)
    store.update_priorities(SampleKeys(np.array([low.segment_id] * 10), np.arange(10)), np.full(10, 3.0))
    sampled = store.sample(4000, rng)
    share_low = float((sampled.keys.segment_ids == low.segment_id).mean())
    assert 0.70 < share_low < 0.80, f"expected ~3/4 of draws from the re-prioritised segment, got {share_low}"
    low_weight = sampled.weights[sampled.keys.segment_ids == low.segment_id]
    high_weight = sampled.weights[sampled.keys.segment_ids == high.segment_id]
    np.testing.assert_allclose(low_weight / high_weight.max(), 1.0 / 3.0, rtol=1e-3)


def test_uniform_sampling_ignores_priorities(store):
    rng = np.random.default_rng(6)
    low = make_segment(rng, steps=10, priority=0.0)
    store.insert(low)
    store.insert(make_segment(rng, steps=10, priority=1.0))
    sampled = store.sample(2000, rng, uniform=True)
    share_low = float((sampled.keys.segment_ids == low.segment_id).mean())
    assert 0.44 < share_low < 0.56
    assert (sampled.weights == 1.0).all()


def test_bad_priority_updates_change_nothing(store):
    rng = np.random.default_rng(7)
    segment = make_segment(rng, steps=5, priority=1.0)
    store.insert(segment)
    keys = SampleKeys(np.array([segment.segment_id, segment.segment_id]), np.array([0, 7]))
    with pytest.raises(ValueError, match="position"):
        store.update_priorities(keys, np.array([5.0, 5.0]))
    with pytest.raises(ValueError, match="finite"):
        store.update_priorities(SampleKeys(keys.segment_ids[:1], keys.positions[:1]), np.array([np.nan]))
    sampled = store.sample(50, rng)
    np.testing.assert_allclose(sampled.probabilities, 1.0 / 5, rtol=1e-4)
    stale = SampleKeys(np.array(["no-such-segment"]), np.array([0]))
    store.update_priorities(stale, np.array([1.0]))  # an evicted key is ignored
    assert store.stats()["stale_priority_updates_total"] == 1


def test_invalid_segment_is_rejected_and_nothing_stored(store):
    rng = np.random.default_rng(8)
    segment = make_segment(rng, steps=6)
    bad = Segment(**{**segment.__dict__, "rewards": np.full(6, np.nan, dtype=np.float32)})
    with pytest.raises(ValueError, match="segment.rewards"):
        store.insert(bad)
    wrong_shape = Segment(**{**segment.__dict__, "observations": segment.observations[:, :1]})
    with pytest.raises(ValueError, match="segment.observations"):
        store.insert(wrong_shape)
    assert store.num_segments == 0 and store.num_transitions == 0
    assert store.fsck() == []


def test_reanalysed_targets_are_preferred_and_versioned(store):
    rng = np.random.default_rng(9)
    segment = make_segment(rng, steps=8)
    store.insert(segment)
    fresh_policies = np.tile(np.eye(NUM_ACTIONS, dtype=np.float32)[0], (8, 1))
    fresh_values = np.full(8, 0.25, dtype=np.float32)
    assert store.write_targets(segment.segment_id, fresh_policies, fresh_values, model_version=10)
    assert not store.write_targets(segment.segment_id, fresh_policies[:, ::-1].copy(), fresh_values, model_version=5)
    # The first write of a version wins: (segment, version) names one set of targets.
    assert not store.write_targets(segment.segment_id, fresh_policies[:, ::-1].copy(), fresh_values, model_version=10)
    assert not store.write_targets("gone", fresh_policies, fresh_values, model_version=11)
    with pytest.raises(ValueError, match="policies"):
        store.write_targets(segment.segment_id, fresh_policies[:3], fresh_values[:3], model_version=12)
    sampled = store.sample(20, rng)
    for window, position in zip(sampled.segments, sampled.positions):
        np.testing.assert_array_equal(window.policies[position], fresh_policies[0])
        assert window.root_values[position] == 0.25
    (whole,) = store.read_segments(1, rng)
    np.testing.assert_array_equal(whole.policies, fresh_policies)


def test_read_segments_returns_whole_segments(store):
    rng = np.random.default_rng(10)
    segment = make_segment(rng, steps=7, length=5, terminated=False)
    store.insert(segment)
    (read,) = store.read_segments(1, rng)
    for name in ("observations", "actions", "rewards", "to_play", "legal_masks", "policies", "root_values"):
        np.testing.assert_array_equal(getattr(read, name), getattr(segment, name), err_msg=name)
    assert (read.length, read.terminated, read.bootstrap_value, read.model_version) == (
        segment.length,
        segment.terminated,
        segment.bootstrap_value,
        segment.model_version,
    )


def test_sampling_an_empty_store_says_so(store):
    with pytest.raises(ValueError, match="empty"):
        store.sample(4, np.random.default_rng(0))


def test_counts_track_inserts_and_training_samples_only(store):
    rng = np.random.default_rng(11)
    store.insert(make_segment(rng, steps=6))
    store.insert(make_segment(rng, steps=4))
    store.sample(5, rng)
    store.read_segments(2, rng)  # reanalyze reads are not training samples
    counts = store.counts()
    assert (counts.inserted, counts.sampled, counts.stored) == (10, 5, 10)
