"""``python -m services.actor`` / ``muzero serve actor``: self-play that feeds the replay service.

Runs ``env.num_envs`` environments in lockstep with one batched search per move.
Starts from the learner's latest checkpoint (waiting for the first one), swaps in
each new version that ``Watch`` announces without pausing play, and streams the
segments it cuts to the replay service (``--max-inflight`` unacknowledged at most:
when replay is slow or the rate limiter holds the actors back, play waits).
Every segment records the version that played it. SIGTERM: cut what is pending
into segments, wait for them to be acknowledged (10 s), exit.

Environment: MUZERO_CONFIG, MUZERO_SET, MUZERO_REPLAY_ADDR, MUZERO_LEARNER_ADDR
(checkpoint service), MUZERO_ACTOR_ID (seeds differ per actor), MUZERO_METRICS_PORT,
MUZERO_ACK_LOG (optional: a file that gets each acknowledged segment id, for audits).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from muzero.checkpoint import load_checkpoint
from muzero.client import CheckpointClient
from muzero.learning.segment import stacked_observation_shape
from muzero.nn.networks import build_network
from muzero.replay.client import SegmentWriter, backoff_delays
from muzero.replay.factory import EnvSpec
from muzero.selfplay import SelfPlay
from grpc_health.v1 import health_pb2

from muzero.grpc_util import add_health, make_server
from services.common import base_parser, configure_logging, load_config, parse, stop_on_signals


class WeightsFollower:
    """Pulls each announced checkpoint on a background thread; the actor picks it up between moves."""

    def __init__(self, client: CheckpointClient, cache_dir: str, after_version: int, stop: threading.Event):
        self.client = client
        self.cache_dir = cache_dir
        self.stop = stop
        self._lock = threading.Lock()
        self._pending = None  # (state_dict, version, published_unix_s)
        self._after = after_version
        self._thread = threading.Thread(target=self._run, name="weights", daemon=True)
        self._thread.start()

    def take(self):
        with self._lock:
            pending, self._pending = self._pending, None
            return pending

    def _run(self) -> None:
        log = logging.getLogger("muzero.actor")
        while not self.stop.is_set():
            try:
                for info in self.client.watch(after_version=self._after):
                    path = self.client.pull(self.cache_dir, version=info.version)
                    checkpoint = load_checkpoint(path)
                    with self._lock:
                        self._pending = (checkpoint.state_dict, checkpoint.version, info.published_unix_s)
                    self._after = info.version
                    for old in os.listdir(self.cache_dir):  # keep the cache to the one just pulled
                        if not old.startswith(path.stem):
                            os.unlink(os.path.join(self.cache_dir, old))
                    if self.stop.is_set():
                        return
            except Exception as error:  # the learner restarting, a pruned version: retry
                log.warning("following checkpoints failed (%s); retrying", error)
                time.sleep(1.0)


def wait_for_first_checkpoint(client: CheckpointClient, stop: threading.Event):
    log = logging.getLogger("muzero.actor")
    delays = backoff_delays(0.2, 5.0)
    while not stop.is_set():
        try:
            info = client.latest()
            if info is not None:
                return info
            log.info("no checkpoint published yet; waiting")
        except Exception as error:
            log.info("checkpoint service not reachable yet (%s)", getattr(error, "code", lambda: error)())
        time.sleep(next(delays))
    return None


HEALTH_NAME = "muzero.v1.Actor"


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = base_parser("python -m services.actor", __doc__)
    parser.add_argument("--replay", default=env.get("MUZERO_REPLAY_ADDR", "127.0.0.1:50051"))
    parser.add_argument("--learner", default=env.get("MUZERO_LEARNER_ADDR", "127.0.0.1:50052"))
    parser.add_argument("--actor-id", type=int, default=int(env.get("MUZERO_ACTOR_ID", 0)))
    parser.add_argument("--max-inflight", type=int, default=int(env.get("MUZERO_MAX_INFLIGHT", 64)),
                        help="unacknowledged segments before play waits")
    parser.add_argument("--port", type=int, default=int(env.get("MUZERO_HEALTH_PORT", 50053)),
                        help="gRPC health service port (NOT_SERVING until the first checkpoint is loaded)")
    args = parse(parser, argv)
    state = configure_logging("actor")
    log = logging.getLogger("muzero.actor")
    try:
        config = load_config(args)
    except Exception as error:
        print(f"actor: bad config: {error}", file=sys.stderr)
        return 2
    stop = stop_on_signals()

    registry = CollectorRegistry()
    env_steps = Counter("muzero_actor_env_steps_total", "Environment steps played", registry=registry)
    simulations = Counter("muzero_actor_simulations_total", "Search simulations run", registry=registry)
    episodes = Counter("muzero_actor_episodes_total", "Episodes finished", registry=registry)
    segments_sent = Counter("muzero_actor_segments_total", "Segments handed to the replay writer", registry=registry)
    returns = Histogram("muzero_actor_episode_return", "Returns of finished episodes", registry=registry,
                        buckets=(-1, 0, 1, 10, 50, 100, 200, 300, 400, 500, 1000))
    version_gauge = Gauge("muzero_actor_model_version", "Version of the weights playing now", registry=registry)
    lag = Gauge("muzero_actor_version_lag", "Newest announced version minus the version playing",
                registry=registry)
    inflight = Gauge("muzero_actor_inflight_segments", "Segments not yet acknowledged by replay", registry=registry)
    publish_to_use = Histogram("muzero_actor_checkpoint_publish_to_use_seconds",
                               "From a checkpoint's publication to this actor playing with it", registry=registry,
                               buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.host, registry=registry)
    health_server = make_server(max_workers=2)
    health = add_health(health_server, [HEALTH_NAME])
    for service_name in ("", HEALTH_NAME):
        health.set(service_name, health_pb2.HealthCheckResponse.NOT_SERVING)
    if health_server.add_insecure_port(f"{args.host}:{args.port}") == 0:
        print(f"actor: cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1
    health_server.start()

    spec = EnvSpec.of(config)
    checkpoints = CheckpointClient(args.learner)
    info = wait_for_first_checkpoint(checkpoints, stop)
    if info is None:
        health_server.stop(grace=None)
        return 0
    cache = tempfile.mkdtemp(prefix="muzero-actor-")
    checkpoint = load_checkpoint(checkpoints.pull(cache, version=info.version))
    network = build_network(config.network, stacked_observation_shape(spec.observation_shape, config.env.frame_stack),
                            spec.num_actions)
    network.load_state_dict(checkpoint.state_dict)
    selfplay = SelfPlay(config, network, seed=config.training.seed + 1000 * (args.actor_id + 1))
    selfplay.model_version = checkpoint.version
    state.model_version = checkpoint.version
    version_gauge.set(checkpoint.version)
    follower = WeightsFollower(checkpoints, cache, checkpoint.version, stop)
    writer = SegmentWriter(args.replay, config.name, max_inflight=args.max_inflight,
                           ack_log=env.get("MUZERO_ACK_LOG") or None)
    print(f"actor {args.actor_id}: playing with version {checkpoint.version}", flush=True)
    for service_name in ("", HEALTH_NAME):
        health.set(service_name, health_pb2.HealthCheckResponse.SERVING)
    log.info("playing %d envs of %s with version %d", config.env.num_envs, config.env.id, checkpoint.version)

    unsent: list = []

    def send(segments) -> None:
        unsent.extend(segments)
        while unsent and not stop.is_set():
            try:
                writer.append(unsent[0], timeout_s=1.0)
            except TimeoutError:
                continue  # backpressure: replay has not acknowledged enough yet
            unsent.pop(0)
            segments_sent.inc()

    try:
        while not stop.is_set():
            fresh = follower.take()
            if fresh is not None:
                state_dict, new_version, published = fresh
                selfplay.set_weights(state_dict, version=new_version)
                state.model_version = new_version
                version_gauge.set(new_version)
                if published:
                    delay = max(time.time() - published, 0.0)
                    publish_to_use.observe(delay)
                    log.info("playing version %d, published %.3f s ago", new_version, delay)
            before = selfplay.simulations
            segments, stats = selfplay.step()
            env_steps.inc(selfplay.env.num_envs)
            simulations.inc(selfplay.simulations - before)
            episodes.inc(len(stats.returns))
            for value in stats.returns:
                returns.observe(value)
            lag.set(max(follower._after - selfplay.model_version, 0))
            inflight.set(writer.inflight)
            send(segments)
    finally:
        stop.set()
        # What was played is not lost: cut it into segments and wait for acknowledgements.
        for segment in unsent + selfplay.flush():
            try:
                writer.append(segment, timeout_s=5.0)
            except TimeoutError:
                log.warning("replay did not take the last segments in time")
                break
        left = writer.close(timeout_s=10.0)
        log.info("stopped; %d segments left unacknowledged", left)
        checkpoints.close()
        health.enter_graceful_shutdown()
        health_server.stop(grace=2)
    return 0
