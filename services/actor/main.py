"""``python -m services.actor`` / ``muzero serve actor``: self-play that feeds the replay service.

Runs ``env.num_envs`` environments in lockstep with one batched search per move.
Starts from the learner's latest checkpoint (waiting for the first one), swaps in
each new version that ``Watch`` announces without pausing play, and streams the
segments it cuts to the replay service (``--max-inflight`` unacknowledged at most:
when replay is slow or the rate limiter holds the actors back, play waits).
Every segment records the version that played it. SIGTERM: cut what is pending
into segments, wait for them to be acknowledged (10 s), exit. Segments still
unacknowledged then are dropped (and logged): while the rate limiter holds inserts
(the learner is behind or gone) that can be up to --max-inflight of them. What was
acknowledged is never lost; what was not was never promised.

Environment: MUZERO_CONFIG, MUZERO_SET, MUZERO_REPLAY_ADDR, MUZERO_LEARNER_ADDR
(checkpoint service), MUZERO_ACTOR_ID (seeds differ per actor), MUZERO_METRICS_PORT,
MUZERO_ACK_LOG (optional: a file that gets each acknowledged segment id, for audits).
"""

from __future__ import annotations

import logging
import os
import sys
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from muzero.acting.selfplay import SelfPlay
from muzero.operations.service import base_parser, instance_id, start, stop_on_signals
from muzero.storage.replay.factory import EnvSpec
from muzero.transport.checkpoint_client import CheckpointClient
from muzero.transport.replay_client import SegmentWriter
from muzero.transport.serving import serve
from muzero.transport.weights import WeightsFollower, first_weights

HEALTH_NAME = "muzero.v1.Actor"


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = base_parser("python -m services.actor", __doc__)
    parser.add_argument("--replay", default=env.get("MUZERO_REPLAY_ADDR", "127.0.0.1:50051"))
    parser.add_argument("--learner", default=env.get("MUZERO_LEARNER_ADDR", "127.0.0.1:50052"))
    parser.add_argument(
        "--actor-id",
        type=instance_id,
        default=env.get("MUZERO_ACTOR_ID", "0"),
        help="a number, or a name (the pod's) hashed to one; seeds differ per actor",
    )
    parser.add_argument(
        "--max-inflight",
        type=int,
        default=int(env.get("MUZERO_MAX_INFLIGHT", 64)),
        help="unacknowledged segments before play waits",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env.get("MUZERO_HEALTH_PORT", 50053)),
        help="gRPC health service port (NOT_SERVING until the first checkpoint is loaded)",
    )
    args, config, state = start("actor", parser, argv)
    log = logging.getLogger("muzero.actor")
    stop = stop_on_signals()

    registry = CollectorRegistry()
    env_steps = Counter("muzero_actor_env_steps_total", "Environment steps played", registry=registry)
    simulations = Counter("muzero_actor_simulations_total", "Search simulations run", registry=registry)
    episodes = Counter("muzero_actor_episodes_total", "Episodes finished", registry=registry)
    segments_sent = Counter("muzero_actor_segments_total", "Segments handed to the replay writer", registry=registry)
    returns = Histogram(
        "muzero_actor_episode_return",
        "Returns of finished episodes",
        registry=registry,
        buckets=(-1, 0, 1, 10, 50, 100, 200, 300, 400, 500, 1000),
    )
    resignations = Counter(
        "muzero_actor_resignations_total", "Self-play games ended by a resignation", registry=registry
    )
    resign_checks = Counter(
        "muzero_actor_resign_checks_total",
        "Would-be resignations in games played out without resigning (search.no_resign_fraction)",
        registry=registry,
    )
    false_resignations = Counter(
        "muzero_actor_false_resignations_total",
        "Of those, the ones where the player who would have resigned did not lose",
        registry=registry,
    )
    version_gauge = Gauge("muzero_actor_model_version", "Version of the weights playing now", registry=registry)
    lag = Gauge("muzero_actor_version_lag", "Newest announced version minus the version playing", registry=registry)
    inflight = Gauge("muzero_actor_inflight_segments", "Segments not yet acknowledged by replay", registry=registry)
    publish_to_use = Histogram(
        "muzero_actor_checkpoint_publish_to_use_seconds",
        "From a checkpoint's publication to this actor playing with it",
        registry=registry,
        buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
    )
    serving = serve(args.host, args.port, HEALTH_NAME, registry, args.metrics_port, serving=False)
    if serving is None:
        print(f"actor: cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1

    spec = EnvSpec.of(config)
    checkpoints = CheckpointClient(args.learner)
    first = first_weights(config, spec, checkpoints, stop, "muzero-actor-")
    if first is None:
        serving.stop(grace_s=2)
        return 0
    network, version, cache = first
    device = config.training.device  # a GPU pod searches on its GPU
    selfplay = SelfPlay(
        config, network.to(device), seed=config.training.seed + 1000 * (args.actor_id + 1), device=device
    )
    selfplay.model_version = version
    state.model_version = version
    version_gauge.set(version)
    follower = WeightsFollower(checkpoints, cache, version, stop)
    writer = SegmentWriter(
        args.replay, config.name, max_inflight=args.max_inflight, ack_log=env.get("MUZERO_ACK_LOG") or None
    )
    print(f"actor {args.actor_id}: playing with version {version}", flush=True)
    serving.set_serving()
    log.info("playing %d envs of %s with version %d", config.env.num_envs, config.env.id, version)

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
            resignations.inc(stats.resignations)
            resign_checks.inc(stats.resign_checks)
            false_resignations.inc(stats.resign_wrong)
            lag.set(max(follower.announced - selfplay.model_version, 0))
            inflight.set(writer.inflight)
            send(segments)
    finally:
        stop.set()
        # Send what was played and wait (bounded) for acknowledgements; what the rate limiter
        # still holds back after that is dropped with this process, never half-stored.
        for segment in unsent + selfplay.flush():
            try:
                writer.append(segment, timeout_s=5.0)
            except TimeoutError:
                log.warning("replay did not take the last segments in time")
                break
        left = writer.close(timeout_s=10.0)
        log.info("stopped; %d segments left unacknowledged", left)
        checkpoints.close()
        serving.stop(grace_s=2)
    return 0
