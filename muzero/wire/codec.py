"""Numpy <-> protobuf: tensors as raw bytes with dtype and shape, segments as messages.

Decoding checks everything a peer could get wrong (unknown dtype, negative or
huge shapes, a byte count that does not match) and raises :class:`WireError`
naming the field, so a server can answer INVALID_ARGUMENT with that message.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from muzero.learning.batch import BATCH_ARRAYS, Batch
from muzero.learning.segment import SampleKeys, Segment
from muzero.learning.targets import BootstrapTerms
from muzero.wire.v1 import replay_pb2

# Only plain numeric dtypes cross the wire: no objects, no strings, nothing to unpickle.
ALLOWED_DTYPES = frozenset(
    {"bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float16", "float32", "float64"}
)
MAX_TENSOR_BYTES = 256 * 2**20


class WireError(ValueError):
    """A message field that is malformed; the text names the field."""


def clip(value: object, limit: int = 64) -> str:
    """``repr(value)``, cut to about ``limit`` characters: a refusal names what it got without
    echoing a huge field back (a 100 KB status message is itself refused by the client)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, (str, bytes)) else ""
    return f"{text[:limit]}...{size}"


MAX_ID_CHARS = 128


def check_segment_id(segment_id: str, field: str = "segment.segment_id") -> None:
    if not segment_id or len(segment_id) > MAX_ID_CHARS or not segment_id.isprintable() or " " in segment_id:
        raise WireError(
            f"{field}: expected 1-{MAX_ID_CHARS} printable characters without spaces, got {clip(segment_id)}"
        )


def tensor_to_proto(array: np.ndarray, out: replay_pb2.Tensor | None = None) -> replay_pb2.Tensor:
    array = np.asarray(array)
    if array.dtype.name not in ALLOWED_DTYPES:
        raise WireError(f"dtype {array.dtype} cannot cross the wire")
    message = out if out is not None else replay_pb2.Tensor()
    message.dtype = array.dtype.name
    message.shape[:] = array.shape
    message.data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    return message


def tensor_from_proto(
    message: replay_pb2.Tensor, field: str, *, dtype: str | None = None, shape: tuple[int | None, ...] | None = None
) -> np.ndarray:
    """The array in ``message``; ``dtype`` and ``shape`` (None: any size on that axis) are required if given."""
    if message.dtype not in ALLOWED_DTYPES:
        raise WireError(f"{field}.dtype: {clip(message.dtype)} is not one of {sorted(ALLOWED_DTYPES)}")
    if dtype is not None and message.dtype != dtype:
        raise WireError(f"{field}.dtype: expected {dtype}, got {message.dtype}")
    dims = tuple(int(d) for d in message.shape)
    if any(d < 0 for d in dims):
        raise WireError(f"{field}.shape: negative dimension in {dims}")
    if shape is not None:
        if len(dims) != len(shape) or any(want is not None and want != got for want, got in zip(shape, dims)):
            raise WireError(f"{field}.shape: expected {shape}, got {dims}")
    item = np.dtype(message.dtype).newbyteorder("<")
    count = 1
    for d in dims:
        count *= d
        if count * item.itemsize > MAX_TENSOR_BYTES:
            raise WireError(f"{field}.shape: {dims} is larger than {MAX_TENSOR_BYTES} bytes")
    if len(message.data) != count * item.itemsize:
        raise WireError(
            f"{field}.data: {len(message.data)} bytes, but shape {dims} of {message.dtype} "
            f"needs {count * item.itemsize}"
        )
    if item.kind == "b" and count and np.frombuffer(message.data, dtype=np.uint8).max() > 1:
        raise WireError(f"{field}.data: bool bytes must be 0 or 1")
    array = np.frombuffer(message.data, dtype=item).reshape(dims).astype(item.newbyteorder("="), copy=False)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise WireError(f"{field}: contains NaN or inf")
    return array


# --- segments on the wire (with frames) -----------------------------------------------------

_STEP_FIELDS = ("actions", "rewards", "to_play", "legal_masks", "policies", "root_values")


def segment_to_proto(segment: Segment, experiment: str) -> replay_pb2.Segment:
    check_segment_id(segment.segment_id)  # a writer hears of an id no server accepts at once
    message = replay_pb2.Segment(
        segment_id=segment.segment_id,
        experiment=experiment,
        length=int(segment.length),
        terminated=bool(segment.terminated),
        bootstrap_value=float(segment.bootstrap_value),
        bootstrap_to_play=int(segment.bootstrap_to_play),
        model_version=int(segment.model_version),
    )
    tensor_to_proto(segment.observations, message.frames)
    for name in _STEP_FIELDS:
        tensor_to_proto(getattr(segment, name), getattr(message, name))
    tensor_to_proto(segment.priorities, message.priorities)
    if segment.final_ownership is not None:
        tensor_to_proto(segment.final_ownership, message.final_ownership)
    return message


def final_ownership_from_proto(message: Any, name: str) -> np.ndarray | None:
    """A segment message's ``final_ownership`` (P,) float32, or None where it is unset."""
    if not message.HasField("final_ownership"):
        return None
    return tensor_from_proto(message.final_ownership, name, dtype="float32", shape=(None,))


def segment_from_proto(
    message: replay_pb2.Segment,
    *,
    num_actions: int,
    frame_shape: tuple[int, ...],
    frame_stack: int,
    experiment: str,
    frame_dtype: np.dtype | str | None = None,
) -> Segment:
    """A validated Segment; WireError (a ValueError) names the first bad field."""
    if message.experiment != experiment:
        raise WireError(f"segment.experiment: {clip(message.experiment)} is not this store's experiment {experiment!r}")
    check_segment_id(message.segment_id)
    if not np.isfinite(message.bootstrap_value):
        raise WireError(f"segment.bootstrap_value: must be finite, got {message.bootstrap_value}")
    steps = tuple(message.actions.shape)[:1]
    if len(steps) != 1:
        raise WireError(f"segment.actions.shape: expected (T,), got {tuple(message.actions.shape)}")
    length = int(steps[0])
    fields = {
        "actions": tensor_from_proto(message.actions, "segment.actions", dtype="int64", shape=(length,)),
        "rewards": tensor_from_proto(message.rewards, "segment.rewards", dtype="float32", shape=(length,)),
        "to_play": tensor_from_proto(message.to_play, "segment.to_play", dtype="int8", shape=(length,)),
        "legal_masks": tensor_from_proto(
            message.legal_masks, "segment.legal_masks", dtype="bool", shape=(length, num_actions)
        ),
        "policies": tensor_from_proto(
            message.policies, "segment.policies", dtype="float32", shape=(length, num_actions)
        ),
        "root_values": tensor_from_proto(message.root_values, "segment.root_values", dtype="float32", shape=(length,)),
    }
    observations = tensor_from_proto(
        message.frames,
        "segment.frames",
        dtype=None if frame_dtype is None else np.dtype(frame_dtype).name,
        shape=(frame_stack - 1 + length, *frame_shape),
    )
    priorities = tensor_from_proto(message.priorities, "segment.priorities", dtype="float32", shape=(message.length,))
    segment = Segment(
        observations=observations,
        priorities=priorities,
        length=int(message.length),
        terminated=bool(message.terminated),
        bootstrap_value=float(message.bootstrap_value),
        bootstrap_to_play=int(message.bootstrap_to_play),
        model_version=int(message.model_version),
        segment_id=message.segment_id,
        final_ownership=final_ownership_from_proto(message, "segment.final_ownership"),
        **fields,
    )
    segment.validate(num_actions, frame_shape, frame_stack)
    return segment


# --- segments in a shard (frames by reference) -------------------------------------------------


def stored_segment_bytes(segment: Segment, experiment: str) -> bytes:
    message = replay_pb2.StoredSegment(
        segment_id=segment.segment_id,
        experiment=experiment,
        frame_shape=segment.observations.shape[1:],
        frame_dtype=segment.observations.dtype.name,
        length=int(segment.length),
        terminated=bool(segment.terminated),
        bootstrap_value=float(segment.bootstrap_value),
        bootstrap_to_play=int(segment.bootstrap_to_play),
        model_version=int(segment.model_version),
    )
    for name in _STEP_FIELDS:
        tensor_to_proto(getattr(segment, name), getattr(message, name))
    if segment.final_ownership is not None:
        tensor_to_proto(segment.final_ownership, message.final_ownership)
    return message.SerializeToString()


def stored_segment_from_bytes(blob: bytes) -> replay_pb2.StoredSegment:
    message = replay_pb2.StoredSegment()
    message.ParseFromString(blob)
    return message


def targets_to_proto(
    segment_id: str, policies: np.ndarray, root_values: np.ndarray, model_version: int
) -> replay_pb2.ReanalysedTargets:
    message = replay_pb2.ReanalysedTargets(segment_id=segment_id, model_version=int(model_version))
    tensor_to_proto(np.asarray(policies, dtype=np.float32), message.policies)
    tensor_to_proto(np.asarray(root_values, dtype=np.float32), message.root_values)
    return message


# --- training batches ----------------------------------------------------------------------------


def training_batch_to_proto(batch: Batch[np.ndarray]) -> replay_pb2.TrainingBatch:
    """A batch as the replay service sends it: every array of :data:`BATCH_ARRAYS`, the keys,
    the model versions and, when the batch has them, the bootstrap terms."""
    if batch.keys is None or batch.model_versions is None:
        raise ValueError("a batch for the wire needs its keys and model versions")
    message = replay_pb2.TrainingBatch(segment_ids=[str(i) for i in batch.keys.segment_ids])
    for name in BATCH_ARRAYS:
        tensor_to_proto(getattr(batch, name), getattr(message, name))
    tensor_to_proto(np.asarray(batch.keys.positions, dtype=np.int64), message.positions)
    tensor_to_proto(np.asarray(batch.model_versions, dtype=np.int64), message.model_versions)
    if batch.bootstrap is not None:
        tensor_to_proto(batch.bootstrap.mask, message.bootstrap_mask)
        tensor_to_proto(batch.bootstrap.scale, message.bootstrap_scale)
        tensor_to_proto(batch.bootstrap.stored_values, message.bootstrap_stored_values)
        tensor_to_proto(batch.bootstrap.observations, message.bootstrap_observations)
    if batch.target_ownership is not None and batch.ownership_mask is not None:
        tensor_to_proto(np.asarray(batch.target_ownership, dtype=np.float32), message.target_ownership)
        tensor_to_proto(np.asarray(batch.ownership_mask, dtype=bool), message.ownership_mask)
    if batch.next_observations is not None and batch.next_observation_mask is not None:
        tensor_to_proto(np.asarray(batch.next_observations), message.next_observations)
        tensor_to_proto(np.asarray(batch.next_observation_mask, dtype=bool), message.next_observation_mask)
    if batch.target_legal is not None and batch.target_terminal is not None and batch.rules_mask is not None:
        tensor_to_proto(np.asarray(batch.target_legal, dtype=bool), message.target_legal)
        tensor_to_proto(np.asarray(batch.target_terminal, dtype=bool), message.target_terminal)
        tensor_to_proto(np.asarray(batch.rules_mask, dtype=bool), message.rules_mask)
    return message


def training_batch_from_proto(message: replay_pb2.TrainingBatch) -> Batch[np.ndarray]:
    arrays = {name: tensor_from_proto(getattr(message, name), name) for name in BATCH_ARRAYS}
    positions = tensor_from_proto(message.positions, "positions", dtype="int64")
    keys = SampleKeys(segment_ids=np.array(list(message.segment_ids)), positions=positions)
    versions = tensor_from_proto(message.model_versions, "model_versions", dtype="int64")
    bootstrap = None
    if message.HasField("bootstrap_mask"):
        bootstrap = BootstrapTerms(
            mask=tensor_from_proto(message.bootstrap_mask, "bootstrap_mask", dtype="bool"),
            scale=tensor_from_proto(message.bootstrap_scale, "bootstrap_scale", dtype="float32"),
            stored_values=tensor_from_proto(
                message.bootstrap_stored_values, "bootstrap_stored_values", dtype="float32"
            ),
            observations=tensor_from_proto(message.bootstrap_observations, "bootstrap_observations"),
        )
    ownership = mask = None
    if message.HasField("target_ownership"):
        ownership = tensor_from_proto(message.target_ownership, "target_ownership", dtype="float32")
        mask = tensor_from_proto(message.ownership_mask, "ownership_mask", dtype="bool", shape=(ownership.shape[0],))
    following = following_mask = None
    if message.HasField("next_observations"):
        batch_size, unroll_steps = arrays["actions"].shape
        stacked = arrays["observations"].shape[1:]
        following = tensor_from_proto(
            message.next_observations,
            "next_observations",
            dtype=str(arrays["observations"].dtype),
            shape=(batch_size, unroll_steps, *stacked),
        )
        following_mask = tensor_from_proto(
            message.next_observation_mask, "next_observation_mask", dtype="bool", shape=(batch_size, unroll_steps)
        )
    legal = ended = known = None
    if message.HasField("target_legal"):
        batch_size, positions_per_example, num_actions = arrays["target_policies"].shape
        legal = tensor_from_proto(
            message.target_legal, "target_legal", dtype="bool", shape=(batch_size, positions_per_example, num_actions)
        )
        ended = tensor_from_proto(
            message.target_terminal, "target_terminal", dtype="bool", shape=(batch_size, positions_per_example)
        )
        known = tensor_from_proto(
            message.rules_mask, "rules_mask", dtype="bool", shape=(batch_size, positions_per_example)
        )
    return Batch(
        **arrays,
        keys=keys,
        model_versions=versions,
        bootstrap=bootstrap,
        target_ownership=ownership,
        ownership_mask=mask,
        next_observations=following,
        next_observation_mask=following_mask,
        target_legal=legal,
        target_terminal=ended,
        rules_mask=known,
    )
