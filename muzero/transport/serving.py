"""A gRPC server with the standard health service and a Prometheus /metrics endpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import HealthServicer
from prometheus_client import CollectorRegistry, start_http_server

from muzero.transport.grpc_util import add_health, make_server


@dataclass
class Serving:
    """A started gRPC server with its health service."""

    server: grpc.Server
    health: HealthServicer
    port: int
    names: tuple[str, ...]

    def set_serving(self) -> None:
        for name in self.names:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace_s: float) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace=grace_s).wait()


def serve(
    host: str,
    port: int,
    service_name: str,
    registry: CollectorRegistry,
    metrics_port: int,
    register: Callable[[grpc.Server], None] | None = None,
    serving: bool = True,
) -> Serving | None:
    """Start /metrics (unless ``metrics_port`` is 0) and a gRPC server on ``host:port`` with the
    health service and, through ``register``, the service's own; None if the port is taken.
    ``serving=False`` keeps health NOT_SERVING until ``set_serving`` (workers still loading)."""
    server = make_server(max_workers=16 if register else 2)
    if register is not None:
        register(server)
    health = add_health(server, [service_name])
    names = ("", service_name)
    if not serving:
        for name in names:
            health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        return None
    if metrics_port:
        start_http_server(metrics_port, addr=host, registry=registry)
    server.start()
    return Serving(server, health, bound, names)
