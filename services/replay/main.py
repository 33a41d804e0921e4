"""``python -m services.replay`` / ``muzero serve replay``: the replay front as a process.

Configuration: the experiment file (``--config`` or ``MUZERO_CONFIG``: a preset
name or a TOML path), overrides (``--set`` or ``MUZERO_SET``, separated by
``;``), the shards (``--redis-urls`` or ``MUZERO_REDIS_URLS``, comma separated;
without them the store is in memory, for single-process use), the gRPC port
(``--port`` / ``MUZERO_REPLAY_PORT``, 50051) and the metrics port
(``--metrics-port`` / ``MUZERO_METRICS_PORT``, 9100; 0 disables). ``MUZERO_REDIS_PASSWORD``
(environment only, kept off the command line) authenticates to shards whose URLs carry none.
SIGTERM or SIGINT: stop taking calls, finish those in flight (10 s), exit 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from prometheus_client import CollectorRegistry

from muzero.operations.service import base_parser, start, stop_on_signals
from muzero.storage.replay.factory import EnvSpec, build_store, redis_overrides
from muzero.transport.replay_server import ReplayServicer, add_to_server
from muzero.transport.serving import serve

SERVICE_NAME = "muzero.v1.ReplayService"


def parser_for_replay() -> argparse.ArgumentParser:
    env = os.environ
    parser = base_parser("python -m services.replay", __doc__)
    parser.add_argument(
        "--redis-urls",
        default=env.get("MUZERO_REDIS_URLS", ""),
        help="comma-separated shard URLs (env MUZERO_REDIS_URLS); empty: in-memory store",
    )
    parser.add_argument("--port", type=int, default=int(env.get("MUZERO_REPLAY_PORT", 50051)))
    return parser


def main(argv: list[str] | None = None) -> int:
    password = os.environ.get("MUZERO_REDIS_PASSWORD", "")
    args, config, _ = start(
        "replay", parser_for_replay(), argv, lambda args: redis_overrides(args.redis_urls, password=password)
    )
    log = logging.getLogger("muzero.replay")
    spec = EnvSpec.of(config)
    store = build_store(config, spec)
    registry = CollectorRegistry()
    servicer = ReplayServicer(config, spec, store, registry=registry, seed=config.training.seed)
    serving = serve(
        args.host,
        args.port,
        SERVICE_NAME,
        registry,
        args.metrics_port,
        register=lambda server: add_to_server(server, servicer),
    )
    if serving is None:
        print(f"replay: cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1
    log.info(
        "serving %s (%s backend, experiment %s) on port %d; metrics on %s",
        SERVICE_NAME,
        config.replay.backend,
        config.name,
        serving.port,
        args.metrics_port or "off",
    )
    print(f"replay: listening on port {serving.port}", flush=True)

    stop = stop_on_signals()
    stop.wait()
    log.info("stopping: finishing calls in flight")
    servicer.close()  # calls blocked on the rate limiter answer UNAVAILABLE now, not after their cap
    serving.stop(grace_s=10)
    return 0
