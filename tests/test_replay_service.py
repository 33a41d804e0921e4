"""The replay service over real gRPC on loopback, backed by real Redis shards."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import grpc
import numpy as np
import pytest

from muzero import config as config_module
from muzero.learning.batch import make_batch
from muzero.learning.segment import SampleKeys
from muzero.learning.targets import bootstrap_terms
from muzero.operations.redis_process import free_port
from muzero.storage.replay.factory import EnvSpec, build_store, redis_overrides
from muzero.transport.grpc_util import check_health, make_channel, make_server
from muzero.transport.replay_client import ReplayClient, SegmentWriter
from muzero.transport.replay_server import ReplayServicer, add_to_server
from muzero.wire import codec
from muzero.wire.v1 import replay_pb2, replay_pb2_grpc
from tests.factories import random_segment

ROOT = Path(__file__).resolve().parent.parent


def service_config(redis_shards, name: str, *extra: str) -> config_module.ExperimentConfig:
    return config_module.load(
        "cartpole",
        [
            f"name={name}",
            "env.frame_stack=2",
            "training.unroll_steps=2",
            "training.td_steps=3",
            "replay.capacity=2000",
            "replay.min_size=1",
            *redis_overrides([s.url for s in redis_shards[:2]]),
            *extra,
        ],
    )


class RunningReplay:
    """A ReplayServicer in a real gRPC server on a loopback port."""

    def __init__(self, config, port: int | None = None):
        self.config = config
        self.spec = EnvSpec.of(config)
        self.store = build_store(config, self.spec)
        self.servicer = ReplayServicer(config, self.spec, self.store)
        self.server = make_server()
        add_to_server(self.server, self.servicer)
        from muzero.transport.grpc_util import add_health

        add_health(self.server, ["muzero.v1.ReplayService"])
        self.port = self.server.add_port(f"127.0.0.1:{port or 0}")
        self.server.start()
        self.target = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop(grace=None).wait()
        self.servicer.close()


@pytest.fixture
def replay(redis_shards):
    running = RunningReplay(service_config(redis_shards, f"svc-{uuid.uuid4().hex[:8]}"))
    yield running
    running.stop()
    running.store.clear()


def segment_for(spec: EnvSpec, rng: np.random.Generator, **kwargs):
    return random_segment(
        rng, num_actions=spec.num_actions, frame_shape=spec.observation_shape, frame_stack=2, **kwargs
    )


def test_health_and_append_sample_update_round_trip(replay):
    assert check_health(replay.target, "muzero.v1.ReplayService") == "SERVING"
    rng = np.random.default_rng(0)
    segments = {}
    writer = SegmentWriter(replay.target, replay.config.name, max_inflight=4)
    for _ in range(10):
        segment = segment_for(replay.spec, rng, steps=int(rng.integers(2, 12)))
        segments[segment.segment_id] = segment
        writer.append(segment, timeout_s=30)
    assert writer.flush(timeout_s=30)
    writer.append(next(iter(segments.values())))  # a re-send: acknowledged as a duplicate
    assert writer.flush(timeout_s=30)
    assert writer.close() == 0
    assert (writer.acknowledged, writer.duplicates) == (11, 1)
    assert replay.store.num_segments == 10

    with ReplayClient(replay.target) as client:
        batches = list(client.sample(batch_size=32, num_batches=3))
        assert len(batches) == 3
        batch = batches[0]
        training = replay.config.training
        assert batch.observations.shape == (32, 8) and batch.actions.shape == (32, 2)
        originals = [segments[str(i)] for i in batch.keys.segment_ids]
        want = make_batch(
            originals,
            batch.keys.positions,
            training.unroll_steps,
            training.td_steps,
            training.discount,
            2,
            np.random.default_rng(0),
        )
        np.testing.assert_array_equal(batch.observations, want.observations)
        np.testing.assert_allclose(batch.target_values, want.target_values, rtol=1e-6)
        np.testing.assert_allclose(batch.target_policies, want.target_policies)
        np.testing.assert_array_equal(batch.model_versions, [s.model_version for s in originals])

        (with_terms,) = client.sample(batch_size=16, bootstrap_observations=True)
        originals = [segments[str(i)] for i in with_terms.keys.segment_ids]
        terms = bootstrap_terms(
            originals, with_terms.keys.positions, training.unroll_steps, training.td_steps, training.discount
        )
        assert with_terms.bootstrap is not None and with_terms.bootstrap.mask.any()
        np.testing.assert_array_equal(with_terms.bootstrap.mask, terms.mask)
        np.testing.assert_array_equal(with_terms.bootstrap.observations, terms.observations)
        np.testing.assert_allclose(with_terms.bootstrap.scale, terms.scale)
        assert batch.bootstrap is None

        ack = client.update_priorities(batch.keys, np.full(32, 2.0, dtype=np.float32))
        assert (ack.updated, ack.stale) == (32, 0)
        gone = SampleKeys(np.array(["evicted-long-ago"]), np.array([0]))
        assert client.update_priorities(gone, np.ones(1, dtype=np.float32)).stale == 1

        spec = replay.spec
        (whole,) = client.read_segments(
            1,
            num_actions=spec.num_actions,
            frame_shape=spec.observation_shape,
            frame_stack=2,
            experiment=replay.config.name,
        )
        np.testing.assert_array_equal(whole.observations, segments[whole.segment_id].observations)
        fresh = np.tile(np.array([1.0, 0.0], dtype=np.float32), (whole.num_steps, 1))
        assert client.write_targets(whole.segment_id, fresh, np.zeros(whole.num_steps, np.float32), 7)
        stats = client.stats()
        assert stats.totals["segments"] == 10 and len(stats.shards) == 2
        assert stats.totals["reanalysed_writes_total"] == 1
    assert replay.store.fsck() == []


def _append_raw(target: str, message: replay_pb2.Segment) -> grpc.RpcError:
    with make_channel(target) as channel:
        stub = replay_pb2_grpc.ReplayServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.AppendSegments(iter([message]), timeout=10))
    return caught.value


def _corrupt(message: replay_pb2.Segment, how: str) -> replay_pb2.Segment:
    bad = replay_pb2.Segment()
    bad.CopyFrom(message)
    if how == "actions dtype":
        codec.tensor_to_proto(np.zeros(5, dtype=np.int32), bad.actions)
    elif how == "frames shape":
        codec.tensor_to_proto(np.zeros((6, 3), dtype=np.float32), bad.frames)
    elif how == "nan reward":
        codec.tensor_to_proto(np.full(5, np.nan, dtype=np.float32), bad.rewards)
    elif how == "inf priority":
        codec.tensor_to_proto(np.full(5, np.inf, dtype=np.float32), bad.priorities)
    elif how == "short data":
        bad.root_values.data = bad.root_values.data[:-1]
    elif how == "object dtype":
        bad.to_play.dtype = "object"
    elif how == "negative shape":
        bad.legal_masks.shape[0] = -5
    elif how == "other experiment":
        bad.experiment = "someone-else"
    elif how == "policies not distributions":
        codec.tensor_to_proto(np.ones((5, 2), dtype=np.float32), bad.policies)
    elif how == "length beyond steps":
        bad.length = 9
    return bad


@pytest.mark.parametrize(
    "how, field",
    [
        ("actions dtype", "segment.actions.dtype"),
        ("frames shape", "segment.frames.shape"),
        ("nan reward", "segment.rewards: contains NaN"),
        ("inf priority", "segment.priorities: contains NaN or inf"),
        ("short data", "segment.root_values.data"),
        ("object dtype", "segment.to_play.dtype"),
        ("negative shape", "segment.legal_masks.shape"),
        ("other experiment", "segment.experiment"),
        ("policies not distributions", "segment.policies"),
        ("length beyond steps", "segment.priorities.shape"),
    ],
)
def test_malformed_segments_are_rejected_and_nothing_stored(replay, how, field):
    segment = segment_for(replay.spec, np.random.default_rng(1), steps=5)
    message = codec.segment_to_proto(segment, replay.config.name)
    error = _append_raw(replay.target, _corrupt(message, how))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.details()
    assert error.details().startswith(f"segment {segment.segment_id}: ")
    assert replay.store.num_segments == 0 and replay.store.fsck() == []


def test_oversized_message_is_refused(replay):
    message = replay_pb2.Segment(segment_id="big", experiment=replay.config.name)
    message.frames.dtype = "uint8"
    message.frames.data = b"\0" * (65 * 2**20)
    error = _append_raw(replay.target, message)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert replay.store.num_segments == 0


def test_bad_requests_name_their_field(replay):
    rng = np.random.default_rng(2)
    segment = segment_for(replay.spec, rng, steps=4, priority=1.0)
    replay.store.insert(segment)
    with make_channel(replay.target) as channel:
        stub = replay_pb2_grpc.ReplayServiceStub(channel)
        cases = []
        cases.append(
            (lambda: list(stub.Sample(replay_pb2.SampleRequest(batch_size=0, num_batches=1), timeout=5)), "batch_size")
        )
        cases.append(
            (
                lambda: list(stub.Sample(replay_pb2.SampleRequest(batch_size=4, num_batches=10**6), timeout=5)),
                "num_batches",
            )
        )
        update = replay_pb2.PriorityUpdate(segment_ids=[segment.segment_id])
        codec.tensor_to_proto(np.array([0], dtype=np.int64), update.positions)
        codec.tensor_to_proto(np.array([np.nan], dtype=np.float32), update.priorities)
        cases.append((lambda: stub.UpdatePriorities(update, timeout=5), "priorities: contains NaN"))
        wrong = replay_pb2.PriorityUpdate(segment_ids=[segment.segment_id])
        codec.tensor_to_proto(np.array([0], dtype=np.int32), wrong.positions)
        codec.tensor_to_proto(np.array([1.0], dtype=np.float32), wrong.priorities)
        cases.append((lambda: stub.UpdatePriorities(wrong, timeout=5), "positions.dtype"))
        beyond = replay_pb2.PriorityUpdate(segment_ids=[segment.segment_id])
        codec.tensor_to_proto(np.array([99], dtype=np.int64), beyond.positions)
        codec.tensor_to_proto(np.array([1.0], dtype=np.float32), beyond.priorities)
        cases.append((lambda: stub.UpdatePriorities(beyond, timeout=5), "positions: 99"))
        targets = codec.targets_to_proto(segment.segment_id, np.ones((4, 5), np.float32) / 5, np.zeros(4), 1)
        cases.append((lambda: stub.WriteTargets(targets, timeout=5), "policies.shape"))
        cases.append((lambda: list(stub.ReadSegments(replay_pb2.ReadSegmentsRequest(count=0), timeout=5)), "count"))
        for call, field in cases:
            with pytest.raises(grpc.RpcError) as caught:
                call()
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
            assert field in caught.value.details()
        fresh = codec.targets_to_proto("never-stored", np.ones((4, 2), np.float32) / 2, np.zeros(4), 1)
        assert stub.WriteTargets(fresh, timeout=5).stored is False
    assert replay.store.fsck() == []
    sampled = replay.store.sample(8, rng)
    np.testing.assert_allclose(sampled.probabilities, 1 / 4, rtol=1e-4)  # priorities untouched


def test_sampling_ahead_of_the_ratio_waits_then_answers_unavailable(redis_shards):
    config = service_config(
        redis_shards,
        f"svc-{uuid.uuid4().hex[:8]}",
        "replay.samples_per_insert=1.0",
        "replay.samples_per_insert_error_buffer=8.0",
    )
    replay = RunningReplay(config)
    try:
        rng = np.random.default_rng(3)
        replay.store.insert(segment_for(replay.spec, rng, steps=10))  # 9 past min_size: 9 samples due, +8 buffer
        with ReplayClient(replay.target) as client:
            assert len(next(client.sample(batch_size=16)).actions) == 16
            with pytest.raises(grpc.RpcError) as caught:
                next(client.sample(batch_size=16, timeout_s=0.5))
            assert caught.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            for _ in range(2):  # 29 samples due now, 16 taken: the next 16 fit the buffer
                replay.store.insert(segment_for(replay.spec, rng, steps=10))
            assert len(next(client.sample(batch_size=16, timeout_s=10)).actions) == 16
    finally:
        replay.stop()
        replay.store.clear()


def test_writer_resends_after_the_front_restarts_without_duplicates(redis_shards):
    config = service_config(redis_shards, f"svc-{uuid.uuid4().hex[:8]}")
    port = free_port()
    first = RunningReplay(config, port)
    rng = np.random.default_rng(4)
    writer = SegmentWriter(first.target, config.name, max_inflight=64)
    sent = []
    for _ in range(20):
        sent.append(segment_for(first.spec, rng, steps=5))
        writer.append(sent[-1], timeout_s=30)
    assert writer.flush(timeout_s=30)
    first.stop()  # the front dies; the writer keeps what is not acknowledged
    for _ in range(20):
        sent.append(segment_for(first.spec, rng, steps=5))
        writer.append(sent[-1], timeout_s=30)
    assert writer.inflight > 0
    second = RunningReplay(config, port)  # a new replica on the same shards
    try:
        assert writer.flush(timeout_s=60)
        assert writer.close() == 0
        assert writer.reconnects >= 1
        assert second.store.num_segments == 40
        assert second.store.fsck() == []
    finally:
        second.stop()
        second.store.clear()


def test_entrypoint_serves_health_and_metrics_and_stops_on_sigterm(redis_shards, tmp_path):
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "MUZERO_CONFIG": "cartpole",
        "MUZERO_SET": f"name=proc-{uuid.uuid4().hex[:8]}",
        "MUZERO_REDIS_URLS": ",".join(s.url for s in redis_shards[:2]),
        "MUZERO_REPLAY_PORT": str(port),
        "MUZERO_METRICS_PORT": str(metrics_port),
        "MUZERO_HOST": "127.0.0.1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.replay"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "listening on port" in process.stdout.readline()
        assert check_health(f"127.0.0.1:{port}", "muzero.v1.ReplayService") == "SERVING"
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        assert "muzero_replay_transitions" in body and "muzero_replay_appended_segments_total" in body
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_writer_bounds_unacknowledged_segments():
    """With no service to acknowledge, append blocks once max_inflight are outstanding."""
    writer = SegmentWriter(f"127.0.0.1:{free_port()}", "nobody", max_inflight=3)
    rng = np.random.default_rng(5)
    spec = EnvSpec(num_actions=2, observation_shape=(4,), observation_dtype=np.dtype(np.float32), num_players=1)
    for _ in range(3):
        writer.append(segment_for(spec, rng, steps=3), timeout_s=5)
    with pytest.raises(TimeoutError, match="3 segments still unacknowledged"):
        writer.append(segment_for(spec, rng, steps=3), timeout_s=0.2)
    assert writer.close(timeout_s=0.1) == 3


def test_final_ownership_travels_from_actor_to_learner(redis_shards):
    """Go's ownership target: in the segment an actor sends, through Redis, into the batch."""
    config = config_module.load(
        "go7",
        [
            f"name=own-{uuid.uuid4().hex[:8]}",
            "env.id=go5",
            "training.unroll_steps=1",
            "training.td_steps=3",
            "training.augment=none",
            "replay.min_size=1",
            *redis_overrides([s.url for s in redis_shards[:2]]),
        ],
    )
    running = RunningReplay(config)
    try:
        rng = np.random.default_rng(0)
        segments = {}
        writer = SegmentWriter(running.target, config.name, max_inflight=4)
        for i in range(6):
            segment = random_segment(rng, num_actions=26, frame_shape=(12, 5, 5), frame_stack=1, steps=8)
            if i % 2 == 0:
                ownership = rng.integers(-1, 2, 25).astype(np.float32)
                segment = dataclasses.replace(segment, final_ownership=ownership)
            segments[segment.segment_id] = segment
            writer.append(segment, timeout_s=30)
        assert writer.flush(timeout_s=30) and writer.close() == 0
        with ReplayClient(running.target) as client:
            (batch,) = client.sample(batch_size=32)
        originals = [segments[str(i)] for i in batch.keys.segment_ids]
        want = make_batch(originals, batch.keys.positions, 1, 3, config.training.discount, 1, rng)
        assert want.ownership_mask.any() and not want.ownership_mask.all()
        np.testing.assert_array_equal(batch.ownership_mask, want.ownership_mask)
        np.testing.assert_array_equal(batch.target_ownership, want.target_ownership)
    finally:
        running.stop()
        running.store.clear()
