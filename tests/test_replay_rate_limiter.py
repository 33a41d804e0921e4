"""The samples-per-insert rate limiter: which side waits, and when."""

from __future__ import annotations

import threading

import pytest

from muzero.config import ReplayConfig
from muzero.storage.replay.rate_limiter import Counts, RateLimiter


def test_nothing_is_sampled_below_the_minimum_size():
    limiter = RateLimiter(min_size=100)
    assert not limiter.can_sample(Counts(inserted=99, sampled=0, stored=99), 1)
    assert limiter.can_sample(Counts(inserted=100, sampled=0, stored=100), 1)
    assert limiter.can_insert(Counts(inserted=10**6, sampled=0, stored=100), 200)  # no ratio: never blocks


def test_ratio_band_blocks_the_faster_side():
    limiter = RateLimiter(min_size=100, samples_per_insert=4.0, error_buffer=64.0)
    # 100 inserted past the minimum: 400 samples are due.
    at = lambda sampled: Counts(inserted=200, sampled=sampled, stored=200)  # noqa: E731
    assert limiter.can_sample(at(300), 100)  # 400 - 400 = 0 >= -64
    assert limiter.can_sample(at(400), 64)  # exactly at the edge of the band
    assert not limiter.can_sample(at(400), 65)  # the learner would run ahead
    assert limiter.can_insert(at(400), 16)  # 0 + 64 <= 64
    assert not limiter.can_insert(at(300), 1)  # 100 samples owed already: the actors wait
    assert limiter.can_insert(at(340), 1)  # 60 owed + 4 <= 64


def test_default_buffer_fits_one_segment():
    config = ReplayConfig(min_size=10, capacity=1000, segment_length=50, samples_per_insert=8.0)
    limiter = RateLimiter.from_config(config)
    assert limiter.error_buffer == 2 * 8.0 * 50
    counts = Counts(inserted=10, sampled=0, stored=10)
    assert limiter.can_insert(counts, 50), "a whole segment must fit in the band, or both sides deadlock"


def test_wait_returns_when_allowed_and_times_out_with_a_reason():
    limiter = RateLimiter(min_size=1)
    released = threading.Event()
    threading.Timer(0.05, released.set).start()
    limiter.wait(released.is_set, timeout_s=10, what="sample")
    assert released.is_set()
    with pytest.raises(TimeoutError, match="sample still blocked"):
        limiter.wait(lambda: False, timeout_s=0.05, what="sample")
