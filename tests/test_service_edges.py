"""The edges fuzzing found in the replay and checkpoint services (issue 11), each reproduced
against real servers on loopback and real Redis: held streams, atomic refusals, huge
versions and ids, bool bytes, undecodable requests, a store that goes away."""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import time
import uuid
from concurrent import futures

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, generate_latest

from muzero.learning.segment import SampleKeys
from muzero.operations.redis_process import RedisServer
from muzero.storage.replay.factory import EnvSpec, build_store
from muzero.storage.replay.protocol import MAX_TARGETS_VERSION
from muzero.storage.replay.redis_store import shard_of
from muzero.transport.checkpoint_server import CheckpointServicer
from muzero.transport.checkpoint_server import add_to_server as add_checkpoint_service
from muzero.transport.grpc_util import add_health, call_with_retries, make_channel, make_server
from muzero.transport.guard import StreamLimits
from muzero.transport.replay_client import ReplayClient, SegmentWriter
from muzero.transport.replay_server import ReplayServicer
from muzero.transport.replay_server import add_to_server as add_replay_service
from muzero.wire import codec
from muzero.wire.v1 import checkpoint_pb2, checkpoint_pb2_grpc, replay_pb2, replay_pb2_grpc
from tests.test_replay_service import segment_for, service_config
from tests.waiting import wait_for

SERVICES = [
    replay_pb2.DESCRIPTOR.services_by_name["ReplayService"],
    checkpoint_pb2.DESCRIPTOR.services_by_name["CheckpointService"],
    health_pb2.DESCRIPTOR.services_by_name["Health"],
]


class Servers:
    """The replay service and the checkpoint service in one real gRPC server, with health."""

    def __init__(self, config, run_dir, limits: StreamLimits | None = None, security=None, registry=None):
        self.config = config
        self.spec = EnvSpec.of(config)
        self.store = build_store(config, self.spec)
        self.server = make_server(limits=limits, security=security, registry=registry)
        self.replay = ReplayServicer(config, self.spec, self.store)
        add_replay_service(self.server, self.replay)
        self.checkpoints = CheckpointServicer(run_dir, poll_s=0.2)
        add_checkpoint_service(self.server, self.checkpoints)
        add_health(self.server, ["muzero.v1.ReplayService"])
        self.port = self.server.add_port("127.0.0.1:0")
        self.server.start()
        self.target = f"127.0.0.1:{self.port}"

    def stop(self):
        self.checkpoints.stop()
        self.server.stop(grace=None).wait()
        self.replay.close()
        self.store.clear()


@pytest.fixture
def servers(redis_shards, tmp_path):
    running = Servers(service_config(redis_shards, f"edge-{uuid.uuid4().hex[:8]}"), tmp_path / "run")
    yield running
    running.stop()


def health(channel, timeout_s: float = 5.0) -> str:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


class OpenStreams:
    """Idle AppendSegments and Watch streams held open, as actors hold them."""

    def __init__(self, channel, appends: int, watches: int):
        replay = replay_pb2_grpc.ReplayServiceStub(channel)
        checkpoints = checkpoint_pb2_grpc.CheckpointServiceStub(channel)
        self.queues = [queue.Queue() for _ in range(appends)]
        self.calls = [replay.AppendSegments(iter(q.get, None)) for q in self.queues]
        self.calls += [checkpoints.Watch(checkpoint_pb2.WatchRequest(after_version=10**12)) for _ in range(watches)]

    def close(self):
        for q in self.queues:
            q.put(None)
        for call in self.calls:
            call.cancel()


def test_200_open_streams_leave_unary_calls_and_health_answering(servers):
    channel = make_channel(servers.target)
    streams = OpenStreams(channel, appends=120, watches=80)  # default limits: 256 slots
    try:
        wait_for(lambda: servers.server.guard.open_streams == 200, 60, "200 streams open on the server")
        assert health(channel) == "SERVING"
        with ReplayClient(servers.target, timeout_s=5) as client:
            assert client.stats().totals["segments"] == 0
        latest = checkpoint_pb2_grpc.CheckpointServiceStub(channel).Latest
        with pytest.raises(grpc.RpcError) as error:
            latest(checkpoint_pb2.LatestRequest(), timeout=5)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND  # answered, not timed out
    finally:
        streams.close()
        channel.close()
    wait_for(lambda: servers.server.guard.open_streams == 0, 30, "every slot released")


def test_a_stream_beyond_the_limit_is_refused_at_once_and_counted(redis_shards, tmp_path):
    config = service_config(redis_shards, f"edge-{uuid.uuid4().hex[:8]}")
    running = Servers(config, tmp_path / "run", StreamLimits(max_streams=3, unary_workers=2))
    channel = make_channel(running.target)
    checkpoints = checkpoint_pb2_grpc.CheckpointServiceStub(channel)
    held = [checkpoints.Watch(checkpoint_pb2.WatchRequest(after_version=10**12)) for _ in range(3)]
    try:
        wait_for(lambda: running.server.guard.open_streams == 3, 30, "3 streams open")
        with pytest.raises(grpc.RpcError) as error:
            next(checkpoints.Watch(checkpoint_pb2.WatchRequest(after_version=10**12), timeout=10))
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "MUZERO_GRPC_MAX_STREAMS" in error.value.details()
        refused = running.server.guard.metrics.refused.labels("muzero.v1.CheckpointService/Watch")._value.get()
        assert refused == 1
        assert health(channel) == "SERVING"
        held.pop().cancel()
        wait_for(lambda: running.server.guard.open_streams == 2, 30, "a slot released")
        held.append(checkpoints.Watch(checkpoint_pb2.WatchRequest(after_version=10**12)))
        wait_for(lambda: running.server.guard.open_streams == 3, 30, "the freed slot taken again")
    finally:
        for call in held:
            call.cancel()
        channel.close()
        running.stop()


def test_an_idle_append_stream_is_closed_and_the_writer_reconnects(redis_shards, tmp_path):
    config = service_config(redis_shards, f"edge-{uuid.uuid4().hex[:8]}")
    running = Servers(config, tmp_path / "run", StreamLimits(idle_s=0.5))
    writer = SegmentWriter(running.target, config.name)
    try:
        idle = running.server.guard.metrics.idle_closed.labels("muzero.v1.ReplayService/AppendSegments")
        wait_for(lambda: idle._value.get() >= 1, 30, "the idle stream closed by the server")
        wait_for(lambda: writer.reconnects >= 1, 30, "the writer reconnecting")
        writer.append(segment_for(running.spec, np.random.default_rng(0)), timeout_s=30)
        assert writer.flush(timeout_s=30)
        assert writer.acknowledged == 1 and running.store.num_segments == 1
    finally:
        writer.close()
        running.stop()


def _shard_mass(store, index: int) -> float:
    shard = store.shards[index]
    return float(np.frombuffer(shard.client.getrange(shard.prefix + "tree", 8, 15), "<f8")[0])


def test_a_refused_priority_update_changes_no_shard(servers):
    rng = np.random.default_rng(1)
    store = servers.store
    segments = [segment_for(servers.spec, rng, steps=4) for _ in range(12)]
    for segment in segments:
        store.insert(segment)
    by_shard: dict[int, list] = {}
    for segment in segments:
        by_shard.setdefault(shard_of(segment.segment_id, 2), []).append(segment)
    assert len(by_shard) == 2, "the segments should land on both shards"
    (first, good), (second, bad) = by_shard.items()
    before = [_shard_mass(store, i) for i in (0, 1)]
    keys = SampleKeys(
        segment_ids=np.array([good[0].segment_id, bad[0].segment_id], dtype=object),
        positions=np.array([0, 99]),  # 99: not a position of a 4-step segment
    )
    with ReplayClient(servers.target, timeout_s=10) as client, pytest.raises(grpc.RpcError) as error:
        client.update_priorities(keys, np.array([50.0, 1.0], dtype=np.float32))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "99" in error.value.details()
    assert [_shard_mass(store, i) for i in (0, 1)] == before
    assert store.fsck() == []


def _targets(segment, version: int, value: float) -> replay_pb2.ReanalysedTargets:
    steps, actions = segment.policies.shape
    policies = np.full((steps, actions), 1.0 / actions, dtype=np.float32)
    return codec.targets_to_proto(segment.segment_id, policies, np.full(steps, value, np.float32), version)


def test_targets_versions_are_exact_up_to_2_pow_53_and_refused_above(servers):
    segment = segment_for(servers.spec, np.random.default_rng(2), steps=3)
    servers.store.insert(segment)
    stub = replay_pb2_grpc.ReplayServiceStub(make_channel(servers.target))
    for version in (2**63 - 1, MAX_TARGETS_VERSION + 1, -1):
        with pytest.raises(grpc.RpcError) as error:
            stub.WriteTargets(_targets(segment, version, 7.0), timeout=10)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "model_version" in error.value.details()
    assert stub.WriteTargets(_targets(segment, MAX_TARGETS_VERSION - 1, 5.0), timeout=10).stored
    assert stub.WriteTargets(_targets(segment, MAX_TARGETS_VERSION, 7.0), timeout=10).stored
    assert not stub.WriteTargets(_targets(segment, MAX_TARGETS_VERSION - 1, 9.0), timeout=10).stored  # older
    [read] = servers.store.read_segments(1, np.random.default_rng(0))
    assert read.root_values.tolist() == [7.0, 7.0, 7.0]  # the newest write is what reads see


def test_write_targets_for_an_unknown_segment_is_still_validated(servers):
    segment = segment_for(servers.spec, np.random.default_rng(3), steps=3)  # never stored
    stub = replay_pb2_grpc.ReplayServiceStub(make_channel(servers.target))
    bad = _targets(segment, 5, 1.0)
    bad.root_values.data = np.array([np.nan, 0, 0], dtype="<f4").tobytes()
    with pytest.raises(grpc.RpcError) as error:
        stub.WriteTargets(bad, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "NaN" in error.value.details()
    assert not stub.WriteTargets(_targets(segment, 5, 1.0), timeout=10).stored  # valid, just gone


def _append_one(target: str, message: replay_pb2.Segment) -> grpc.RpcError | replay_pb2.AppendAck:
    stub = replay_pb2_grpc.ReplayServiceStub(make_channel(target))
    try:
        return next(stub.AppendSegments(iter([message]), timeout=10))
    except grpc.RpcError as error:
        return error


def test_bool_bytes_other_than_0_and_1_are_refused(servers):
    segment = segment_for(servers.spec, np.random.default_rng(4), steps=3)
    message = codec.segment_to_proto(segment, servers.config.name)
    data = bytearray(message.legal_masks.data)
    data[0] = 2
    message.legal_masks.data = bytes(data)
    error = _append_one(servers.target, message)
    assert isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "legal_masks" in error.details() and "0 or 1" in error.details()
    assert servers.store.num_segments == 0


def test_a_huge_segment_id_is_refused_with_a_short_message(servers):
    segment = segment_for(servers.spec, np.random.default_rng(5), steps=3)
    message = codec.segment_to_proto(segment, servers.config.name)
    message.segment_id = "x" * 100_000
    error = _append_one(servers.target, message)
    assert isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(error.details()) < 300 and "100000 characters" in error.details()
    writer = SegmentWriter(servers.target, servers.config.name)
    with pytest.raises(ValueError, match="segment_id"):  # the writer refuses it before sending
        writer.append(dataclasses.replace(segment, segment_id="x" * 100_000))
    assert writer.close() == 0


def test_undecodable_bytes_get_invalid_argument_on_every_method(servers):
    channel = make_channel(servers.target)
    garbage = b"\xff\xff\xff\xff"  # a field with a truncated varint: no message parses it
    for service in SERVICES:
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            if method.client_streaming:
                call = channel.stream_stream(path)(iter([garbage]), timeout=10)
            else:
                call = channel.unary_stream(path)(garbage, timeout=10)
            with pytest.raises(grpc.RpcError) as error:
                list(call)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, path
            assert method.input_type.full_name in error.value.details(), path
    channel.close()


def test_the_retry_helper_does_not_retry_internal():
    calls = []

    def internal(request, context):
        calls.append(1)
        context.abort(grpc.StatusCode.INTERNAL, "a bug")

    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("t.T", {"M": grpc.unary_unary_rpc_method_handler(internal)}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            method = channel.unary_unary("/t.T/M")
            with pytest.raises(grpc.RpcError) as error:
                call_with_retries(lambda: method(b"", timeout=5), what="M")
        assert error.value.code() == grpc.StatusCode.INTERNAL and len(calls) == 1
    finally:
        server.stop(None)


def test_a_redis_shard_going_away_is_unavailable_not_unknown(tmp_path):
    shard = RedisServer().start()
    config = service_config([shard, shard], f"edge-{uuid.uuid4().hex[:8]}")
    running = Servers(config, tmp_path / "run")
    try:
        with ReplayClient(running.target, timeout_s=5) as client:
            assert client.stats().totals["segments"] == 0
            shard.kill()
            stub = replay_pb2_grpc.ReplayServiceStub(make_channel(running.target))
            with pytest.raises(grpc.RpcError) as error:
                stub.Stats(replay_pb2.StatsRequest(), timeout=30)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "unavailable" in error.value.details()
    finally:
        running.checkpoints.stop()
        running.server.stop(grace=None).wait()
        running.replay.close()
        shard.stop()


def test_a_scrape_answers_from_a_snapshot_while_redis_is_frozen(tmp_path):
    import os
    import signal
    import time

    shard = RedisServer().start()
    registry = CollectorRegistry()
    config = service_config([shard, shard], f"edge-{uuid.uuid4().hex[:8]}")
    spec = EnvSpec.of(config)
    store = build_store(config, spec)
    servicer = ReplayServicer(config, spec, store, registry=registry)
    try:
        store.insert(segment_for(spec, np.random.default_rng(6), steps=3))
        store.read_segments(1, np.random.default_rng(0))  # a cache miss, then a hit
        store.read_segments(1, np.random.default_rng(0))
        wait_for(lambda: b"muzero_replay_segments 1.0" in generate_latest(registry), 30, "a snapshot with the segment")
        os.kill(shard.process.pid, signal.SIGSTOP)  # a shard that answers nothing
        try:
            started = time.monotonic()
            body = generate_latest(registry).decode()
            assert time.monotonic() - started < 1.0
        finally:
            os.kill(shard.process.pid, signal.SIGCONT)
        assert "muzero_replay_segments 1.0" in body and "muzero_replay_stats_age_seconds" in body
        values = dict(line.split() for line in body.splitlines() if line and not line.startswith("#"))
        assert float(values["muzero_replay_cache_hits_total"]) >= 1
        assert float(values["muzero_replay_cache_misses_total"]) >= 1
    finally:
        servicer.close()
        store.clear()
        shard.stop()


def test_health_watches_that_end_at_once_leave_no_thread_behind(servers):
    # grpcio's health Watch on a bare server blocks a pool thread for good when the deadline has
    # passed before it runs; 300 such calls used to starve the health check itself.
    channel = make_channel(servers.target)
    watch = health_pb2_grpc.HealthStub(channel).Watch
    calls = [watch(health_pb2.HealthCheckRequest(), timeout=0.05) for _ in range(300)]
    for call in calls:
        with contextlib.suppress(grpc.RpcError):
            list(call)
    wait_for(lambda: servers.server.guard.open_streams == 0, 60, "every Watch slot released")
    assert health(channel) == "SERVING"
    channel.close()


def test_a_stopping_front_ends_calls_blocked_on_the_rate_limiter_at_once(servers):
    import threading

    from muzero.transport.replay_server import SAMPLE_WAIT_CAP_S

    outcome = {}

    def sample_from_an_empty_store():
        stub = replay_pb2_grpc.ReplayServiceStub(make_channel(servers.target))
        try:
            list(stub.Sample(replay_pb2.SampleRequest(batch_size=4, num_batches=1), timeout=120))
        except grpc.RpcError as error:
            outcome["code"], outcome["details"] = error.code(), error.details()

    caller = threading.Thread(target=sample_from_an_empty_store)
    started = time.monotonic()
    caller.start()
    wait_for(lambda: servers.server.guard.open_streams == 1, 30, "the Sample call waiting")
    servers.replay.close()
    caller.join(timeout=SAMPLE_WAIT_CAP_S)
    assert time.monotonic() - started < SAMPLE_WAIT_CAP_S / 2
    assert outcome["code"] == grpc.StatusCode.UNAVAILABLE and "stopping" in outcome["details"]


def test_a_shard_at_maxmemory_is_resource_exhausted_naming_it_not_unknown(tmp_path):
    # Sum trees for 200k transitions (16 MB, allocated at start) on a 4 MB Redis: every insert is refused.
    shard = RedisServer(maxmemory="4mb").start()
    running = Servers(service_config([shard], f"edge-{uuid.uuid4().hex[:8]}", "replay.capacity=200000"), tmp_path)
    try:
        message = codec.segment_to_proto(
            segment_for(running.spec, np.random.default_rng(7), steps=3), running.config.name
        )
        error = _append_one(running.target, message)
        assert isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "maxmemory" in error.details()
    finally:
        running.checkpoints.stop()
        running.server.stop(grace=None).wait()
        running.replay.close()
        shard.stop()
