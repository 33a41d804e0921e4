"""Priority updates sent to the replay service on their own thread, so the learner never waits on them."""

from __future__ import annotations

import logging
import queue
import threading

import grpc
import numpy as np

from muzero.learning.segment import SampleKeys
from muzero.transport.replay_client import ReplayClient


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
            keys = SampleKeys(
                segment_ids=np.concatenate([k.segment_ids for k, _ in pending]),
                positions=np.concatenate([k.positions for k, _ in pending]),
            )
            priorities = np.concatenate([p for _, p in pending])
            try:
                self.client.update_priorities(keys, priorities)
            except grpc.RpcError as error:
                self.failed += 1
                logging.getLogger("muzero.learning.learner").warning("priority update failed: %s", error.code().name)
