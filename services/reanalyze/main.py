"""``python -m services.reanalyze`` / ``muzero serve reanalyze``: refresh stored targets.

Each round reads ``reanalyze.segments_per_round`` segments from the replay service
(uniformly over transitions), searches every step again with the newest checkpoint
(``reanalyze.search_batch`` roots at once) and writes the policies and root values
back, tagged with that checkpoint's version. Workers pace themselves so that
reanalysed transitions stay near ``reanalyze.fraction`` of the transitions the
actors store. SIGTERM: finish the round, exit.

Environment: MUZERO_CONFIG, MUZERO_SET, MUZERO_REPLAY_ADDR, MUZERO_LEARNER_ADDR,
MUZERO_WORKER_ID, MUZERO_METRICS_PORT.
"""

from __future__ import annotations

import logging
import os
import sys

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge

from muzero.acting.reanalyze import Reanalyzer, reanalysis_due
from muzero.operations.service import base_parser, instance_id, start, stop_on_signals
from muzero.storage.replay.factory import EnvSpec
from muzero.transport.checkpoint_client import CheckpointClient
from muzero.transport.replay_client import ReplayClient
from muzero.transport.serving import serve
from muzero.transport.weights import WeightsFollower, first_weights

HEALTH_NAME = "muzero.v1.Reanalyze"


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = base_parser("python -m services.reanalyze", __doc__)
    parser.add_argument("--replay", default=env.get("MUZERO_REPLAY_ADDR", "127.0.0.1:50051"))
    parser.add_argument("--learner", default=env.get("MUZERO_LEARNER_ADDR", "127.0.0.1:50052"))
    parser.add_argument(
        "--worker-id",
        type=instance_id,
        default=env.get("MUZERO_WORKER_ID", "0"),
        help="a number, or a name (the pod's) hashed to one; seeds differ per worker",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env.get("MUZERO_HEALTH_PORT", 50053)),
        help="gRPC health service port (NOT_SERVING until the first checkpoint is loaded)",
    )
    args, config, state = start("reanalyze", parser, argv)
    log = logging.getLogger("muzero.acting.reanalyze")
    if config.search.model != "learned":
        print(
            "reanalyze: search.model must be 'learned' (segments keep observations, not game states)", file=sys.stderr
        )
        return 2
    stop = stop_on_signals()
    registry = CollectorRegistry()
    rounds = Counter("muzero_reanalyze_rounds_total", "Rounds of read, search, write", registry=registry)
    transitions = Counter("muzero_reanalyze_transitions_total", "Steps searched again", registry=registry)
    written = Counter(
        "muzero_reanalyze_segments_written_total", "Segments whose targets were refreshed", registry=registry
    )
    gone = Counter(
        "muzero_reanalyze_segments_gone_total", "Segments evicted before their targets were written", registry=registry
    )
    simulations = Counter("muzero_reanalyze_simulations_total", "Search simulations run", registry=registry)
    version_gauge = Gauge("muzero_reanalyze_model_version", "Version searching now", registry=registry)
    lag = Gauge(
        "muzero_reanalyze_version_lag", "Newest announced version minus the version searching", registry=registry
    )
    serving = serve(args.host, args.port, HEALTH_NAME, registry, args.metrics_port, serving=False)
    if serving is None:
        print(f"reanalyze: cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1

    spec = EnvSpec.of(config)
    checkpoints = CheckpointClient(args.learner)
    first = first_weights(config, spec, checkpoints, stop, "muzero-reanalyze-")
    if first is None:
        serving.stop(grace_s=2)
        return 0
    network, version, cache = first
    state.model_version = version
    version_gauge.set(version)
    follower = WeightsFollower(checkpoints, cache, version, stop)
    device = config.training.device  # a GPU pod searches on its GPU
    reanalyzer = Reanalyzer(
        config,
        network.to(device),
        spec.num_actions,
        spec.num_players,
        batch_size=config.reanalyze.search_batch,
        device=device,
        seed=config.training.seed + 7919 * (args.worker_id + 1),
    )
    replay = ReplayClient(args.replay)
    print(f"reanalyze {args.worker_id}: searching with version {version}", flush=True)
    serving.set_serving()
    fraction = config.reanalyze.fraction
    try:
        while not stop.is_set():
            fresh = follower.take()
            if fresh is not None:
                network.load_state_dict(fresh[0])
                version = fresh[1]
                state.model_version = version
                version_gauge.set(version)
            lag.set(max(follower.announced - version, 0))
            try:
                if not reanalysis_due(replay.stats().totals, fraction):
                    stop.wait(0.2)  # ahead of the learner (or nothing stored yet): let it catch up
                    continue
                segments = replay.read_segments(
                    config.reanalyze.segments_per_round,
                    num_actions=spec.num_actions,
                    frame_shape=spec.observation_shape,
                    frame_stack=config.env.frame_stack,
                    experiment=config.name,
                )
            except grpc.RpcError as error:
                log.warning("replay unavailable (%s); retrying", error.code().name)
                stop.wait(1.0)
                continue
            before = reanalyzer.simulations
            for targets in reanalyzer.run(segments):
                try:
                    stored = replay.write_targets(targets.segment_id, targets.policies, targets.root_values, version)
                except grpc.RpcError as error:
                    log.warning("writing targets failed (%s)", error.code().name)
                    continue
                (written if stored else gone).inc()
            rounds.inc()
            transitions.inc(sum(s.num_steps for s in segments))
            simulations.inc(reanalyzer.simulations - before)
    finally:
        replay.close()
        checkpoints.close()
        serving.stop(grace_s=2)
        log.info("stopped")
    return 0
