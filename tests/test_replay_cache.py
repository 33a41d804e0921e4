"""The replay front's byte-bounded LRU."""

from __future__ import annotations

import pytest

from muzero.storage.replay.cache import ByteLRU


def test_evicts_least_recently_used_until_under_the_budget():
    cache = ByteLRU(100)
    cache.put("a", 1, 40)
    cache.put("b", 2, 40)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3, 40)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    assert cache.nbytes == 80 and len(cache) == 2
    assert (cache.hits, cache.misses) == (3, 1)


def test_replacing_a_key_recounts_its_bytes():
    cache = ByteLRU(100)
    cache.put("a", 1, 90)
    cache.put("a", 2, 10)
    cache.put("b", 3, 90)
    assert cache.get("a") == 2 and cache.nbytes == 100


def test_an_entry_larger_than_the_cache_is_not_kept():
    cache = ByteLRU(10)
    cache.put("big", 1, 11)
    assert cache.get("big") is None and cache.nbytes == 0
    off = ByteLRU(0)
    off.put("a", 1, 1)
    assert off.get("a") is None


def test_a_negative_budget_is_refused():
    with pytest.raises(ValueError, match="max_bytes"):
        ByteLRU(-1)
