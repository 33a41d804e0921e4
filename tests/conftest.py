from __future__ import annotations

import os

# Before any test module imports grpc: tests fork service processes while gRPC calls are live, and
# gRPC's fork support can abort such a child before exec (see muzero/operations/cluster.py).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import pytest  # noqa: E402  (after the variable, which gRPC reads at import)

from muzero.operations.redis_process import RedisServer  # noqa: E402


@pytest.fixture(scope="session")
def redis_shards():
    """Three redis-server processes shared by the session; tests use distinct experiments."""
    servers = [RedisServer().start() for _ in range(3)]
    yield servers
    for server in servers:
        server.stop()
