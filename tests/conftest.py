from __future__ import annotations

import pytest

from muzero.operations.redis_process import RedisServer


@pytest.fixture(scope="session")
def redis_shards():
    """Three redis-server processes shared by the session; tests use distinct experiments."""
    servers = [RedisServer().start() for _ in range(3)]
    yield servers
    for server in servers:
        server.stop()
