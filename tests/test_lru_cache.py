"""The package's one LRU cache: bound, recency, statistics, and sharing between threads."""

from __future__ import annotations

import threading

import pytest

from riffusion.lru_cache import CacheInfo, LRUCache


def test_the_least_recently_used_entry_goes_first() -> None:
    cache: LRUCache[str, int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)
    assert cache.info() == CacheInfo(hits=3, misses=1, size=2, max_size=2)


def test_putting_an_existing_key_refreshes_it() -> None:
    cache: LRUCache[str, int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    cache.put("c", 3)
    assert cache.get("a") == 10 and cache.get("b") is None


def test_get_or_make_makes_each_missing_value_once() -> None:
    cache: LRUCache[int, str] = LRUCache(4)
    made = []

    def make(key: int) -> str:
        made.append(key)
        return str(key)

    assert [cache.get_or_make(key, lambda key=key: make(key)) for key in (1, 2, 1, 1)] == [
        "1",
        "2",
        "1",
        "1",
    ]
    assert made == [1, 2]


def test_size_zero_keeps_nothing_and_negative_is_refused() -> None:
    cache: LRUCache[str, int] = LRUCache(0)
    cache.put("a", 1)
    assert cache.get("a") is None and len(cache) == 0
    with pytest.raises(ValueError, match="max_size"):
        LRUCache(-1)


def test_threads_sharing_a_cache_keep_it_bounded_and_counted() -> None:
    cache: LRUCache[int, int] = LRUCache(8)

    def work(offset: int) -> None:
        for index in range(2000):
            cache.get_or_make((index + offset) % 16, lambda index=index: index)

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    info = cache.info()
    assert info.size == 8
    assert info.hits + info.misses == 4 * 2000
