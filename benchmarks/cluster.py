"""Distributed vs local throughput, checkpoint pull time, publish-to-use lag.

    python benchmarks/cluster.py [--seconds 120] [--actors 2]

- local: ``muzero train``'s loop (one process, in-memory store) for ``--seconds``
  with ``env.num_envs`` = actors x envs per actor; environment steps/s and
  learner samples/s;
- cluster: ``muzero cluster up`` (2 Redis shards, replay, learner, the actors; no
  reanalyze, so both do the same work) for the same time after the learner's
  first step and ``--warmup`` seconds (segments leave actors every 200 steps, so inserts
  trail play at first); the same rates, scraped from the services' /metrics;
- overhead: 1 - cluster / local, for environment steps/s and for learner
  samples/s, the worse of the two (the issue's bound is 25%); ``--repeats``
  alternating runs of each mode, medians compared;
- a 50 MB checkpoint pulled over loopback with ``CheckpointClient`` (median of 3);
- publish-to-use: from a checkpoint's publication to each actor playing with it
  (from the actors' logs), p50 and p99.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from muzero import config as config_module
from muzero.nn.networks import build_network
from muzero.operations.cluster import Cluster, scrape
from muzero.operations.local import train
from muzero.operations.progress import Progress
from muzero.storage.checkpoint import CheckpointManager
from muzero.transport.checkpoint_client import CheckpointClient
from muzero.transport.checkpoint_server import CheckpointServicer, add_to_server
from muzero.transport.grpc_util import make_server


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def local_rates(preset: str, overrides: list[str], seconds: float) -> tuple[float, float]:
    config = config_module.load(
        preset,
        [*overrides, f"training.max_wall_s={seconds}", "training.eval_interval=0", "training.max_env_steps=100000000"],
    )
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(config, Path(run_dir), Progress("local", interval_s=30, live=False))
    return result.env_steps / result.wall_s, result.learner_steps * config.training.batch_size / result.wall_s


def cluster_rates(
    preset: str, overrides: list[str], actors: int, seconds: float, warmup: float, run_dir: Path, max_inflight: int = 4
) -> tuple[float, float, list[float]]:
    # Few unacknowledged segments per actor: backpressure holds play to the learner's ratio
    # within the measured window, as it does in a long run.
    cluster = Cluster(
        preset,
        overrides,
        run_dir,
        actors=actors,
        reanalyze=0,
        shards=2,
        extra_env={"actor": {"MUZERO_MAX_INFLIGHT": str(max_inflight)}},
    )
    cluster.start(timeout_s=180)
    try:
        learner = cluster.layout.service("learner")
        actor_services = [cluster.layout.service(f"actor-{i}") for i in range(actors)]
        while scrape(learner.metrics_url).get("muzero_learner_steps_total", 0) < 1:
            time.sleep(0.5)
        # Segments leave an actor once 200 steps (+ context) are played: until every env has
        # sent a few, inserts (and so the samples they allow) trail the steps played.
        time.sleep(warmup)

        def totals() -> tuple[float, float]:
            steps = sum(scrape(a.metrics_url).get("muzero_actor_env_steps_total", 0) for a in actor_services)
            return steps, scrape(learner.metrics_url).get("muzero_learner_samples_total", 0)

        steps0, samples0 = totals()
        started = time.monotonic()
        time.sleep(seconds)
        steps1, samples1 = totals()
        wall = time.monotonic() - started
    finally:
        cluster.stop()
    lags = []
    for actor in actor_services:
        for line in open(actor.log):
            match = re.search(r"playing version \d+, published ([0-9.]+) s ago", line)
            if match:
                lags.append(float(match.group(1)))
    return (steps1 - steps0) / wall, (samples1 - samples0) / wall, lags


def checkpoint_pull_seconds(megabytes: float = 50.0, repeats: int = 3) -> tuple[float, int]:
    # The narrowest MLP whose float32 weights reach ``megabytes`` MB (10^6 bytes).
    width = int(math.sqrt(megabytes * 1e6 / 4 / 6))
    while True:
        config = config_module.load("cartpole", [f"network.hidden_size={width}", "network.num_layers=2"])
        network = build_network(config.network, (4,), 2)
        if sum(p.numel() for p in network.parameters()) * 4 >= megabytes * 1e6:
            break
        width += 16
    with tempfile.TemporaryDirectory() as folder:
        CheckpointManager(Path(folder) / "run").save(network, config, step=1, version=1)
        servicer = CheckpointServicer(Path(folder) / "run")
        server = make_server()
        add_to_server(server, servicer)
        port = server.add_port("127.0.0.1:0")
        server.start()
        times, size = [], 0
        try:
            with CheckpointClient(f"127.0.0.1:{port}") as client:
                for i in range(repeats):
                    started = time.perf_counter()
                    path = client.pull(Path(folder) / f"out-{i}")
                    times.append(time.perf_counter() - started)
                    size = path.stat().st_size
        finally:
            servicer.stop()
            server.stop(grace=None)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cartpole")
    parser.add_argument("--seconds", type=float, default=120.0, help="measured time of each mode")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--envs-per-actor", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=60.0, help="cluster seconds before measuring")
    parser.add_argument("--repeats", type=int, default=3, help="alternating local and cluster runs (medians)")
    args = parser.parse_args()
    if args.repeats < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--repeats must be >= 1, --seconds > 0 and --warmup >= 0")
    torch.set_num_threads(2)

    log("checkpoint pull, 50 MB over loopback")
    pull_s, pull_bytes = checkpoint_pull_seconds()
    log(f"{pull_bytes / 2**20:.1f} MiB in {pull_s:.3f} s")
    common = ["replay.min_size=1000", "training.checkpoint_interval=200"]
    # The same ratio of samples per env step as local mode keeps (training.train_ratio).
    ratio = config_module.load(args.preset).training.train_ratio
    envs = args.actors * args.envs_per_actor
    # Local mode's own rate moves +-15% from run to run here (VM noise, what the agent has
    # learned): the modes alternate, so drift hits both, and the medians are compared.
    local_steps, local_samples, cluster_steps, cluster_samples, lags = [], [], [], [], []
    for run in range(args.repeats):
        log(f"[{run + 1}/{args.repeats}] local mode, {envs} envs, {args.seconds:.0f} s")
        steps, samples = local_rates(args.preset, [*common, f"env.num_envs={envs}"], args.seconds)
        log(f"local: {steps:.1f} env steps/s, {samples:.1f} samples/s")
        local_steps.append(steps)
        local_samples.append(samples)
        log(
            f"[{run + 1}/{args.repeats}] cluster, {args.actors} actors x {args.envs_per_actor} envs, "
            f"{args.seconds:.0f} s"
        )
        with tempfile.TemporaryDirectory() as folder:
            steps, samples, run_lags = cluster_rates(
                args.preset,
                [*common, f"env.num_envs={args.envs_per_actor}", f"replay.samples_per_insert={ratio}"],
                args.actors,
                args.seconds,
                args.warmup,
                Path(folder) / "cluster",
            )
        log(f"cluster: {steps:.1f} env steps/s, {samples:.1f} samples/s, {len(run_lags)} weight swaps")
        cluster_steps.append(steps)
        cluster_samples.append(samples)
        lags += run_lags
    median = statistics.median
    steps_overhead = 1 - median(cluster_steps) / median(local_steps)
    samples_overhead = 1 - median(cluster_samples) / median(local_samples)
    result = {
        "local_env_steps_s": round(median(local_steps), 1),
        "cluster_env_steps_s": round(median(cluster_steps), 1),
        "local_learner_samples_s": round(median(local_samples), 1),
        "cluster_learner_samples_s": round(median(cluster_samples), 1),
        "overhead": round(max(steps_overhead, samples_overhead), 3),  # the worse of the two
        "env_steps_overhead": round(steps_overhead, 3),
        "samples_overhead": round(samples_overhead, 3),
        "runs": {
            "local_env_steps_s": [round(x, 1) for x in local_steps],
            "cluster_env_steps_s": [round(x, 1) for x in cluster_steps],
            "local_learner_samples_s": [round(x, 1) for x in local_samples],
            "cluster_learner_samples_s": [round(x, 1) for x in cluster_samples],
        },
        "checkpoint_pull_s_50mb": round(pull_s, 3),
        "checkpoint_bytes": pull_bytes,
        "publish_to_use_p50_s": round(float(np.percentile(lags, 50)), 3) if lags else None,
        "publish_to_use_p99_s": round(float(np.percentile(lags, 99)), 3) if lags else None,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
