"""The checkpoint service on loopback: latest, resumable verified pulls, watch, bad requests."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import grpc
import pytest
import torch

from muzero import config as config_module
from muzero.nn.networks import build_network
from muzero.storage.checkpoint import CheckpointError, CheckpointManager, load_checkpoint
from muzero.transport.checkpoint_client import CheckpointClient
from muzero.transport.checkpoint_server import CHUNK_BYTES, CheckpointServicer, add_to_server
from muzero.transport.grpc_util import make_channel, make_server
from muzero.wire.v1 import checkpoint_pb2, checkpoint_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent


def big_config():
    # Wide enough that the weights span several 1 MiB chunks.
    return config_module.load("cartpole", ["network.hidden_size=384", "network.num_layers=2"])


class Served:
    def __init__(self, servicer: CheckpointServicer):
        self.servicer = servicer
        self.server = make_server()
        add_to_server(self.server, servicer)
        self.port = self.server.add_port("127.0.0.1:0")
        self.server.start()
        self.target = f"127.0.0.1:{self.port}"

    def stop(self):
        self.servicer.stop()
        self.server.stop(grace=None).wait()


@pytest.fixture
def run_dir(tmp_path):
    config = big_config()
    torch.manual_seed(0)
    network = build_network(config.network, (4,), 2)
    manager = CheckpointManager(tmp_path / "run", keep_last=3)
    for step in (100, 200):
        with torch.no_grad():
            for parameter in network.parameters():
                parameter.add_(0.01)
        manager.save(network, config, step=step, version=step)
    return tmp_path / "run"


@pytest.fixture
def served(run_dir):
    running = Served(CheckpointServicer(run_dir, poll_s=0.1))
    yield running
    running.stop()


def test_latest_and_verified_pull(served, run_dir, tmp_path):
    with CheckpointClient(served.target) as client:
        info = client.latest()
        assert (info.version, info.step) == (200, 200)
        assert info.size > 2 * CHUNK_BYTES
        path = client.pull(tmp_path / "out")
        older = client.pull(tmp_path / "older", version=100)
    source = run_dir / "checkpoints" / "step_000200.safetensors"
    assert path.read_bytes() == source.read_bytes()
    loaded = load_checkpoint(path)
    assert loaded.version == 200
    assert load_checkpoint(older).version == 100
    assert not list((tmp_path / "out").glob(".pull-*"))


def test_cli_and_a_client_built_from_the_proto_alone_get_the_same_file(served, tmp_path):
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "muzero.cli",
            "checkpoint",
            "pull",
            "--server",
            served.target,
            "--out",
            str(tmp_path / "cli"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert "verified" in cli.stdout
    pulled = tmp_path / "cli" / "step_000200.safetensors"

    # Generate stubs from the .proto in a folder of their own and run a client that imports
    # nothing of muzero: what a user in any language would do.
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "checkpoint.proto").write_text((ROOT / "proto/muzero/v1/checkpoint.proto").read_text())
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{stubs}",
            f"--python_out={stubs}",
            f"--grpc_python_out={stubs}",
            str(stubs / "checkpoint.proto"),
        ],
        check=True,
    )
    script = textwrap.dedent(f"""
        import hashlib, sys
        sys.path.insert(0, {str(stubs)!r})
        import grpc, checkpoint_pb2, checkpoint_pb2_grpc
        assert "muzero" not in sys.modules
        stub = checkpoint_pb2_grpc.CheckpointServiceStub(grpc.insecure_channel({served.target!r}))
        data, info = bytearray(), None
        for chunk in stub.Fetch(checkpoint_pb2.FetchRequest(), timeout=60):
            if chunk.HasField("info"):
                info = chunk.info
            data += chunk.data
        assert hashlib.sha256(data).hexdigest() == info.sha256, "digest mismatch"
        open({str(tmp_path / "plain.safetensors")!r}, "wb").write(data)
    """)
    plain = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr
    assert (tmp_path / "plain.safetensors").read_bytes() == pulled.read_bytes()
    assert load_checkpoint(pulled).version == 200


class TamperingServicer(CheckpointServicer):
    """Flips one byte of the second chunk, as a broken proxy or disk would."""

    def Fetch(self, request, context):
        for index, chunk in enumerate(super().Fetch(request, context)):
            if index == 1:
                data = bytearray(chunk.data)
                data[10] ^= 0xFF
                chunk.data = bytes(data)
            yield chunk


def test_a_tampered_chunk_is_rejected_and_nothing_kept(run_dir, tmp_path):
    served = Served(TamperingServicer(run_dir))
    try:
        with CheckpointClient(served.target) as client, pytest.raises(CheckpointError, match="failed verification"):
            client.pull(tmp_path / "out")
    finally:
        served.stop()
    assert list((tmp_path / "out").iterdir()) == []


class FlakyServicer(CheckpointServicer):
    """Breaks the first stream after one chunk; records the offsets asked for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.offsets = []

    def Fetch(self, request, context):
        self.offsets.append(request.offset)
        for index, chunk in enumerate(super().Fetch(request, context)):
            yield chunk
            if len(self.offsets) == 1 and index == 0:
                context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset (test)")


def test_a_broken_stream_resumes_from_its_offset(run_dir, tmp_path):
    servicer = FlakyServicer(run_dir)
    served = Served(servicer)
    try:
        with CheckpointClient(served.target) as client:
            path = client.pull(tmp_path / "out")
    finally:
        served.stop()
    assert servicer.offsets == [0, CHUNK_BYTES]
    assert load_checkpoint(path).version == 200


def test_watch_announces_a_new_version(served, run_dir):
    announced = []
    ready = threading.Event()

    def watch():
        with CheckpointClient(served.target) as client:
            for info in client.watch(after_version=200):
                announced.append(info.version)
                ready.set()
                return

    thread = threading.Thread(target=watch)
    thread.start()
    config = big_config()
    CheckpointManager(run_dir, keep_last=3).save(build_network(config.network, (4,), 2), config, step=300, version=300)
    served.servicer.publish()
    assert ready.wait(timeout=30)
    thread.join(timeout=30)
    assert announced == [300]


def test_bad_requests(served):
    with make_channel(served.target) as channel:
        stub = checkpoint_pb2_grpc.CheckpointServiceStub(channel)
        for request, code, text in [
            (checkpoint_pb2.FetchRequest(version=-1), grpc.StatusCode.INVALID_ARGUMENT, "version: must be >= 0"),
            (checkpoint_pb2.FetchRequest(version=150), grpc.StatusCode.NOT_FOUND, "available: 100, 200"),
            (checkpoint_pb2.FetchRequest(version=200, offset=10**9), grpc.StatusCode.INVALID_ARGUMENT, "offset"),
        ]:
            with pytest.raises(grpc.RpcError) as caught:
                list(stub.Fetch(request, timeout=10))
            assert caught.value.code() == code and text in caught.value.details()


def test_latest_of_an_empty_directory_is_none(tmp_path):
    served = Served(CheckpointServicer(tmp_path / "empty"))
    try:
        with CheckpointClient(served.target) as client:
            assert client.latest() is None
    finally:
        served.stop()


def test_digest_helper_agrees_with_the_header(run_dir):
    weights = run_dir / "checkpoints" / "step_000100.safetensors"
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == load_checkpoint(weights).header["sha256"]
