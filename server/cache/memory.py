"""The in-process result cache: least recently used entries go first, each with its TTL."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from switchboard.server.cache.results import CachedResult, CacheStats, encode_result

DEFAULT_MAX_ENTRIES = 1000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Entry:
    result: CachedResult
    expires: float
    size: int


class MemoryCache:
    """A bounded LRU cache in this process's memory.

    Bounded twice: by entry count and by bytes (each entry weighs what its JSON
    encoding does, as it would in Redis). Past either bound, the least recently
    used entries are dropped; an entry heavier than ``max_bytes`` is never kept.
    Expired entries are dropped when they are next looked up (or evicted).
    ``clock`` is a monotonic clock in seconds, replaceable in tests.
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError(
                f"max_entries and max_bytes must be at least 1, got {max_entries}, {max_bytes}"
            )
        self.stats = CacheStats()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """What the entries held now weigh, in bytes."""
        return self._bytes

    async def get(self, key: str) -> CachedResult | None:
        """The live entry under ``key`` (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is not None and entry.expires <= self._clock():
            self._drop(key)
            entry = None
        if entry is None:
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return entry.result

    async def put(self, key: str, result: CachedResult, ttl: timedelta) -> None:
        """Keep ``result`` for ``ttl`` (replacing what ``key`` held), evicting as needed."""
        if key in self._entries:
            self._drop(key)
        size = len(encode_result(result))
        if ttl <= timedelta(0) or size > self._max_bytes:
            return
        self._entries[key] = _Entry(result, self._clock() + ttl.total_seconds(), size)
        self._bytes += size
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))

    async def aclose(self) -> None:
        """Forget every entry."""
        self._entries.clear()
        self._bytes = 0

    def _drop(self, key: str) -> None:
        self._bytes -= self._entries.pop(key).size
