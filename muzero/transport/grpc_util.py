"""What every gRPC server and client of muzero shares: options, health, bad-input answers."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

MAX_MESSAGE_BYTES = int(os.environ.get("MUZERO_GRPC_MAX_MESSAGE_BYTES", 64 * 2**20))
"""Largest message a muzero server accepts or sends; larger ones fail with RESOURCE_EXHAUSTED."""

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


def make_server(max_workers: int = 16) -> grpc.Server:
    return grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=CHANNEL_OPTIONS)


def add_health(server: grpc.Server, service_names: list[str]) -> health.HealthServicer:
    """The standard gRPC health service, SERVING for "" and each named service."""
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for name in ["", *service_names]:
        servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return servicer


def make_channel(target: str) -> grpc.Channel:
    return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)


def check_health(target: str, service: str = "", timeout_s: float = 5.0) -> str:
    """The serving status name of ``service`` at ``target`` (e.g. "SERVING")."""
    with make_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


# --- calling: retries with backoff, and the shape every client shares --------------------

log = logging.getLogger("muzero.grpc")

_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
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

    def __init__(self, target: str, timeout_s: float = 30.0):
        self.target = target
        self.timeout_s = timeout_s
        self._channel = make_channel(target)
        self._stub = self.stub_class(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
