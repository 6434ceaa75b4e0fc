"""The small interface between :class:`RateLimiter` and its storages (internal)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from kit_auth._health import check_timeout
from kit_auth.ratelimit._limit import RateLimit

__all__ = ["Acquire", "AsyncAcquire", "Outcome", "RateLimitStorage"]

#: (allowed, remaining, reset_after seconds, retry_after seconds)
Outcome = tuple[bool, int, float, float]
#: acquire(full_key, cost) -> Outcome; cost 0 means "peek": report, consume nothing.
Acquire = Callable[[str, int], Outcome]
AsyncAcquire = Callable[[str, int], Awaitable[Outcome]]


class RateLimitStorage:
    """Base class of the rate-limit storages.

    A storage turns a :class:`RateLimit` into an *acquire* function once (``bind``), so
    the per-request path does no policy arithmetic or string formatting. Storage errors
    surface as :class:`~kit_auth.exceptions.BackendUnavailable`.
    """

    #: True for storages that only offer the async API (``abind``/``aclear``).
    is_async: bool = False

    def bind(self, limit: RateLimit) -> Acquire:
        """The synchronous acquire function for ``limit``."""
        raise NotImplementedError

    def abind(self, limit: RateLimit) -> AsyncAcquire:
        """The asynchronous acquire function for ``limit``."""
        acquire = self.bind(limit)

        async def aacquire(key: str, cost: int) -> Outcome:
            return acquire(key, cost)

        return aacquire

    def clear(self, key: str) -> None:
        """Forget all state of ``key``."""
        raise NotImplementedError

    async def aclear(self, key: str) -> None:
        """Async twin of :meth:`clear`."""
        self.clear(key)

    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: True if the storage can answer checks now; False, never an
        exception, when it cannot, within ``timeout`` seconds. A storage in this
        process's memory is always healthy (this default)."""
        check_timeout(timeout)
        return True

    async def aping(self, timeout: float = 2.0) -> bool:
        """Async twin of :meth:`ping` (the one async-only storages implement)."""
        return self.ping(timeout)
