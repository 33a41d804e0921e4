"""What every gRPC server and client of muzero shares: options, health, bad-input answers."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Iterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from muzero.transport.guard import Guard, StreamLimits, thread_pool
from muzero.transport.security import ClientSecurity, ServerSecurity

MAX_MESSAGE_BYTES = int(os.environ.get("MUZERO_GRPC_MAX_MESSAGE_BYTES", 64 * 2**20))
"""Largest message a muzero server accepts or sends; larger ones fail with RESOURCE_EXHAUSTED."""

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_permit_without_calls", 1),
]

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Ping idle connections so one whose peer vanished (a killed pod, a cut network) closes
    # and frees its streams' slots, rather than waiting for TCP to give up after hours.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    # Clients ping every 30 s, idle or not (CHANNEL_OPTIONS): allow it rather than GOAWAY them.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
]


class Server:
    """A gRPC server whose services are registered through a :class:`Guard` and whose ports
    serve TLS and check tokens when ``security`` says so. Other attributes (``start``,
    ``stop``, ``wait_for_termination``) are the grpc.Server's."""

    def __init__(
        self,
        limits: StreamLimits | None = None,
        registry: CollectorRegistry | None = None,
        security: ServerSecurity | None = None,
    ):
        self.limits = limits if limits is not None else StreamLimits.from_env()
        self.security = security if security is not None else ServerSecurity.from_env()
        self.guard = Guard(self.limits, registry)
        refusals = self.guard.metrics.auth_refused
        interceptors = self.security.interceptors(lambda method, reason: refusals.labels(method, reason).inc())
        self.grpc = grpc.server(thread_pool(self.limits), options=SERVER_OPTIONS, interceptors=interceptors)

    def add_service(self, servicer: object, service, transient: tuple[type[BaseException], ...] = ()) -> None:
        self.guard.add_service(self.grpc, servicer, service, transient)

    def add_port(self, address: str) -> int:
        """Listen on ``address`` with TLS if configured; the bound port, 0 if it is taken."""
        credentials = self.security.server_credentials()
        try:
            if credentials is None:
                return self.grpc.add_insecure_port(address)
            return self.grpc.add_secure_port(address, credentials)
        except RuntimeError:  # grpcio >= 1.60 raises where older versions returned 0
            return 0

    def __getattr__(self, name: str):
        return getattr(self.grpc, name)


def make_server(
    limits: StreamLimits | None = None,
    registry: CollectorRegistry | None = None,
    security: ServerSecurity | None = None,
) -> Server:
    return Server(limits, registry, security)


def add_health(server: Server, service_names: list[str]) -> health.HealthServicer:
    """The standard gRPC health service, SERVING for "" and each named service."""
    servicer = health.HealthServicer()
    server.add_service(servicer, health_pb2.DESCRIPTOR.services_by_name["Health"])
    for name in ["", *service_names]:
        servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return servicer


def make_channel(target: str, security: ClientSecurity | None = None) -> grpc.Channel:
    """A channel to ``target``: TLS and a token when ``security`` (default: from the
    environment, MUZERO_TLS_CA, MUZERO_TOKEN, ...) says so, else plaintext."""
    security = security if security is not None else ClientSecurity.from_env()
    return security.channel(target, CHANNEL_OPTIONS)


def check_health(target: str, service: str = "", timeout_s: float = 5.0, security: ClientSecurity | None = None) -> str:
    """The serving status name of ``service`` at ``target`` (e.g. "SERVING")."""
    with make_channel(target, security) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


# --- calling: retries with backoff, and the shape every client shares --------------------

log = logging.getLogger("muzero.grpc")

# Transient by contract: servers answer a restarting store UNAVAILABLE, a full server
# RESOURCE_EXHAUSTED, an idle stream's cut CANCELLED. INTERNAL and UNKNOWN mean a bug or a
# request the server cannot handle: retrying would only repeat it.
_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.CANCELLED,
}


def backoff_delays(first_s: float = 0.05, cap_s: float = 5.0) -> Iterator[float]:
    """Exponential backoff with full jitter."""
    delay = first_s
    while True:
        yield random.uniform(0, delay)
        delay = min(delay * 2, cap_s)


def describe(error: BaseException) -> str:
    """A short name for a failure: the gRPC status code, or the exception itself."""
    if isinstance(error, grpc.RpcError):
        return error.code().name
    return f"{type(error).__name__}: {error}"


def call_with_retries(fn, *, attempts: int = 6, what: str = "call"):
    """Run ``fn()`` (a unary call with its own deadline), retrying transient failures."""
    delays = backoff_delays()
    for attempt in range(attempts):
        try:
            return fn()
        except grpc.RpcError as error:
            if error.code() not in _RETRYABLE or attempt == attempts - 1:
                raise
            log.info("%s failed (%s); retrying", what, error.code().name)
            time.sleep(next(delays))
    raise AssertionError("unreachable")


class GrpcClient:
    """A channel to ``target`` and the stub of ``stub_class``; every call passes ``timeout_s``."""

    stub_class: type

    def __init__(self, target: str, timeout_s: float = 30.0, security: ClientSecurity | None = None):
        self.target = target
        self.timeout_s = timeout_s
        self._channel = make_channel(target, security)
        self._stub = self.stub_class(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
