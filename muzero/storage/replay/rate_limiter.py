"""Rate limiting between the writers and the sampler of a replay store (as in Reverb).

The learner should see each transition about ``samples_per_insert`` times. With
``diff = (inserted - min_size) * samples_per_insert - sampled``, a sample of n
is allowed while the store holds at least ``min_size`` transitions and
``diff - n >= -error_buffer`` (the learner is not running ahead); an insert of
n while ``diff + n * samples_per_insert <= error_buffer`` (the actors are not
running ahead). The faster side waits. The counts are the store's own totals,
so every replica of a stateless front enforces the same limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from muzero.config import ReplayConfig


@dataclass(frozen=True)
class Counts:
    inserted: int  # transitions ever inserted
    sampled: int  # transitions ever sampled for training
    stored: int  # transitions held now


@dataclass(frozen=True)
class RateLimiter:
    min_size: int
    samples_per_insert: float = 0.0  # 0: only the minimum size applies
    error_buffer: float = 0.0

    @classmethod
    def from_config(cls, config: ReplayConfig) -> RateLimiter:
        buffer = config.samples_per_insert_error_buffer or 2.0 * config.samples_per_insert * config.segment_length
        return cls(config.min_size, config.samples_per_insert, buffer)

    def _diff(self, counts: Counts) -> float:
        return max(counts.inserted - self.min_size, 0) * self.samples_per_insert - counts.sampled

    @property
    def limits_inserts(self) -> bool:
        """Whether inserts can ever wait (only when a samples-per-insert ratio is set)."""
        return self.samples_per_insert > 0

    def can_sample(self, counts: Counts, n: int) -> bool:
        if counts.stored < max(self.min_size, 1):
            return False
        return not self.samples_per_insert or self._diff(counts) - n >= -self.error_buffer

    def can_insert(self, counts: Counts, n: int) -> bool:
        if not self.samples_per_insert or counts.inserted + n <= self.min_size:
            return True
        return self._diff(counts) + n * self.samples_per_insert <= self.error_buffer

    def wait(self, allowed: Callable[[], bool], timeout_s: float | None, what: str) -> None:
        """Poll ``allowed`` with backoff (1 ms up to 50 ms) until true; TimeoutError after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        pause = 0.001
        while not allowed():
            if deadline is not None and time.monotonic() + pause > deadline:
                raise TimeoutError(f"rate limiter: {what} still blocked after {timeout_s:.1f} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
