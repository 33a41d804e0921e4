"""The learner's prefetcher: batches from several streams, reopened after failures."""

from __future__ import annotations

import itertools
import threading

import pytest

from muzero.transport.prefetch import Prefetcher


def test_streams_feed_one_queue_and_a_broken_stream_is_reopened():
    opened = itertools.count()
    lock = threading.Lock()

    def open_stream():
        with lock:
            number = next(opened)
        if number == 0:
            raise ConnectionError("replay not up yet")  # the first attempt fails
        for i in range(3):
            yield (number, i)
        if number == 1:
            raise ConnectionError("stream cut")  # then one stream breaks after 3 batches

    prefetcher = Prefetcher(open_stream, depth=2, streams=2)
    try:
        got = [prefetcher.get(timeout_s=30) for _ in range(12)]
    finally:
        prefetcher.close()
    assert None not in got
    assert len({number for number, _ in got}) >= 3, "streams were reopened"
    assert prefetcher.failures >= 2 and isinstance(prefetcher.last_error, ConnectionError)


def test_bad_arguments():
    with pytest.raises(ValueError, match="streams"):
        Prefetcher(lambda: iter(()), streams=0)
