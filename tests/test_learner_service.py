"""The learner service's priority pusher against a real replay front."""

from __future__ import annotations

import uuid

import numpy as np

from muzero.learning.segment import SampleKeys
from muzero.storage.replay.factory import EnvSpec
from muzero.transport.priorities import PriorityPusher
from muzero.transport.replay_client import ReplayClient
from tests.test_replay_service import RunningReplay, segment_for, service_config


def test_queued_priority_updates_all_land_and_the_latest_wins(redis_shards):
    replay = RunningReplay(service_config(redis_shards, f"push-{uuid.uuid4().hex[:8]}"))
    try:
        spec = EnvSpec.of(replay.config)
        rng = np.random.default_rng(3)
        segment = segment_for(spec, rng, steps=10, length=10, terminated=True, priority=1.0)
        assert replay.store.insert(segment)
        with ReplayClient(replay.target) as client:
            pusher = PriorityPusher(client)
            # One position at a time, then position 0 twice: pushed faster than the calls go out,
            # so they are sent in merged calls, which must keep every update and their order.
            for position in range(10):
                pusher.push(
                    SampleKeys(segment_ids=np.array([segment.segment_id]), positions=np.array([position])),
                    np.zeros(1, dtype=np.float32),
                )
            for value in (5.0, 100.0):
                pusher.push(
                    SampleKeys(segment_ids=np.array([segment.segment_id]), positions=np.array([0])),
                    np.array([value], dtype=np.float32),
                )
            pusher.close(timeout_s=30)
        assert pusher.failed == 0 and pusher.dropped == 0
        assert replay.store.stats()["priority_updates_total"] == 12
        _, total_mass, _ = replay.store._draw(1, rng, False, False)
        eps, alpha = replay.config.replay.priority_eps, replay.config.replay.priority_alpha
        np.testing.assert_allclose(total_mass, (100.0 + eps) ** alpha + 9 * eps**alpha, rtol=1e-6)
    finally:
        replay.stop()
        replay.store.clear()
