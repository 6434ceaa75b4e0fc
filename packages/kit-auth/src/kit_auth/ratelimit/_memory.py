"""In-process rate-limit storage."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from kit_auth.exceptions import ConfigurationError
from kit_auth.ratelimit._base import Acquire, Outcome, RateLimitStorage
from kit_auth.ratelimit._limit import RateLimit

__all__ = ["MemoryRateLimitStorage", "sliding_retry_after"]

_EPS = 1e-9


def sliding_retry_after(
    previous: int, current: int, cost: int, limit: int, period: float, elapsed: float
) -> float:
    """Seconds until a refused sliding-window hit of ``cost`` would be allowed.

    The weighted count is ``floor(previous * (period - elapsed) / period) + current``.
    """
    if current + cost <= limit:
        # Wait inside this window until the previous window's weight has decayed enough.
        room = limit - current - cost + 1  # need previous * weight < room
        return max(period * (1.0 - room / previous) - elapsed, 0.0) + 1e-6
    # Only the next window can help: there `current` becomes the previous count.
    room = limit - cost + 1
    wait_next = period * (1.0 - room / current) + 1e-6 if current >= room else 0.0
    return period - elapsed + wait_next


class MemoryRateLimitStorage(RateLimitStorage):
    """Thread-safe in-process storage (one process only: use Redis across processes).

    GCRA keeps one float per key (its theoretical arrival time), the sliding window
    three numbers (window index, current and previous count). Idle keys, whose state
    equals a fresh key's, are swept every ``sweep_interval`` seconds, so memory stays
    bounded by the keys active within one period. ``clock`` (default
    :func:`time.monotonic`) can be replaced in tests.

    Example::

        >>> from kit_auth.ratelimit import RateLimiter
        >>> now = [1000.0]
        >>> limiter = RateLimiter("2/minute", storage=MemoryRateLimitStorage(clock=lambda: now[0]))
        >>> [limiter.hit("k").allowed for _ in range(3)]
        [True, True, False]
        >>> now[0] += 30
        >>> limiter.hit("k").allowed
        True
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, sweep_interval: float = 60.0
    ) -> None:
        if not callable(clock):
            raise ConfigurationError(
                "MemoryRateLimitStorage clock must be a callable returning seconds."
            )
        if (
            isinstance(sweep_interval, bool)
            or not isinstance(sweep_interval, int | float)
            or sweep_interval <= 0
        ):
            raise ConfigurationError(
                f"MemoryRateLimitStorage sweep_interval must be > 0 seconds, got {sweep_interval!r}."
            )
        self._clock = clock
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}
        # key -> [window index, current count, previous count, period]
        self._windows: dict[str, list[float]] = {}
        self._sweep_interval = float(sweep_interval)
        self._next_sweep = clock() + self._sweep_interval

    def __len__(self) -> int:
        """Number of keys currently held.

        Example::

            >>> len(MemoryRateLimitStorage())
            0
        """
        return len(self._tat) + len(self._windows)

    def bind(self, limit: RateLimit) -> Acquire:
        if limit.algorithm == "gcra":
            return self._bind_gcra(limit)
        return self._bind_sliding(limit)

    def clear(self, key: str) -> None:
        with self._lock:
            self._tat.pop(key, None)
            self._windows.pop(key, None)

    def _sweep(self, now: float) -> None:
        """Drop idle keys (caller holds the lock)."""
        self._next_sweep = now + self._sweep_interval
        self._tat = {k: tat for k, tat in self._tat.items() if tat > now}
        self._windows = {k: st for k, st in self._windows.items() if (st[0] + 2) * st[3] > now}

    def _bind_gcra(self, limit: RateLimit) -> Acquire:
        interval = limit.period / limit.limit
        tau = limit.capacity * interval
        lock = self._lock
        clock = self._clock
        floor = math.floor

        def acquire(key: str, cost: int) -> Outcome:
            with lock:
                now = clock()
                if now >= self._next_sweep:
                    self._sweep(now)
                tats = self._tat
                tat = tats.get(key, now)
                if tat < now:
                    tat = now
                if cost == 0:  # peek: would one more request pass?
                    remaining = floor((now + tau - tat) / interval + _EPS)
                    if remaining >= 1:
                        return True, remaining, tat - now, 0.0
                    return False, 0, tat - now, tat + interval - tau - now
                new_tat = tat + cost * interval
                allow_at = new_tat - tau
                if allow_at > now + _EPS:
                    remaining = floor((now + tau - tat) / interval + _EPS)
                    return False, remaining, tat - now, allow_at - now
                tats[key] = new_tat
                return True, floor((now + tau - new_tat) / interval + _EPS), new_tat - now, 0.0

        return acquire

    def _bind_sliding(self, limit: RateLimit) -> Acquire:
        period = float(limit.period)
        quota = limit.limit
        lock = self._lock
        clock = self._clock
        floor = math.floor

        def acquire(key: str, cost: int) -> Outcome:
            with lock:
                now = clock()
                if now >= self._next_sweep:
                    self._sweep(now)
                index = floor(now / period)
                elapsed = now - index * period
                state = self._windows.get(key)
                current = previous = 0
                if state is not None:
                    if state[0] == index:
                        current, previous = int(state[1]), int(state[2])
                    elif state[0] == index - 1:
                        previous = int(state[1])
                weighted = floor(previous * (period - elapsed) / period) + current
                need = cost or 1
                if weighted + need > quota:
                    reset = 2 * period - elapsed if current else period - elapsed
                    retry = sliding_retry_after(previous, current, need, quota, period, elapsed)
                    return False, max(quota - weighted, 0), reset, retry
                if cost:
                    current += cost
                    if state is None:
                        self._windows[key] = [index, current, previous, period]
                    else:
                        state[0], state[1], state[2] = index, current, previous
                if current:
                    reset = 2 * period - elapsed
                elif previous:
                    reset = period - elapsed
                else:
                    reset = 0.0
                return True, quota - weighted - cost, reset, 0.0

        return acquire
