"""A circuit breaker and a log throttle for network backends.

Kept in-house on purpose: the check runs on every cache call, where a general-purpose
breaker (listeners, storage abstractions, locks) would cost more than the lookup itself.
"""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("kit.cache")


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; lets one trial call through after
    ``reset_after`` seconds (half-open); closes on the first success."""

    __slots__ = ("_failures", "_lock", "_opened_until", "reset_after", "threshold")

    def __init__(self, threshold: int = 3, reset_after: float = 5.0) -> None:
        self.threshold = threshold
        self.reset_after = reset_after
        self._failures = 0
        self._opened_until = 0.0
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._opened_until > time.monotonic()

    def allow(self) -> bool:
        """Whether a call may go to the backend now."""
        until = self._opened_until
        if not until:
            return True
        now = time.monotonic()
        if now < until:
            return False
        with self._lock:  # half-open: one caller gets the trial, the rest keep failing fast
            if self._opened_until and now >= self._opened_until:
                self._opened_until = now + self.reset_after
                return True
        return False

    def success(self) -> None:
        if self._failures or self._opened_until:
            with self._lock:
                self._failures = 0
                self._opened_until = 0.0

    def failure(self) -> bool:
        """Record a failure; return True if the breaker opened because of it."""
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold:
                was_open = bool(self._opened_until)
                self._opened_until = time.monotonic() + self.reset_after
                return not was_open
        return False


class LogThrottle:
    """Logs an event at most once per ``interval`` seconds, counting what it suppressed."""

    __slots__ = ("_last", "_lock", "_suppressed", "interval")

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def error(self, event: str, **context: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(event, -1e18) < self.interval:
                self._suppressed[event] = self._suppressed.get(event, 0) + 1
                return
            self._last[event] = now
            suppressed = self._suppressed.pop(event, 0)
        details = " ".join(f"{k}={v!r}" for k, v in context.items())
        logger.warning(
            "%s %s suppressed_since_last=%d", event, details, suppressed, extra={"kit_event": event}
        )
