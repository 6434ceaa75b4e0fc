from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["CacheStats"]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of a cache's counters since it was created.

    ``latency_*`` cover round trips to a cache server (zero for in-process caches).
    """

    hits: int
    misses: int
    sets: int
    deletes: int
    errors: int
    evictions: int
    latency_count: int
    latency_mean_ms: float
    latency_max_ms: float

    @property
    def hit_ratio(self) -> float:
        """Hits over lookups, 0.0 before the first lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class StatsRecorder:
    """Thread-safe counters behind :class:`CacheStats`."""

    __slots__ = (
        "_lock",
        "deletes",
        "errors",
        "evictions",
        "hits",
        "latency_count",
        "latency_max",
        "latency_total",
        "misses",
        "sets",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hits = self.misses = self.sets = self.deletes = self.errors = self.evictions = 0
        self.latency_count = 0
        self.latency_total = self.latency_max = 0.0

    def count(self, *, hits: int = 0, misses: int = 0, sets: int = 0, deletes: int = 0) -> None:
        with self._lock:
            self.hits += hits
            self.misses += misses
            self.sets += sets
            self.deletes += deletes

    def error(self) -> None:
        with self._lock:
            self.errors += 1

    def latency(self, seconds: float) -> None:
        with self._lock:
            self.latency_count += 1
            self.latency_total += seconds
            self.latency_max = max(self.latency_max, seconds)

    def snapshot(self) -> CacheStats:
        with self._lock:
            n = self.latency_count
            return CacheStats(
                hits=self.hits,
                misses=self.misses,
                sets=self.sets,
                deletes=self.deletes,
                errors=self.errors,
                evictions=self.evictions,
                latency_count=n,
                latency_mean_ms=(self.latency_total / n * 1000) if n else 0.0,
                latency_max_ms=self.latency_max * 1000,
            )
