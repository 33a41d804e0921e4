"""Every service as a real process: health, /metrics, bad requests, graceful stop, learner resume."""

from __future__ import annotations

import re
import urllib.request

import grpc
import pytest

from muzero.operations.cluster import Cluster, scrape
from muzero.storage.checkpoint import CheckpointManager
from muzero.transport.checkpoint_client import CheckpointClient
from muzero.transport.grpc_util import check_health, make_channel
from muzero.wire.v1 import checkpoint_pb2, checkpoint_pb2_grpc, replay_pb2, replay_pb2_grpc
from tests.waiting import wait_for

FAST = [
    "env.num_envs=8",
    "search.num_simulations=4",
    "replay.min_size=64",
    "replay.segment_length=20",
    "training.batch_size=32",
    "training.checkpoint_interval=20",
    "reanalyze.segments_per_round=2",
]


def metric(service, name: str) -> float:
    try:
        return scrape(service.metrics_url).get(name, 0.0)
    except OSError:
        return 0.0


@pytest.fixture
def cluster(tmp_path):
    running = Cluster("cartpole", FAST, tmp_path / "cluster", actors=1, reanalyze=1, shards=1)
    running.start(timeout_s=180)
    yield running
    running.stop()


def test_every_service_is_healthy_serves_metrics_and_refuses_bad_requests(cluster):
    layout = cluster.layout
    for service in layout.services:
        assert check_health(f"127.0.0.1:{service.grpc_port}", "") == "SERVING", service.name
        body = urllib.request.urlopen(service.metrics_url, timeout=5).read().decode()
        assert re.search(rf"^muzero_{service.kind}_\w+", body, re.M), f"{service.name} exports no muzero_ metrics"

    # The system runs: actors play, replay stores, the learner trains and publishes, reanalyze refreshes.
    learner, actor = layout.service("learner"), layout.service("actor-0")
    wait_for(lambda: metric(learner, "muzero_learner_model_version") >= 20, 240, "a published checkpoint")
    wait_for(lambda: metric(actor, "muzero_actor_model_version") >= 20, 120, "the actor to swap in new weights")
    wait_for(
        lambda: metric(layout.service("reanalyze-0"), "muzero_reanalyze_segments_written_total") > 0,
        120,
        "reanalysed targets",
    )

    with make_channel(cluster.checkpoint_target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            list(
                checkpoint_pb2_grpc.CheckpointServiceStub(channel).Fetch(
                    checkpoint_pb2.FetchRequest(version=-3), timeout=10
                )
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with make_channel(cluster.replay_target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            list(replay_pb2_grpc.ReplayServiceStub(channel).Sample(replay_pb2.SampleRequest(batch_size=-1), timeout=10))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    codes = cluster.stop()
    assert all(code == 0 for code in codes.values()), codes
    # The learner's last act was a checkpoint of where it stopped.
    stopped_at = CheckpointManager(cluster.run_dir / "learner").latest()
    assert stopped_at is not None


def test_learner_killed_resumes_from_its_checkpoint_at_the_same_step(cluster):
    learner = cluster.layout.service("learner")
    wait_for(lambda: metric(learner, "muzero_learner_model_version") >= 40, 240, "two checkpoints")
    cluster.kill("learner")
    latest = CheckpointManager(cluster.run_dir / "learner").latest()
    step = int(latest.stem.split("_")[1])
    cluster.start_service("learner")
    cluster.wait_ready(120)
    log = open(learner.log).read()
    assert f"resumed from step {step}" in log
    with CheckpointClient(cluster.checkpoint_target) as client:
        assert client.latest().version >= step


@pytest.mark.parametrize("service", ["replay", "learner", "actor", "reanalyze"])
def test_a_bad_config_stops_a_service_at_start_naming_the_key(service):
    import subprocess
    import sys

    from muzero.operations.cluster import ROOT

    done = subprocess.run(
        [sys.executable, "-m", f"services.{service}", "--set", "replay.capacity=-1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert f"{service}: bad config: replay.capacity" in done.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA device")
def test_a_cuda_device_without_cuda_stops_a_service_naming_the_key():
    import subprocess
    import sys

    from muzero.operations.cluster import ROOT

    done = subprocess.run(
        [sys.executable, "-m", "services.actor", "--set", "training.device=cuda"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "actor: bad config: training.device: 'cuda'" in done.stderr


def test_learner_trains_on_ready_batches_and_resumes_where_it_stopped(tmp_path):
    """The library half of the learner service: train, checkpoint, and resume with the step."""
    from dataclasses import replace

    import numpy as np

    from muzero import config as config_module
    from muzero.learning.batch import make_batch
    from muzero.learning.learner import Learner
    from muzero.learning.targets import bootstrap_terms
    from muzero.storage.checkpoint import CheckpointManager
    from tests.factories import random_segment

    config = config_module.load("cartpole", ["training.bootstrap=target_network"])
    rng = np.random.default_rng(0)
    segments = [random_segment(rng, num_actions=2, frame_shape=(4,), frame_stack=1, steps=12) for _ in range(8)]
    positions = np.array([rng.integers(0, s.length) for s in segments])
    ready = make_batch(
        segments, positions, config.training.unroll_steps, config.training.td_steps, config.training.discount, 1, rng
    )
    batch = replace(
        ready,
        model_versions=np.zeros(8, np.int64),
        bootstrap=bootstrap_terms(
            segments, positions, config.training.unroll_steps, config.training.td_steps, config.training.discount
        ),
    )
    learner = Learner(config, (4,), 2)
    checkpoints = CheckpointManager(tmp_path / "run")
    assert checkpoints.resume_learner(learner) is None and learner.wants_bootstrap_observations
    for _ in range(3):
        out = learner.train(batch)
    assert learner.step == 3 and np.isfinite(out["total"]) and out["priorities"].shape == (8,)
    checkpoints.save_learner(learner)
    again = Learner(config, (4,), 2)
    assert checkpoints.resume_learner(again) == 3
