"""Replay store benchmark: bytes per transition, insert and sample throughput, latency.

    python benchmarks/replay.py [--atari-steps 6000] [--cartpole-steps 20000] [--batches 60]

Plays Breakout (ale-py, 84x84 grey, frame skip 4, frame stack 4) and CartPole at
random, cuts the play into segments exactly as actors do (200 owned steps, K=5 +
n=10 context), then for 1 and 3 Redis shards (redis-server processes started
here, no persistence):

- bytes: what a store of stacked uint8 examples would hold (frame_stack frames per
  transition) against what the shards hold (compressed unique frames, segments),
  split into the gain from storing each frame once (dedup) and from zstd;
- insert throughput (owned transitions/s) through ``RedisReplay.insert``, the
  code the replay front runs per appended segment;
- sample throughput (training examples/s, batch 256, K=5): ``sample`` plus
  ``make_batch`` (targets), and the p50/p99 latency of one such batch;
- which side is busy: CPU seconds of the Python process and of the redis-servers
  per wall second while inserting and while sampling.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import uuid

import numpy as np

from muzero.config import ReplayConfig
from muzero.learning.batch import make_batch
from muzero.learning.segment import Segment, SegmentBuilder
from muzero.operations.redis_process import RedisServer
from muzero.storage.replay.redis_store import RedisReplay

K, N = 5, 10
SEGMENT_LENGTH = 200
BATCH = 256


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def play(frames_of, num_actions: int, steps: int, frame_stack: int, seed: int) -> list[Segment]:
    """Random play of one env cut into segments; ``frames_of(rng)`` yields (obs, terminated) per step."""
    builder = SegmentBuilder(1, SEGMENT_LENGTH, K + N, frame_stack, num_actions)
    rng = np.random.default_rng(seed)
    uniform = np.full((1, num_actions), 1.0 / num_actions, dtype=np.float32)
    segments: list[Segment] = []
    for obs, reward, terminated, truncated in frames_of(rng, steps):
        segments += builder.add_step(
            obs=obs[None],
            actions=rng.integers(0, num_actions, 1),
            rewards=np.array([reward], np.float32),
            to_play=np.zeros(1, np.int8),
            legal_masks=np.ones((1, num_actions), bool),
            policies=uniform,
            root_values=rng.standard_normal(1).astype(np.float32),
            terminated=np.array([terminated]),
            truncated=np.array([truncated]),
            final_bootstrap_values=np.zeros(1, np.float32),
            model_version=0,
        )
    return segments + builder.flush()


def atari_frames(game: str):
    import ale_py
    import gymnasium as gym
    from gymnasium.wrappers import AtariPreprocessing

    gym.register_envs(ale_py)
    env = AtariPreprocessing(
        gym.make(game, frameskip=1, repeat_action_probability=0.0),
        frame_skip=4,
        screen_size=84,
        grayscale_obs=True,
        noop_max=30,
    )

    def frames(rng: np.random.Generator, steps: int):
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        for _ in range(steps):
            next_obs, reward, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
            yield obs, float(reward), terminated, truncated
            obs = env.reset()[0] if terminated or truncated else next_obs

    return frames, int(env.action_space.n)


def cartpole_frames():
    import gymnasium as gym

    env = gym.make("CartPole-v1")

    def frames(rng: np.random.Generator, steps: int):
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        for _ in range(steps):
            next_obs, reward, terminated, truncated, _ = env.step(int(rng.integers(2)))
            yield obs.astype(np.float32), float(reward), terminated, truncated
            obs = env.reset()[0] if terminated or truncated else next_obs

    return frames, 2


def redis_cpu_s(servers: list[RedisServer]) -> float:
    total = 0.0
    for server in servers:
        info = server.client().info("cpu")
        total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


def measure(
    segments: list[Segment],
    servers: list[RedisServer],
    frame_shape,
    dtype,
    frame_stack: int,
    num_actions: int,
    batches: int,
    zstd_level: int,
    cache_bytes: int,
) -> dict:
    transitions = sum(s.length for s in segments)
    config = ReplayConfig(
        capacity=2 * transitions,
        min_size=1,
        segment_length=SEGMENT_LENGTH,
        priority_alpha=0.6,
        priority_beta=0.4,
        zstd_level=zstd_level,
        cache_bytes=cache_bytes,
    )
    store = RedisReplay(
        config,
        experiment=f"bench-{uuid.uuid4().hex[:8]}",
        num_actions=num_actions,
        observation_shape=frame_shape,
        frame_stack=frame_stack,
        window_steps=K + N + 1,
        observation_dtype=dtype,
        clients=[s.client() for s in servers],
    )
    try:
        cpu0, redis0, wall0 = time.process_time(), redis_cpu_s(servers), time.perf_counter()
        for segment in segments:
            store.insert(segment)
        insert_wall = time.perf_counter() - wall0
        insert_cpu = {
            "python": (time.process_time() - cpu0) / insert_wall,
            "redis": (redis_cpu_s(servers) - redis0) / insert_wall,
        }
        stats = store.stats()
        rng = np.random.default_rng(0)
        latencies = []
        cpu0, redis0, wall0 = time.process_time(), redis_cpu_s(servers), time.perf_counter()
        for _ in range(batches):
            start = time.perf_counter()
            sampled = store.sample(BATCH, rng, frames="stack")  # what the replay service does per batch
            make_batch(
                sampled.segments,
                sampled.positions,
                K,
                N,
                0.997,
                frame_stack,
                rng,
                weights=sampled.weights,
                observations=sampled.observations,
            )
            latencies.append(time.perf_counter() - start)
        sample_wall = time.perf_counter() - wall0
        sample_cpu = {
            "python": (time.process_time() - cpu0) / sample_wall,
            "redis": (redis_cpu_s(servers) - redis0) / sample_wall,
        }
        assert store.fsck() == [], "benchmark left the store inconsistent"
    finally:
        store.clear()
    frame_bytes = int(np.prod(frame_shape)) * np.dtype(dtype).itemsize
    unique_raw = stats["frames"] * frame_bytes
    compressed_frames = stats["inserted_frame_bytes_total"]
    raw_stacked = transitions * frame_stack * frame_bytes
    return {
        "transitions": transitions,
        "segments": len(segments),
        "raw_stacked_bytes_per_transition": raw_stacked / transitions,
        "stored_bytes_per_transition": stats["bytes"] / transitions,
        "ratio": raw_stacked / stats["bytes"],
        "ratio_dedup": raw_stacked / unique_raw,
        "ratio_zstd": unique_raw / compressed_frames,
        "insert_tps": transitions / insert_wall,
        "sample_eps": batches * BATCH / sample_wall,
        "sample_p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "sample_p99_ms": 1000 * float(np.percentile(latencies, 99)),
        "cpu_per_wall_s": {"insert": insert_cpu, "sample": sample_cpu},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--atari-steps", type=int, default=6000, help="Breakout agent steps (4 frames each)")
    parser.add_argument("--cartpole-steps", type=int, default=20000)
    parser.add_argument("--batches", type=int, default=60, help="sampled batches of 256 per configuration")
    parser.add_argument("--game", default="ALE/Breakout-v5")
    parser.add_argument("--zstd-level", type=int, default=3)
    parser.add_argument(
        "--cache-bytes",
        type=int,
        default=ReplayConfig.cache_bytes,
        help="the front's cache of decoded segments and frames (0: every sample reads Redis)",
    )
    args = parser.parse_args()

    servers = [RedisServer(maxmemory="4gb").start() for _ in range(3)]
    try:
        log(f"playing {args.atari_steps} steps of {args.game} at random")
        frames, actions = atari_frames(args.game)
        atari = play(frames, actions, args.atari_steps, frame_stack=4, seed=0)
        log(f"playing {args.cartpole_steps} steps of CartPole at random")
        frames, actions_cp = cartpole_frames()
        cartpole = play(frames, actions_cp, args.cartpole_steps, frame_stack=1, seed=1)
        results = {"atari": {}, "cartpole": {}}
        for shards in (1, 3):
            log(f"atari, {shards} shard(s)")
            results["atari"][str(shards)] = measure(
                atari, servers[:shards], (84, 84), np.uint8, 4, actions, args.batches, args.zstd_level, args.cache_bytes
            )
            log(json.dumps(results["atari"][str(shards)]))
            log(f"cartpole, {shards} shard(s)")
            results["cartpole"][str(shards)] = measure(
                cartpole,
                servers[:shards],
                (4,),
                np.float32,
                1,
                actions_cp,
                args.batches,
                args.zstd_level,
                args.cache_bytes,
            )
            log(json.dumps(results["cartpole"][str(shards)]))
    finally:
        for server in servers:
            server.stop()

    one = results["atari"]["1"]
    summary = {
        "bytes_per_transition": {
            "raw_stacked": round(one["raw_stacked_bytes_per_transition"], 1),
            "stored": round(one["stored_bytes_per_transition"], 1),
        },
        "ratio": round(one["ratio"], 2),
        "ratio_dedup": round(one["ratio_dedup"], 2),
        "ratio_zstd": round(one["ratio_zstd"], 2),
        "insert_tps": {s: round(results["atari"][s]["insert_tps"]) for s in ("1", "3")},
        "sample_eps": {s: round(results["atari"][s]["sample_eps"]) for s in ("1", "3")},
        "sample_p50_ms": round(one["sample_p50_ms"], 2),
        "sample_p99_ms": round(one["sample_p99_ms"], 2),
        "cartpole": {
            s: {k: round(v, 2) for k, v in results["cartpole"][s].items() if isinstance(v, float)} for s in ("1", "3")
        },
        "cpu_per_wall_s": {s: results["atari"][s]["cpu_per_wall_s"] for s in ("1", "3")},
        "cache_bytes": args.cache_bytes,
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
