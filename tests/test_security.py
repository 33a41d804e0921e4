"""TLS and tokens on real servers over loopback: what is refused, what rotates, what never leaks."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, generate_latest

from muzero import config as config_module
from muzero.nn.networks import build_network
from muzero.storage.checkpoint import CheckpointManager
from muzero.transport.checkpoint_client import CheckpointClient
from muzero.transport.grpc_util import make_channel
from muzero.transport.security import ClientSecurity, SecurityError, ServerSecurity, parse_tokens
from muzero.wire import codec
from muzero.wire.v1 import checkpoint_pb2, checkpoint_pb2_grpc, replay_pb2, replay_pb2_grpc
from tests.certs import Authority
from tests.test_replay_service import segment_for, service_config
from tests.test_service_edges import Servers
from tests.waiting import wait_for

SERVER_NAME = "muzero-learner.muzero.svc"
ADMIN = "adm1n-7f3c9b2e4d5a6b7c8d9e"
READER = "r3ader-1a2b3c4d5e6f7a8b9c0d"


@pytest.fixture
def run_dir(tmp_path):
    config = config_module.load("cartpole", [])
    network = build_network(config.network, (4,), 2)
    torch.manual_seed(0)
    CheckpointManager(tmp_path / "run").save(network, config, step=10, version=10)
    return tmp_path / "run"


@pytest.fixture
def authority(tmp_path):
    return Authority.create(tmp_path / "pki")


def start(redis_shards, run_dir, security: ServerSecurity, registry=None) -> Servers:
    config = service_config(redis_shards, f"sec-{uuid.uuid4().hex[:8]}")
    return Servers(config, run_dir, security=security, registry=registry)


def health_check(target: str, security: ClientSecurity, timeout_s: float = 10.0) -> str:
    with make_channel(target, security) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def refused(target: str, security: ClientSecurity) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as error:
        health_check(target, security, timeout_s=10)
    return error.value.code()


# --- TLS -------------------------------------------------------------------------------------


def test_tls_verifies_the_server_and_refuses_what_it_must(redis_shards, run_dir, authority, tmp_path):
    cert, key = authority.issue("server", (SERVER_NAME,))
    servers = start(redis_shards, run_dir, ServerSecurity(cert_file=str(cert), key_file=str(key)))
    target = servers.target
    good = ClientSecurity(tls=True, ca_file=str(authority.ca_file), server_name=SERVER_NAME)
    try:
        assert health_check(target, good) == "SERVING"
        with CheckpointClient(target, security=good) as client:
            assert client.latest().version == 10
        assert (
            refused(target, ClientSecurity(tls=True, server_name=SERVER_NAME)) == grpc.StatusCode.UNAVAILABLE
        )  # no CA
        other = Authority.create(tmp_path / "other", "someone-else")
        assert refused(target, ClientSecurity(tls=True, ca_file=str(other.ca_file), server_name=SERVER_NAME)) == (
            grpc.StatusCode.UNAVAILABLE
        )
        wrong_name = ClientSecurity(tls=True, ca_file=str(authority.ca_file), server_name="muzero-replay.other.svc")
        assert refused(target, wrong_name) == grpc.StatusCode.UNAVAILABLE
        assert refused(target, ClientSecurity()) == grpc.StatusCode.UNAVAILABLE  # plaintext to a TLS port
    finally:
        servers.stop()


def test_an_expired_server_certificate_is_refused(redis_shards, run_dir, authority):
    cert, key = authority.issue("expired", (SERVER_NAME,), expired=True)
    servers = start(redis_shards, run_dir, ServerSecurity(cert_file=str(cert), key_file=str(key)))
    try:
        client = ClientSecurity(tls=True, ca_file=str(authority.ca_file), server_name=SERVER_NAME)
        assert refused(servers.target, client) == grpc.StatusCode.UNAVAILABLE
    finally:
        servers.stop()


def test_mtls_refuses_a_client_without_a_certificate(redis_shards, run_dir, authority):
    cert, key = authority.issue("server", (SERVER_NAME,))
    client_cert, client_key = authority.issue("actor", ("actor-0",), client=True)
    security = ServerSecurity(cert_file=str(cert), key_file=str(key), client_ca_file=str(authority.ca_file))
    servers = start(redis_shards, run_dir, security)
    anonymous = ClientSecurity(tls=True, ca_file=str(authority.ca_file), server_name=SERVER_NAME)
    try:
        assert refused(servers.target, anonymous) == grpc.StatusCode.UNAVAILABLE
        with_cert = ClientSecurity(
            tls=True,
            ca_file=str(authority.ca_file),
            server_name=SERVER_NAME,
            cert_file=str(client_cert),
            key_file=str(client_key),
        )
        assert health_check(servers.target, with_cert) == "SERVING"
    finally:
        servers.stop()


def test_a_certificate_rotated_on_disk_is_served_without_a_restart(redis_shards, run_dir, authority, tmp_path):
    cert, key = authority.issue("server", (SERVER_NAME,))
    live_cert, live_key = tmp_path / "tls.crt", tmp_path / "tls.key"
    live_cert.write_bytes(cert.read_bytes())
    live_key.write_bytes(key.read_bytes())
    servers = start(redis_shards, run_dir, ServerSecurity(cert_file=str(live_cert), key_file=str(live_key)))
    old = ClientSecurity(tls=True, ca_file=str(authority.ca_file), server_name=SERVER_NAME)
    try:
        assert health_check(servers.target, old) == "SERVING"
        renewed = Authority.create(tmp_path / "renewed", "renewed-ca")
        new_cert, new_key = renewed.issue("server", (SERVER_NAME,))
        # As the kubelet updates a mounted Secret: new files renamed into place.
        for source, live in ((new_key, live_key), (new_cert, live_cert)):
            staged = live.with_suffix(".new")
            staged.write_bytes(source.read_bytes())
            os.replace(staged, live)
        new = ClientSecurity(tls=True, ca_file=str(renewed.ca_file), server_name=SERVER_NAME)

        def serves_the_new_certificate() -> bool:
            try:
                return health_check(servers.target, new, timeout_s=5) == "SERVING"
            except grpc.RpcError:
                return False

        wait_for(serves_the_new_certificate, 60, "the renewed certificate served", interval_s=0.5)
        assert refused(servers.target, old) == grpc.StatusCode.UNAVAILABLE  # a new connection sees the new one
    finally:
        servers.stop()


# --- tokens ----------------------------------------------------------------------------------


def tokens_file(tmp_path, *lines: str):
    path = tmp_path / "tokens"
    path.write_text("# name scope token\n" + "\n".join(lines) + "\n")
    return path


def test_tokens_refuse_missing_wrong_and_out_of_scope_calls_and_store_nothing(
    redis_shards, run_dir, tmp_path, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    path = tokens_file(tmp_path, f"admin all {ADMIN}", f"puller read {READER}")
    registry = CollectorRegistry()
    servers = start(redis_shards, run_dir, ServerSecurity(tokens_file=str(path)), registry=registry)
    target = servers.target
    segment = segment_for(servers.spec, np.random.default_rng(0), steps=3)
    message = codec.segment_to_proto(segment, servers.config.name)

    def codes(token: str | None) -> dict[str, grpc.StatusCode]:
        got = {}
        with make_channel(target, ClientSecurity(token=token)) as channel:
            replay = replay_pb2_grpc.ReplayServiceStub(channel)
            checkpoints = checkpoint_pb2_grpc.CheckpointServiceStub(channel)
            calls = {
                "AppendSegments": lambda: list(replay.AppendSegments(iter([message]), timeout=10)),
                "WriteTargets": lambda: replay.WriteTargets(
                    codec.targets_to_proto(segment.segment_id, segment.policies, segment.root_values, 3), timeout=10
                ),
                "Stats": lambda: replay.Stats(replay_pb2.StatsRequest(), timeout=10),
                "Latest": lambda: checkpoints.Latest(checkpoint_pb2.LatestRequest(), timeout=10),
                "Fetch": lambda: list(checkpoints.Fetch(checkpoint_pb2.FetchRequest(), timeout=10)),
                "Health": lambda: health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=10
                ),
            }
            for name, call in calls.items():
                try:
                    call()
                    got[name] = grpc.StatusCode.OK
                except grpc.RpcError as error:
                    got[name] = error.code()
                    assert ADMIN not in (error.details() or "") and READER not in (error.details() or "")
        return got

    try:
        unauthenticated = grpc.StatusCode.UNAUTHENTICATED
        for token in (None, "not-a-token-at-all-0000", ADMIN[:-1]):
            got = codes(token)
            assert got["Health"] == grpc.StatusCode.OK  # probes need no token
            assert {k: v for k, v in got.items() if k != "Health"} == dict.fromkeys(
                ["AppendSegments", "WriteTargets", "Stats", "Latest", "Fetch"], unauthenticated
            ), token
        reader = codes(READER)
        assert reader["Latest"] == reader["Fetch"] == grpc.StatusCode.OK
        for name in ("AppendSegments", "WriteTargets", "Stats"):
            assert reader[name] == grpc.StatusCode.PERMISSION_DENIED, name
        assert servers.store.num_segments == 0  # nothing refused was stored
        admin = codes(ADMIN)
        assert admin["AppendSegments"] == admin["Stats"] == admin["Latest"] == grpc.StatusCode.OK
        assert servers.store.num_segments == 1
        metrics = generate_latest(registry).decode()
        assert 'muzero_grpc_unauthorized_calls_total{method="muzero.v1.ReplayService/Stats",reason="scope"} 1.0' in (
            metrics
        )
    finally:
        servers.stop()
    logs = caplog.text + "".join(capfd.readouterr())
    for secret in (ADMIN, READER, ADMIN[:-1]):
        assert secret not in logs and secret not in metrics


def test_tokens_rotate_without_a_restart(redis_shards, run_dir, tmp_path):
    path = tokens_file(tmp_path, f"old all {ADMIN}")
    servers = start(redis_shards, run_dir, ServerSecurity(tokens_file=str(path)))

    def latest(token: str) -> grpc.StatusCode:
        with CheckpointClient(servers.target, security=ClientSecurity(token=token)) as client:
            try:
                client.latest()
                return grpc.StatusCode.OK
            except grpc.RpcError as error:
                return error.code()

    try:
        assert latest(ADMIN) == grpc.StatusCode.OK
        staged = tmp_path / "tokens.new"
        staged.write_text(f"new read {READER}\n")
        os.replace(staged, path)
        wait_for(lambda: latest(READER) == grpc.StatusCode.OK, 30, "the new token accepted")
        assert latest(ADMIN) == grpc.StatusCode.UNAUTHENTICATED
    finally:
        servers.stop()


def test_tls_and_a_token_together_pull_a_checkpoint(redis_shards, run_dir, authority, tmp_path):
    cert, key = authority.issue("server", (SERVER_NAME,))
    path = tokens_file(tmp_path, f"puller read {READER}")
    security = ServerSecurity(cert_file=str(cert), key_file=str(key), tokens_file=str(path))
    servers = start(redis_shards, run_dir, security)
    client_security = ClientSecurity(tls=True, ca_file=str(authority.ca_file), server_name=SERVER_NAME, token=READER)
    try:
        with CheckpointClient(servers.target, security=client_security) as client:
            pulled = client.pull(tmp_path / "pulled")
        assert pulled.read_bytes() == sorted((run_dir / "checkpoints").glob("*.safetensors"))[-1].read_bytes()
    finally:
        servers.stop()


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "no tokens"),
        ("a all short\n", "shorter than 16"),
        (f"a all {ADMIN}\na read {READER}\n", "appears twice"),
        (f"a everything {ADMIN}\n", "expected all, read"),
        (f"a all {ADMIN} extra\n", "expected 'NAME SCOPE TOKEN'"),
    ],
)
def test_a_bad_tokens_file_is_refused_naming_the_line_not_the_token(text, problem):
    with pytest.raises(SecurityError, match=problem) as error:
        parse_tokens(text, "tokens")
    assert ADMIN not in str(error.value) and READER not in str(error.value)


def test_half_configured_tls_is_refused():
    with pytest.raises(SecurityError, match="MUZERO_TLS_CERT and MUZERO_TLS_KEY"):
        ServerSecurity.from_env({"MUZERO_TLS_CERT": "/x.crt"})
    with pytest.raises(SecurityError, match="MUZERO_TLS_CLIENT_CA"):
        ServerSecurity.from_env({"MUZERO_TLS_CLIENT_CA": "/ca.pem"})


# --- the whole cluster with TLS and tokens on ------------------------------------------------


def test_a_cluster_with_tls_and_tokens_trains_and_an_outside_client_pulls(tmp_path, monkeypatch):
    import subprocess
    import sys

    from muzero.operations.cluster import ROOT, Cluster, scrape
    from muzero.operations.redis_process import free_port
    from tests.test_services import FAST

    authority = Authority.create(tmp_path / "pki")
    cert, key = authority.issue("server", ("localhost",))
    internal = "1nternal-9e8d7c6b5a4f3e2d1c0b"
    path = tokens_file(tmp_path, f"services all {internal}", f"puller read {READER}")
    server_env = {"MUZERO_TLS_CERT": str(cert), "MUZERO_TLS_KEY": str(key), "MUZERO_TOKENS_FILE": str(path)}
    probe_ports = {kind: free_port() for kind in ("replay", "learner")}
    extra = {kind: dict(server_env) for kind in ("replay", "learner", "actor", "reanalyze")}
    for kind, port in probe_ports.items():
        extra[kind]["MUZERO_PROBE_PORT"] = str(port)
    # What every process of the cluster (and this one, which checks their health) uses as a client.
    monkeypatch.setenv("MUZERO_TLS_CA", str(authority.ca_file))
    monkeypatch.setenv("MUZERO_TLS_SERVER_NAME", "localhost")
    monkeypatch.setenv("MUZERO_TOKEN", internal)
    cluster = Cluster("cartpole", FAST, tmp_path / "cluster", actors=1, reanalyze=1, shards=1, extra_env=extra)
    cluster.start(timeout_s=240)
    try:
        learner = cluster.layout.service("learner")
        wait_for(
            lambda: scrape(learner.metrics_url).get("muzero_learner_model_version", 0) > 0,
            240,
            "a checkpoint trained from segments sent over TLS",
        )
        for kind, port in probe_ports.items():  # what a kubelet's gRPC probe sees: plaintext, no token
            assert health_check(f"127.0.0.1:{port}", ClientSecurity()) == "SERVING", kind
        assert refused(cluster.checkpoint_target, ClientSecurity()) == grpc.StatusCode.UNAVAILABLE
        outside = {k: v for k, v in os.environ.items() if not k.startswith("MUZERO_TLS") and k != "MUZERO_TOKEN"}
        pull = [sys.executable, "-m", "muzero.cli", "checkpoint", "pull", "--server", cluster.checkpoint_target]
        pull += ["--out", str(tmp_path / "pulled"), "--ca", str(authority.ca_file), "--server-name", "localhost"]
        done = subprocess.run(
            pull, env={**outside, "MUZERO_TOKEN": READER}, capture_output=True, text=True, timeout=120, cwd=ROOT
        )
        assert done.returncode == 0, done.stderr
        assert "verified" in done.stdout
        denied = subprocess.run(pull, env=outside, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert denied.returncode == 1 and "UNAUTHENTICATED" in denied.stderr
    finally:
        cluster.stop()
    logs = "".join(Path(s.log).read_text() for s in cluster.layout.services)
    assert internal not in logs and READER not in logs


def test_a_plain_grpcio_client_as_readme_shows_pulls_with_tls_and_a_token(redis_shards, run_dir, authority, tmp_path):
    # The README's outside client: only grpcio's own credentials, no muzero client code.
    cert, key = authority.issue("server", ("localhost",))
    path = tokens_file(tmp_path, f"puller read {READER}")
    servers = start(
        redis_shards, run_dir, ServerSecurity(cert_file=str(cert), key_file=str(key), tokens_file=str(path))
    )
    try:
        credentials = grpc.composite_channel_credentials(
            grpc.ssl_channel_credentials(root_certificates=authority.ca_file.read_bytes()),
            grpc.access_token_call_credentials(READER),
        )
        with grpc.secure_channel(f"localhost:{servers.port}", credentials) as channel:
            stub = checkpoint_pb2_grpc.CheckpointServiceStub(channel)
            assert stub.Latest(checkpoint_pb2.LatestRequest(), timeout=10).version == 10
    finally:
        servers.stop()
