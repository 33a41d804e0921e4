"""The replay service: a stateless gRPC front over the replay store.

Everything it knows lives in the store (Redis shards), so any number of
replicas can serve the same shards; with the in-memory backend it is a single
process (local clusters, tests). Bad requests are answered INVALID_ARGUMENT with
the offending field named, before anything is stored.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import grpc
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from muzero.config import ExperimentConfig
from muzero.learning.batch import batch_from_sample
from muzero.learning.segment import SampleKeys
from muzero.storage.replay.factory import EnvSpec
from muzero.storage.replay.memory import MemoryReplay
from muzero.storage.replay.protocol import ReplayStorage
from muzero.storage.replay.rate_limiter import RateLimiter
from muzero.storage.replay.redis_store import FULL_ERRORS, TRANSIENT_ERRORS
from muzero.transport.grpc_util import Server
from muzero.wire import codec
from muzero.wire.v1 import replay_pb2, replay_pb2_grpc

log = logging.getLogger("muzero.replay")

MAX_BATCH_SIZE = 4096
MAX_BATCHES_PER_CALL = 10_000
MAX_READ_SEGMENTS = 1024
MAX_REFUSAL_CHARS = 1024
SAMPLE_WAIT_CAP_S = 30.0  # a blocked sample answers UNAVAILABLE after this: the client retries


class ReplayServicer(replay_pb2_grpc.ReplayServiceServicer):
    def __init__(
        self,
        config: ExperimentConfig,
        spec: EnvSpec,
        store: ReplayStorage,
        registry: CollectorRegistry | None = None,
        seed: int = 0,
    ):
        self.config = config
        self.spec = spec
        self.store = store
        self.limiter = RateLimiter.from_config(config.replay)
        # The memory store is single-threaded; Redis shards serialise in their scripts.
        self._lock = threading.Lock() if isinstance(store, MemoryReplay) else contextlib.nullcontext()
        self._rng_lock = threading.Lock()
        self._rng = np.random.default_rng(seed)
        self._stopping = threading.Event()
        registry = registry if registry is not None else CollectorRegistry()
        self.registry = registry
        self.appended = Counter(
            "muzero_replay_appended_segments_total", "Segments stored by AppendSegments", registry=registry
        )
        self.appended_transitions = Counter(
            "muzero_replay_appended_transitions_total", "Owned transitions stored by AppendSegments", registry=registry
        )
        self.duplicates = Counter(
            "muzero_replay_duplicate_segments_total",
            "Segments re-sent after they were stored (no-ops)",
            registry=registry,
        )
        self.sampled = Counter("muzero_replay_sampled_examples_total", "Training examples served", registry=registry)
        self.rejected = Counter(
            "muzero_replay_rejected_requests_total", "Requests refused as invalid", ["method"], registry=registry
        )
        self.latency = Histogram(
            "muzero_replay_rpc_duration_seconds",
            "Time to serve one unit of work",
            ["method"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        # The ratio the rate limiter holds (0: off); the actor autoscaler reads it to know that the
        # observed ratio will sit at it, and scales on the learner's input wait instead.
        Gauge(
            "muzero_replay_samples_per_insert_limit",
            "Samples per insert the rate limiter holds (0: off)",
            registry=registry,
        ).set(config.replay.samples_per_insert)
        self._collector = _StoreCollector(store, self._lock)
        registry.register(self._collector)

    def close(self) -> None:
        """The server is going away: end calls waiting on the rate limiter (UNAVAILABLE: clients
        retry elsewhere) and stop the metrics snapshot thread."""
        self._stopping.set()
        self._collector.stop()

    # --- helpers ----------------------------------------------------------------------------

    def _rng_child(self) -> np.random.Generator:
        with self._rng_lock:
            return np.random.default_rng(self._rng.integers(2**63))

    def _invalid(self, context: grpc.ServicerContext, method: str, message: str):
        self.rejected.labels(method).inc()
        if len(message) > MAX_REFUSAL_CHARS:  # every echo is clipped at its source; this is the backstop
            message = message[:MAX_REFUSAL_CHARS] + "..."
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)

    def _wait(self, context: grpc.ServicerContext, allowed, what: str, cap_s: float | None) -> None:
        """Wait for the rate limiter; a wait also ends when the client goes or the front stops,
        so a stopping front does not sit out every blocked call's cap."""
        limits = [x for x in (context.time_remaining(), cap_s) if x is not None]
        try:
            self.limiter.wait(
                lambda: self._stopping.is_set() or not context.is_active() or allowed(),
                min(limits) if limits else None,
                what,
            )
        except TimeoutError as error:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
        if self._stopping.is_set():
            context.abort(grpc.StatusCode.UNAVAILABLE, "this replay front is stopping; retry (another replica)")
        if not context.is_active():
            context.abort(grpc.StatusCode.CANCELLED, "the client went away")

    def _counts(self):
        with self._lock:
            return self.store.counts()

    # --- RPCs -------------------------------------------------------------------------------

    def AppendSegments(self, request_iterator: Iterator[replay_pb2.Segment], context) -> Iterator[replay_pb2.AppendAck]:
        for message in request_iterator:
            try:
                segment = codec.segment_from_proto(
                    message,
                    num_actions=self.spec.num_actions,
                    frame_shape=self.spec.observation_shape,
                    frame_stack=self.config.env.frame_stack,
                    experiment=self.config.name,
                    frame_dtype=self.spec.observation_dtype,
                )
            except ValueError as error:
                self._invalid(context, "AppendSegments", _naming(message.segment_id, error))
            if self.limiter.limits_inserts:  # else no need to read the store's counts per segment
                self._wait(context, lambda: self.limiter.can_insert(self._counts(), segment.length), "insert", None)
            start = time.perf_counter()
            try:
                with self._lock:
                    stored = self.store.insert(segment)
            except ValueError as error:
                self._invalid(context, "AppendSegments", _naming(message.segment_id, error))
            except FULL_ERRORS as error:
                log.error("a replay shard is at its Redis maxmemory: %s", error)
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "a replay shard is at its Redis maxmemory: raise it or lower replay.capacity (docs/scaling.md)",
                )
            self.latency.labels("AppendSegments").observe(time.perf_counter() - start)
            if stored:
                self.appended.inc()
                self.appended_transitions.inc(segment.length)
            else:
                self.duplicates.inc()
            yield replay_pb2.AppendAck(segment_id=segment.segment_id, duplicate=not stored)

    def Sample(self, request: replay_pb2.SampleRequest, context) -> Iterator[replay_pb2.TrainingBatch]:
        if not 1 <= request.batch_size <= MAX_BATCH_SIZE:
            self._invalid(context, "Sample", f"batch_size: must be in [1, {MAX_BATCH_SIZE}], got {request.batch_size}")
        if not 1 <= request.num_batches <= MAX_BATCHES_PER_CALL:
            self._invalid(
                context, "Sample", f"num_batches: must be in [1, {MAX_BATCHES_PER_CALL}], got {request.num_batches}"
            )
        training = self.config.training
        rng = self._rng_child()
        for _ in range(request.num_batches):
            self._wait(
                context,
                lambda: self.limiter.can_sample(self._counts(), request.batch_size),
                "sample",
                SAMPLE_WAIT_CAP_S,
            )
            start = time.perf_counter()
            # The target network and the consistency loss need frames beyond each example's own.
            whole_windows = request.bootstrap_observations or training.consistency_loss_weight > 0
            frames = "window" if whole_windows else "stack"
            with self._lock:
                sampled = self.store.sample(request.batch_size, rng, uniform=request.uniform, frames=frames)
            batch = batch_from_sample(
                sampled,
                training,
                self.config.env.frame_stack,
                rng,
                bootstrap_observations=request.bootstrap_observations,
                rules=self.config.network.rules_heads,
            )
            message = codec.training_batch_to_proto(batch)
            self.latency.labels("Sample").observe(time.perf_counter() - start)
            self.sampled.inc(request.batch_size)
            yield message

    def UpdatePriorities(self, request: replay_pb2.PriorityUpdate, context) -> replay_pb2.PriorityAck:
        try:
            count = len(request.segment_ids)
            positions = codec.tensor_from_proto(request.positions, "positions", dtype="int64", shape=(count,))
            priorities = codec.tensor_from_proto(request.priorities, "priorities", dtype="float32", shape=(count,))
            if (priorities < 0).any():
                raise ValueError("priorities: must be >= 0")
            keys = SampleKeys(segment_ids=np.array(list(request.segment_ids), dtype=object), positions=positions)
            with self._lock:
                stale = self.store.update_priorities(keys, priorities)
        except ValueError as error:
            self._invalid(context, "UpdatePriorities", str(error))
        return replay_pb2.PriorityAck(updated=count - int(stale), stale=int(stale))

    def ReadSegments(self, request: replay_pb2.ReadSegmentsRequest, context) -> Iterator[replay_pb2.Segment]:
        if not 1 <= request.count <= MAX_READ_SEGMENTS:
            self._invalid(context, "ReadSegments", f"count: must be in [1, {MAX_READ_SEGMENTS}], got {request.count}")
        with self._lock:
            if self.store.num_transitions == 0:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the replay store is empty")
            segments = self.store.read_segments(request.count, self._rng_child(), uniform=request.uniform)
        for segment in segments:
            yield codec.segment_to_proto(segment, self.config.name)

    def WriteTargets(self, request: replay_pb2.ReanalysedTargets, context) -> replay_pb2.WriteTargetsAck:
        try:
            policies = codec.tensor_from_proto(
                request.policies, "policies", dtype="float32", shape=(None, self.spec.num_actions)
            )
            root_values = codec.tensor_from_proto(request.root_values, "root_values", dtype="float32", shape=(None,))
            with self._lock:
                stored = self.store.write_targets(request.segment_id, policies, root_values, request.model_version)
        except ValueError as error:
            self._invalid(context, "WriteTargets", str(error))
        return replay_pb2.WriteTargetsAck(stored=stored)

    def Stats(self, request: replay_pb2.StatsRequest, context) -> replay_pb2.ReplayStats:
        with self._lock:
            stats = self.store.stats()
        reply = replay_pb2.ReplayStats()
        for key, value in stats.items():
            if isinstance(value, (int, float)):
                reply.totals[key] = float(value)
        for shard in stats.get("shards", []):
            reply.shards.add().values.update({k: float(v) for k, v in shard.items()})
        return reply


def _naming(segment_id: str, error: Exception) -> str:
    """The error, prefixed with the segment's id when it has a usable one (writers drop that
    segment; without one they drop the oldest unacknowledged, which is the refused one)."""
    try:
        codec.check_segment_id(segment_id)
    except ValueError:
        return str(error)
    return f"segment {segment_id}: {error}"


class _StoreCollector:
    """Gauges and counters of the store (so every replica agrees), from a snapshot a background
    thread takes every ``interval_s``: a scrape never waits on Redis, and a slow or restarting
    shard makes the figures older (``muzero_replay_stats_age_seconds``), not the scrape fail."""

    def __init__(self, store: ReplayStorage, lock, interval_s: float = 5.0):
        self.store = store
        self.lock = lock
        self.interval_s = interval_s
        self._stats: dict | None = None
        self._taken = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh_until_stopped, name="replay-stats", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _refresh_until_stopped(self) -> None:
        while not self._stop.is_set():
            try:
                with self.lock:
                    stats = self.store.stats()
                self._stats, self._taken = stats, time.monotonic()
            except Exception as error:  # a shard away: keep the last snapshot, its age shows it
                log.warning("replay stats unavailable for metrics: %s", error)
            self._stop.wait(self.interval_s)

    def collect(self):
        cache = getattr(self.store, "cache", None)
        if cache is not None:
            yield CounterMetricFamily(
                "muzero_replay_cache_hits", "Front cache lookups that found the decoded entry", value=cache.hits
            )
            yield CounterMetricFamily(
                "muzero_replay_cache_misses", "Front cache lookups that had to read Redis", value=cache.misses
            )
            yield GaugeMetricFamily("muzero_replay_cache_bytes", "Bytes held by the front cache", value=cache.nbytes)
        stats = self._stats
        if stats is None:
            return
        yield GaugeMetricFamily(
            "muzero_replay_stats_age_seconds",
            "Age of the store snapshot these replay figures come from",
            value=time.monotonic() - self._taken,
        )
        gauges = {
            "transitions": ("muzero_replay_transitions", "Owned transitions stored"),
            "segments": ("muzero_replay_segments", "Segments stored"),
            "frames": ("muzero_replay_frames", "Distinct frames stored (per shard, summed)"),
            "bytes": ("muzero_replay_stored_bytes", "Bytes stored: compressed frames, segments and targets"),
            "raw_frame_bytes": ("muzero_replay_raw_frame_bytes", "Uncompressed bytes of the stored frames"),
            "raw_stacked_bytes": (
                "muzero_replay_raw_stacked_bytes",
                "Bytes a store of stacked uint examples would need for the same transitions",
            ),
            "capacity": ("muzero_replay_capacity_transitions", "Capacity in transitions"),
        }
        for key, (name, help_text) in gauges.items():
            if name and key in stats:
                yield GaugeMetricFamily(name, help_text, value=float(stats[key]))
        if "num_transitions" in stats and "transitions" not in stats:
            yield GaugeMetricFamily(
                "muzero_replay_transitions", "Owned transitions stored", value=float(stats["num_transitions"])
            )
        counters = {
            "inserted_transitions_total": ("muzero_replay_inserted_transitions", "Transitions inserted into the store"),
            "sampled_transitions_total": ("muzero_replay_sampled_transitions", "Transitions sampled for training"),
            "evicted_segments_total": ("muzero_replay_evicted_segments", "Segments evicted at capacity"),
            "reanalysed_writes_total": ("muzero_replay_reanalysed_writes", "Reanalysed targets written"),
        }
        for key, (name, help_text) in counters.items():
            yield CounterMetricFamily(name, help_text, value=float(stats.get(key, 0)))
        shards = stats.get("shards", [])
        if shards:
            family = GaugeMetricFamily(
                "muzero_replay_shard_transitions", "Owned transitions per shard", labels=["shard"]
            )
            for index, shard in enumerate(shards):
                family.add_metric([str(index)], float(shard.get("transitions", 0)))
            yield family


def add_to_server(server: Server, servicer: ReplayServicer) -> None:
    server.add_service(servicer, replay_pb2.DESCRIPTOR.services_by_name["ReplayService"], transient=TRANSIENT_ERRORS)
