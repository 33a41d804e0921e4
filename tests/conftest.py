from __future__ import annotations

import os
import subprocess
import sys

# Before any test module imports grpc: tests fork service processes while gRPC calls are live, and
# gRPC's fork support can abort such a child before exec (see muzero/operations/cluster.py).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import pytest  # noqa: E402  (after the variable, which gRPC reads at import)

from muzero.operations.redis_process import RedisServer  # noqa: E402
from muzero.storage.checkpoint import CheckpointManager  # noqa: E402


@pytest.fixture(scope="session")
def redis_shards():
    """Three redis-server processes shared by the session; tests use distinct experiments."""
    servers = [RedisServer().start() for _ in range(3)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def go5_checkpoint(tmp_path_factory):
    """A few learner steps of the go7 preset on a 5x5 board: enough weights to search with."""
    run_dir = tmp_path_factory.mktemp("run") / "go5"
    settings = [
        "env.id=go5",
        "env.num_envs=4",
        "training.max_env_steps=120",
        "replay.min_size=60",
        "replay.segment_length=50",
        "training.td_steps=50",
        "training.checkpoint_interval=2",
        "training.train_ratio=1.0",
        "training.batch_size=16",
        "search.num_simulations=2",
        "search.fast_simulations=1",
    ]
    command = [sys.executable, "-m", "muzero.cli", "train", "go7", "--run-dir", str(run_dir)]
    for setting in settings:
        command += ["--set", setting]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return CheckpointManager(run_dir).latest()
