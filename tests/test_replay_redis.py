"""What only the Redis store has: shared frames, reference counts, shards, crashes."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest

from muzero.config import ReplayConfig
from muzero.learning.segment import SampleKeys
from muzero.operations.redis_process import RedisServer
from muzero.storage.replay.redis_store import RedisReplay, ReplayError, shard_of
from tests.test_replay_contract import FRAME_SHAPE, FRAME_STACK, NUM_ACTIONS, WINDOW, make_segment


def redis_store(clients, capacity: int = 500, experiment: str | None = None, **overrides) -> RedisReplay:
    config = ReplayConfig(capacity=capacity, min_size=1, segment_length=10, **overrides)
    return RedisReplay(
        config,
        experiment=experiment or f"test-{uuid.uuid4().hex[:8]}",
        num_actions=NUM_ACTIONS,
        observation_shape=FRAME_SHAPE,
        frame_stack=FRAME_STACK,
        window_steps=WINDOW,
        clients=clients,
    )


@pytest.fixture
def shards(redis_shards):
    return [s.client() for s in redis_shards]


def test_identical_frames_are_stored_once_and_counted(shards):
    store = redis_store(shards[:1])
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((FRAME_STACK - 1 + 10, *FRAME_SHAPE)).astype(np.float32)
    first = make_segment(rng, steps=10, frames=frames)
    second = make_segment(rng, steps=10, frames=frames.copy())  # another actor saw the same frames
    store.insert(first)
    store.insert(second)
    stats = store.stats()
    assert stats["frames"] == 11
    assert stats["referenced_frames_total"] == 22
    shard = store.shards[0]
    counts = {k.decode(): int(v) for k, v in shard.client.hgetall(shard.prefix + "rc").items()}
    assert set(counts.values()) == {2}
    assert store.fsck() == []
    store.clear()


def test_frames_leave_with_their_last_reference(shards):
    store = redis_store(shards[:1], capacity=20)
    rng = np.random.default_rng(1)
    shared = rng.standard_normal((FRAME_STACK - 1 + 10, *FRAME_SHAPE)).astype(np.float32)
    store.insert(make_segment(rng, steps=10, frames=shared))
    store.insert(make_segment(rng, steps=10, frames=shared.copy()))
    store.insert(make_segment(rng, steps=10))  # evicts the first: shared frames stay (one reference left)
    assert store.stats()["frames"] == 11 + 11
    store.insert(make_segment(rng, steps=10))  # evicts the second: now they go
    assert store.stats()["frames"] == 22
    assert store.fsck() == []
    shard = store.shards[0]
    assert len(list(shard.client.scan_iter(match=shard.prefix.replace("{", "\\{").replace("}", "\\}") + "f:*"))) == 22
    store.clear()


def test_fsck_finds_what_breaks_the_invariants(shards):
    store = redis_store(shards[:1])
    rng = np.random.default_rng(2)
    store.insert(make_segment(rng, steps=6))
    shard = store.shards[0]
    frame_key = next(iter(shard.client.scan_iter(match=shard.prefix.replace("{", "\\{").replace("}", "\\}") + "f:*")))
    blob = shard.client.get(frame_key)
    shard.client.delete(frame_key)
    assert any("referenced but missing" in p for p in store.fsck())
    shard.client.set(frame_key, blob)
    assert store.fsck() == []
    hash_ = frame_key.decode().rsplit(":", 1)[1]
    shard.client.hincrby(shard.prefix + "rc", hash_, 1)
    assert any("reference count" in p for p in store.fsck())
    store.clear()


def test_a_shard_refuses_another_layout(shards):
    name = f"test-{uuid.uuid4().hex[:8]}"
    store = redis_store(shards[:1], capacity=500, experiment=name)
    with pytest.raises(ReplayError, match="capacity=500"):
        redis_store(shards[:1], capacity=400, experiment=name)
    store.clear()


def test_byte_capacity_evicts_oldest(shards):
    store = redis_store(shards[:1], capacity=10_000, capacity_bytes=12_000)
    rng = np.random.default_rng(3)
    for _ in range(30):
        store.insert(make_segment(rng, steps=10))
    stats = store.stats()
    assert stats["bytes"] <= 12_000 + 2_000  # the newest segment is always kept whole
    assert stats["evicted_segments_total"] > 0
    assert store.fsck() == []
    store.clear()


def test_dictionary_is_trained_shared_and_used(shards):
    name = f"test-{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(4)
    writer = redis_store(shards[:2], experiment=name, zstd_dictionary=True, zstd_dictionary_frames=64)
    segments = []
    for _ in range(12):
        # Frames with structure (a dictionary needs something to learn): mostly zeros, few values.
        frames = (rng.random((FRAME_STACK - 1 + 10, *FRAME_SHAPE)) < 0.3).astype(np.float32) * 2.0
        segments.append(make_segment(rng, steps=10, frames=frames))
        writer.insert(segments[-1])
    assert writer.codec.dictionary is not None
    reader = redis_store(shards[:2], experiment=name, zstd_dictionary=True, zstd_dictionary_frames=64)
    assert reader.codec.dictionary.dict_id == writer.codec.dictionary.dict_id
    by_id = {s.segment_id: s for s in segments}
    for whole in reader.read_segments(40, rng):
        np.testing.assert_array_equal(whole.observations, by_id[whole.segment_id].observations)
    writer.clear()


def test_prioritised_sampling_matches_priorities_across_shards(shards):
    """Chi-square: draws per segment against p^alpha / sum over all shards."""
    store = redis_store(shards, capacity=3_000, priority_alpha=0.7)
    rng = np.random.default_rng(5)
    segments = [make_segment(rng, steps=5, priority=float(p)) for p in rng.uniform(0.1, 3.0, 24)]
    for segment in segments:
        store.insert(segment)
    assert len({shard_of(s.segment_id, 3) for s in segments}) == 3
    draws = 6_000
    sampled = store.sample(draws, rng)
    observed = np.array([(sampled.keys.segment_ids == s.segment_id).sum() for s in segments])
    masses = np.array([(s.priorities[0] + 1e-6) ** 0.7 * s.length for s in segments])
    expected = draws * masses / masses.sum()
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    dof = len(segments) - 1
    # Wilson-Hilferty: (chi2 / dof)^(1/3) is close to normal; z > 3.09 is p < 0.001.
    z = ((chi2 / dof) ** (1 / 3) - (1 - 2 / (9 * dof))) / np.sqrt(2 / (9 * dof))
    assert z < 3.09, f"draws do not follow priorities: chi2={chi2:.1f} on {dof} degrees of freedom (z={z:.2f})"
    store.clear()


def test_concurrent_writers_samplers_and_evictions_stay_consistent(redis_shards):
    """4 writers, a sampler and a priority updater at once, with evictions, for bounded rounds."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    clients = lambda: [s.client() for s in redis_shards]  # noqa: E731  one connection set per thread
    acknowledged: list[list[str]] = [[] for _ in range(4)]
    errors: list[BaseException] = []
    done = threading.Event()

    def writer(index: int) -> None:
        try:
            store = redis_store(clients(), capacity=400, experiment=name)
            rng = np.random.default_rng(100 + index)
            for _ in range(60):
                segment = make_segment(rng, steps=int(rng.integers(2, 12)))
                if store.insert(segment):
                    acknowledged[index].append(segment.segment_id)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    def sampler() -> None:
        try:
            store = redis_store(clients(), capacity=400, experiment=name)
            rng = np.random.default_rng(7)
            rounds = 0
            while not done.is_set() or rounds < 5:
                if store.num_transitions == 0:
                    continue
                batch = store.sample(32, rng)
                assert all(w.length >= 1 for w in batch.segments)
                store.update_priorities(batch.keys, rng.random(32))
                rounds += 1
        except BaseException as error:
            errors.append(error)

    observer = redis_store(clients(), capacity=400, experiment=name)
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    sampling = threading.Thread(target=sampler)
    sampling.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    done.set()
    sampling.join(timeout=300)
    assert not errors, errors
    assert observer.fsck() == []
    stats = observer.stats()
    assert stats["evicted_segments_total"] > 0
    stored = set()
    for shard in observer.shards:
        stored.update(i.decode() for i in shard.client.lrange(shard.prefix + "fifo", 0, -1))
    evicted = set()
    for shard in observer.shards:
        evicted.update(i.decode() for i in shard.client.zrange(shard.prefix + "seen", 0, -1))
    for ids in acknowledged:
        for segment_id in ids:
            assert segment_id in stored or segment_id in evicted, f"acknowledged segment {segment_id} lost"
    assert len(stored) == stats["num_segments"]
    observer.clear()


def test_kill_9_mid_insert_leaves_a_consistent_shard(tmp_path):
    """A shard with an fsync-always AOF is killed while a writer inserts; after restart
    fsck is clean and every acknowledged segment is there (or was evicted)."""
    server = RedisServer(appendonly=True, directory=tmp_path).start()
    name = f"test-{uuid.uuid4().hex[:8]}"
    acknowledged: list[str] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        store = redis_store([server.client()], capacity=300, experiment=name)
        rng = np.random.default_rng(9)
        try:
            while not stop.is_set():
                segment = make_segment(rng, steps=int(rng.integers(2, 12)))
                if store.insert(segment):
                    acknowledged.append(segment.segment_id)
        except Exception as error:  # the connection dies with the server: expected
            failures.append(error)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(acknowledged) < 60:  # enough that evictions have happened
            if not thread.is_alive():
                raise AssertionError(f"writer stopped early: {failures}")
            threading.Event().wait(0.01)
        server.kill()
        stop.set()
        thread.join(timeout=60)
        assert failures, "the writer should have seen the connection drop"
        server.start()
        store = redis_store([server.client()], capacity=300, experiment=name)
        assert store.fsck() == []
        shard = store.shards[0]
        stored = {i.decode() for i in shard.client.lrange(shard.prefix + "fifo", 0, -1)}
        evicted = {i.decode() for i in shard.client.zrange(shard.prefix + "seen", 0, -1)}
        lost = [i for i in acknowledged if i not in stored and i not in evicted]
        assert not lost, f"{len(lost)} acknowledged segments lost"
        assert store.num_segments > 0
        batch = store.sample(16, np.random.default_rng(0))
        assert len(batch.segments) == 16
    finally:
        stop.set()
        server.stop()


def test_stale_priority_update_after_eviction_is_ignored(shards):
    store = redis_store(shards[:1], capacity=10)
    rng = np.random.default_rng(10)
    old = make_segment(rng, steps=10)
    store.insert(old)
    store.insert(make_segment(rng, steps=10))  # evicts old
    store.update_priorities(SampleKeys(np.array([old.segment_id]), np.array([3])), np.array([2.0]))
    assert store.stats()["stale_priority_updates_total"] == 1
    assert store.fsck() == []
    store.clear()


def test_cli_fsck_reports_clean_then_the_problem(redis_shards):
    import subprocess
    import sys

    from muzero import config as config_module
    from muzero.storage.replay.factory import EnvSpec, build_store, redis_overrides
    from tests.factories import random_segment

    name = f"cli-{uuid.uuid4().hex[:8]}"
    urls = ",".join(s.url for s in redis_shards[:2])
    config = config_module.load("cartpole", [f"name={name}", *redis_overrides([s.url for s in redis_shards[:2]])])
    store = build_store(config, EnvSpec.of(config))
    rng = np.random.default_rng(12)
    for _ in range(5):
        store.insert(random_segment(rng, num_actions=2, frame_shape=(4,), frame_stack=1, steps=8))
    command = [
        sys.executable,
        "-m",
        "muzero.cli",
        "replay",
        "fsck",
        "--config",
        "cartpole",
        "--set",
        f"name={name}",
        "--redis-urls",
        urls,
    ]
    clean = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stderr
    assert "fsck: clean (5 segments, 40 transitions" in clean.stdout
    shard = store.shards[0] if store.shards[0].client.llen(store.shards[0].prefix + "fifo") else store.shards[1]
    shard.client.hset(shard.prefix + "meta", "transitions", 999)
    broken = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1
    assert "meta transitions 999" in broken.stdout
    store.clear()


def test_a_tampered_frame_is_refused_not_inflated(shards):
    """A frame blob replaced in Redis by a zstd bomb fails the read with a named error."""
    import zstandard

    from muzero.storage.replay.frames import ZSTD, FrameError

    store = redis_store(shards[:1])
    rng = np.random.default_rng(13)
    store.insert(make_segment(rng, steps=4))
    shard = store.shards[0]
    for key in shard.client.scan_iter(match=shard.prefix.replace("{", "\\{").replace("}", "\\}") + "f:*"):
        shard.client.set(key, bytes([ZSTD]) + zstandard.ZstdCompressor().compress(b"\0" * 10_000_000))
    with pytest.raises(FrameError, match="declares 10000000 bytes"):
        store.sample(4, rng)
    store.clear()


def _reads(clients) -> int:
    """GET and MGET calls the shards have served so far."""
    total = 0
    for client in clients:
        stats = client.info("commandstats")
        total += sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("get", "mget"))
    return total


# 1000 transitions of 24-byte frames: 48 kB; a 32 kB cache keeps frames one by one.
@pytest.mark.parametrize("cache_bytes", [256 * 2**20, 32768], ids=["segment-frames", "frame-cache"])
def test_a_warm_front_samples_without_reading_segments_or_frames(shards, cache_bytes):
    store = redis_store(shards, capacity=1000, cache_bytes=cache_bytes)
    assert store.segment_frames == (cache_bytes > 2 * 24 * 1000)
    rng = np.random.default_rng(20)
    inserted = {}
    for _ in range(3):
        segment = make_segment(rng, steps=12, length=10, terminated=False)
        inserted[segment.segment_id] = segment
        store.insert(segment)
    for _ in range(20):  # every window of every segment is drawn, so all of it is cached
        store.sample(32, rng)
    before = _reads(shards)
    sampled = store.sample(32, rng)
    assert _reads(shards) == before
    assert store.cache.hits > 0
    # What the cache serves is what was stored.
    for window, segment_id, position in zip(sampled.segments, sampled.keys.segment_ids, sampled.keys.positions):
        expected = inserted[segment_id].window(int(position), WINDOW)
        for name in ("observations", "actions", "rewards", "policies", "root_values"):
            np.testing.assert_array_equal(getattr(window, name), getattr(expected, name))
    store.clear()


def test_targets_written_after_caching_reach_the_next_sample(shards):
    store = redis_store(shards, capacity=100)
    rng = np.random.default_rng(21)
    segment = make_segment(rng, steps=8)
    store.insert(segment)
    store.sample(16, rng)  # cached with the actor's targets
    for version in (3, 7):
        policies = np.tile(np.eye(NUM_ACTIONS, dtype=np.float32)[version % NUM_ACTIONS], (8, 1))
        assert store.write_targets(segment.segment_id, policies, np.full(8, version, np.float32), version)
        sampled = store.sample(16, rng)
        for window in sampled.segments:
            np.testing.assert_array_equal(window.policies[0], policies[0])
            assert window.root_values[0] == version
    store.clear()


def test_a_shard_restarted_empty_is_set_up_again_not_written_at_capacity_zero():
    # Redis without persistence, killed and restarted: its data is gone (that is what
    # persistence is for), but the store must go on storing, not evict each insert for the next.
    server = RedisServer(appendonly=False).start()
    try:
        store = redis_store([server.client()], capacity=500)
        rng = np.random.default_rng(0)
        for _ in range(5):
            assert store.insert(make_segment(rng, steps=5))
        server.kill()
        server.start()
        after = [make_segment(rng, steps=5) for _ in range(5)]
        assert all(store.insert(segment) for segment in after)
        assert store.num_segments == 5 and store.num_transitions == 25
        assert store.fsck() == []
        drawn = set(store.sample(64, rng).keys.segment_ids.tolist())
        assert drawn <= {s.segment_id for s in after} and len(drawn) > 1
        reopened = redis_store([server.client()], capacity=500, experiment=store.experiment)
        assert reopened.num_segments == 5  # the same bookkeeping, found by a new front
    finally:
        server.stop()


def _store_on(server, capacity: int) -> RedisReplay:
    config = ReplayConfig(backend="redis", redis_urls=[server.url], capacity=capacity, min_size=1)
    return RedisReplay(config, experiment="race", num_actions=2, observation_shape=(4,), frame_stack=1, window_steps=16)


def test_sampling_fills_its_batch_while_writers_evict_at_full_rate():
    # Found by the load run: a batch re-drew whole whenever one drawn segment was evicted
    # before it was read, and with 8 writers turning the store over it gave up every time.
    from tests.factories import random_segment
    from tests.waiting import wait_for

    server = RedisServer().start()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        writer, sampler = _store_on(server, 20_000), _store_on(server, 20_000)

        def write(seed: int) -> None:
            rng = np.random.default_rng(seed)
            while not stop.is_set():
                writer.insert(
                    random_segment(rng, num_actions=2, frame_shape=(4,), frame_stack=1, steps=215, length=200)
                )

        threads += [threading.Thread(target=write, args=(i,), daemon=True) for i in range(8)]
        for thread in threads:
            thread.start()
        wait_for(lambda: sampler.stats().get("evicted_segments_total", 0) > 0, 120, "the writers evicting")
        rng = np.random.default_rng(0)
        for _ in range(20):
            batch = sampler.sample(128, rng, frames="stack")
            assert len(batch.segments) == 128 and all(s is not None for s in batch.segments)
            assert batch.observations.shape[0] == 128
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        server.stop()


def test_a_cold_batch_reads_its_frames_in_one_mget_per_shard():
    from tests.factories import random_segment

    server = RedisServer().start()
    try:
        store = _store_on(server, 20_000)
        rng = np.random.default_rng(1)
        for _ in range(60):
            store.insert(random_segment(rng, num_actions=2, frame_shape=(4,), frame_stack=1, steps=40, length=30))
        cold = _store_on(server, 20_000)  # a new front: nothing cached
        client = server.client()
        client.config_resetstat()
        cold.sample(128, rng, frames="stack")
        calls = client.info("commandstats")
        assert calls["cmdstat_mget"]["calls"] == 1  # was one per segment drawn
    finally:
        server.stop()
