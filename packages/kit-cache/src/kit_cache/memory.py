"""In-process caches: :class:`MemoryCache` (TTL + LRU, thread-safe) and :class:`NullCache`."""

from __future__ import annotations

import dataclasses
import itertools
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ._base import BaseCache
from ._envelope import Entry
from ._sentinel import MISSING, Missing
from ._stats import CacheStats
from .exceptions import ConfigurationError

__all__ = ["MemoryCache", "NullCache"]

# (value, fresh_until or 0, delta, hard expiry or 0, versions): the first three are an Entry.
_Item = tuple[Any, float, float, float, tuple[int, ...]]

# Free-threaded CPython (3.13t) has no GIL to make the lock-free hit path safe.
_GIL: bool = getattr(sys, "_is_gil_enabled", lambda: True)()


class MemoryCache(BaseCache):
    """A thread-safe in-process cache with per-entry TTL and LRU eviction past ``maxsize``.

    Values are stored as they are, not copied: do not mutate what you get back.

    Example::

        >>> cache = MemoryCache(maxsize=1000, default_ttl=60)
        >>> cache.set("user:1", {"name": "Ada"})
        True
        >>> cache.get("user:1")
        {'name': 'Ada'}
        >>> cache.get("user:2")
        MISSING
    """

    def __init__(
        self,
        maxsize: int = 10_000,
        *,
        default_ttl: float | None = 300.0,
        prefix: str = "kit",
        namespace: str = "default",
        clock: Callable[[], float] = time.monotonic,
        max_key_length: int = 200,
    ) -> None:
        super().__init__(
            prefix=prefix,
            namespace=namespace,
            default_ttl=default_ttl,
            max_key_length=max_key_length,
        )
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ConfigurationError(f"maxsize must be a positive int, got {maxsize!r}")
        self.maxsize = maxsize
        self._clock = clock
        self.clock = clock
        self._data: OrderedDict[str, _Item] = OrderedDict()
        self._versions_map: dict[str, int] = {}
        self._lock = threading.Lock()
        self._hit_counter = itertools.count()

    def stats(self) -> CacheStats:
        # itertools.count is advanced atomically in C, so lock-free hits are counted exactly.
        hits = int(repr(self._hit_counter)[6:-1])
        return dataclasses.replace(self._stats.snapshot(), hits=hits)

    def __len__(self) -> int:
        return len(self._data)

    def _current(self, version_keys: tuple[str, ...]) -> tuple[int, ...]:
        if not self._versions_map:
            return ()
        get = self._versions_map.get
        current = tuple([get(k, 0) for k in version_keys])
        return current if any(current) else ()

    def _fetch(
        self, full_key: str, version_keys: tuple[str, ...], count: bool = True
    ) -> tuple[Entry | None, object]:
        if _GIL:
            # Hits take no lock: with the GIL, dict.get and OrderedDict.move_to_end are atomic
            # C calls. Misses, expired entries and every write take the lock below.
            item = self._data.get(full_key)
            if item is not None:
                versions = self._current(version_keys) if self._versions_map else ()
                if item[4] == versions and not (item[3] and item[3] <= self._clock()):
                    try:  # noqa: SIM105 - contextlib.suppress costs more on this hot path
                        self._data.move_to_end(full_key)
                    except KeyError:  # evicted by another thread just now: still a valid hit
                        pass
                    if count:
                        next(self._hit_counter)
                    return item, versions  # type: ignore[return-value]  # an Entry plus extras
        return self._fetch_locked(full_key, version_keys, count)

    def _fetch_locked(
        self, full_key: str, version_keys: tuple[str, ...], count: bool
    ) -> tuple[Entry | None, object]:
        with self._lock:
            versions = self._current(version_keys) if self._versions_map else ()
            item = self._data.get(full_key)
            if item is not None:
                if item[4] == versions and not (item[3] and item[3] <= self._clock()):
                    self._data.move_to_end(full_key)
                    if count:
                        next(self._hit_counter)
                    return item, versions  # type: ignore[return-value]  # an Entry plus extras
                del self._data[full_key]
            if count:
                self._stats.misses += 1
            return None, versions

    def _fetch_many(
        self, full_keys: list[str], version_keys: tuple[str, ...]
    ) -> tuple[list[Entry | None], object]:
        results: list[Entry | None] = []
        versions: object = ()
        for key in full_keys:
            entry, versions = self._fetch(key, version_keys)
            results.append(entry)
        return results, versions

    def _store(
        self,
        items: list[tuple[str, Any, float | None, float | None, float]],
        version_keys: tuple[str, ...],
        versions: object,
    ) -> None:
        with self._lock:
            now = self._clock()
            token = self._current(version_keys) if versions is None else versions
            assert isinstance(token, tuple)
            for key, value, fresh_ttl, hard_ttl, delta in items:
                self._data[key] = (
                    value,
                    now + fresh_ttl if fresh_ttl else 0.0,
                    delta,
                    now + hard_ttl if hard_ttl else 0.0,
                    token,
                )
                self._data.move_to_end(key)
            self._stats.sets += len(items)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
                self._stats.evictions += 1

    def _delete(self, full_keys: list[str]) -> int:
        with self._lock:
            removed = sum(1 for k in full_keys if self._data.pop(k, None) is not None)
            self._stats.deletes += removed
            return removed

    def _live(self, full_key: str) -> _Item | None:
        item = self._data.get(full_key)
        if item is not None and item[3] and item[3] <= self._clock():
            del self._data[full_key]
            return None
        return item

    def _incr(
        self, full_key: str, amount: int, ttl: float | None, version_keys: tuple[str, ...]
    ) -> int:
        with self._lock:
            versions = self._current(version_keys)
            item = self._live(full_key)
            if item is None or item[4] != versions:
                now = self._clock()
                value = amount
                expiry = now + ttl if ttl else 0.0
                self._data[full_key] = (value, expiry, 0.0, expiry, versions)
            else:
                if isinstance(item[0], bool) or not isinstance(item[0], int):
                    raise ConfigurationError(f"cannot incr {full_key!r}: it holds a non-integer")
                value = item[0] + amount
                self._data[full_key] = (value, *item[1:])
            return value

    def _ttl(self, full_key: str) -> float | Missing | None:
        with self._lock:
            item = self._live(full_key)
            if item is None:
                return MISSING
            return max(0.0, item[3] - self._clock()) if item[3] else None

    def _bump(self, version_key: str) -> None:
        with self._lock:
            self._versions_map[version_key] = self._versions_map.get(version_key, 0) + 1

    def _ping(self) -> None:
        return None

    def flush(self) -> None:
        """Drop every entry (all namespaces and tenants) and every version."""
        with self._lock:
            self._data.clear()
            self._versions_map.clear()


class NullCache(MemoryCache):
    """A cache that stores nothing: every lookup misses. For tests and for turning caching off.

    Example::

        >>> NullCache().set("k", 1), NullCache().get("k")
        (True, MISSING)
    """

    def __init__(self, **options: Any) -> None:
        options.pop("maxsize", None)
        super().__init__(maxsize=1, **options)

    def _store(
        self,
        items: list[tuple[str, Any, float | None, float | None, float]],
        version_keys: tuple[str, ...],
        versions: object,
    ) -> None:
        self._stats.count(sets=len(items))

    def _incr(
        self, full_key: str, amount: int, ttl: float | None, version_keys: tuple[str, ...]
    ) -> int:
        return amount
