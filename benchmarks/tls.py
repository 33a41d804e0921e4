"""What TLS and a bearer token cost: the same servers with security off and on, same run.

    python benchmarks/tls.py [--repeats 7] [--megabytes 50] [--batches 60]

Measures, alternating plaintext and TLS + token (so machine drift hits both), medians over
``--repeats``:
- a checkpoint pull of ``--megabytes`` MB from the checkpoint service (seconds; each
  measurement the median of 3 pulls);
- replay sampling through the replay service: Atari-shaped examples (4 stacked 84x84 uint8
  frames, 256 per batch, about 7 MB a batch: the heaviest traffic the system carries), from
  the in-memory store so that only the transport differs (examples per second).
Servers and client share this machine and loopback; TLS is TLS 1.3 with an ECDSA P-256
certificate (a throwaway CA made here), the token is checked on every call.
Target (issue 11): security on at most 10% slower. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from muzero import config as config_module  # noqa: E402
from muzero.nn.networks import build_network  # noqa: E402
from muzero.storage.checkpoint import CheckpointManager  # noqa: E402
from muzero.storage.replay.factory import EnvSpec, build_store  # noqa: E402
from muzero.transport.checkpoint_client import CheckpointClient  # noqa: E402
from muzero.transport.checkpoint_server import CheckpointServicer  # noqa: E402
from muzero.transport.checkpoint_server import add_to_server as add_checkpoints  # noqa: E402
from muzero.transport.grpc_util import make_server  # noqa: E402
from muzero.transport.replay_client import ReplayClient  # noqa: E402
from muzero.transport.replay_server import ReplayServicer  # noqa: E402
from muzero.transport.replay_server import add_to_server as add_replay  # noqa: E402
from muzero.transport.security import ClientSecurity, ServerSecurity  # noqa: E402
from tests.certs import Authority  # noqa: E402
from tests.factories import random_segment  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
FRAME = (84, 84)
STACK = 4
BATCH = 256


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def securities(folder: Path) -> dict[str, tuple[ServerSecurity, ClientSecurity]]:
    authority = Authority.create(folder / "pki")
    cert, key = authority.issue("server", ("localhost",))
    tokens = folder / "tokens"
    tokens.write_text(f"bench all {TOKEN}\n")
    return {
        "plaintext": (ServerSecurity(), ClientSecurity()),
        "tls_token": (
            ServerSecurity(cert_file=str(cert), key_file=str(key), tokens_file=str(tokens)),
            ClientSecurity(tls=True, ca_file=str(authority.ca_file), server_name="localhost", token=TOKEN),
        ),
    }


def checkpoint_run_dir(folder: Path, megabytes: float) -> Path:
    width = int(math.sqrt(megabytes * 1e6 / 4 / 6))  # a 2-layer MLP of about that many float32 bytes
    while True:
        config = config_module.load("cartpole", [f"network.hidden_size={width}", "network.num_layers=2"])
        network = build_network(config.network, (4,), 2)
        if sum(p.numel() for p in network.parameters()) * 4 >= megabytes * 1e6:
            break
        width += 16
    CheckpointManager(folder / "run").save(network, config, step=1, version=1)
    return folder / "run"


def atari_replay():
    config = config_module.load(
        "cartpole",
        ["name=tls-bench", f"env.frame_stack={STACK}", "replay.capacity=20000", "replay.min_size=1"],
    )
    spec = EnvSpec(num_actions=6, observation_shape=FRAME, observation_dtype=np.dtype(np.uint8), num_players=1)
    store = build_store(config, spec)
    rng = np.random.default_rng(0)
    for _ in range(40):
        segment = random_segment(rng, num_actions=6, frame_shape=FRAME, frame_stack=STACK, steps=200)
        frames = rng.integers(0, 256, segment.observations.shape, dtype=np.uint8)
        store.insert(dataclasses.replace(segment, observations=frames))  # incompressible, like real frames
    return config, spec, store


def serve(security: ServerSecurity, register) -> tuple:
    server = make_server(security=security)
    register(server)
    port = server.add_port("127.0.0.1:0")
    server.start()
    return server, f"localhost:{port}"


def pull_seconds(run_dir: Path, out: Path, security: tuple, pulls: int = 3) -> float:
    """The median of ``pulls`` timed pulls over one connection (one pull varies by +-30% here)."""
    servicer = CheckpointServicer(run_dir)
    server, target = serve(security[0], lambda s: add_checkpoints(s, servicer))
    try:
        with CheckpointClient(target, security=security[1]) as client:
            client.pull(out / "warm")  # the handshake and first-call costs are not the pull's
            times = []
            for i in range(pulls):
                started = time.perf_counter()
                client.pull(out / f"timed-{i}")
                times.append(time.perf_counter() - started)
            return statistics.median(times)
    finally:
        servicer.stop()
        server.stop(grace=None)


def sample_rate(replay: tuple, security: tuple, batches: int) -> float:
    config, spec, store = replay
    servicer = ReplayServicer(config, spec, store)
    server, target = serve(security[0], lambda s: add_replay(s, servicer))
    try:
        with ReplayClient(target, timeout_s=120, security=security[1]) as client:
            list(client.sample(BATCH, num_batches=2))
            started = time.perf_counter()
            got = sum(len(b.actions) for b in client.sample(BATCH, num_batches=batches))
            return got / (time.perf_counter() - started)
    finally:
        server.stop(grace=None)
        servicer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--megabytes", type=float, default=50.0)
    parser.add_argument("--batches", type=int, default=60, help="batches per sampling measurement")
    args = parser.parse_args()
    if args.repeats < 1 or args.megabytes <= 0 or args.batches < 1:
        parser.error("--repeats and --batches must be >= 1, --megabytes > 0")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        modes = securities(folder)
        run_dir = checkpoint_run_dir(folder, args.megabytes)
        replay = atari_replay()
        pulls: dict[str, list[float]] = {mode: [] for mode in modes}
        samples: dict[str, list[float]] = {mode: [] for mode in modes}
        for repeat in range(args.repeats):
            for mode, security in modes.items():
                out = folder / f"pull-{mode}-{repeat}"
                pulls[mode].append(pull_seconds(run_dir, out, security))
                samples[mode].append(sample_rate(replay, security, args.batches))
                log(
                    f"[{repeat + 1}/{args.repeats}] {mode}: pull {pulls[mode][-1]:.3f} s, "
                    f"sample {samples[mode][-1]:,.0f} examples/s"
                )
    pull = {mode: round(statistics.median(v), 4) for mode, v in pulls.items()}
    sample = {mode: round(statistics.median(v), 1) for mode, v in samples.items()}
    pull_slowdown = pull["tls_token"] / pull["plaintext"] - 1
    sample_slowdown = 1 - sample["tls_token"] / sample["plaintext"]
    log(f"pull: {pull}; slower by {100 * pull_slowdown:.1f}%")
    log(f"sample: {sample}; slower by {100 * sample_slowdown:.1f}%")
    print(
        json.dumps(
            {
                "checkpoint_pull_s": pull,
                "checkpoint_pull_runs": pulls,
                "sample_examples_per_s": sample,
                "sample_runs": samples,
                "pull_slowdown": round(pull_slowdown, 4),
                "sample_slowdown": round(sample_slowdown, 4),
                "target_met": pull_slowdown <= 0.10 and sample_slowdown <= 0.10,
                "megabytes": args.megabytes,
                "machine": f"{platform.machine()}, Python {platform.python_version()}",
                "date": time.strftime("%Y-%m-%d"),
            }
        )
    )


if __name__ == "__main__":
    main()
