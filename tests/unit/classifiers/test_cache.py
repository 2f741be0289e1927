"""The dedupe cache: a bounded LRU with hit and miss counts."""

from __future__ import annotations

import numpy as np

from classifiers.cache import ScoreCache, text_key


def row(value: float) -> np.ndarray:
    return np.full(3, value, np.float32)


def test_key_is_a_16_byte_digest_of_the_text() -> None:
    assert len(text_key("hello")) == 16
    assert text_key("hello") == text_key("hello")
    assert text_key("hello") != text_key("hello ")
    assert len(text_key("\ud800 lone surrogate")) == 16  # must not raise


def test_hits_and_misses() -> None:
    cache = ScoreCache(4)
    assert cache.get(b"a") is None
    cache.put(b"a", row(0.1))
    np.testing.assert_array_equal(cache.get(b"a"), row(0.1))
    assert (cache.hits, cache.misses) == (1, 1)


def test_lru_bound_evicts_the_least_recently_used() -> None:
    cache = ScoreCache(2)
    cache.put(b"a", row(1))
    cache.put(b"b", row(2))
    assert cache.get(b"a") is not None  # a is now the most recent
    cache.put(b"c", row(3))
    assert len(cache) == 2
    assert cache.get(b"b") is None
    assert cache.get(b"a") is not None and cache.get(b"c") is not None


def test_put_of_an_existing_key_refreshes_it() -> None:
    cache = ScoreCache(2)
    cache.put(b"a", row(1))
    cache.put(b"b", row(2))
    cache.put(b"a", row(9))
    cache.put(b"c", row(3))
    assert cache.get(b"b") is None
    np.testing.assert_array_equal(cache.get(b"a"), row(9))


def test_many_puts_stay_bounded() -> None:
    cache = ScoreCache(100)
    for i in range(1000):
        cache.put(text_key(str(i)), row(i))
    assert len(cache) == 100
    assert cache.get(text_key("999")) is not None
    assert cache.get(text_key("0")) is None


def test_zero_size_turns_it_off() -> None:
    cache = ScoreCache(0)
    assert not cache.enabled
    cache.put(b"a", row(1))
    assert cache.get(b"a") is None
    assert len(cache) == 0
    assert (cache.hits, cache.misses) == (0, 0)
