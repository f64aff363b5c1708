"""A small bounded, thread-safe least-recently-used cache, shared by every cache of the package."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, NamedTuple, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class CacheInfo(NamedTuple):
    """Lookups that found (hits) or missed (misses) their key, entries held, and the bound."""

    hits: int
    misses: int
    size: int
    max_size: int


class LRUCache(Generic[Key, Value]):
    """At most max_size entries; adding one more forgets the least recently used.

    Every method holds the cache's lock, so threads may share it. get_or_make() computes a
    missing value outside the lock: two threads missing the same key at once both compute it,
    and the later one's value is kept (callers cache pure functions of the key, so either is
    right).

    Args:
        max_size: entries kept; 0 keeps none (every lookup misses).
    """

    def __init__(self, max_size: int) -> None:
        if max_size < 0:
            raise ValueError(f"max_size must be >= 0, got {max_size}")
        self.max_size = max_size
        self._entries: OrderedDict[Key, Value] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def get(self, key: Key) -> Value | None:
        """The value cached for key (now the most recently used), or None."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self._hits += 1
                return self._entries[key]
            self._misses += 1
            return None

    def put(self, key: Key, value: Value) -> None:
        with self._lock:
            if self.max_size == 0:
                return
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)

    def get_or_make(self, key: Key, make: Callable[[], Value]) -> Value:
        """The value cached for key, or make()'s, which is cached."""
        value = self.get(key)
        if value is None:
            value = make()
            self.put(key, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._entries), self.max_size)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
