"""A gRPC server with the standard health service and a Prometheus /metrics endpoint."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import HealthServicer
from prometheus_client import CollectorRegistry, start_http_server

from muzero.transport.grpc_util import Server, add_health, make_server
from muzero.transport.guard import StreamLimits
from muzero.transport.security import ServerSecurity

log = logging.getLogger("muzero.grpc")


@dataclass
class Serving:
    """A started gRPC server with its health service."""

    server: Server
    health: HealthServicer
    port: int
    names: tuple[str, ...]
    health_server: Server | None = None  # plaintext, health only: for probes when the port serves TLS

    def set_serving(self) -> None:
        for name in self.names:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace_s: float) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace=grace_s).wait()
        if self.health_server is not None:
            self.health_server.stop(grace=None).wait()


def serve(
    host: str,
    port: int,
    service_name: str,
    registry: CollectorRegistry,
    metrics_port: int,
    register: Callable[[Server], None] | None = None,
    serving: bool = True,
) -> Serving | None:
    """Start /metrics (unless ``metrics_port`` is 0) and a gRPC server on ``host:port`` with the
    health service and, through ``register``, the service's own; None if the port is taken.
    Stream limits, TLS and tokens come from the environment (MUZERO_GRPC_*, MUZERO_TLS_*,
    MUZERO_TOKENS_FILE). ``serving=False`` keeps health NOT_SERVING until ``set_serving``.

    MUZERO_PROBE_PORT (when set, not 0) adds a plaintext port that serves the health service
    and nothing else: Kubernetes' gRPC probes speak neither TLS nor tokens."""
    server = make_server(registry=registry)
    if register is not None:
        register(server)
    health = add_health(server, [service_name])
    names = ("", service_name)
    if not serving:
        for name in names:
            health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    bound = server.add_port(f"{host}:{port}")
    if bound == 0:
        return None
    health_server = None
    probe_port = int(os.environ.get("MUZERO_PROBE_PORT", 0) or 0)
    if probe_port:
        health_server = make_server(StreamLimits(max_streams=4, unary_workers=2), security=ServerSecurity())
        health_server.add_service(health, health_pb2.DESCRIPTOR.services_by_name["Health"])
        if health_server.add_port(f"{host}:{probe_port}") == 0:
            server.stop(grace=None)
            return None
    if metrics_port:
        start_http_server(metrics_port, addr=host, registry=registry)
    server.start()
    if health_server is not None:
        health_server.start()
    limits = server.limits
    log.info(
        "gRPC on %s:%d (%s; %d stream slots, streams idle for %.0f s closed)",
        host,
        bound,
        server.security.describe(),
        limits.max_streams,
        limits.idle_s,
    )
    return Serving(server, health, bound, names, health_server)
