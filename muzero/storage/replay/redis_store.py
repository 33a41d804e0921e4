"""The sharded Redis replay store: frames once, compressed, reference-counted.

Each segment lives on one shard, chosen by a hash of its id (so a re-send
reaches the same shard and stays a no-op), with its frames: a frame used by
segments on two shards is stored once on each. All bookkeeping of a shard
(sum trees, reference counts, the eviction queue) changes only inside Lua
scripts (``muzero/storage/replay/lua/``), one atomic step per insert, eviction or
priority update; see ``common.lua`` for the key layout. Redis must run with
``maxmemory-policy noeviction``: the store evicts, Redis never drops a key.

Sampling is global: the shards' priority masses are read, the batch is split
across shards in proportion, and each shard draws its share in one script
call. A training example is then read as a *window* of its segment (the K + n
+ 1 steps its targets need) with just that window's frames. A window whose
segment was evicted between the draw and the read makes the whole sample
retry, so a batch is always complete and consistent.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

import numpy as np
import redis

from muzero.config import ReplayConfig
from muzero.learning.segment import SampleKeys, Segment, stack_frames
from muzero.storage.replay.cache import ByteLRU
from muzero.storage.replay.frames import FrameCodec, FrameDictionary, FrameError, frame_hash
from muzero.storage.replay.protocol import SampledBatch, checked_priorities, checked_targets
from muzero.storage.replay.rate_limiter import Counts
from muzero.wire import codec

_SCRIPTS = ("init", "insert", "sample", "update", "write_targets", "fsck")
_SEGMENT_ARRAYS = ("actions", "rewards", "to_play", "legal_masks", "policies", "root_values")
MAX_SAMPLE_RETRIES = 20

log = logging.getLogger("muzero.replay.redis")


class ReplayError(RuntimeError):
    """The store cannot do what was asked (misconfigured shard, data vanished repeatedly)."""


# What a shard at its maxmemory raises for a write (Redis refuses the whole script).
FULL_ERRORS: tuple[type[BaseException], ...] = (redis.exceptions.OutOfMemoryError,)

# What a shard restarting or out of reach raises, or data turning over faster than a read:
# transient, so servers answer UNAVAILABLE and clients retry.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ReplayError,
)


def _script_source(name: str) -> str:
    folder = resources.files("muzero.storage.replay") / "lua"
    return (folder / "common.lua").read_text() + "\n" + (folder / f"{name}.lua").read_text()


def shard_of(segment_id: str, num_shards: int) -> int:
    digest = hashlib.blake2b(segment_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % num_shards


@dataclass
class _Shard:
    index: int
    client: redis.Redis
    prefix: str
    scripts: dict[str, Any]
    init_args: tuple = ()

    def init(self) -> None:
        try:
            self.scripts["init"](keys=[self.prefix + "meta"], args=[self.prefix, *self.init_args])
        except redis.ResponseError as error:
            raise ReplayError(f"replay shard {self.index}: {error}") from None

    def call(self, name: str, *args) -> Any:
        try:
            return self.scripts[name](keys=[self.prefix + "meta"], args=[self.prefix, *args])
        except redis.ResponseError as error:
            if not str(error).startswith("NOINIT"):
                raise
        # The shard came back empty: what it held is gone (Redis without persistence); set its
        # bookkeeping up again and carry on, rather than write into a shard of capacity 0.
        log.error("replay shard %d came back empty; its data is lost; initialising it again", self.index)
        self.init()
        return self.scripts[name](keys=[self.prefix + "meta"], args=[self.prefix, *args])


class RedisReplay:
    """:class:`~muzero.storage.replay.protocol.ReplayStorage` over N Redis shards.

    ``window_steps`` is how many steps of a segment one training example needs
    (K + n + 1); samples return windows that long (fewer at a segment's end).
    """

    def __init__(
        self,
        config: ReplayConfig,
        *,
        experiment: str,
        num_actions: int,
        observation_shape: tuple[int, ...],
        frame_stack: int,
        window_steps: int,
        observation_dtype: np.dtype | str = np.float32,
        clients: list[redis.Redis] | None = None,
    ):
        config.validate()
        if clients is None:
            if not config.redis_urls:
                raise ValueError("replay.redis_urls: no shard given")
            clients = [
                redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5) for url in config.redis_urls
            ]
        if not clients:
            raise ValueError("clients: need at least one shard")
        if not experiment or "{" in experiment or "}" in experiment:
            raise ValueError(f"experiment: expected a non-empty name without braces, got {experiment!r}")
        self.config = config
        self.experiment = experiment
        self.num_actions = num_actions
        self.observation_shape = tuple(observation_shape)
        self.observation_dtype = np.dtype(observation_dtype)
        self.frame_stack = frame_stack
        self.window_steps = window_steps
        self.frame_bytes = int(np.prod(self.observation_shape)) * self.observation_dtype.itemsize
        num_shards = len(clients)
        self.shard_capacity = math.ceil(config.capacity / num_shards)
        self.shard_capacity_bytes = math.ceil(config.capacity_bytes / num_shards) if config.capacity_bytes else 0
        ring = 2 * self.shard_capacity
        leaves = 1 << (ring - 1).bit_length()
        layout = (
            f"{experiment} {'x'.join(map(str, self.observation_shape))} {self.observation_dtype.name} "
            f"{num_actions} {frame_stack}"
        )
        self.shards = []
        for index, client in enumerate(clients):
            scripts = {name: client.register_script(_script_source(name)) for name in _SCRIPTS}
            init_args = (self.shard_capacity, self.shard_capacity_bytes, ring, leaves, layout)
            shard = _Shard(index, client, f"{config.key_prefix}:{{{experiment}.{index}}}:", scripts, init_args)
            shard.init()
            self.shards.append(shard)
        self.cache = ByteLRU(config.cache_bytes)
        # When every stored frame fits in half the cache (small frames: CartPole, board games),
        # a cached segment keeps its frames assembled and a window is a slice of them: per-frame
        # lookups would cost more than the frames. Large frames (Atari) are cached one by one,
        # so a window reads only its own.
        self.segment_frames = 0 < 2 * self.frame_bytes * config.capacity <= config.cache_bytes
        self.codec = FrameCodec(config.zstd_level, dictionary_max_bytes=config.zstd_dictionary_max_frame_bytes)
        self._dictionary_samples: list[np.ndarray] = []
        self._load_dictionary()

    # --- writing ----------------------------------------------------------------------------

    def insert(self, segment: Segment) -> bool:
        """Store ``segment`` (validated first); False if its id was stored before (a no-op)."""
        if not isinstance(segment, Segment):
            raise TypeError(f"segment: expected a Segment, got {type(segment).__name__}")
        segment.validate(self.num_actions, self.observation_shape, self.frame_stack)
        if segment.observations.dtype != self.observation_dtype:
            raise ValueError(
                f"segment.observations: expected dtype {self.observation_dtype}, got {segment.observations.dtype}"
            )
        if segment.length > self.shard_capacity:
            raise ValueError(
                f"segment.length: {segment.length} transitions exceed a shard's capacity {self.shard_capacity}"
            )
        shard = self.shards[shard_of(segment.segment_id, len(self.shards))]
        hashes = [frame_hash(frame).hex() for frame in segment.observations]
        frames_by_hash = dict(zip(hashes, segment.observations))
        blob = codec.stored_segment_bytes(segment, self.experiment)
        masses = self._masses(segment.priorities).astype("<f8").tobytes()
        frame_list = "".join(hashes)
        # First try without frames the shard already holds; it names the ones it lacks.
        counts = shard.client.hmget(shard.prefix + "rc", list(frames_by_hash))
        missing = [h for h, count in zip(frames_by_hash, counts) if count is None]
        for _ in range(3):
            payload = []
            for h in missing:
                payload += [h, self.codec.encode(frames_by_hash[h])]
            result = shard.call("insert", segment.segment_id, blob, frame_list, segment.length, masses, *payload)
            if result[0] == 1:
                self._collect_dictionary_samples(segment.observations)
                return True
            if result[0] == 0:
                return False
            missing = [h.decode() for h in result[1:]]  # evicted since we looked: send them too
        raise ReplayError(f"segment {segment.segment_id}: frames kept vanishing during insert")

    def update_priorities(self, keys: SampleKeys, priorities: np.ndarray) -> int:
        priorities = checked_priorities(keys, priorities)
        masses = self._masses(priorities).astype("<f8")
        by_shard: dict[int, list] = {}
        for segment_id, position, mass in zip(keys.segment_ids, keys.positions, masses):
            segment_id = str(segment_id)
            by_shard.setdefault(shard_of(segment_id, len(self.shards)), []).extend(
                [segment_id, int(position), mass.tobytes()]
            )
        # Check every shard's positions before writing any, so a refusal changes nothing. A
        # segment evicted between the two passes only turns its keys stale (lengths never change).
        for index, args in by_shard.items():
            try:
                self.shards[index].call("update", "check", *args)
            except redis.ResponseError as error:
                raise ValueError(str(error).removeprefix("POSITION ")) from None
        stale = 0
        for index, args in by_shard.items():
            stale += int(self.shards[index].call("update", "write", *args)[1])
        return stale

    def write_targets(self, segment_id: str, policies: np.ndarray, root_values: np.ndarray, model_version: int) -> bool:
        """Store reanalysed targets for a stored segment; False if it was evicted (or has newer ones)."""
        policies, root_values = checked_targets(segment_id, policies, root_values, model_version, self.num_actions)
        shard = self.shards[shard_of(segment_id, len(self.shards))]
        cached = self.cache.get(("segment", segment_id))
        if cached is not None:  # its shape, without reading it again
            steps, length = cached[0].num_steps, cached[0].length
        else:
            blob = shard.client.get(shard.prefix + "seg:" + segment_id)
            if blob is None:
                return False
            stored = codec.stored_segment_from_bytes(blob)
            steps, length = len(stored.actions.shape) and stored.actions.shape[0], stored.length
        if policies.shape[0] != steps:
            raise ValueError(f"policies: expected shape {(steps, self.num_actions)}, got {policies.shape}")
        message = codec.targets_to_proto(segment_id, policies, root_values, model_version)
        return bool(
            shard.call("write_targets", segment_id, message.SerializeToString(), int(model_version), int(length))
        )

    # --- reading ----------------------------------------------------------------------------

    def sample(
        self,
        batch_size: int,
        rng: np.random.Generator,
        *,
        uniform: bool = False,
        count: bool = True,
        frames: str = "window",
    ) -> SampledBatch:
        """``batch_size`` windows drawn by priority (or uniformly) across all shards; ``count``
        adds them to the sampled total the rate limiter reads."""
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        if frames not in ("window", "stack"):
            raise ValueError(f"frames: must be 'window' or 'stack', got {frames!r}")
        draws, total_mass, total_transitions = self._draw(batch_size, rng, uniform, count)
        segments, observations = self._read_windows(draws, stack_only=frames == "stack")
        # A segment evicted between the draw and the read (writers at full rate) leaves a hole:
        # draw again for the holes only, so a busy store still fills the batch.
        for _ in range(MAX_SAMPLE_RETRIES):
            holes = [b for b, window in enumerate(segments) if window is None]
            if not holes:
                break
            redraws, total_mass, total_transitions = self._draw(len(holes), rng, uniform, count)
            filled, filled_observations = self._read_windows(redraws, stack_only=frames == "stack")
            for b, draw, window, i in zip(holes, redraws, filled, range(len(holes))):
                draws[b], segments[b] = draw, window
                if observations is not None and window is not None:
                    observations[b] = filled_observations[i]
        else:
            raise ReplayError(f"sample: segments were evicted under {MAX_SAMPLE_RETRIES} draws in a row")
        masses = np.array([d[3] for d in draws], dtype=np.float64)
        probabilities = np.full(batch_size, 1.0 / total_transitions) if uniform else masses / total_mass
        weights = (total_transitions * probabilities) ** -(0.0 if uniform else self.config.priority_beta)
        weights = (weights / weights.max()).astype(np.float32)
        keys = SampleKeys(
            segment_ids=np.array([d[1] for d in draws]), positions=np.array([d[2] for d in draws], dtype=np.int64)
        )
        return SampledBatch(
            segments=segments,
            positions=np.zeros(batch_size, dtype=np.int64),
            probabilities=probabilities,
            weights=weights,
            keys=keys,
            observations=observations,
        )

    def read_segments(self, count: int, rng: np.random.Generator, *, uniform: bool = True) -> list[Segment]:
        """``count`` whole stored segments (with their frames and freshest targets), for reanalyze."""
        for _ in range(MAX_SAMPLE_RETRIES):
            draws, _, _ = self._draw(count, rng, uniform, False)
            read, _ = self._read_windows(
                [(shard, sid, 0, mass, version) for shard, sid, _, mass, version in draws], whole=True
            )
            if all(segment is not None for segment in read):
                return read
        raise ReplayError(f"read_segments: segments were evicted under {MAX_SAMPLE_RETRIES} attempts in a row")

    def _draw(self, count: int, rng: np.random.Generator, uniform: bool, tally: bool) -> tuple[list, float, int]:
        """[(shard, segment id, position, priority mass, targets version)] * count, the total
        mass and transitions."""
        tree = "ctree" if uniform else "tree"
        masses, transitions = [], []
        for shard in self.shards:
            pipe = shard.client.pipeline(transaction=False)
            pipe.getrange(shard.prefix + tree, 8, 15)  # the root: node 1
            pipe.hget(shard.prefix + "meta", "transitions")
            root, stored = pipe.execute()
            masses.append(float(np.frombuffer(root, "<f8")[0]) if len(root) == 8 else 0.0)
            transitions.append(int(stored or 0))
        masses_array = np.maximum(np.array(masses), 0.0)
        if masses_array.sum() <= 0:
            raise ValueError("cannot sample from an empty replay store")
        per_shard = rng.multinomial(count, masses_array / masses_array.sum())
        draws = []
        for shard, share in zip(self.shards, per_shard):
            got: list = []
            for _ in range(MAX_SAMPLE_RETRIES):  # redraw the rare draws that hit a zero-mass leaf
                if len(got) == share:
                    break
                reply = shard.call(
                    "sample",
                    "uniform" if uniform else "priority",
                    "count" if tally else "",
                    *[repr(float(u)) for u in rng.random(share - len(got))],
                )
                for i in range(2, len(reply), 4):
                    if reply[i]:
                        got.append(
                            (shard, reply[i].decode(), int(reply[i + 1]), float(reply[i + 2]), int(reply[i + 3]))
                        )
            if len(got) < share:
                raise ValueError("cannot sample: a replay shard emptied while sampling")
            draws += got
        return draws, float(masses_array.sum()), int(sum(transitions))

    def _read_windows(
        self, draws: list, whole: bool = False, stack_only: bool = False
    ) -> tuple[list[Segment | None], np.ndarray | None]:
        """The windows (or whole segments) of ``draws``, and with ``stack_only`` the stacked
        observations (the windows then keep stand-in frames); None in place of a window whose
        segment (or a frame of it) is gone."""
        by_shard: dict[int, list[int]] = {}
        for b, draw in enumerate(draws):
            by_shard.setdefault(draw[0].index, []).append(b)
        windows: list[Segment | None] = [None] * len(draws)
        stacked = (
            np.empty((len(draws), self.frame_stack, *self.observation_shape), self.observation_dtype)
            if stack_only
            else None
        )
        for index, rows in by_shard.items():
            shard = self.shards[index]
            bases = self._bases(shard, {draws[b][1]: draws[b][4] for b in rows})
            rows = [b for b in rows if draws[b][1] in bases]
            if self.segment_frames:  # the cached segments hold their frames: windows are slices
                for b in rows:
                    _, segment_id, position, _, _ = draws[b]
                    base = bases[segment_id][0]
                    windows[b] = base if whole else base.window(position, self.window_steps)
                    if stack_only:
                        stacked[b] = base.observations[position : position + self.frame_stack]
                continue
            spans = {}
            wanted: set[str] = set()
            for b in rows:
                _, segment_id, position, _, _ = draws[b]
                base, frame_list = bases[segment_id]
                start, end = (
                    (0, base.num_steps) if whole else (position, min(position + self.window_steps, base.num_steps))
                )
                last = start + self.frame_stack if stack_only else self.frame_stack - 1 + end
                hashes = [frame_list[32 * i : 32 * i + 32] for i in range(start, last)]
                spans[b] = hashes
                wanted.update(hashes)
            frames = self._frames(shard, wanted)
            for b in rows:
                if any(h not in frames for h in spans[b]):
                    continue  # a frame went with an eviction since the draw
                _, segment_id, position, _, _ = draws[b]
                base = bases[segment_id][0]
                window = base if whole else base.window(position, self.window_steps)
                if stack_only:
                    windows[b] = window
                    for i, h in enumerate(spans[b]):
                        stacked[b, i] = frames[h]
                else:
                    windows[b] = replace(window, observations=np.stack([frames[h] for h in spans[b]]))
        observations = None if stacked is None else stack_frames(stacked)
        return windows, observations

    def _bases(self, shard: _Shard, versions: dict[str, int]) -> dict[str, tuple[Segment, str]]:
        """Segment id -> (segment with stand-in frames and targets at least as fresh as
        ``versions[id]``, its frame list), from the cache or one pipelined read; ids of
        segments gone since the draw are left out."""
        bases: dict[str, tuple[Segment, str]] = {}
        stale: dict[str, tuple[Segment, str] | None] = {}  # cached with older targets, or not cached
        for segment_id, version in versions.items():
            cached = self.cache.get(("segment", segment_id))
            if cached is not None and cached[2] >= version:
                bases[segment_id] = cached[:2]
            else:
                stale[segment_id] = None if cached is None else cached[:2]
        if not stale:
            return bases
        pipe = shard.client.pipeline(transaction=False)
        for segment_id, cached in stale.items():
            if cached is None:
                pipe.get(shard.prefix + "seg:" + segment_id)
                pipe.get(shard.prefix + "fl:" + segment_id)
            if versions[segment_id] >= 0:  # the draw saw reanalysed targets (-1: none to read)
                pipe.get(shard.prefix + "rz:" + segment_id)
        replies = iter(pipe.execute())
        fresh: dict[str, tuple[Segment, str, int, bool]] = {}
        for segment_id, cached in stale.items():
            read = (next(replies), next(replies)) if cached is None else None
            targets = next(replies) if versions[segment_id] >= 0 else None
            if read is not None and (read[0] is None or read[1] is None):
                continue  # evicted since the draw
            if targets is None and versions[segment_id] >= 0:
                continue  # the draw saw reanalysed targets: the segment was evicted since
            base, frame_list = (self._decode_segment(read[0]), read[1].decode()) if read is not None else cached
            version = -1
            if targets is not None:  # reanalysed: the freshest targets win
                base, version = self._with_targets(base, targets)
            fresh[segment_id] = (base, frame_list, version, cached is None)
        if self.segment_frames:  # the frames of every segment read now, in one MGET
            lists = {i: [f[i : i + 32] for i in range(0, len(f), 32)] for i, (_, f, _, new) in fresh.items() if new}
            frames = self._frames(shard, {h for hashes in lists.values() for h in hashes}, keep=False)
            for segment_id, hashes in lists.items():
                base, frame_list, version, new = fresh[segment_id]
                if any(h not in frames for h in hashes):
                    del fresh[segment_id]
                    continue
                observations = np.stack([frames[h] for h in hashes])
                observations.flags.writeable = False
                fresh[segment_id] = (replace(base, observations=observations), frame_list, version, new)
        for segment_id, (base, frame_list, version, _) in fresh.items():
            bases[segment_id] = (base, frame_list)
            nbytes = len(frame_list) + sum(getattr(base, name).nbytes for name in _SEGMENT_ARRAYS)
            if self.segment_frames:
                nbytes += base.observations.nbytes
            self.cache.put(("segment", segment_id), (base, frame_list, version), nbytes + 512)
        return bases

    def _frames(self, shard: _Shard, hashes: set[str], keep: bool = True) -> dict[str, np.ndarray]:
        """Frame hash -> decoded frame, from the cache or one MGET (``keep``: cache what was
        read); hashes of frames gone since the draw are left out."""
        frames, missing = {}, []
        for h in hashes:
            frame = self.cache.get(("frame", h))
            if frame is None:
                missing.append(h)
            else:
                frames[h] = frame
        if missing:
            blobs = shard.client.mget([shard.prefix + "f:" + h for h in missing])
            for h, blob in zip(missing, blobs):
                if blob is None:
                    continue
                frame = frames[h] = self._decode_frame(blob)
                if keep:
                    frame.flags.writeable = False  # shared by every window that reads it
                    self.cache.put(("frame", h), frame, frame.nbytes + 128)
        return frames

    def _decode_segment(self, blob: bytes) -> Segment:
        """A stored segment as the actor sent it, with stand-in frames that take no memory
        (the caller puts the frames it read in place)."""
        message = codec.stored_segment_from_bytes(blob)
        fields = {name: codec.tensor_from_proto(getattr(message, name), f"stored.{name}") for name in _SEGMENT_ARRAYS}
        length = int(message.length)
        steps = fields["actions"].shape[0]
        placeholder = np.broadcast_to(
            np.zeros(self.observation_shape, self.observation_dtype),
            (self.frame_stack - 1 + steps, *self.observation_shape),
        )
        return Segment(
            observations=placeholder,
            length=length,
            terminated=bool(message.terminated),
            bootstrap_value=float(message.bootstrap_value),
            bootstrap_to_play=int(message.bootstrap_to_play),
            priorities=np.ones(length, dtype=np.float32),
            model_version=int(message.model_version),
            segment_id=message.segment_id,
            final_ownership=codec.final_ownership_from_proto(message, "stored.final_ownership"),
            **fields,
        )

    @staticmethod
    def _with_targets(segment: Segment, targets: bytes) -> tuple[Segment, int]:
        """``segment`` with reanalysed policies and root values, and their model version."""
        fresh = codec.replay_pb2.ReanalysedTargets()
        fresh.ParseFromString(targets)
        return replace(
            segment,
            policies=codec.tensor_from_proto(fresh.policies, "reanalysed.policies"),
            root_values=codec.tensor_from_proto(fresh.root_values, "reanalysed.root_values"),
        ), int(fresh.model_version)

    def _decode_frame(self, blob: bytes) -> np.ndarray:
        try:
            return self.codec.decode(blob, self.observation_shape, self.observation_dtype)
        except FrameError as error:
            if "dictionary" in str(error) and self._load_dictionary():
                return self.codec.decode(blob, self.observation_shape, self.observation_dtype)
            raise

    # --- zstd dictionary ----------------------------------------------------------------------

    def _dictionary_key(self, shard: _Shard) -> str:
        return shard.prefix + "dict"

    def _load_dictionary(self) -> bool:
        """Use the experiment's stored dictionary, if one was trained; True if one is known now."""
        if not self.config.zstd_dictionary:
            return False
        data = self.shards[0].client.get(self._dictionary_key(self.shards[0]))
        if data is None:
            return False
        dictionary = FrameDictionary(dict_id=int.from_bytes(data[:4], "little"), data=data[4:])
        self.codec = FrameCodec(self.config.zstd_level, dictionary, self.config.zstd_dictionary_max_frame_bytes)
        return True

    def _collect_dictionary_samples(self, frames: np.ndarray) -> None:
        if not self.config.zstd_dictionary or self.codec.dictionary is not None:
            return
        self._dictionary_samples.extend(frames)
        if len(self._dictionary_samples) < self.config.zstd_dictionary_frames:
            return
        dictionary = FrameDictionary.train(np.stack(self._dictionary_samples), self.config.zstd_dictionary_bytes)
        self._dictionary_samples = []
        record = dictionary.dict_id.to_bytes(4, "little") + dictionary.data
        # The first writer to train one wins; everyone else adopts it.
        self.shards[0].client.set(self._dictionary_key(self.shards[0]), record, nx=True)
        self._load_dictionary()

    # --- state ----------------------------------------------------------------------------------

    def _masses(self, priorities: np.ndarray) -> np.ndarray:
        return (np.asarray(priorities, dtype=np.float64) + self.config.priority_eps) ** self.config.priority_alpha

    def _meta(self) -> list[dict[str, float]]:
        pipe_results = []
        for shard in self.shards:
            raw = shard.client.hgetall(shard.prefix + "meta")
            pipe_results.append({k.decode(): float(v) for k, v in raw.items() if k.decode() != "layout"})
        return pipe_results

    def counts(self) -> Counts:
        """Totals for the rate limiter, one round trip per shard."""
        inserted = sampled = stored = 0
        for shard in self.shards:
            values = shard.client.hmget(
                shard.prefix + "meta", "inserted_transitions_total", "sampled_transitions_total", "transitions"
            )
            inserted += int(values[0] or 0)
            sampled += int(values[1] or 0)
            stored += int(values[2] or 0)
        return Counts(inserted=inserted, sampled=sampled, stored=stored)

    @property
    def num_transitions(self) -> int:
        return int(sum(int(s.client.hget(s.prefix + "meta", "transitions") or 0) for s in self.shards))

    @property
    def num_segments(self) -> int:
        return int(sum(int(s.client.hget(s.prefix + "meta", "segments") or 0) for s in self.shards))

    def stats(self) -> dict[str, Any]:
        shards = self._meta()
        totals: dict[str, float] = {}
        for meta in shards:
            for key, value in meta.items():
                if key in ("capacity", "capacity_bytes", "ring", "leaves", "next_leaf", "tombstone_serial"):
                    continue
                totals[key] = totals.get(key, 0.0) + value
        frames = totals.get("frames", 0.0)
        totals["raw_frame_bytes"] = frames * self.frame_bytes
        totals["raw_stacked_bytes"] = totals.get("transitions", 0.0) * self.frame_stack * self.frame_bytes
        totals["capacity"] = float(self.config.capacity)
        totals["capacity_bytes"] = float(self.config.capacity_bytes)
        totals["num_shards"] = float(len(self.shards))
        return {
            "num_segments": int(totals.get("segments", 0)),
            "num_transitions": int(totals.get("transitions", 0)),
            **totals,
            "shards": shards,
        }

    def fsck(self) -> list[str]:
        """Problems found in any shard (each checked atomically); empty when consistent."""
        problems = []
        for shard in self.shards:
            problems += [
                f"shard {shard.index}: {p.decode() if isinstance(p, bytes) else p}" for p in shard.call("fsck")
            ]
        return problems

    def clear(self) -> None:
        """Delete every key of this experiment (tests, ``muzero replay reset``)."""
        self.cache.clear()
        for shard in self.shards:
            keys = list(
                shard.client.scan_iter(match=shard.prefix.replace("{", "\\{").replace("}", "\\}") + "*", count=1000)
            )
            for i in range(0, len(keys), 1000):
                shard.client.delete(*keys[i : i + 1000])
