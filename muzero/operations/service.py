"""The shell every service process shares: config from file + environment, JSON logs, signals."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from muzero import config as config_module
from muzero.learning.supports import adapt_to_env
from muzero.transport.security import ClientSecurity, SecurityError, ServerSecurity


class ServiceState:
    """What structured log lines carry besides the message: the service and the model version."""

    def __init__(self, service: str):
        self.service = service
        self.model_version: int | None = None


class JsonFormatter(logging.Formatter):
    def __init__(self, state: ServiceState):
        super().__init__()
        self.state = state

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "service": self.state.service,
            "level": record.levelname,
            "logger": record.name,
            "model_version": self.state.model_version,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure_logging(service: str) -> ServiceState:
    state = ServiceState(service)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(state))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("MUZERO_LOG_LEVEL", "INFO"))
    return state


def base_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", default=env.get("MUZERO_CONFIG", "cartpole"), help="preset name or TOML file (env MUZERO_CONFIG)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="config override, repeatable (env MUZERO_SET, ';'-separated)",
    )
    parser.add_argument("--host", default=env.get("MUZERO_HOST", "0.0.0.0"), help="address to listen on")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(env.get("MUZERO_METRICS_PORT", 9100)),
        help="Prometheus /metrics port, 0: off (env MUZERO_METRICS_PORT)",
    )
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.set is None:
        args.set = [s for s in os.environ.get("MUZERO_SET", "").split(";") if s.strip()]
    return args


def start(
    service: str,
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    extra_overrides: Callable[[argparse.Namespace], list[str]] = lambda args: [],
):
    """Parse the arguments, set up JSON logging and load the config: (args, config, log state).
    A bad config ends the process with status 2 and one line naming the key."""
    args = parse(parser, argv)
    state = configure_logging(service)
    try:
        config = load_config(args, extra_overrides(args))
        # Every service fits the supports the same way (same config, same seed), so the networks
        # of the learner, actors and reanalyze workers agree on their shapes.
        config, support_fit = adapt_to_env(config)
    except config_module.ConfigError as error:
        print(f"{service}: bad config: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if config.training.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print(
                f"{service}: bad config: training.device: {config.training.device!r}, but this machine has no "
                "CUDA device (or torch was built without CUDA)",
                file=sys.stderr,
            )
            raise SystemExit(2)
    try:
        ServerSecurity.from_env().check()
        ClientSecurity.from_env().check()
    except SecurityError as error:
        print(f"{service}: bad security settings: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.getLogger(f"muzero.{service}").info(support_fit.summary())
    return args, config, state


def load_config(args: argparse.Namespace, extra: list[str] = ()) -> config_module.ExperimentConfig:
    config = config_module.load(args.config, [*args.set, *extra])
    set_torch_threads(config)
    return config


def set_torch_threads(config: config_module.ExperimentConfig) -> None:
    """MUZERO_TORCH_THREADS, else training.torch_threads, else torch's default (all cores).
    Several services on one machine should take one thread each, or they fight for cores."""
    import torch

    threads = int(os.environ.get("MUZERO_TORCH_THREADS", 0)) or config.training.torch_threads
    if threads:
        torch.set_num_threads(threads)


def instance_id(value: str) -> int:
    """A worker's id: a number as given, or a name (a Deployment pod's, which has no ordinal)
    hashed to a stable non-negative number, so each replica seeds differently."""
    value = value.strip()
    if not value:
        raise argparse.ArgumentTypeError("expected a number or a name, got an empty string")
    if value.isdigit():
        return int(value)
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=4).digest(), "little")


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (the graceful-stop request)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop
