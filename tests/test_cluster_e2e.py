"""End to end: the distributed system learns CartPole while parts of it are killed.

2 Redis shards, 1 replay, 1 learner, 2 actors, 1 reanalyze, as processes on
loopback. Mid-run one actor and the replay front are killed with SIGKILL and
restarted; the run goes on, the store stays consistent, no acknowledged segment
is lost and the learner never restarts.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from muzero import config as config_module
from muzero.acting.evaluation import evaluate_returns
from muzero.nn.networks import build_network
from muzero.operations.cluster import Cluster, scrape
from muzero.storage.checkpoint import CheckpointManager, load_checkpoint
from muzero.storage.replay.factory import EnvSpec, build_store, redis_overrides

OVERRIDES = [
    "name=e2e",
    "env.num_envs=8",
    "replay.min_size=500",
    "training.checkpoint_interval=100",
    "replay.samples_per_insert=16",
    "reanalyze.fraction=0.25",
]
MAX_LEARNER_STEPS = 8000  # the bound: CartPole must reach 200 within this many learner steps


def learner_step(cluster: Cluster) -> int:
    try:
        return int(scrape(cluster.layout.service("learner").metrics_url).get("muzero_learner_model_version", 0))
    except OSError:
        return 0


def evaluate_latest(cluster: Cluster, config) -> tuple[int, float]:
    latest = CheckpointManager(cluster.run_dir / "learner").latest()
    checkpoint = load_checkpoint(latest)
    network = build_network(config.network, (4,), 2)
    network.load_state_dict(checkpoint.state_dict)
    return checkpoint.step, evaluate_returns(config, network, episodes=10, seed=checkpoint.step).mean


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_cartpole_learns_through_kills(tmp_path: Path):
    ack_logs = {f"actor-{i}": str(tmp_path / f"acks-{i}.txt") for i in range(2)}
    cluster = Cluster("cartpole", OVERRIDES, tmp_path / "cluster", actors=2, reanalyze=1, shards=2)
    for name, path in ack_logs.items():
        cluster.layout.service(name).env["MUZERO_ACK_LOG"] = path
    config = config_module.load("cartpole", [*OVERRIDES, *redis_overrides(cluster.layout.redis_urls)])
    try:
        _run_and_check(cluster, config, ack_logs)
    finally:
        cluster.stop()  # idempotent: stops whatever still runs, the shards included


def _run_and_check(cluster: Cluster, config, ack_logs: dict[str, str]) -> None:
    cluster.start(timeout_s=180)
    try:
        learner_pid = cluster.processes["learner"].pid
        while learner_step(cluster) < 300:
            assert cluster.processes["learner"].poll() is None
            time.sleep(0.5)
        cluster.kill("actor-0")
        cluster.kill("replay")
        cluster.start_service("replay")
        cluster.start_service("actor-0")
        cluster.wait_ready(120)

        best, step = -1.0, 0
        while step < MAX_LEARNER_STEPS and best < 200:
            time.sleep(20)
            assert cluster.processes["learner"].poll() is None, "the learner crashed"
            step, mean = evaluate_latest(cluster, config)
            best = max(best, mean)
            print(f"learner step {step}: mean return {mean:.1f}", flush=True)
        assert best >= 200, f"mean evaluation return {best:.1f} after {step} learner steps"
        assert cluster.processes["learner"].pid == learner_pid
    finally:
        codes = cluster.stop(keep_redis=True)
    assert codes["learner"] == 0

    store = build_store(config, EnvSpec.of(config))
    try:
        assert store.fsck() == []
        stored, evicted = set(), set()
        for shard in store.shards:
            stored.update(i.decode() for i in shard.client.lrange(shard.prefix + "fifo", 0, -1))
            evicted.update(i.decode() for i in shard.client.zrange(shard.prefix + "seen", 0, -1))
        acknowledged = set()
        for path in ack_logs.values():
            acknowledged.update(line.strip() for line in open(path) if line.strip())
        assert acknowledged, "the actors acknowledged nothing"
        lost = acknowledged - stored - evicted
        assert not lost, f"{len(lost)} acknowledged segments lost"
    finally:
        for server in cluster.redis:
            server.stop()
    assert np.isfinite(best)
