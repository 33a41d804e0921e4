"""Following a learner's checkpoints: wait for the first, then pull each new one in the background.

Actors and reanalyze workers build their network from the first checkpoint and
keep playing (or searching) while :class:`WeightsFollower` pulls each version
``Watch`` announces; they pick the new weights up between moves.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time

from muzero.learning.segment import stacked_observation_shape
from muzero.nn.networks import MuZeroNetwork, build_network
from muzero.storage.checkpoint import load_checkpoint
from muzero.transport.checkpoint_client import CheckpointClient
from muzero.transport.grpc_util import backoff_delays, describe

log = logging.getLogger("muzero.transport.weights")


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

    @property
    def announced(self) -> int:
        """The newest version announced so far."""
        return self._after

    def take(self):
        with self._lock:
            pending, self._pending = self._pending, None
            return pending

    def _run(self) -> None:
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
    delays = backoff_delays(0.2, 5.0)
    while not stop.is_set():
        try:
            info = client.latest()
            if info is not None:
                return info
            log.info("no checkpoint published yet; waiting")
        except Exception as error:
            log.info("checkpoint service not reachable yet (%s)", describe(error))
        time.sleep(next(delays))
    return None


def first_weights(
    config, spec, client: CheckpointClient, stop: threading.Event, cache_prefix: str
) -> tuple[MuZeroNetwork, int, str] | None:
    """Wait for the first checkpoint, pull it, build the network from it: (network, version,
    cache folder), or None if ``stop`` was set meanwhile."""
    info = wait_for_first_checkpoint(client, stop)
    if info is None:
        return None
    cache = tempfile.mkdtemp(prefix=cache_prefix)
    checkpoint = load_checkpoint(client.pull(cache, version=info.version))
    network = build_network(
        config.network, stacked_observation_shape(spec.observation_shape, config.env.frame_stack), spec.num_actions
    )
    network.load_state_dict(checkpoint.state_dict)
    return network, checkpoint.version, cache
