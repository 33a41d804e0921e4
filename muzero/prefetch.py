"""Keep training batches ready on a background thread, so the learner never waits on input.

The thread drains a stream of batches (the replay service's Sample stream) into
a bounded queue; when the stream ends or breaks it opens a new one, with backoff
after failures. ``get`` hands out the next batch.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Iterable, Iterator

from muzero.replay.client import backoff_delays, describe

log = logging.getLogger("muzero.prefetch")


class Prefetcher:
    def __init__(self, open_stream: Callable[[], Iterable], depth: int = 4):
        if depth < 1:
            raise ValueError(f"depth: must be >= 1, got {depth}")
        self._open_stream = open_stream
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self.failures = 0
        self.last_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)
        self._thread.start()

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
        self._thread.join(timeout=5)

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
