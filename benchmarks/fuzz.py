"""Fuzz the replay and checkpoint services, and the health service on both, at volume.

    python benchmarks/fuzz.py [--per-method 10000] [--seed 0] [--workers 8] [--open-streams 40]
                              [--findings PATH] [--no-shrink]
    python benchmarks/fuzz.py --resend PATH:INDEX    # one finding of PATH again, on fresh servers

Real servers: two redis-server shards (muzero.operations.redis_process); the replay front
as it is deployed (``python -m services.replay`` over those shards, a process of its own);
the checkpoint service served the way the learner serves it, over a run directory with
three real checkpoints (a process of its own too: ``--serve-checkpoints``). A crash is then
a dead process rather than an exception in the fuzzer, and the fuzzer's CPU does not hide a
stalled server.

Every RPC of every service is enumerated from the service descriptors (replay.proto,
checkpoint.proto, grpc.health.v1), so a method added to a .proto is fuzzed by the next run,
and the run refuses to start until SPECS gives that method a valid request and an oracle.
Each method gets ``--per-method`` requests, all sent as raw bytes through a channel method
without a serializer:

- 40% drawn by hypothesis from the request's descriptor (``request_strategy``): any subset
  of fields, integers at their extremes (2^63-1, -1, -2^31, 2^53+1, ...), NaN and infinite
  floats, empty, unicode and 100,000-character strings, repeated and nested fields, unknown
  fields, and Tensor messages with odd dtype strings, shapes (negative, 2^62) and data of the
  right or a wrong size;
- 40% one mutation of a valid request (a segment from tests/factories.random_segment,
  priorities for stored positions, targets for a stored segment, a published version, ...):
  bytes flipped, truncated or doubled, a field cleared or set to an extreme, a dtype swapped,
  a shape off by one, a NaN or negative element, bool bytes of 2..255, an id of 100,000
  characters, a version near 2^63, a position past its segment's end, an unknown id, ...;
- 20% garbage: random bytes, overlong varints, lengths past the end, wrong or invalid wire
  types, invalid UTF-8, thousands of nested groups, a valid request with noise spliced in.

Server-streaming calls (Sample, ReadSegments, Fetch, both Watch) are read until they end or
a short deadline ends them; AppendSegments (bidi) carries one segment per stream. Calls that
write (AppendSegments, UpdatePriorities, WriteTargets) go one at a time, so their effect on
the store can be seen; the others go ``--workers`` at a time. Both servers' health is checked
after every 100 requests; at the end ``--open-streams`` idle streams of each long-lived kind
(AppendSegments, both Watch) are held open while both servers must still answer their health
check and a unary call.

The oracle (``malformed`` of each Spec) says whether a request breaks the contract: bytes
that do not parse as the request type; a segment that muzero.wire.codec's decoder refuses,
or with bool bytes other than 0 and 1; a batch size, batch count or read count outside the
server's limits; positions or priorities that are not (N,) int64 and (N,) finite float32 >= 0,
a negative position or one past its stored segment's owned steps; targets that are not
(T, A) probability rows and (T,) finite values, with T the stored segment's steps, an empty
id or a negative version; a negative checkpoint version, offset or after_version, or an
offset past the checkpoint's size. A request it passes may still be refused (NOT_FOUND, ...).

Bars (exit status 1 when one fails):
- server_deaths: a server process exited, or did not answer its health check within 5 s
  (after a batch, or while the idle streams were open); it is restarted and the run goes on.
- unclean (per method): responses with status UNKNOWN or INTERNAL: 0.
- accepted_malformed: requests the oracle calls malformed that were answered OK (a stream:
  with any message), or that changed the store although refused (every shard's counters,
  sum-tree roots, targets and frame references, read before and after): 0.
- fsck_clean: the store's fsck() finds no problem after the run.
- stored_data_intact: the segments stored before the run (raw Redis keys, priorities and the
  arrays read back) and the checkpoints (fetched, byte-identical) are unchanged, nothing was
  evicted, and what the run had acknowledged reads back as written: every appended segment,
  and for every segment the last WriteTargets answered stored=true (read as a sample reads it).

Progress and the findings (bars and notes, grouped, a few requests of each) go to stderr;
every kept request is written whole to ``--findings`` for ``--resend``. The last line of
stdout is one JSON object:
{"methods": {"<service>/<method>": {"sent": n, "codes": {"OK": n, ...}, "unclean": n}, ...},
 "server_deaths": n, "accepted_malformed": n, "fsck_clean": bool, "stored_data_intact": bool}
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # before grpc loads: see muzero/operations/cluster.py

import argparse  # noqa: E402
import base64  # noqa: E402
import ctypes  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent import futures  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from google.protobuf.descriptor import FieldDescriptor  # noqa: E402
from google.protobuf.message import Message  # noqa: E402
from google.protobuf.message_factory import GetMessageClass  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from hypothesis import HealthCheck, Phase, Verbosity, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from muzero import config as config_module  # noqa: E402
from muzero.operations.redis_process import RedisServer, free_port  # noqa: E402
from muzero.storage.replay.factory import EnvSpec, build_store, redis_overrides  # noqa: E402
from muzero.storage.replay.protocol import MAX_TARGETS_VERSION  # noqa: E402
from muzero.storage.replay.redis_store import shard_of  # noqa: E402
from muzero.transport.grpc_util import CHANNEL_OPTIONS  # noqa: E402
from muzero.transport.replay_server import MAX_BATCH_SIZE, MAX_BATCHES_PER_CALL, MAX_READ_SEGMENTS  # noqa: E402
from muzero.wire import codec  # noqa: E402
from muzero.wire.v1 import checkpoint_pb2, checkpoint_pb2_grpc, replay_pb2  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTORS = (replay_pb2.DESCRIPTOR, checkpoint_pb2.DESCRIPTOR, health_pb2.DESCRIPTOR)
REPLAY, CHECKPOINT = "replay", "checkpoint"
REPLAY_SERVICE, CHECKPOINT_SERVICE = "muzero.v1.ReplayService", "muzero.v1.CheckpointService"
SERVERS_OF = {
    REPLAY_SERVICE: (REPLAY,),
    CHECKPOINT_SERVICE: (CHECKPOINT,),
    "grpc.health.v1.Health": (REPLAY, CHECKPOINT),
}

EXPERIMENT = "fuzz"
SHARDS = 2
CHECKPOINT_VERSIONS = (100, 200, 300)
SHARES = (0.4, 0.4)  # hypothesis, mutation; garbage gets the rest
UNCLEAN = ("UNKNOWN", "INTERNAL")
BATCH = 100  # requests between health checks
HEALTH_TIMEOUT_S = 5.0
LONG_ID = "x" * 100_000
TENSOR = "muzero.v1.Tensor"
FLOAT_DTYPES = ("float16", "float32", "float64")
ODD_DTYPES = ("", "object", "O", "<f4", ">f4", "float32 ", "FLOAT32", "str", "U8", "V4", "complex64", "float128")
ODD_STRINGS = ("", " ", LONG_ID, "\u202e\u0000ünï🎲", "a" * 129, "../../etc/passwd", "%s%n{}")
VERSION_EXTREMES = (2**63 - 1, 2**63 - 2, 2**62, 2**53 + 1, -1, -(2**63))

FD = FieldDescriptor  # its TYPE_* constants, used throughout
INT_BOUNDS = {
    **dict.fromkeys((FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32), (-(2**31), 2**31 - 1)),
    **dict.fromkeys((FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64), (-(2**63), 2**63 - 1)),
    **dict.fromkeys((FD.TYPE_UINT32, FD.TYPE_FIXED32), (0, 2**32 - 1)),
    **dict.fromkeys((FD.TYPE_UINT64, FD.TYPE_FIXED64), (0, 2**64 - 1)),
}
INT_EDGES = (0, 1, -1, 2, 2**31 - 1, -(2**31), 2**32 - 1, 2**53 + 1, 2**62, 2**63 - 2, 2**63 - 1, -(2**63), 2**64 - 1)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def short(value, limit: int = 160) -> str:
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def pick(rng: np.random.Generator, items):
    """One of ``items`` as it is (rng.choice would turn 2^63 into a float)."""
    items = list(items)
    return items[int(rng.integers(len(items)))]


def ids_on_every_shard(prefix: str, per_shard: int) -> list[str]:
    """``per_shard`` ids of the form prefix-N on each shard, so writes to them span every shard."""
    ids, counts = [], Counter()
    for i in itertools.count():
        segment_id = f"{prefix}-{i}"
        shard = shard_of(segment_id, SHARDS)
        if counts[shard] < per_shard:
            ids.append(segment_id)
            counts[shard] += 1
        if len(ids) == per_shard * SHARDS:
            return ids
    raise AssertionError("unreachable")


PROTECTED_IDS = ids_on_every_shard("protected", 4)  # stored before the run; no valid request names them
WORKING_IDS = ids_on_every_shard("work", 3)  # stored before the run; valid writes go to these


# --- the methods, from the descriptors ------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    service: str  # full name, e.g. muzero.v1.ReplayService
    name: str
    request: type[Message]
    client_streaming: bool
    server_streaming: bool

    @property
    def key(self) -> str:
        return f"{self.service}/{self.name}"

    @property
    def path(self) -> str:
        return f"/{self.key}"


def enumerate_methods(files=DESCRIPTORS) -> list[Method]:
    """Every RPC of every service the files define, in order."""
    return [
        Method(service.full_name, m.name, GetMessageClass(m.input_type), m.client_streaming, m.server_streaming)
        for file in files
        for service in file.services_by_name.values()
        for m in service.methods
    ]


def plan(methods: list[Method]) -> list[Method]:
    """``methods``, or ValueError naming each one the fuzzer cannot judge (no Spec or no server)."""
    missing = [m.key for m in methods if m.key not in SPECS or m.service not in SERVERS_OF]
    if missing:
        raise ValueError(
            "benchmarks/fuzz.py has no Spec (valid request, oracle) or server in SPECS/SERVERS_OF for: "
            + ", ".join(missing)
        )
    stale = sorted(set(SPECS) - {m.key for m in methods})
    if stale:
        raise ValueError("SPECS names methods that no descriptor defines: " + ", ".join(stale))
    return methods


# --- what the generators and the oracle know -----------------------------------------------------------


@dataclass
class Context:
    num_actions: int
    frame_shape: tuple[int, ...]
    frame_stack: int
    frame_dtype: str
    checkpoints: dict[int, int] = field(default_factory=dict)  # published version -> size in bytes
    segments: dict[str, tuple[int, int]] = field(default_factory=dict)  # stored id -> (steps, owned length)
    originals: dict[str, bytes] = field(default_factory=dict)  # acknowledged id -> the Segment sent
    targets: dict[str, bytes] = field(default_factory=dict)  # id -> the last ReanalysedTargets stored
    ids: itertools.count = field(default_factory=itertools.count)  # for fresh segment ids
    versions: itertools.count = field(default_factory=lambda: itertools.count(1))  # increasing targets versions

    def fresh_id(self, prefix: str = "fz") -> str:
        return f"{prefix}-{next(self.ids)}"

    @property
    def latest(self) -> int:
        return max(self.checkpoints)

    def note_segment(self, payload: bytes) -> None:
        message = replay_pb2.Segment.FromString(payload)
        steps = int(message.actions.shape[0]) if message.actions.shape else 0
        self.segments[message.segment_id] = (steps, int(message.length))
        self.originals[message.segment_id] = payload


# --- valid requests ------------------------------------------------------------------------------------------


def make_segment(ctx: Context, rng: np.random.Generator, steps: int, length: int, segment_id: str):
    """tests/factories.py's valid random segment (the one the suite uses), with our id."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.factories import random_segment

    segment = random_segment(
        rng,
        num_actions=ctx.num_actions,
        frame_shape=ctx.frame_shape,
        frame_stack=ctx.frame_stack,
        steps=steps,
        length=length,
        terminated=bool(rng.integers(2)),
    )
    return replace(segment, segment_id=segment_id)


def valid_segment(ctx: Context, rng: np.random.Generator) -> replay_pb2.Segment:
    steps = int(rng.integers(1, 9))
    segment = make_segment(ctx, rng, steps, int(rng.integers(1, steps + 1)), ctx.fresh_id())
    return codec.segment_to_proto(segment, EXPERIMENT)


def valid_sample(ctx: Context, rng: np.random.Generator) -> replay_pb2.SampleRequest:
    return replay_pb2.SampleRequest(
        batch_size=int(rng.integers(1, 33)),
        num_batches=int(rng.integers(1, 3)),
        uniform=bool(rng.integers(2)),
        bootstrap_observations=bool(rng.integers(2)),
    )


def valid_priorities(ctx: Context, rng: np.random.Generator) -> replay_pb2.PriorityUpdate:
    # One id per shard at least, so a refusal on a later shard would show a write on an earlier one.
    ids = [pick(rng, [i for i in WORKING_IDS if shard_of(i, SHARDS) == s]) for s in range(SHARDS)]
    ids += [pick(rng, WORKING_IDS) for _ in range(int(rng.integers(0, 5)))]
    ids = [ids[i] for i in rng.permutation(len(ids))]
    message = replay_pb2.PriorityUpdate(segment_ids=ids)
    positions = [int(rng.integers(0, ctx.segments[i][1])) for i in ids]
    codec.tensor_to_proto(np.array(positions, dtype=np.int64), message.positions)
    codec.tensor_to_proto((rng.random(len(ids)) * 4).astype(np.float32), message.priorities)
    return message


def valid_read(ctx: Context, rng: np.random.Generator) -> replay_pb2.ReadSegmentsRequest:
    return replay_pb2.ReadSegmentsRequest(count=int(rng.integers(1, 9)), uniform=bool(rng.integers(2)))


def targets_for(ctx: Context, rng: np.random.Generator, steps: int) -> tuple[np.ndarray, np.ndarray]:
    policies = rng.random((steps, ctx.num_actions)) + 0.05
    policies = (policies / policies.sum(axis=1, keepdims=True)).astype(np.float32)
    return policies, rng.standard_normal(steps).astype(np.float32)


def valid_targets(ctx: Context, rng: np.random.Generator) -> replay_pb2.ReanalysedTargets:
    segment_id = pick(rng, WORKING_IDS)
    policies, root_values = targets_for(ctx, rng, ctx.segments[segment_id][0])
    return codec.targets_to_proto(segment_id, policies, root_values, next(ctx.versions))


def valid_fetch(ctx: Context, rng: np.random.Generator) -> checkpoint_pb2.FetchRequest:
    version = pick(rng, (0, *ctx.checkpoints))
    size = ctx.checkpoints[version or ctx.latest]
    offset = pick(rng, (0, 0, size, size - 1, int(rng.integers(0, size + 1))))
    return checkpoint_pb2.FetchRequest(version=version, offset=offset)


def valid_watch(ctx: Context, rng: np.random.Generator) -> checkpoint_pb2.WatchRequest:
    return checkpoint_pb2.WatchRequest(after_version=pick(rng, (0, ctx.latest, ctx.latest - 1, 2**40)))


def valid_health(ctx: Context, rng: np.random.Generator) -> health_pb2.HealthCheckRequest:
    return health_pb2.HealthCheckRequest(service=pick(rng, ("", REPLAY_SERVICE, CHECKPOINT_SERVICE, "no.Such")))


def empty(request_type: type[Message]) -> Callable[[Context, np.random.Generator], Message]:
    return lambda ctx, rng: request_type()


# --- the oracle: why a request breaks the contract (None: it does not) ----------------------------------


def segment_problem(ctx: Context, message: replay_pb2.Segment) -> str | None:
    try:
        codec.segment_from_proto(
            message,
            num_actions=ctx.num_actions,
            frame_shape=ctx.frame_shape,
            frame_stack=ctx.frame_stack,
            experiment=EXPERIMENT,
            frame_dtype=ctx.frame_dtype,
        )
    except Exception as error:  # whatever the decoder raises, it refuses the segment
        return f"decoder: {short(error)}"
    if message.legal_masks.dtype == "bool" and max(message.legal_masks.data, default=0) > 1:
        return "legal_masks: bool bytes other than 0 and 1"
    return None


def sample_problem(ctx: Context, message: replay_pb2.SampleRequest) -> str | None:
    if not 1 <= message.batch_size <= MAX_BATCH_SIZE:
        return f"batch_size {message.batch_size} outside [1, {MAX_BATCH_SIZE}]"
    if not 1 <= message.num_batches <= MAX_BATCHES_PER_CALL:
        return f"num_batches {message.num_batches} outside [1, {MAX_BATCHES_PER_CALL}]"
    return None


def priorities_problem(ctx: Context, message: replay_pb2.PriorityUpdate) -> str | None:
    count = len(message.segment_ids)
    try:
        positions = codec.tensor_from_proto(message.positions, "positions", dtype="int64", shape=(count,))
        priorities = codec.tensor_from_proto(message.priorities, "priorities", dtype="float32", shape=(count,))
    except ValueError as error:
        return short(error)
    if (priorities < 0).any():
        return "priorities: negative"
    for segment_id, position in zip(message.segment_ids, positions):
        if not 0 <= position < 2**31:
            return f"positions: {position} outside [0, 2^31)"
        stored = ctx.segments.get(segment_id)
        if stored and position >= stored[1]:
            return f"positions: {position} past the {stored[1]} owned steps of {short(segment_id, 40)}"
    return None


def read_problem(ctx: Context, message: replay_pb2.ReadSegmentsRequest) -> str | None:
    if not 1 <= message.count <= MAX_READ_SEGMENTS:
        return f"count {message.count} outside [1, {MAX_READ_SEGMENTS}]"
    return None


def targets_problem(ctx: Context, message: replay_pb2.ReanalysedTargets) -> str | None:
    if not 1 <= len(message.segment_id) <= codec.MAX_ID_CHARS:
        return f"segment_id: {len(message.segment_id)} characters, outside [1, {codec.MAX_ID_CHARS}]"
    try:
        policies = codec.tensor_from_proto(message.policies, "policies", dtype="float32", shape=(None, ctx.num_actions))
        root_values = codec.tensor_from_proto(message.root_values, "root_values", dtype="float32", shape=(None,))
    except ValueError as error:
        return short(error)
    if len(root_values) != len(policies):
        return f"root_values: {len(root_values)} steps, policies {len(policies)}"
    if (policies < 0).any() or not np.allclose(policies.sum(axis=1), 1.0, atol=1e-3):
        return "policies: rows are not probability vectors"
    if not 0 <= message.model_version <= MAX_TARGETS_VERSION:
        return f"model_version {message.model_version} outside [0, 2^53]"
    stored = ctx.segments.get(message.segment_id)
    if stored and len(policies) != stored[0]:
        return f"policies: {len(policies)} steps for a segment of {stored[0]}"
    return None


def fetch_problem(ctx: Context, message: checkpoint_pb2.FetchRequest) -> str | None:
    if message.version < 0 or message.offset < 0:
        return f"version {message.version} or offset {message.offset} is negative"
    size = ctx.checkpoints.get(message.version or ctx.latest)
    if size is not None and message.offset > size:
        return f"offset {message.offset} past the {size} bytes of version {message.version}"
    return None


def watch_problem(ctx: Context, message: checkpoint_pb2.WatchRequest) -> str | None:
    return f"after_version {message.after_version} is negative" if message.after_version < 0 else None


def never(ctx: Context, message: Message) -> str | None:
    return None


def judge(method: Method, spec: Spec, ctx: Context, payload: bytes) -> str | None:
    """Why ``payload`` is a malformed request of ``method``, or None."""
    try:
        message = method.request.FromString(payload)
    except Exception as error:  # DecodeError, or RecursionError on deep nesting: the server cannot parse it either
        return f"undecodable: {type(error).__name__}"
    return spec.malformed(ctx, message)


# --- hypothesis: any message from its descriptor -----------------------------------------------------------


def int_values(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [e for e in INT_EDGES if low <= e <= high]
    return st.one_of(st.sampled_from(edges), st.integers(max(low, 0), min(high, 16)), st.integers(low, high))


def odd_strings() -> st.SearchStrategy[str]:
    # By index: a 100,000-character string inside the strategy would make its repr that long.
    return st.integers(0, len(ODD_STRINGS) - 1).map(ODD_STRINGS.__getitem__)


def scalar_values(fd: FieldDescriptor) -> st.SearchStrategy:
    kind = fd.type
    if kind in INT_BOUNDS:
        return int_values(*INT_BOUNDS[kind])
    if kind == FD.TYPE_BOOL:
        return st.booleans()
    if kind == FD.TYPE_FLOAT:
        return st.floats(width=32)  # NaN, infinities and subnormals included
    if kind == FD.TYPE_DOUBLE:
        return st.floats()
    if kind == FD.TYPE_STRING:
        return st.one_of(st.text(max_size=40), odd_strings())
    if kind == FD.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FD.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in fd.enum_type.values]), int_values(-(2**31), 2**31 - 1))
    raise ValueError(f"{fd.full_name}: no strategy for field type {kind}")


# Values the servers know, so drawn requests also get past the first checks now and then.
FIELD_HINTS = {
    "experiment": st.just(EXPERIMENT),
    "segment_id": st.sampled_from(WORKING_IDS),
    "segment_ids": st.sampled_from(WORKING_IDS),
    "version": st.sampled_from((0, *CHECKPOINT_VERSIONS)),
    "after_version": st.sampled_from((0, *CHECKPOINT_VERSIONS)),
    "service": st.sampled_from(("", REPLAY_SERVICE, CHECKPOINT_SERVICE)),
}


def wire_size(dtype: str, shape: list[int]) -> int | None:
    """Bytes a tensor of ``dtype`` and ``shape`` holds, when that is small enough to draw."""
    if dtype not in codec.ALLOWED_DTYPES or any(d < 0 for d in shape):
        return None
    size = np.dtype(dtype).itemsize * math.prod(shape)
    return size if size <= 512 else None


@st.composite
def tensor_values(draw) -> dict:
    dtype = draw(
        st.one_of(st.sampled_from(sorted(codec.ALLOWED_DTYPES)), st.sampled_from(ODD_DTYPES), st.text(max_size=8))
    )
    dims = st.one_of(st.integers(0, 6), st.sampled_from((-1, 2**31, 2**62, 2**63 - 1, -(2**63))))
    shape = draw(st.lists(dims, max_size=3))
    size = wire_size(dtype, shape)
    if size is None or not draw(st.booleans()):
        return {"dtype": dtype, "shape": shape, "data": draw(st.binary(max_size=64))}
    count = size // np.dtype(dtype).itemsize
    if count and dtype in FLOAT_DTYPES and draw(st.booleans()):  # real numbers (NaN, inf among them), not bit soup
        width = {"float16": 16, "float32": 32, "float64": 64}[dtype]
        values = draw(st.lists(st.floats(width=width), min_size=count, max_size=count))
        data = np.array(values, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
        return {"dtype": dtype, "shape": shape, "data": data}
    return {"dtype": dtype, "shape": shape, "data": draw(st.binary(min_size=size, max_size=size))}


def is_map(fd: FieldDescriptor) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def element_values(fd: FieldDescriptor, depth: int) -> st.SearchStrategy:
    if fd.type == FD.TYPE_MESSAGE:
        return message_values(fd.message_type, depth + 1)
    values = scalar_values(fd)
    hint = FIELD_HINTS.get(fd.name)
    return values if hint is None else st.one_of(hint, values)


def field_values(fd: FieldDescriptor, depth: int) -> st.SearchStrategy:
    if is_map(fd):
        entry = fd.message_type.fields_by_name
        return st.dictionaries(element_values(entry["key"], depth), element_values(entry["value"], depth), max_size=4)
    element = element_values(fd, depth)
    return st.lists(element, max_size=8) if fd.is_repeated else element


def message_values(descriptor, depth: int = 0) -> st.SearchStrategy[dict]:
    """A dict of field name -> value for any subset of the fields of ``descriptor``."""
    if descriptor.full_name == TENSOR:
        return tensor_values()
    if depth > 4:
        return st.just({})
    return st.fixed_dictionaries({}, optional={fd.name: field_values(fd, depth) for fd in descriptor.fields})


def fill(message: Message, values: dict) -> Message:
    for name, value in values.items():
        fd = message.DESCRIPTOR.fields_by_name[name]
        container = getattr(message, name)
        if is_map(fd):
            nested = fd.message_type.fields_by_name["value"].type == FD.TYPE_MESSAGE
            for key, item in value.items():
                fill(container[key], item) if nested else container.__setitem__(key, item)
        elif fd.is_repeated:
            for item in value:
                fill(container.add(), item) if fd.type == FD.TYPE_MESSAGE else container.append(item)
        elif fd.type == FD.TYPE_MESSAGE:
            container.SetInParent()
            fill(container, value)
        else:
            setattr(message, name, value)
    return message


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def unknown_field(number: int, wire_type: int, blob: bytes, value: int) -> bytes:
    """A well-formed field no request type declares: proto3 parsers keep it and servers must ignore it."""
    body = {0: varint(value), 1: value.to_bytes(8, "little"), 5: (value & 0xFFFFFFFF).to_bytes(4, "little")}
    return tag(number, wire_type) + body.get(wire_type, varint(len(blob)) + blob)


UNKNOWN_FIELDS = st.lists(
    st.builds(
        unknown_field,
        st.integers(1000, 2**29 - 1),
        st.sampled_from((0, 1, 2, 5)),
        st.binary(max_size=16),
        st.integers(0, 2**64 - 1),
    ),
    max_size=2,
)


def request_strategy(request_type: type[Message]) -> st.SearchStrategy[bytes]:
    """Serialized requests of ``request_type`` drawn from its descriptor, sometimes with unknown fields."""
    return st.builds(
        lambda values, tail: fill(request_type(), values).SerializeToString() + b"".join(tail),
        message_values(request_type.DESCRIPTOR),
        UNKNOWN_FIELDS,
    )


def run_hypothesis(strategy, count: int, seed: int, each: Callable[[bytes], None], shrink: bool = False) -> None:
    """Call ``each`` on up to ``count`` drawn values (fewer if the space is smaller), seeded, no database."""
    phases = (Phase.generate, Phase.shrink) if shrink else (Phase.generate,)

    @hypothesis_seed(seed)
    @settings(
        max_examples=max(count, 1),
        database=None,
        deadline=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
    )
    @given(strategy)
    def draw(payload: bytes) -> None:
        each(payload)

    draw()


# --- mutations of a valid request -----------------------------------------------------------------------------


def fields_in(message: Message, prefix: str = ""):
    """(path, parent, field) of every field of ``message`` and of its set sub-messages."""
    for fd in message.DESCRIPTOR.fields:
        path = prefix + fd.name
        yield path, message, fd
        if fd.type != FD.TYPE_MESSAGE or is_map(fd):
            continue
        if fd.is_repeated:
            for i, item in enumerate(getattr(message, fd.name)):
                yield from fields_in(item, f"{path}[{i}].")
        elif message.HasField(fd.name):
            yield from fields_in(getattr(message, fd.name), path + ".")


def tensors_in(message: Message, dtypes=None) -> list[tuple[str, Message]]:
    found = []
    for path, parent, fd in fields_in(message):
        if fd.message_type is not None and fd.message_type.full_name == TENSOR and not fd.is_repeated:
            if parent.HasField(fd.name) and (dtypes is None or getattr(parent, fd.name).dtype in dtypes):
                found.append((path, getattr(parent, fd.name)))
    return found


def extremes(fd: FieldDescriptor) -> list:
    kind = fd.type
    if kind in INT_BOUNDS:
        low, high = INT_BOUNDS[kind]
        return [e for e in INT_EDGES if low <= e <= high]
    floats = {FD.TYPE_FLOAT: 3.4028234663852886e38, FD.TYPE_DOUBLE: 1.7976931348623157e308}
    if kind in floats:
        return [math.nan, math.inf, -math.inf, -0.0, floats[kind], 1e-45, -1.0]
    return {
        FD.TYPE_BOOL: [True, False],
        FD.TYPE_STRING: list(ODD_STRINGS),
        FD.TYPE_BYTES: [b"", b"\0" * 100_000, b"\xff\xfe\xfd"],
        FD.TYPE_ENUM: [99, -1, 2**31 - 1],
    }.get(kind, [])


def set_scalar(parent: Message, fd: FieldDescriptor, value, rng: np.random.Generator) -> str:
    """Set ``fd`` of ``parent`` (one element of a repeated field) to ``value``; the index set, if any."""
    if not fd.is_repeated:
        setattr(parent, fd.name, value)
        return ""
    container = getattr(parent, fd.name)
    if not len(container):
        container.append(value)
        return "[0]"
    index = int(rng.integers(len(container)))
    container[index] = value
    return f"[{index}]"


def set_element(tensor: Message, index: int, value) -> None:
    array = np.frombuffer(tensor.data, np.dtype(tensor.dtype).newbyteorder("<")).copy()
    array[index] = value
    tensor.data = array.tobytes()


def elements(tensor: Message) -> int:
    return len(tensor.data) // np.dtype(tensor.dtype).itemsize


def m_extreme(ctx, message, rng):
    scalars = [(p, parent, fd) for p, parent, fd in fields_in(message) if extremes(fd)]
    if not scalars:
        return None
    path, parent, fd = pick(rng, scalars)
    value = pick(rng, extremes(fd))
    return f"{path}{set_scalar(parent, fd, value, rng)}={short(repr(value), 40)}"


def m_clear(ctx, message, rng):
    present = [(p, parent, fd) for p, parent, fd in fields_in(message) if _is_set(parent, fd)]
    if not present:
        return None
    path, parent, fd = pick(rng, present)
    parent.ClearField(fd.name)
    return f"{path} cleared"


def _is_set(parent: Message, fd: FieldDescriptor) -> bool:
    if fd.is_repeated:
        return len(getattr(parent, fd.name)) > 0
    return parent.HasField(fd.name) if fd.has_presence else getattr(parent, fd.name) != fd.default_value


def m_version(ctx, message, rng):
    versions = [
        (p, parent, fd) for p, parent, fd in fields_in(message) if "version" in fd.name and fd.type in INT_BOUNDS
    ]
    if not versions:
        return None
    path, parent, fd = pick(rng, versions)
    value = pick(rng, VERSION_EXTREMES)
    return f"{path}{set_scalar(parent, fd, value, rng)}={value}"


def m_huge_name(ctx, message, rng):
    names = [
        (p, parent, fd)
        for p, parent, fd in fields_in(message)
        if fd.type == FD.TYPE_STRING and (fd.name.endswith(("id", "ids")) or fd.name in ("service", "experiment"))
    ]
    if not names:
        return None
    path, parent, fd = pick(rng, names)
    return f"{path}{set_scalar(parent, fd, LONG_ID, rng)}='x' * {len(LONG_ID)}"


def m_dtype(ctx, message, rng):
    tensors = tensors_in(message)
    if not tensors:
        return None
    path, tensor = pick(rng, tensors)
    before = tensor.dtype
    same_size = [d for d in codec.ALLOWED_DTYPES if before in codec.ALLOWED_DTYPES and d != before]
    same_size = [d for d in same_size if np.dtype(d).itemsize == np.dtype(before).itemsize]
    choices = (
        same_size if same_size and rng.random() < 0.6 else sorted(codec.ALLOWED_DTYPES - {before}) + list(ODD_DTYPES)
    )
    tensor.dtype = pick(rng, choices)
    return f"{path}.dtype {before!r} -> {tensor.dtype!r}"


def m_shape(ctx, message, rng):
    tensors = tensors_in(message)
    if not tensors:
        return None
    path, tensor = pick(rng, tensors)
    before = list(tensor.shape)
    how = pick(rng, ("grow", "shrink", "add_dim", "drop_dim", "negative", "huge") if before else ("add_dim",))
    i = int(rng.integers(len(before))) if before else 0
    if how == "add_dim":
        tensor.shape.append(1)
    elif how == "drop_dim":
        del tensor.shape[-1]
    else:
        tensor.shape[i] = {"grow": before[i] + 1, "shrink": before[i] - 1, "negative": -1, "huge": 2**62}[how]
    return f"{path}.shape {before} -> {list(tensor.shape)}"


def m_data_size(ctx, message, rng):
    tensors = tensors_in(message)
    if not tensors:
        return None
    path, tensor = pick(rng, tensors)
    before = len(tensor.data)
    how = pick(rng, ("one byte short", "one byte more", "empty", "doubled"))
    data = {"one byte short": tensor.data[:-1], "one byte more": tensor.data + b"\0", "empty": b""}
    tensor.data = data.get(how, tensor.data * 2)
    return f"{path}.data {how} ({before} -> {len(tensor.data)} bytes)"


def m_nonfinite(ctx, message, rng):
    tensors = [(p, t) for p, t in tensors_in(message, FLOAT_DTYPES) if elements(t)]
    if not tensors:
        return None
    path, tensor = pick(rng, tensors)
    index, value = int(rng.integers(elements(tensor))), pick(rng, (math.nan, math.inf, -math.inf))
    set_element(tensor, index, value)
    return f"{path}[{index}]={value}"


def m_negative(ctx, message, rng):
    tensors = [(p, t) for p, t in tensors_in(message, FLOAT_DTYPES) if elements(t)]
    if not tensors:
        return None
    path, tensor = pick(rng, tensors)
    index = int(rng.integers(elements(tensor)))
    set_element(tensor, index, -0.5)
    return f"{path}[{index}]=-0.5"


def m_bool_bytes(ctx, message, rng):
    tensors = [(p, t) for p, t in tensors_in(message, ("bool",)) if t.data]
    if not tensors:
        return None
    path, tensor = pick(rng, tensors)
    index, value = int(rng.integers(len(tensor.data))), int(rng.integers(2, 256))
    data = bytearray(tensor.data)
    data[index] = value
    tensor.data = bytes(data)
    return f"{path}.data[{index}]={value} (bool)"


GENERIC_MUTATORS = (m_extreme, m_clear, m_version, m_huge_name, m_dtype, m_shape, m_data_size, m_nonfinite)
TENSOR_MUTATORS = (m_negative, m_bool_bytes)


# Byte-level mutations return the bytes themselves.
def b_flip(payload: bytes, rng) -> tuple[str, bytes]:
    data = bytearray(payload or b"\0")
    where = sorted(int(i) for i in rng.integers(len(data), size=int(rng.integers(1, 4))))
    for i in where:
        data[i] ^= 1 << int(rng.integers(8))
    return f"bytes flipped at {where}", bytes(data)


def b_truncate(payload: bytes, rng) -> tuple[str, bytes]:
    cut = int(rng.integers(len(payload))) if payload else 0
    return f"truncated to {cut} of {len(payload)} bytes", payload[:cut]


def b_twice(payload: bytes, rng) -> tuple[str, bytes]:
    return "sent twice, concatenated (repeated fields doubled, last scalar wins)", payload + payload


def b_unknown_field(payload: bytes, rng) -> tuple[str, bytes]:
    number, wire_type = int(rng.integers(1000, 2**29)), pick(rng, (0, 1, 2, 5))
    extra = unknown_field(number, wire_type, rng.bytes(int(rng.integers(0, 17))), int(rng.integers(2**63)))
    return f"unknown field {number} (wire type {wire_type}) appended", payload + extra


BYTE_MUTATORS = (b_flip, b_truncate, b_twice, b_unknown_field)


# Mutations that break what one method means.
def m_other_experiment(ctx, message, rng):
    message.experiment = "someone-else"
    return "experiment='someone-else'"


def m_length_past_steps(ctx, message, rng):
    steps = int(message.actions.shape[0])
    message.length = steps + 1
    codec.tensor_to_proto(np.ones(steps + 1, dtype=np.float32), message.priorities)
    return f"length={steps + 1} for {steps} steps (priorities to match)"


def m_action_out_of_range(ctx, message, rng):
    index, value = int(rng.integers(message.actions.shape[0])), pick(rng, (ctx.num_actions, -1, 2**63 - 1))
    set_element(message.actions, index, value)
    return f"actions[{index}]={value}"


def m_bootstrap_after_end(ctx, message, rng):
    message.terminated, message.bootstrap_value = True, 0.5
    return "terminated with bootstrap_value=0.5"


def m_policy_off_simplex(ctx, message, rng):
    policies = codec.tensor_from_proto(message.policies, "policies") * np.float32(1.5)
    codec.tensor_to_proto(policies.astype(np.float32), message.policies)
    return "policies * 1.5 (rows sum to 1.5)"


def m_position_past_end(ctx, message, rng):
    index = int(rng.integers(len(message.segment_ids)))
    length = ctx.segments[message.segment_ids[index]][1]
    value = length + int(rng.integers(0, 3))
    set_element(message.positions, index, value)
    return f"positions[{index}]={value} past the {length} owned steps of {message.segment_ids[index]}"


def m_negative_position(ctx, message, rng):
    index, value = int(rng.integers(len(message.segment_ids))), pick(rng, (-1, -(2**63)))
    set_element(message.positions, index, value)
    return f"positions[{index}]={value}"


def m_unknown_id(ctx, message, rng):
    index = int(rng.integers(len(message.segment_ids)))
    message.segment_ids[index] = ctx.fresh_id("absent")
    return f"segment_ids[{index}]={message.segment_ids[index]!r} (never stored: stale)"


def m_unknown_target_bad_rows(ctx, message, rng):
    message.segment_id = ctx.fresh_id("absent")
    policies = codec.tensor_from_proto(message.policies, "policies") * np.float32(2)
    codec.tensor_to_proto(policies.astype(np.float32), message.policies)
    return f"segment_id={message.segment_id!r} (never stored) with policy rows summing to 2"


def m_target_steps_off_by_one(ctx, message, rng):
    steps = ctx.segments[message.segment_id][0] + pick(rng, (-1, 1))
    policies, root_values = targets_for(ctx, rng, steps)
    codec.tensor_to_proto(policies, message.policies)
    codec.tensor_to_proto(root_values, message.root_values)
    return f"{steps} steps of targets for a segment of {ctx.segments[message.segment_id][0]}"


def m_offset_past_size(ctx, message, rng):
    size = ctx.checkpoints[message.version or ctx.latest]
    message.offset = size + pick(rng, (1, 2**20, 2**63 - 1 - size))
    return f"offset={message.offset} past the {size} bytes"


def mutate(ctx: Context, spec: Spec, rng: np.random.Generator) -> tuple[str, bytes]:
    """One mutation of a fresh valid request: (what was done, the bytes)."""
    message = spec.valid(ctx, rng)
    if rng.random() < 0.15 or not message.DESCRIPTOR.fields:  # a message without fields has only its bytes
        mutator = pick(rng, BYTE_MUTATORS)
        label, payload = mutator(message.SerializeToString(), rng)
        return f"{mutator.__name__[2:]}: {label}", payload
    mutators = GENERIC_MUTATORS + TENSOR_MUTATORS + spec.mutators
    for _ in range(20):
        mutator = pick(rng, mutators)
        label = mutator(ctx, message, rng)
        if label is not None:
            return f"{mutator.__name__[2:]}: {label}", message.SerializeToString()
    return "unchanged", message.SerializeToString()


# --- garbage ------------------------------------------------------------------------------------------


def first_field(request_type: type[Message], kind: int | None = None) -> int:
    numbers = [fd.number for fd in request_type.DESCRIPTOR.fields if kind is None or fd.type == kind]
    return numbers[0] if numbers else 1


def garbage(ctx: Context, method: Method, spec: Spec, rng: np.random.Generator) -> tuple[str, bytes]:
    """Bytes that are mostly not a request of ``method`` at all: (what they are, the bytes)."""
    number = first_field(method.request)
    string = first_field(method.request, FD.TYPE_STRING)
    kinds = {
        "random bytes": lambda: rng.bytes(int(rng.integers(1, pick(rng, (8, 64, 1024, 65536)) + 1))),
        "overlong varint": lambda: tag(number, 0) + b"\xff" * 10 + b"\x01",
        "length past the end": lambda: tag(number, 2) + varint(int(rng.integers(10, 2**32))) + rng.bytes(4),
        "wrong wire type": lambda: tag(number, pick(rng, (0, 1, 2, 5))) + rng.bytes(8),
        "invalid wire type": lambda: tag(number, pick(rng, (6, 7))) + rng.bytes(4),
        "invalid utf-8": lambda: tag(string, 2) + varint(3) + b"\xc3\x28\xff",
        "nested groups": lambda: tag(number, 3) * int(rng.integers(100, 5000)),
        "unmatched end group": lambda: tag(number, 4),
        "field number 0": lambda: b"\x00" + rng.bytes(3),
        "noise spliced into a valid request": lambda: _spliced(spec.valid(ctx, rng).SerializeToString(), rng),
        "empty": lambda: b"",
    }
    kind = pick(rng, kinds)
    payload = kinds[kind]()
    return f"{kind}: {len(payload)} bytes", payload


def _spliced(payload: bytes, rng) -> bytes:
    at = int(rng.integers(len(payload) + 1))
    return payload[:at] + rng.bytes(int(rng.integers(1, 17))) + payload[at:]


# --- the table: one Spec per method -------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    valid: Callable[[Context, np.random.Generator], Message]  # a valid request
    malformed: Callable[[Context, Message], str | None]  # the oracle
    writes: bool = False  # sent one at a time; a refusal must leave the store as it was
    deadline_s: float = 5.0
    mutators: tuple = ()  # mutations that break what this method means


SPECS: dict[str, Spec] = {
    f"{REPLAY_SERVICE}/AppendSegments": Spec(
        valid_segment,
        segment_problem,
        writes=True,
        mutators=(m_other_experiment, m_length_past_steps, m_action_out_of_range, m_bootstrap_after_end)
        + (m_policy_off_simplex, m_bool_bytes, m_bool_bytes),
    ),
    f"{REPLAY_SERVICE}/Sample": Spec(valid_sample, sample_problem, deadline_s=0.5),
    f"{REPLAY_SERVICE}/UpdatePriorities": Spec(
        valid_priorities,
        priorities_problem,
        writes=True,
        mutators=(m_position_past_end, m_position_past_end, m_negative_position, m_unknown_id),
    ),
    f"{REPLAY_SERVICE}/ReadSegments": Spec(valid_read, read_problem, deadline_s=2.0),
    f"{REPLAY_SERVICE}/WriteTargets": Spec(
        valid_targets,
        targets_problem,
        writes=True,
        mutators=(m_unknown_target_bad_rows, m_policy_off_simplex, m_target_steps_off_by_one),
    ),
    f"{REPLAY_SERVICE}/Stats": Spec(empty(replay_pb2.StatsRequest), never),
    f"{CHECKPOINT_SERVICE}/Latest": Spec(empty(checkpoint_pb2.LatestRequest), never),
    f"{CHECKPOINT_SERVICE}/Fetch": Spec(valid_fetch, fetch_problem, mutators=(m_offset_past_size,)),
    f"{CHECKPOINT_SERVICE}/Watch": Spec(valid_watch, watch_problem, deadline_s=0.2),
    "grpc.health.v1.Health/Check": Spec(valid_health, never),
    "grpc.health.v1.Health/List": Spec(empty(health_pb2.HealthListRequest), never),
    "grpc.health.v1.Health/Watch": Spec(valid_health, never, deadline_s=0.2),
}
LONG_LIVED = {  # streams that stay open and idle in production, with the request that keeps them so
    f"{REPLAY_SERVICE}/AppendSegments": None,
    f"{CHECKPOINT_SERVICE}/Watch": lambda ctx: checkpoint_pb2.WatchRequest(after_version=ctx.latest),
    "grpc.health.v1.Health/Watch": lambda ctx: health_pb2.HealthCheckRequest(),
}


# --- sending raw bytes ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    code: str
    details: str = ""
    replies: list[bytes] = field(default_factory=list)  # the first few responses


class Wire:
    """A channel per server and, per method, a callable without a serializer: undecodable bytes go out as they are."""

    def __init__(self, targets: dict[str, str]):
        self.channels = {
            name: grpc.insecure_channel(target, options=CHANNEL_OPTIONS) for name, target in targets.items()
        }
        self._callables: dict[tuple[str, str], Callable] = {}

    def callable(self, server: str, method: Method) -> Callable:
        key = (server, method.path)
        if key not in self._callables:
            kind = {
                (False, False): "unary_unary",
                (False, True): "unary_stream",
                (True, False): "stream_unary",
                (True, True): "stream_stream",
            }[(method.client_streaming, method.server_streaming)]
            self._callables[key] = getattr(self.channels[server], kind)(method.path)
        return self._callables[key]

    def call(self, server: str, method: Method, payload: bytes, deadline_s: float) -> Outcome:
        function = self.callable(server, method)
        request = iter([payload]) if method.client_streaming else payload
        replies: list[bytes] = []
        try:
            if not method.server_streaming:
                replies.append(function(request, timeout=deadline_s))
                return Outcome("OK", replies=replies)
            for reply in function(request, timeout=deadline_s):
                if len(replies) < 4:
                    replies.append(reply)
            return Outcome("OK", replies=replies)
        except grpc.RpcError as error:
            return Outcome(error.code().name, error.details() or "", replies)

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()


# --- the servers, each in a process of its own ------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child: SIGTERM when the fuzzer dies, so no server outlives it (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class ServerProcess:
    def __init__(self, name: str, argv: list[str], port: int, log_path: Path):
        self.name, self.argv, self.port, self.log_path = name, argv, port, log_path
        self.target = f"127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None
        self.channel = grpc.insecure_channel(self.target)  # the probe's own, as a kubelet's would be
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def spawn(self) -> None:
        """Start the process; from the main thread only: PR_SET_PDEATHSIG fires when the forking thread ends."""
        # Plaintext, no tokens, default limits: whatever MUZERO_* this shell has stays out.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MUZERO_")}
        env.update(MUZERO_LOG_LEVEL="WARNING", MUZERO_TORCH_THREADS="1", PYTHONPATH=str(ROOT))
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                self.argv, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
            )

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while (problem := self.problem(timeout_s=2.0, wait=True)) is not None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} server did not start ({problem}):\n{self.log_tail()}")
            time.sleep(0.2)

    def problem(self, timeout_s: float = HEALTH_TIMEOUT_S, wait: bool = False) -> str | None:
        """Why the server is not serving now, or None."""
        if self.process is None or self.process.poll() is not None:
            return f"process exited with {None if self.process is None else self.process.returncode}"
        try:
            reply = self.health.Check(health_pb2.HealthCheckRequest(), timeout=timeout_s, wait_for_ready=wait)
        except grpc.RpcError as error:
            return f"health check: {error.code().name}"
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            return f"health: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
        return None

    def restart(self) -> None:
        self.stop()
        self.spawn()
        self.wait_ready()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 5) -> str:
        try:
            return "\n".join(
                short(line, 300) for line in self.log_path.read_text(errors="replace").splitlines()[-lines:]
            )
        except OSError:
            return ""


def serve_checkpoints(run_dir: str, port: int) -> int:
    """The checkpoint service as the learner serves it (services/learner/main.py), until SIGTERM."""
    from prometheus_client import CollectorRegistry

    from muzero.operations.service import stop_on_signals
    from muzero.transport.checkpoint_server import CheckpointServicer, add_to_server
    from muzero.transport.serving import serve

    servicer = CheckpointServicer(run_dir, poll_s=0.5)
    serving = serve(
        "127.0.0.1", port, CHECKPOINT_SERVICE, CollectorRegistry(), 0, register=lambda s: add_to_server(s, servicer)
    )
    if serving is None:
        print(f"checkpoint service: cannot listen on port {port}", file=sys.stderr)
        return 1
    stop_on_signals().wait()
    servicer.stop()
    serving.stop(grace_s=2)
    return 0


def write_checkpoints(run_dir: Path) -> dict[int, Path]:
    import torch

    from muzero.nn.networks import build_network
    from muzero.storage.checkpoint import CheckpointManager

    config = config_module.load("cartpole", [])
    torch.manual_seed(0)
    network = build_network(config.network, (4,), 2)
    manager = CheckpointManager(run_dir, keep_last=len(CHECKPOINT_VERSIONS))
    paths = {}
    for version in CHECKPOINT_VERSIONS:
        with torch.no_grad():
            for parameter in network.parameters():
                parameter.add_(0.01)
        paths[version] = manager.save(network, config, step=version, version=version)
    return paths


# --- the store as the fuzzer sees it (Redis, not the server) ----------------------------------------------------

TARGETS_VERSION = "return tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')"  # as sample.lua reads it


def store_digest(store) -> tuple:
    """Every shard's counters, sum-tree roots, targets and frame references: what any write changes."""
    digest = []
    for shard in store.shards:
        pipe = shard.client.pipeline(transaction=False)
        pipe.hgetall(shard.prefix + "meta")
        pipe.getrange(shard.prefix + "tree", 8, 15)
        pipe.getrange(shard.prefix + "ctree", 8, 15)
        pipe.hgetall(shard.prefix + "rzversion")
        pipe.hlen(shard.prefix + "rc")
        meta, tree, ctree, versions, references = pipe.execute()
        digest.append((sorted(meta.items()), tree, ctree, sorted(versions.items()), references))
    return tuple(map(str, digest))


def raw_keys(store, segment_id: str) -> dict[str, bytes | None]:
    """The Redis values that make up one stored segment: blobs, frames, bookkeeping and its leaves."""
    shard = store.shards[shard_of(segment_id, len(store.shards))]
    client, prefix = shard.client, shard.prefix
    found = {name: client.get(f"{prefix}{name}:{segment_id}") for name in ("seg", "fl", "rz")}
    found["rzversion"] = client.hget(prefix + "rzversion", segment_id)
    found["seginfo"] = info = client.hget(prefix + "seginfo", segment_id)
    frames = (found["fl"] or b"").decode()
    for i in range(0, len(frames), 32):
        found[f"f:{frames[i : i + 32]}"] = client.get(f"{prefix}f:{frames[i : i + 32]}")
    if info:
        first, length = map(int, info.split()[:2])
        leaves = int(client.hget(prefix + "meta", "leaves"))
        for tree in ("tree", "ctree"):
            found[tree] = client.getrange(prefix + tree, (leaves + first) * 8, (leaves + first + length) * 8 - 1)
    return found


def read_back(store, segment_id: str):
    """The segment as a sample of it reads it now (frames, freshest targets), or None if it is gone."""
    shard = store.shards[shard_of(segment_id, len(store.shards))]
    version = int(shard.client.eval(TARGETS_VERSION, 1, shard.prefix + "rzversion", segment_id))
    read = store._read_windows([(shard, segment_id, 0, 0.0, version)], whole=True)  # the store's own read path
    return None if read is None else read[0][0]


def segment_differences(want: replay_pb2.Segment, got, targets: bytes | None) -> list[str]:
    """The fields of ``want`` (with ``targets`` in place, if any) that ``got`` does not hold byte for byte."""
    if got is None:
        return ["gone"]
    have = codec.segment_to_proto(got, EXPERIMENT)
    expected = replay_pb2.Segment()
    expected.CopyFrom(want)
    if targets is not None:
        fresh = replay_pb2.ReanalysedTargets.FromString(targets)
        expected.policies.CopyFrom(fresh.policies)
        expected.root_values.CopyFrom(fresh.root_values)
    differences = [
        name
        for name in ("frames", "actions", "rewards", "to_play", "legal_masks", "policies", "root_values")
        if _tensor_key(getattr(expected, name)) != _tensor_key(getattr(have, name))
    ]
    scalars = ("segment_id", "length", "terminated", "bootstrap_value", "bootstrap_to_play", "model_version")
    return differences + [name for name in scalars if getattr(expected, name) != getattr(have, name)]


def _tensor_key(tensor: Message) -> tuple:
    return tensor.dtype, tuple(tensor.shape), tensor.data


# --- tallies and findings -----------------------------------------------------------------------------------------

BAR_KINDS = ("unclean", "accepted_malformed", "acknowledged_lost")
NOTE_KINDS = ("refused_valid", "long_details")  # not bars: worth a look


@dataclass
class Tally:
    sent: int = 0
    codes: Counter = field(default_factory=Counter)
    unclean: int = 0
    accepted_malformed: int = 0
    refused_valid: int = 0
    long_details: int = 0


class Findings:
    """Failures grouped by method, kind and generator; the first few requests of each group kept whole."""

    KEEP = 3

    def __init__(self):
        self.groups: dict[tuple, dict] = {}
        self.lock = threading.Lock()

    def add(self, method: str, kind: str, generator: str, label: str, **example) -> None:
        key = (method, kind, generator, label.split(":")[0])
        with self.lock:
            group = self.groups.setdefault(key, {"count": 0, "examples": []})
            group["count"] += 1
            if len(group["examples"]) < self.KEEP:
                group["examples"].append(
                    {"method": method, "kind": kind, "generator": generator, "label": label, **example}
                )

    def entries(self) -> list[dict]:
        """Every kept example, bars first, each numbered for ``--resend``."""
        ordered = sorted(self.groups.items(), key=lambda item: (item[0][1] not in BAR_KINDS, item[0]))
        out = []
        for _, group in ordered:
            for example in group["examples"]:
                out.append({"index": len(out), "group_count": group["count"], **example})
        return out


# --- the run ----------------------------------------------------------------------------------------------------------


class Fixture:
    """Redis shards, both servers, the data stored before the run, and the fuzzer's view of the store."""

    def __init__(self, per_method: int, workdir: Path):
        self.workdir = workdir
        self.redis = [RedisServer(maxmemory="1gb", directory=workdir / f"redis-{i}") for i in range(SHARDS)]
        urls = [server.url for server in self.redis]
        capacity = 20_000 + 16 * per_method  # room for every segment the run may store: nothing is evicted
        overrides = [
            f"name={EXPERIMENT}",
            "env.frame_stack=2",
            "training.unroll_steps=2",
            "training.td_steps=3",
            f"replay.capacity={capacity}",
            "replay.min_size=1",
        ]
        config = config_module.load("cartpole", [*overrides, *redis_overrides(urls), "replay.cache_bytes=0"])
        self.spec = EnvSpec.of(config)
        self.config = config
        self.run_dir = workdir / "run"
        set_args = [arg for override in overrides for arg in ("--set", override)]
        replay_argv = [sys.executable, "-m", "services.replay", "--config", "cartpole", *set_args]
        replay_argv += ["--redis-urls", ",".join(urls), "--host", "127.0.0.1", "--metrics-port", "0"]
        replay_port, checkpoint_port = free_port(), free_port()
        checkpoint_argv = [sys.executable, str(Path(__file__).resolve()), "--serve-checkpoints", str(self.run_dir)]
        self.servers = {
            REPLAY: ServerProcess(
                REPLAY, [*replay_argv, "--port", str(replay_port)], replay_port, workdir / "replay.log"
            ),
            CHECKPOINT: ServerProcess(
                CHECKPOINT, [*checkpoint_argv, "--port", str(checkpoint_port)], checkpoint_port, workdir / "ckpt.log"
            ),
        }
        self.store = None
        self.wire: Wire | None = None
        self.ctx = Context(
            num_actions=self.spec.num_actions,
            frame_shape=tuple(self.spec.observation_shape),
            frame_stack=config.env.frame_stack,
            frame_dtype=np.dtype(self.spec.observation_dtype).name,
        )
        self.protected: dict[str, dict] = {}  # id -> its raw keys before the run
        self.lost: list[tuple[str, bytes]] = []  # (method, request) acknowledged but not read back as sent
        self.checkpoint_files: dict[int, bytes] = {}

    def __enter__(self) -> Fixture:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        for server in self.redis:
            server.directory.mkdir(parents=True, exist_ok=True)
            server.start()
        self.store = build_store(self.config, self.spec)  # cache off: every read goes to Redis
        paths = write_checkpoints(self.run_dir)
        self.ctx.checkpoints = {v: p.stat().st_size for v, p in paths.items()}
        self.checkpoint_files = {v: p.read_bytes() for v, p in paths.items()}
        for server in self.servers.values():  # both import torch and friends: start them side by side
            server.spawn()
        for server in self.servers.values():
            server.wait_ready()
        self.wire = Wire({name: server.target for name, server in self.servers.items()})
        self.seed()

    def seed(self) -> None:
        """Store the protected and the working segments through the server; remember the protected ones' keys."""
        rng = np.random.default_rng(12345)
        append = next(m for m in enumerate_methods() if m.key == f"{REPLAY_SERVICE}/AppendSegments")
        for segment_id in [*PROTECTED_IDS, *WORKING_IDS]:
            steps = int(rng.integers(3, 13))
            segment = make_segment(self.ctx, rng, steps, int(rng.integers(1, steps + 1)), segment_id)
            payload = codec.segment_to_proto(segment, EXPERIMENT).SerializeToString()
            outcome = self.wire.call(REPLAY, append, payload, 30.0)
            if outcome.code != "OK" or not outcome.replies:
                raise RuntimeError(f"storing {segment_id} before the run failed: {outcome.code} {outcome.details}")
            self.ctx.note_segment(payload)
        self.protected = {segment_id: raw_keys(self.store, segment_id) for segment_id in PROTECTED_IDS}

    def stop(self) -> None:
        if self.wire is not None:
            self.wire.close()
        for server in self.servers.values():
            server.stop()
        for server in self.redis:
            server.stop()

    def check_servers(self) -> list[str]:
        """A line per server that died or stopped answering; those are restarted."""
        deaths = []
        for server in self.servers.values():
            problem = server.problem()
            if problem is not None:
                tail = server.log_tail()
                deaths.append(f"{server.name}: {problem}" + (f"; its log ends:\n{tail}" if tail else ""))
                server.restart()
        return deaths

    def intact(self) -> list[str]:
        """What differs from what was stored before the run or acknowledged during it."""
        problems = []
        evicted = sum(int(s.client.hget(s.prefix + "meta", "evicted_segments_total") or 0) for s in self.store.shards)
        if evicted:
            problems.append(f"{evicted} segments were evicted: the run outgrew replay.capacity")
        for segment_id, keys in self.protected.items():
            now = raw_keys(self.store, segment_id)
            problems += [
                f"{segment_id}: Redis key {k} changed"
                for k in sorted(set(keys) | set(now))
                if keys.get(k) != now.get(k)
            ]
        for segment_id, payload in self.ctx.originals.items():
            got = read_back(self.store, segment_id)
            differences = segment_differences(
                replay_pb2.Segment.FromString(payload), got, self.ctx.targets.get(segment_id)
            )
            if differences:
                problems.append(f"{segment_id}: reads back with other {', '.join(differences)}")
                if segment_id in self.ctx.targets and set(differences) <= {"policies", "root_values"}:
                    self.lost.append(("WriteTargets", self.ctx.targets[segment_id]))
                elif segment_id not in (*PROTECTED_IDS, *WORKING_IDS):
                    self.lost.append(("AppendSegments", payload))
        problems += self.checkpoints_intact()
        return problems

    def checkpoints_intact(self) -> list[str]:
        problems = []
        stub = checkpoint_pb2_grpc.CheckpointServiceStub(self.wire.channels[CHECKPOINT])
        latest = stub.Latest(checkpoint_pb2.LatestRequest(), timeout=30)
        if latest.version != max(CHECKPOINT_VERSIONS):
            problems.append(f"Latest is version {latest.version}, not {max(CHECKPOINT_VERSIONS)}")
        for version, content in self.checkpoint_files.items():
            chunks = list(stub.Fetch(checkpoint_pb2.FetchRequest(version=version), timeout=60))
            fetched = b"".join(chunk.data for chunk in chunks)
            if fetched != content:
                problems.append(
                    f"checkpoint {version}: fetched {len(fetched)} bytes differ from the {len(content)} stored"
                )
        return problems


class Run:
    def __init__(self, fixture: Fixture, seed: int, per_method: int, workers: int, shrink: bool):
        self.fixture, self.ctx, self.wire = fixture, fixture.ctx, fixture.wire
        self.seed, self.per_method, self.workers, self.shrink = seed, per_method, workers, shrink
        self.tallies: dict[str, Tally] = {}
        self.findings = Findings()
        self.deaths: list[str] = []
        self.lock = threading.Lock()
        self.submitted = 0

    # --- one request ---

    def exchange(self, method: Method, spec: Spec, server: str, payload: bytes) -> tuple[str | None, Outcome, bool]:
        """Send ``payload``: (why it is malformed or None, the outcome, whether a refusal changed the store)."""
        reason = judge(method, spec, self.ctx, payload)
        before = store_digest(self.fixture.store) if spec.writes and reason is not None else None
        outcome = self.wire.call(server, method, payload, spec.deadline_s)
        changed = before is not None and outcome.code != "OK" and store_digest(self.fixture.store) != before
        if spec.writes:
            self.note_writes(method, payload, outcome)
        return reason, outcome, changed

    def note_writes(self, method: Method, payload: bytes, outcome: Outcome) -> None:
        """Remember what the server acknowledged: the oracle and the final read-back rely on it."""
        if method.name == "AppendSegments" and outcome.replies:
            if not replay_pb2.AppendAck.FromString(outcome.replies[0]).duplicate:
                self.ctx.note_segment(payload)
        elif method.name == "WriteTargets" and outcome.code == "OK" and outcome.replies:
            if replay_pb2.WriteTargetsAck.FromString(outcome.replies[0]).stored:
                self.ctx.targets[replay_pb2.ReanalysedTargets.FromString(payload).segment_id] = payload

    def send(self, method: Method, spec: Spec, server: str, generator: str, label: str, payload: bytes) -> None:
        reason, outcome, changed = self.exchange(method, spec, server, payload)
        kinds = []
        if outcome.code in UNCLEAN:
            kinds.append("unclean")
        if reason is not None and (outcome.code == "OK" or outcome.replies or changed):
            kinds.append("accepted_malformed")
        if reason is None and outcome.code == "INVALID_ARGUMENT":
            kinds.append("refused_valid")
        if len(outcome.details) > 1024:
            kinds.append("long_details")
        with self.lock:
            tally = self.tallies[method.key]
            tally.sent += 1
            tally.codes[outcome.code] += 1
            for kind in kinds:
                setattr(tally, kind, getattr(tally, kind) + 1)
        for kind in kinds:
            self.findings.add(
                method.key,
                kind,
                generator,
                label,
                server=server,
                reason=reason,
                code=outcome.code,
                details=short(outcome.details, 300),
                replies=len(outcome.replies),
                store_changed_on_refusal=changed,
                deadline_s=spec.deadline_s,
                request_base64=base64.b64encode(payload).decode(),
            )

    # --- one method ---

    def fuzz(self, index: int, method: Method) -> None:
        spec = SPECS[method.key]
        self.tallies[method.key] = Tally()
        servers = itertools.cycle(SERVERS_OF[method.service])
        rng = np.random.default_rng([self.seed, index])
        pool = futures.ThreadPoolExecutor(1 if spec.writes else self.workers)
        slots = threading.Semaphore(2 * (1 if spec.writes else self.workers))
        errors: list[BaseException] = []

        def submit(generator: str, label: str, payload: bytes) -> None:
            slots.acquire()
            args = (method, spec, next(servers), generator, label, payload)
            pool.submit(self._guarded, slots, errors, args)
            self.submitted += 1
            if self.submitted % BATCH == 0:
                self.deaths += self.fixture.check_servers()

        drawn_share = int(self.per_method * SHARES[0])
        mutation_share = int(self.per_method * SHARES[1])
        drawn = self.draw(method, drawn_share, lambda payload: submit("hypothesis", "drawn", payload))
        for _ in range(mutation_share + drawn_share - drawn):  # a small message space leaves the rest to mutation
            submit("mutation", *mutate(self.ctx, spec, rng))
        for _ in range(self.per_method - drawn_share - mutation_share):
            submit("garbage", *garbage(self.ctx, method, spec, rng))
        pool.shutdown(wait=True)
        if errors:
            raise errors[0]
        if self.shrink:
            self.shrink_drawn(method, spec, drawn_share)

    def _guarded(self, slots: threading.Semaphore, errors: list, args: tuple) -> None:
        try:
            self.send(*args)
        except BaseException as error:  # surfaced after the method's pool drains
            errors.append(error)
        finally:
            slots.release()

    def draw(self, method: Method, count: int, each: Callable[[bytes], None]) -> int:
        """Send up to ``count`` hypothesis-drawn requests; how many it drew."""
        drawn = 0

        def one(payload: bytes) -> None:
            nonlocal drawn
            if drawn < count:
                drawn += 1
                each(payload)

        run_hypothesis(request_strategy(method.request), count, self.seed, one)
        return drawn

    def shrink_drawn(self, method: Method, spec: Spec, count: int) -> None:
        """For each bar a drawn request failed, let hypothesis shrink one to a minimal request."""
        failing = {
            k[1] for k in self.findings.groups if k[0] == method.key and k[2] == "hypothesis" and k[1] in BAR_KINDS
        }
        server = SERVERS_OF[method.service][0]
        for kind in sorted(failing):
            found: list[tuple[bytes, Outcome, str | None]] = []

            def check(payload: bytes) -> None:
                reason, outcome, changed = self.exchange(method, spec, server, payload)
                unclean = outcome.code in UNCLEAN
                accepted = reason is not None and (outcome.code == "OK" or bool(outcome.replies) or changed)
                if (kind == "unclean" and unclean) or (kind == "accepted_malformed" and accepted):
                    found.append((payload, outcome, reason))
                    raise AssertionError(kind)

            try:
                run_hypothesis(request_strategy(method.request), count, self.seed, check, shrink=True)
            except Exception:  # the failure we raised (or hypothesis calling it flaky): found holds the smallest
                pass
            if found:
                payload, outcome, reason = found[-1]
                self.findings.add(
                    method.key,
                    kind,
                    "hypothesis-shrunk",
                    "shrunk",
                    server=server,
                    reason=reason,
                    code=outcome.code,
                    details=short(outcome.details, 300),
                    replies=len(outcome.replies),
                    deadline_s=spec.deadline_s,
                    request_base64=base64.b64encode(payload).decode(),
                )

    # --- idle streams ---

    def hold_streams(self, count: int) -> list[str]:
        """Open ``count`` idle streams of each long-lived kind on each server; a line per server that then
        does not answer its health check or a unary call within the probe's timeout."""
        if count <= 0:
            return []
        release = threading.Event()

        def idle():
            release.wait(120)
            yield from ()

        calls, codes = [], Counter()
        for method in enumerate_methods():
            if method.key not in LONG_LIVED:
                continue
            request = LONG_LIVED[method.key]
            for server in SERVERS_OF[method.service]:
                function = self.wire.callable(server, method)
                for _ in range(count):
                    payload = idle() if request is None else request(self.ctx).SerializeToString()
                    calls.append(function(payload, timeout=120))
        threads = [threading.Thread(target=_drain, args=(call, codes), daemon=True) for call in calls]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        problems = self._probe_all()
        release.set()
        for call in calls:
            call.cancel()
        for thread in threads:
            thread.join(timeout=10)
        log(f"held {len(calls)} idle streams ({count} per kind and server): they ended {dict(codes)}")
        by_server: dict[str, list[str]] = {}
        for name, problem in problems:
            by_server.setdefault(name, []).append(problem)
        deaths = [
            f"{name}: {'; '.join(found)} while {count} idle streams of each long-lived kind were open"
            for name, found in by_server.items()
        ]
        for name in by_server:  # still not answering once they are gone: restart it
            server = self.fixture.servers[name]
            if server.problem(timeout_s=30.0, wait=True) is not None:
                server.restart()
        return deaths

    def _probe_all(self) -> list[tuple[str, str]]:
        """Health and one unary call on each server, side by side, each within HEALTH_TIMEOUT_S."""
        unary = {REPLAY: f"{REPLAY_SERVICE}/Stats", CHECKPOINT: f"{CHECKPOINT_SERVICE}/Latest"}
        methods = {m.key: m for m in enumerate_methods()}
        results: list[tuple[str, str]] = []

        def probe(name: str) -> None:
            if (problem := self.fixture.servers[name].problem()) is not None:
                results.append((name, problem))
            outcome = self.wire.call(name, methods[unary[name]], b"", HEALTH_TIMEOUT_S)
            if outcome.code != "OK":
                results.append((name, f"{unary[name]}: {outcome.code}"))

        threads = [threading.Thread(target=probe, args=(name,)) for name in self.fixture.servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results


_drain_lock = threading.Lock()


def _drain(call, codes: Counter) -> None:
    """Read an idle stream until it ends; count how it ended."""
    try:
        for _ in call:
            pass
        code = "OK"
    except grpc.RpcError as error:
        code = error.code().name
    with _drain_lock:
        codes[code] += 1


# --- reporting ------------------------------------------------------------------------------------------


def summarize(run: Run, findings_path: Path, resend: str) -> None:
    log("\nper method: sent, codes, unclean / accepted malformed / refused although valid / details > 1 KB")
    for key, tally in run.tallies.items():
        log(
            f"  {key}: {tally.sent} {dict(sorted(tally.codes.items()))} "
            f"{tally.unclean}/{tally.accepted_malformed}/{tally.refused_valid}/{tally.long_details}"
        )
    entries = run.findings.entries()
    if not entries:
        log("no findings")
        return
    log(f"\nfindings (every kept request is in {findings_path}; resend one with {resend}):")
    by_kind: dict[tuple[str, str], list[dict]] = {}
    for entry in entries:
        by_kind.setdefault((entry["kind"], entry["method"]), []).append(entry)
    for (kind, method), group in by_kind.items():
        first, note = group[0], "" if kind in BAR_KINDS else " (note)"
        count = sum(e["group_count"] for e in group if _first_of_group(group, e))
        log(
            f"  {kind}{note} x{count} {method}: {first['code']} {short(first['details'], 120)!r}"
            + (f"; oracle: {short(first['reason'], 100)}" if first.get("reason") else "")
        )
        kinds = {}
        for e in group:
            kinds.setdefault(f"{e['generator']} {e['label'].split(':')[0]}", e)
        shown = [f"{name} [{e['index']}]" for name, e in list(kinds.items())[:8]]
        more = f", and {len(kinds) - 8} more" if len(kinds) > 8 else ""
        log(f"      {', '.join(shown)}{more}; e.g. [{first['index']}] {short(first['label'], 150)}")


def _first_of_group(group: list[dict], entry: dict) -> bool:
    """Whether ``entry`` is the first kept example of its group (each group's count is on every example)."""
    key = (entry["generator"], entry["label"].split(":")[0])
    return next(e for e in group if (e["generator"], e["label"].split(":")[0]) == key) is entry


def report(run: Run, deaths: list[str], fsck: list[str], intact: list[str]) -> dict:
    for line in deaths:
        log(f"server death: {line}")
    for line in fsck:
        log(f"fsck: {line}")
    for line in intact:
        log(f"not intact: {line}")
    return {
        "methods": {
            key: {"sent": t.sent, "codes": dict(sorted(t.codes.items())), "unclean": t.unclean}
            for key, t in run.tallies.items()
        },
        "server_deaths": len(deaths),
        "accepted_malformed": sum(t.accepted_malformed for t in run.tallies.values()),
        "fsck_clean": not fsck,
        "stored_data_intact": not intact,
    }


def passed(figures: dict) -> bool:
    return (
        figures["server_deaths"] == 0
        and all(m["unclean"] == 0 for m in figures["methods"].values())
        and figures["accepted_malformed"] == 0
        and figures["fsck_clean"]
        and figures["stored_data_intact"]
    )


# --- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-method", type=int, default=10_000, help="requests per method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=8, help="requests in flight for methods that do not write")
    parser.add_argument("--open-streams", type=int, default=40, help="idle streams per long-lived kind and server")
    parser.add_argument("--findings", type=Path, default=None, help="where the failing requests go (JSON)")
    parser.add_argument("--no-shrink", dest="shrink", action="store_false", help="do not shrink drawn failures")
    parser.add_argument("--resend", default=None, metavar="PATH:INDEX", help="send one finding again and stop")
    parser.add_argument("--serve-checkpoints", default=None, metavar="RUN_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def resend(fixture: Fixture, spec_text: str) -> int:
    path, _, index = spec_text.rpartition(":")
    entry = json.loads(Path(path).read_text())["findings"][int(index)]
    method = next(m for m in enumerate_methods() if m.key == entry["method"])
    spec = SPECS[method.key]
    payload = base64.b64decode(entry["request_base64"])
    before = store_digest(fixture.store)
    outcome = fixture.wire.call(entry["server"], method, payload, entry["deadline_s"])
    result = {
        "method": method.key,
        "label": entry["label"],
        "oracle": judge(method, spec, fixture.ctx, payload),
        "code": outcome.code,
        "details": short(outcome.details, 500),
        "replies": len(outcome.replies),
        "store_changed": store_digest(fixture.store) != before,
    }
    if method.name == "WriteTargets" and outcome.replies:  # acknowledged: does a sample read it back?
        targets = replay_pb2.ReanalysedTargets.FromString(payload)
        original = fixture.ctx.originals.get(targets.segment_id)
        if replay_pb2.WriteTargetsAck.FromString(outcome.replies[0]).stored and original is not None:
            got = read_back(fixture.store, targets.segment_id)
            result["reads_back_as_written"] = not segment_differences(
                replay_pb2.Segment.FromString(original), got, payload
            )
    print(json.dumps(result))
    return 0


def fuzz_all(args: argparse.Namespace, fixture: Fixture, findings_path: Path) -> dict:
    """Every method, then the idle streams, then the final checks: the figures of the last stdout line."""
    run = Run(fixture, args.seed, args.per_method, args.workers, args.shrink)
    methods = plan(enumerate_methods())
    for index, method in enumerate(methods):
        began = time.monotonic()
        run.fuzz(index, method)
        tally = run.tallies[method.key]
        log(
            f"[{index + 1}/{len(methods)}] {method.key}: {tally.sent} in {time.monotonic() - began:.1f} s, "
            f"{dict(tally.codes)}, unclean {tally.unclean}, accepted malformed {tally.accepted_malformed}"
        )
    deaths = run.deaths + run.hold_streams(args.open_streams) + fixture.check_servers()
    fsck = fixture.store.fsck()
    intact = fixture.intact()
    for name, request in fixture.lost:  # acknowledged, then read back otherwise: a finding with its request
        run.findings.add(
            f"{REPLAY_SERVICE}/{name}",
            "acknowledged_lost",
            "any",
            "acknowledged, then read back otherwise",
            server=REPLAY,
            reason=None,
            code="OK",
            details="",
            replies=1,
            deadline_s=5.0,
            request_base64=base64.b64encode(request).decode(),
        )
    entries = run.findings.entries()
    findings_path.write_text(json.dumps({"seed": args.seed, "per_method": args.per_method, "findings": entries}))
    summarize(run, findings_path, f"python benchmarks/fuzz.py --resend {findings_path}:INDEX")
    return report(run, deaths, fsck, intact)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_checkpoints:
        return serve_checkpoints(args.serve_checkpoints, args.port)
    plan(enumerate_methods())  # refuses a method it cannot judge before anything starts
    findings_path = args.findings or Path(tempfile.gettempdir()) / f"fuzz-findings-{os.getpid()}.json"
    workdir = Path(tempfile.mkdtemp(prefix="muzero-fuzz-"))
    started = time.monotonic()
    try:
        with Fixture(args.per_method, workdir) as fixture:
            log(f"servers up in {time.monotonic() - started:.0f} s; logs in {workdir}")
            if args.resend:
                return resend(fixture, args.resend)
            figures = fuzz_all(args, fixture, findings_path)
    except BaseException:
        log(f"stopped: the servers' logs are in {workdir}")
        raise
    ok = passed(figures)
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:  # the servers' logs (and any traceback of a death) stay
        log(f"bars failed; the servers' logs are in {workdir}")
    log(f"done in {time.monotonic() - started:.0f} s")
    print(json.dumps(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
