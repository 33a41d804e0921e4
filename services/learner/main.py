"""``python -m services.learner`` / ``muzero serve learner``: train from the replay service
and serve checkpoints.

Samples batches from the replay service on a background thread (``--prefetch``
batches ready), trains, sends priorities back, writes a checkpoint every
``training.checkpoint_interval`` steps into ``--run-dir`` (keeping
``--keep-checkpoints``) and serves them with the checkpoint service on ``--port``.
With no checkpoint yet it writes step 0 first, so actors can start. On restart it
resumes from its newest checkpoint (optimizer state and step included). SIGTERM:
write a checkpoint, then stop.

Environment: MUZERO_CONFIG, MUZERO_SET, MUZERO_REPLAY_ADDR (host:port of the
replay service), MUZERO_LEARNER_PORT (50052), MUZERO_RUN_DIR, MUZERO_METRICS_PORT,
MUZERO_MAX_LEARNER_STEPS (0: no limit), MUZERO_PREFETCH (batches kept ready, 4),
MUZERO_SAMPLE_STREAMS (parallel Sample streams, 2).
"""

from __future__ import annotations

import logging
import os
import sys
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from muzero.learning.learner import Learner
from muzero.operations.service import base_parser, start, stop_on_signals
from muzero.storage.checkpoint import CheckpointManager
from muzero.storage.replay.factory import EnvSpec
from muzero.transport.checkpoint_server import CheckpointServicer, add_to_server
from muzero.transport.prefetch import Prefetcher
from muzero.transport.priorities import PriorityPusher
from muzero.transport.replay_client import ReplayClient
from muzero.transport.serving import serve

SERVICE_NAME = "muzero.v1.CheckpointService"
BATCHES_PER_STREAM = 1000


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = base_parser("python -m services.learner", __doc__)
    parser.add_argument(
        "--replay", default=env.get("MUZERO_REPLAY_ADDR", "127.0.0.1:50051"), help="host:port of the replay service"
    )
    parser.add_argument(
        "--port", type=int, default=int(env.get("MUZERO_LEARNER_PORT", 50052)), help="checkpoint service port"
    )
    parser.add_argument("--run-dir", default=env.get("MUZERO_RUN_DIR", "runs/learner"), help="checkpoints go here")
    parser.add_argument("--keep-checkpoints", type=int, default=int(env.get("MUZERO_KEEP_CHECKPOINTS", 5)))
    parser.add_argument("--prefetch", type=int, default=int(env.get("MUZERO_PREFETCH", 4)), help="batches kept ready")
    parser.add_argument(
        "--streams",
        type=int,
        default=int(env.get("MUZERO_SAMPLE_STREAMS", 2)),
        help="parallel Sample streams from replay",
    )
    parser.add_argument(
        "--max-learner-steps",
        type=int,
        default=int(env.get("MUZERO_MAX_LEARNER_STEPS", 0)),
        help="stop (with a checkpoint) after this many steps; 0: never",
    )
    args, config, state = start("learner", parser, argv)
    log = logging.getLogger("muzero.learning.learner")
    stop = stop_on_signals()
    spec = EnvSpec.of(config)
    learner = Learner(config, spec.observation_shape, spec.num_actions)
    checkpoints = CheckpointManager(args.run_dir, keep_last=args.keep_checkpoints)
    resumed = checkpoints.resume_learner(learner)
    if resumed is None:
        checkpoints.save_learner(learner)
        log.info("no checkpoint in %s: published step 0", args.run_dir)
    else:
        log.info("resumed from step %d", resumed)
    state.model_version = learner.step

    registry = CollectorRegistry()
    steps = Counter("muzero_learner_steps_total", "Learner updates", registry=registry)
    samples = Counter("muzero_learner_samples_total", "Training examples consumed", registry=registry)
    version = Gauge("muzero_learner_model_version", "Version (step) of the newest checkpoint", registry=registry)
    losses = Gauge("muzero_learner_loss", "Last loss by kind", ["kind"], registry=registry)
    clipped = Gauge(
        "muzero_learner_clipped_targets_ratio",
        "Fraction of the last batch's targets outside their support (clipped to its edge)",
        ["kind"],
        registry=registry,
    )
    input_wait = Histogram(
        "muzero_learner_input_wait_seconds",
        "Time the learner waited for a batch",
        registry=registry,
        buckets=(0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
    )
    step_time = Histogram(
        "muzero_learner_step_seconds",
        "Time of one update",
        registry=registry,
        buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    )
    published_at = Gauge(
        "muzero_learner_checkpoint_published_timestamp_seconds",
        "Unix time the newest checkpoint was published",
        registry=registry,
    )
    version.set(learner.step)
    published_at.set(time.time())

    servicer = CheckpointServicer(args.run_dir)
    serving = serve(
        args.host,
        args.port,
        SERVICE_NAME,
        registry,
        args.metrics_port,
        register=lambda server: add_to_server(server, servicer),
    )
    if serving is None:
        print(f"learner: cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1
    print(f"learner: checkpoint service on port {serving.port}", flush=True)

    replay = ReplayClient(args.replay)
    batch_size = config.training.batch_size
    prefetcher = Prefetcher(
        lambda: replay.sample(
            batch_size,
            num_batches=BATCHES_PER_STREAM,
            timeout_s=24 * 3600,
            bootstrap_observations=learner.wants_bootstrap_observations,
        ),
        depth=args.prefetch,
        streams=args.streams,
    )
    pusher = PriorityPusher(replay)
    interval = config.training.checkpoint_interval
    log.info("training from %s, batch %d, checkpoint every %d steps", args.replay, batch_size, interval)
    try:
        while not stop.is_set():
            if args.max_learner_steps and learner.step >= args.max_learner_steps:
                log.info("reached %d learner steps", args.max_learner_steps)
                break
            waited = time.perf_counter()
            batch = prefetcher.get(timeout_s=0.5)
            if batch is None:
                continue
            input_wait.observe(time.perf_counter() - waited)
            started = time.perf_counter()
            out = learner.train(batch)
            step_time.observe(time.perf_counter() - started)
            pusher.push(batch.keys, out["priorities"])
            steps.inc()
            samples.inc(len(batch.actions))
            for kind in ("value", "reward", "policy", "ownership", "score", "consistency", "total"):
                if kind in out:
                    losses.labels(kind).set(float(out[kind]))
            for kind in ("value", "reward"):
                if f"{kind}_targets_clipped" in out:
                    clipped.labels(kind).set(float(out[f"{kind}_targets_clipped"]))
            if learner.checkpoint_due:
                checkpoints.save_learner(learner)
                servicer.publish()
                version.set(learner.step)
                published_at.set(time.time())
                state.model_version = learner.step
    finally:
        prefetcher.close()
        checkpoints.save_learner(learner)  # SIGTERM or the step limit: the work so far is kept
        servicer.publish()
        state.model_version = learner.step
        log.info("stopped at step %d with a checkpoint", learner.step)
        pusher.close()
        servicer.stop()  # ends Watch streams, so the grace period is not spent waiting on them
        serving.stop(grace_s=5)
        replay.close()
    return 0
