"""``python -m services.replay`` / ``muzero serve replay``: the replay front as a process.

Configuration: the experiment file (``--config`` or ``MUZERO_CONFIG``: a preset
name or a TOML path), overrides (``--set`` or ``MUZERO_SET``, separated by
``;``), the shards (``--redis-urls`` or ``MUZERO_REDIS_URLS``, comma separated;
without them the store is in memory, for single-process use), the gRPC port
(``--port`` / ``MUZERO_REPLAY_PORT``, 50051) and the metrics port
(``--metrics-port`` / ``MUZERO_METRICS_PORT``, 9100; 0 disables).
SIGTERM or SIGINT: stop taking calls, finish those in flight (10 s), exit 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from prometheus_client import CollectorRegistry, start_http_server

from muzero import config as config_module
from muzero.grpc_util import add_health, make_server
from muzero.replay.factory import EnvSpec, build_store
from services.replay.server import ReplayServicer, add_to_server

SERVICE_NAME = "muzero.v1.ReplayService"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m services.replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=env.get("MUZERO_CONFIG", "cartpole"),
                        help="preset name or TOML file (env MUZERO_CONFIG)")
    parser.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                        help="config override, repeatable (env MUZERO_SET, ';'-separated)")
    parser.add_argument("--redis-urls", default=env.get("MUZERO_REDIS_URLS", ""),
                        help="comma-separated shard URLs (env MUZERO_REDIS_URLS); empty: in-memory store")
    parser.add_argument("--host", default=env.get("MUZERO_HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(env.get("MUZERO_REPLAY_PORT", 50051)))
    parser.add_argument("--metrics-port", type=int, default=int(env.get("MUZERO_METRICS_PORT", 9100)))
    args = parser.parse_args(argv)
    if args.set is None:
        args.set = [s for s in env.get("MUZERO_SET", "").split(";") if s.strip()]
    return args


def load_config(args: argparse.Namespace) -> config_module.ExperimentConfig:
    overrides = list(args.set)
    urls = [u.strip() for u in args.redis_urls.split(",") if u.strip()]
    if urls:
        overrides += ["replay.backend=redis", f"replay.redis_urls={urls!r}".replace("'", '"')]
    return config_module.load(args.config, overrides)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format='{"time": "%(asctime)s", "service": "replay", "level": "%(levelname)s", '
                               '"message": "%(message)s"}')
    log = logging.getLogger("muzero.replay")
    args = parse_args(argv)
    try:
        config = load_config(args)
    except config_module.ConfigError as error:
        print(f"replay: bad config: {error}", file=sys.stderr)
        return 2
    spec = EnvSpec.of(config)
    store = build_store(config, spec)
    registry = CollectorRegistry()
    servicer = ReplayServicer(config, spec, store, registry=registry, seed=config.training.seed)
    server = make_server()
    add_to_server(server, servicer)
    health = add_health(server, [SERVICE_NAME])
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    if port == 0:
        print(f"replay: cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.host, registry=registry)
    server.start()
    log.info("serving %s (%s backend, experiment %s) on port %d; metrics on %s", SERVICE_NAME,
             config.replay.backend, config.name, port, args.metrics_port or "off")
    print(f"replay: listening on port {port}", flush=True)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    log.info("stopping: finishing calls in flight")
    health.enter_graceful_shutdown()
    server.stop(grace=10).wait()
    return 0
