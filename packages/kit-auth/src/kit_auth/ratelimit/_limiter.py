"""The :class:`RateLimiter`: a policy bound to a storage."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Literal

from kit_auth.exceptions import BackendUnavailable, ConfigurationError, InvalidInput, RateLimited
from kit_auth.ratelimit._base import Acquire, AsyncAcquire, RateLimitStorage
from kit_auth.ratelimit._limit import Decision, RateLimit
from kit_auth.ratelimit._memory import MemoryRateLimitStorage

__all__ = ["RateLimiter"]

logger = logging.getLogger("kit_auth.ratelimit")

FailurePolicy = Literal["open", "closed"]
OnExceeded = Callable[[str, Decision], None]

#: Longest key accepted: keys come from addresses and user ids, never from bodies.
MAX_KEY_LENGTH = 512
#: A storage outage is logged at most once per this many seconds (per limiter).
DEGRADED_LOG_INTERVAL = 60.0


class RateLimiter:
    """Apply one :class:`RateLimit` per key (an address, a user id, ...).

    ``hit`` consumes and returns a :class:`Decision`; ``check`` is ``hit`` that raises
    :class:`~kit_auth.exceptions.RateLimited` (with ``retry_after`` and the response
    headers) when refused; ``peek`` reports without consuming; ``reset`` forgets a key.
    The ``a``-prefixed twins are for asyncio (with an async storage; with a synchronous
    storage they run the synchronous code).

    ``storage`` defaults to a fresh :class:`MemoryRateLimitStorage` (one process). When the
    storage fails (Redis down or slow), ``failure="open"`` (default) allows the request
    with ``Decision.degraded=True`` and logs a warning at most once a minute;
    ``failure="closed"`` raises :class:`~kit_auth.exceptions.BackendUnavailable` (use it
    for logins and other brute-force targets). ``on_exceeded(key, decision)`` is called
    once per refused hit, e.g. to escalate to a firewall ban; its exceptions are logged,
    never raised into the request.

    Example::

        >>> limiter = RateLimiter("3/minute")
        >>> [limiter.hit("203.0.113.7").allowed for _ in range(4)]
        [True, True, True, False]
        >>> limiter.peek("203.0.113.7").remaining
        0
        >>> limiter.check("203.0.113.7")
        Traceback (most recent call last):
        ...
        kit_auth.exceptions.RateLimited: Rate limit 'default' exceeded (3 per 60 s); retry in 20 s.
    """

    def __init__(
        self,
        limit: RateLimit | str,
        *,
        storage: RateLimitStorage | None = None,
        key_prefix: str = "kit:rl",
        failure: FailurePolicy = "open",
        on_exceeded: OnExceeded | None = None,
    ) -> None:
        self.limit = RateLimit.coerce(limit)
        if storage is None:
            storage = MemoryRateLimitStorage()
        elif not isinstance(storage, RateLimitStorage):
            raise ConfigurationError(
                "RateLimiter storage must be a MemoryRateLimitStorage, RedisRateLimitStorage or "
                f"AsyncRedisRateLimitStorage, got {type(storage).__name__}."
            )
        if (
            not isinstance(key_prefix, str)
            or not key_prefix
            or "{" in key_prefix
            or "}" in key_prefix
        ):
            raise ConfigurationError(
                f"RateLimiter key_prefix must be a non-empty string without braces, got {key_prefix!r}."
            )
        if failure not in ("open", "closed"):
            raise ConfigurationError(
                f"RateLimiter failure must be 'open' (allow when the storage fails) or 'closed' "
                f"(refuse with BackendUnavailable), got {failure!r}."
            )
        if on_exceeded is not None and not callable(on_exceeded):
            raise ConfigurationError("RateLimiter on_exceeded must be a callable(key, decision).")
        self.storage = storage
        self.failure: FailurePolicy = failure
        self.on_exceeded = on_exceeded
        algorithm = "gcra" if self.limit.algorithm == "gcra" else "sw"
        # {prefix:policy:algorithm:key}: one Redis Cluster hash slot per key, and two
        # policies sharing a name but not an algorithm never read each other's state.
        self._prefix = "{" + f"{key_prefix}:{self.limit.name}:{algorithm}:"
        self._acquire: Acquire | None = None if storage.is_async else storage.bind(self.limit)
        self._aacquire: AsyncAcquire | None = (
            storage.abind(self.limit) if storage.is_async else None
        )
        self._quota = self.limit.capacity
        self._policy = self.limit.name
        self._window = self.limit.window
        self._last_degraded_log = -math.inf

    def __repr__(self) -> str:
        return f"RateLimiter({self.limit!r}, storage={type(self.storage).__name__})"

    # -- sync ------------------------------------------------------------------------

    def hit(self, key: str, cost: int = 1) -> Decision:
        """Consume ``cost`` from ``key``'s quota if it fits; the Decision says whether it did.

        Example::

            >>> RateLimiter("10/minute").hit("user:42", cost=4).remaining
            6
        """
        full_key = self._key(key, cost)
        acquire = self._acquire
        if acquire is None:
            raise self._wrong_mode("hit")
        try:
            allowed, remaining, reset_after, retry_after = acquire(full_key, cost)
        except BackendUnavailable as exc:
            return self._degraded(exc)
        decision = Decision(
            allowed, self._quota, remaining, reset_after, retry_after, self._policy, self._window
        )
        if not allowed and self.on_exceeded is not None:
            self._notify(key, decision)
        return decision

    def check(self, key: str, cost: int = 1) -> Decision:
        """:meth:`hit`, raising :class:`~kit_auth.exceptions.RateLimited` when refused.

        Example::

            >>> RateLimiter("1/second").check("k").allowed
            True
        """
        decision = self.hit(key, cost)
        if not decision.allowed:
            raise self._refusal(decision)
        return decision

    def peek(self, key: str) -> Decision:
        """The state of ``key`` without consuming: would one more request be allowed?

        Example::

            >>> RateLimiter("5/minute").peek("k").remaining
            5
        """
        full_key = self._key(key, 1)
        acquire = self._acquire
        if acquire is None:
            raise self._wrong_mode("peek")
        try:
            outcome = acquire(full_key, 0)
        except BackendUnavailable as exc:
            return self._degraded(exc)
        allowed, remaining, reset_after, retry_after = outcome
        return Decision(
            allowed, self._quota, remaining, reset_after, retry_after, self._policy, self._window
        )

    def reset(self, key: str) -> None:
        """Forget ``key``'s usage (its full quota is back).

        Example::

            >>> limiter = RateLimiter("1/hour")
            >>> limiter.hit("k").allowed, limiter.hit("k").allowed
            (True, False)
            >>> limiter.reset("k")
            >>> limiter.hit("k").allowed
            True
        """
        full_key = self._key(key, 1)
        if self.storage.is_async:
            raise self._wrong_mode("reset")
        try:
            self.storage.clear(full_key)
        except BackendUnavailable as exc:
            self._degraded(exc)

    # -- async -----------------------------------------------------------------------

    async def ahit(self, key: str, cost: int = 1) -> Decision:
        """Async twin of :meth:`hit`.

        Example::

            >>> import asyncio
            >>> asyncio.run(RateLimiter("2/minute").ahit("k")).remaining
            1
        """
        aacquire = self._aacquire
        if aacquire is None:
            return self.hit(key, cost)
        full_key = self._key(key, cost)
        try:
            allowed, remaining, reset_after, retry_after = await aacquire(full_key, cost)
        except BackendUnavailable as exc:
            return self._degraded(exc)
        decision = Decision(
            allowed, self._quota, remaining, reset_after, retry_after, self._policy, self._window
        )
        if not allowed and self.on_exceeded is not None:
            self._notify(key, decision)
        return decision

    async def acheck(self, key: str, cost: int = 1) -> Decision:
        """Async twin of :meth:`check`.

        Example::

            >>> import asyncio
            >>> asyncio.run(RateLimiter("2/minute").acheck("k")).allowed
            True
        """
        decision = await self.ahit(key, cost)
        if not decision.allowed:
            raise self._refusal(decision)
        return decision

    async def apeek(self, key: str) -> Decision:
        """Async twin of :meth:`peek`.

        Example::

            >>> import asyncio
            >>> asyncio.run(RateLimiter("2/minute").apeek("k")).allowed
            True
        """
        aacquire = self._aacquire
        if aacquire is None:
            return self.peek(key)
        full_key = self._key(key, 1)
        try:
            outcome = await aacquire(full_key, 0)
        except BackendUnavailable as exc:
            return self._degraded(exc)
        allowed, remaining, reset_after, retry_after = outcome
        return Decision(
            allowed, self._quota, remaining, reset_after, retry_after, self._policy, self._window
        )

    async def areset(self, key: str) -> None:
        """Async twin of :meth:`reset`.

        Example::

            >>> import asyncio
            >>> asyncio.run(RateLimiter("2/minute").areset("k"))
        """
        if not self.storage.is_async:
            self.reset(key)
            return
        full_key = self._key(key, 1)
        try:
            await self.storage.aclear(full_key)
        except BackendUnavailable as exc:
            self._degraded(exc)

    # -- internals -------------------------------------------------------------------

    def _key(self, key: str, cost: int) -> str:
        if type(key) is not str or not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidInput(
                f"A rate-limit key must be a non-empty string of at most {MAX_KEY_LENGTH} "
                f"characters, got {type(key).__name__} of length "
                f"{len(key) if isinstance(key, str) else 'n/a'}."
            )
        if type(cost) is not int or cost < 1 or cost > self._quota:
            raise InvalidInput(
                f"cost must be an integer from 1 to the policy's capacity {self._quota}, "
                f"got {cost!r}."
            )
        return self._prefix + key + "}"

    def _wrong_mode(self, method: str) -> ConfigurationError:
        return ConfigurationError(
            f"RateLimiter.{method}() is synchronous but the storage "
            f"{type(self.storage).__name__} is async-only: use a{method}(), or a "
            "synchronous storage."
        )

    def _degraded(self, exc: BackendUnavailable) -> Decision:
        if self.failure == "closed":
            raise exc
        now = time.monotonic()
        if now - self._last_degraded_log >= DEGRADED_LOG_INTERVAL:
            self._last_degraded_log = now
            logger.warning("Rate limit %r not enforced (failure='open'): %s", self._policy, exc)
        return Decision(
            True, self._quota, self._quota, 0.0, 0.0, self._policy, self._window, degraded=True
        )

    def _notify(self, key: str, decision: Decision) -> None:
        assert self.on_exceeded is not None
        try:
            self.on_exceeded(key, decision)
        except Exception:
            logger.exception("on_exceeded callback of rate limit %r failed", self._policy)

    def _refusal(self, decision: Decision) -> RateLimited:
        wait = max(math.ceil(decision.retry_after - 1e-6), 1)
        return RateLimited(
            f"Rate limit {self._policy!r} exceeded ({self.limit.limit} per "
            f"{self.limit.period:g} s); retry in {wait} s.",
            retry_after=decision.retry_after,
            headers=decision.headers(),
        )
