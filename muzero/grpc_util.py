"""What every gRPC server and client of muzero shares: options, health, bad-input answers."""

from __future__ import annotations

import os
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
