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
import queue
import sys
import threading
import time

import grpc
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from muzero.checkpoint_service import CheckpointServicer, add_to_server
from muzero.learner import Learner
from muzero.learning.segment import SampleKeys
from muzero.prefetch import Prefetcher
from muzero.replay.client import ReplayClient
from muzero.replay.factory import EnvSpec
from services.common import base_parser, serve, start, stop_on_signals

SERVICE_NAME = "muzero.v1.CheckpointService"
BATCHES_PER_STREAM = 1000


class PriorityPusher:
    """Sends priority updates on its own thread; drops the oldest when the replay lags (they are hints)."""

    def __init__(self, client: ReplayClient, depth: int = 64):
        self.client = client
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.dropped = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="priorities", daemon=True)
        self._thread.start()

    def push(self, keys, priorities) -> None:
        while True:
            try:
                self.queue.put_nowait((keys, priorities))
                return
            except queue.Full:
                try:
                    self.queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def close(self, timeout_s: float = 5.0) -> None:
        self.queue.put((None, None))
        self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            pending = [self.queue.get()]
            # Whatever queued up while the last call was out goes in one call: one RPC and one
            # script run per shard instead of one per step (later updates of a key still win).
            while True:
                try:
                    pending.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            stopping = any(keys is None for keys, _ in pending)
            pending = [(keys, priorities) for keys, priorities in pending if keys is not None]
            if not pending:
                return
            keys = SampleKeys(segment_ids=np.concatenate([k.segment_ids for k, _ in pending]),
                              positions=np.concatenate([k.positions for k, _ in pending]))
            priorities = np.concatenate([p for _, p in pending])
            try:
                self.client.update_priorities(keys, priorities)
            except grpc.RpcError as error:
                self.failed += 1
                logging.getLogger("muzero.learner").warning("priority update failed: %s", error.code().name)


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = base_parser("python -m services.learner", __doc__)
    parser.add_argument("--replay", default=env.get("MUZERO_REPLAY_ADDR", "127.0.0.1:50051"),
                        help="host:port of the replay service")
    parser.add_argument("--port", type=int, default=int(env.get("MUZERO_LEARNER_PORT", 50052)),
                        help="checkpoint service port")
    parser.add_argument("--run-dir", default=env.get("MUZERO_RUN_DIR", "runs/learner"), help="checkpoints go here")
    parser.add_argument("--keep-checkpoints", type=int, default=int(env.get("MUZERO_KEEP_CHECKPOINTS", 5)))
    parser.add_argument("--prefetch", type=int, default=int(env.get("MUZERO_PREFETCH", 4)),
                        help="batches kept ready")
    parser.add_argument("--streams", type=int, default=int(env.get("MUZERO_SAMPLE_STREAMS", 2)),
                        help="parallel Sample streams from replay")
    parser.add_argument("--max-learner-steps", type=int, default=int(env.get("MUZERO_MAX_LEARNER_STEPS", 0)),
                        help="stop (with a checkpoint) after this many steps; 0: never")
    args, config, state = start("learner", parser, argv)
    log = logging.getLogger("muzero.learner")
    stop = stop_on_signals()
    spec = EnvSpec.of(config)
    learner = Learner(config, spec.observation_shape, spec.num_actions, args.run_dir, keep_last=args.keep_checkpoints)
    resumed = learner.resume()
    if resumed is None:
        learner.save()
        log.info("no checkpoint in %s: published step 0", args.run_dir)
    else:
        log.info("resumed from step %d", resumed)
    state.model_version = learner.step

    registry = CollectorRegistry()
    steps = Counter("muzero_learner_steps_total", "Learner updates", registry=registry)
    samples = Counter("muzero_learner_samples_total", "Training examples consumed", registry=registry)
    version = Gauge("muzero_learner_model_version", "Version (step) of the newest checkpoint", registry=registry)
    losses = Gauge("muzero_learner_loss", "Last loss by kind", ["kind"], registry=registry)
    input_wait = Histogram("muzero_learner_input_wait_seconds", "Time the learner waited for a batch",
                           registry=registry, buckets=(0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5))
    step_time = Histogram("muzero_learner_step_seconds", "Time of one update", registry=registry,
                          buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
    published_at = Gauge("muzero_learner_checkpoint_published_timestamp_seconds",
                         "Unix time the newest checkpoint was published", registry=registry)
    version.set(learner.step)
    published_at.set(time.time())

    servicer = CheckpointServicer(args.run_dir)
    serving = serve(args.host, args.port, SERVICE_NAME, registry, args.metrics_port,
                    register=lambda server: add_to_server(server, servicer))
    if serving is None:
        print(f"learner: cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1
    print(f"learner: checkpoint service on port {serving.port}", flush=True)

    replay = ReplayClient(args.replay)
    batch_size = config.training.batch_size
    prefetcher = Prefetcher(lambda: replay.sample(batch_size, num_batches=BATCHES_PER_STREAM,
                                                  timeout_s=24 * 3600,
                                                  bootstrap_observations=learner.wants_bootstrap_observations),
                            depth=args.prefetch, streams=args.streams)
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
            for kind in ("value", "reward", "policy", "total"):
                if kind in out:
                    losses.labels(kind).set(float(out[kind]))
            if learner.step % interval == 0:
                learner.save()
                servicer.publish()
                version.set(learner.step)
                published_at.set(time.time())
                state.model_version = learner.step
    finally:
        prefetcher.close()
        learner.save()  # SIGTERM or the step limit: the work so far is kept
        servicer.publish()
        state.model_version = learner.step
        log.info("stopped at step %d with a checkpoint", learner.step)
        pusher.close()
        servicer.stop()  # ends Watch streams, so the grace period is not spent waiting on them
        serving.stop(grace_s=5)
        replay.close()
    return 0
