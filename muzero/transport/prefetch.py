"""Keep training batches ready on a background thread, so the learner never waits on input.

Each of ``streams`` threads drains a stream of batches (the replay service's Sample
stream) into one bounded queue; when a stream ends or breaks its thread opens a new
one, with backoff after failures. Several streams let the replay side prepare
batches in parallel (its work per batch is mostly I/O and numpy). ``get`` hands out
the next batch.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from muzero.transport.grpc_util import backoff_delays, describe

log = logging.getLogger("muzero.transport.prefetch")


class Prefetcher:
    def __init__(self, open_stream: Callable[[], Iterable], depth: int = 4, streams: int = 1):
        if depth < 1:
            raise ValueError(f"depth: must be >= 1, got {depth}")
        if streams < 1:
            raise ValueError(f"streams: must be >= 1, got {streams}")
        self._open_stream = open_stream
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self.failures = 0
        self.last_error: BaseException | None = None
        self._threads = [threading.Thread(target=self._run, name=f"prefetch-{i}", daemon=True) for i in range(streams)]
        for thread in self._threads:
            thread.start()

    def get(self, timeout_s: float | None = None):
        """The next batch, or None if none arrived within ``timeout_s``."""
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    @property
    def ready(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        delays: Iterator[float] = backoff_delays(0.1, 5.0)
        while not self._stop.is_set():
            try:
                for batch in self._open_stream():
                    if not self._put(batch):
                        return
                    delays = backoff_delays(0.1, 5.0)
            except Exception as error:  # any failure of the source: log, back off, reopen
                self.failures += 1
                self.last_error = error
                log.warning("batch stream failed (%s); reopening", describe(error))
                time.sleep(next(delays))
