"""Clients of the replay service: a segment writer that loses nothing, and a sampler.

:class:`SegmentWriter` keeps every segment until the service acknowledges it
(acknowledged means stored), bounds how many are unacknowledged (``append``
blocks: backpressure reaches the actor), and after a broken stream reconnects
with backoff and re-sends the unacknowledged ones in order. Inserts are
idempotent, so a segment stored just before the stream broke is a no-op when
re-sent, to this replica or another.
"""

from __future__ import annotations

import collections
import logging
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import numpy as np

from muzero.learning.batch import Batch
from muzero.learning.segment import SampleKeys, Segment
from muzero.transport.grpc_util import GrpcClient, backoff_delays, call_with_retries, make_channel
from muzero.wire import codec
from muzero.wire.v1 import replay_pb2, replay_pb2_grpc

log = logging.getLogger("muzero.transport.replay_client")

_REJECTED_ID = re.compile(r"^segment (\S+): ")


@dataclass(frozen=True)
class Rejected:
    segment_id: str
    message: str


class SegmentWriter:
    """Append segments over one long-lived stream, re-sending unacknowledged ones after a reconnect."""

    def __init__(self, target: str, experiment: str, max_inflight: int = 64, ack_log: str | None = None):
        """``ack_log``: a file to append each acknowledged segment id to (audits and tests)."""
        if max_inflight < 1:
            raise ValueError(f"max_inflight: must be >= 1, got {max_inflight}")
        self.target = target
        self.experiment = experiment
        self.max_inflight = max_inflight
        self._pending: collections.OrderedDict[str, replay_pb2.Segment] = collections.OrderedDict()
        self._condition = threading.Condition()
        self._outbox: queue.Queue | None = None
        self._closed = False
        self.acknowledged = 0
        self.duplicates = 0
        self.reconnects = 0
        self.rejected: list[Rejected] = []
        self._ack_log = open(ack_log, "a", buffering=1) if ack_log else None
        self._channel = make_channel(target)
        self._stub = replay_pb2_grpc.ReplayServiceStub(self._channel)
        self._thread = threading.Thread(target=self._run, name="segment-writer", daemon=True)
        self._thread.start()

    @property
    def inflight(self) -> int:
        with self._condition:
            return len(self._pending)

    def append(self, segment: Segment, timeout_s: float | None = None) -> None:
        """Queue ``segment``; blocks while ``max_inflight`` segments are unacknowledged."""
        message = codec.segment_to_proto(segment, self.experiment)
        with self._condition:
            if not self._condition.wait_for(
                lambda: len(self._pending) < self.max_inflight or self._closed, timeout=timeout_s
            ):
                raise TimeoutError(
                    f"replay at {self.target}: {self.max_inflight} segments still unacknowledged after {timeout_s} s"
                )
            if self._closed:
                raise RuntimeError("the segment writer is closed")
            if segment.segment_id in self._pending:
                return
            self._pending[segment.segment_id] = message
            if self._outbox is not None:
                self._outbox.put(message)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every appended segment is acknowledged; False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._pending, timeout=timeout_s)

    def close(self, timeout_s: float | None = 10.0) -> int:
        """Flush (up to ``timeout_s``), stop, and return how many segments were left unacknowledged."""
        self.flush(timeout_s)
        with self._condition:
            self._closed = True
            left = len(self._pending)
            if self._outbox is not None:
                self._outbox.put(None)
            self._condition.notify_all()
        self._channel.close()
        self._thread.join(timeout=5)
        if self._ack_log is not None:
            self._ack_log.close()
        return left

    def _requests(self, outbox: queue.Queue) -> Iterator[replay_pb2.Segment]:
        while True:
            message = outbox.get()
            if message is None:
                return
            yield message

    def _run(self) -> None:
        delays = backoff_delays()
        while True:
            with self._condition:
                if self._closed:
                    return
                outbox: queue.Queue = queue.Queue()
                for message in self._pending.values():  # unacknowledged ones first, in order
                    outbox.put(message)
                self._outbox = outbox
            try:
                for ack in self._stub.AppendSegments(self._requests(outbox)):
                    with self._condition:
                        if self._pending.pop(ack.segment_id, None) is not None:
                            self.acknowledged += 1
                            self.duplicates += int(ack.duplicate)
                            if self._ack_log is not None:
                                self._ack_log.write(ack.segment_id + "\n")
                        self._condition.notify_all()
                    delays = backoff_delays()
            except grpc.RpcError as error:
                self._on_stream_error(error)
            except ValueError:  # the channel was closed under us
                pass
            with self._condition:
                self._outbox = None
                if self._closed:
                    return
            outbox.put(None)
            self.reconnects += 1
            time.sleep(next(delays))

    def _on_stream_error(self, error: grpc.RpcError) -> None:
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            # The server takes a stream's segments in order and acknowledges each before the
            # next, so the refused one is the one named, else the oldest unacknowledged: drop it
            # (re-sending it would be refused for ever).
            match = _REJECTED_ID.match(error.details() or "")
            with self._condition:
                refused = (
                    match.group(1) if match and match.group(1) in self._pending else next(iter(self._pending), None)
                )
                if refused is not None:
                    del self._pending[refused]
                    self.rejected.append(Rejected(refused, error.details() or ""))
                    log.error("replay rejected segment %s: %s", refused, error.details())
                    self._condition.notify_all()
                    return
        if not self._closed:
            log.warning("segment stream to %s broke (%s); reconnecting", self.target, error.code().name)


class ReplayClient(GrpcClient):
    """Unary and server-streaming calls, each with a deadline and retries where safe."""

    stub_class = replay_pb2_grpc.ReplayServiceStub

    def sample(
        self,
        batch_size: int,
        num_batches: int = 1,
        uniform: bool = False,
        timeout_s: float | None = None,
        bootstrap_observations: bool = False,
    ) -> Iterator[Batch[np.ndarray]]:
        request = replay_pb2.SampleRequest(
            batch_size=batch_size,
            num_batches=num_batches,
            uniform=uniform,
            bootstrap_observations=bootstrap_observations,
        )
        for message in self._stub.Sample(request, timeout=timeout_s or self.timeout_s * num_batches):
            yield codec.training_batch_from_proto(message)

    def update_priorities(self, keys: SampleKeys, priorities: np.ndarray) -> replay_pb2.PriorityAck:
        request = replay_pb2.PriorityUpdate(segment_ids=[str(i) for i in keys.segment_ids])
        codec.tensor_to_proto(np.asarray(keys.positions, dtype=np.int64), request.positions)
        codec.tensor_to_proto(np.asarray(priorities, dtype=np.float32), request.priorities)
        return call_with_retries(
            lambda: self._stub.UpdatePriorities(request, timeout=self.timeout_s), what="UpdatePriorities"
        )

    def read_segments(
        self,
        count: int,
        *,
        num_actions: int,
        frame_shape: tuple[int, ...],
        frame_stack: int,
        experiment: str,
        uniform: bool = True,
    ) -> list[Segment]:
        request = replay_pb2.ReadSegmentsRequest(count=count, uniform=uniform)

        def read() -> list[Segment]:
            return [
                codec.segment_from_proto(
                    m, num_actions=num_actions, frame_shape=frame_shape, frame_stack=frame_stack, experiment=experiment
                )
                for m in self._stub.ReadSegments(request, timeout=self.timeout_s)
            ]

        return call_with_retries(read, what="ReadSegments")

    def write_targets(self, segment_id: str, policies: np.ndarray, root_values: np.ndarray, model_version: int) -> bool:
        request = codec.targets_to_proto(segment_id, policies, root_values, model_version)
        return call_with_retries(
            lambda: self._stub.WriteTargets(request, timeout=self.timeout_s), what="WriteTargets"
        ).stored

    def stats(self) -> replay_pb2.ReplayStats:
        return call_with_retries(
            lambda: self._stub.Stats(replay_pb2.StatsRequest(), timeout=self.timeout_s), what="Stats"
        )
