"""Redis rate-limit storages, sync (redis-py) and async (redis.asyncio)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kit_auth._health import aping_redis, check_timeout, ping_redis, within
from kit_auth.exceptions import BackendUnavailable, ConfigurationError
from kit_auth.ratelimit._base import Acquire, AsyncAcquire, Outcome, RateLimitStorage
from kit_auth.ratelimit._limit import RateLimit
from kit_auth.ratelimit._lua import GCRA, SLIDING_WINDOW

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["AsyncRedisRateLimitStorage", "RedisRateLimitStorage"]

#: Socket (connect and read) timeout of clients built from a URL: a Redis that does not
#: answer costs a request at most about this long before the failure policy applies.
DEFAULT_SOCKET_TIMEOUT = 0.25


def _script_args(limit: RateLimit) -> tuple[str, int, int, float]:
    """(script, arg1, arg2, scale to seconds) for ``limit``."""
    if limit.algorithm == "gcra":
        interval = round(limit.period * 1_000_000 / limit.limit)
        if interval < 1:
            raise ConfigurationError(
                f"RateLimit {limit.limit} per {limit.period}s is finer than the Redis storage's "
                "microsecond resolution; use a longer period or a smaller limit."
            )
        return GCRA, interval, interval * limit.capacity, 1e-6
    period_ms = max(math.ceil(limit.period * 1000), 1)
    return SLIDING_WINDOW, period_ms, limit.limit, 1e-3


def _unavailable(exc: Exception) -> BackendUnavailable:
    return BackendUnavailable(
        f"The Redis rate-limit storage failed ({type(exc).__name__}: {exc}); check that Redis "
        "is up and reachable."
    )


def _validate_timeout(socket_timeout: float) -> float:
    if (
        isinstance(socket_timeout, bool)
        or not isinstance(socket_timeout, int | float)
        or not 0 < socket_timeout <= 60
    ):
        raise ConfigurationError(
            f"socket_timeout must be a number of seconds in (0, 60], got {socket_timeout!r}."
        )
    return float(socket_timeout)


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - the extra is installed in tests
        raise ConfigurationError(
            "The Redis rate-limit storage needs redis-py: pip install 'kit-auth[redis]'."
        ) from exc
    return redis


class RedisRateLimitStorage(RateLimitStorage):
    """Rate-limit state in Redis, shared by every process and server.

    Each check is **one** round trip: an ``EVALSHA`` of a Lua script (registered with
    ``register_script``) that reads Redis's own clock (``TIME``), so app servers with
    skewed clocks agree. Keys are ``{kit:rl:<policy>:<gcra|sw>:<key>}``: a single hash-tagged key
    per check (both windows of the sliding window live in one hash), valid in Redis
    Cluster, with a PEXPIRE so idle keys vanish.

    ``client_or_url`` is a ``redis.Redis`` or a URL. A client built from a URL gets
    ``socket_timeout`` and ``socket_connect_timeout`` of ``socket_timeout`` seconds
    (default 0.25) and a single immediate retry, so a Redis outage costs a request a
    bounded time (a bare redis-py client retries 3 times with backoff). Pass your own
    client to choose other settings.

    Example (no connection is made until the first check)::

        >>> storage = RedisRateLimitStorage("redis://127.0.0.1:6379/0")
        >>> storage.close()
    """

    def __init__(
        self, client_or_url: redis.Redis | str, *, socket_timeout: float = DEFAULT_SOCKET_TIMEOUT
    ) -> None:
        redis_mod = _import_redis()
        timeout = _validate_timeout(socket_timeout)
        self._owned = isinstance(client_or_url, str)
        if isinstance(client_or_url, str):
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            try:
                client = redis_mod.Redis.from_url(
                    client_or_url,
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                    retry=Retry(NoBackoff(), 1),
                )
            except ValueError as exc:
                raise ConfigurationError(
                    f"Invalid Redis URL for the rate-limit storage: {exc}"
                ) from exc
        elif isinstance(client_or_url, redis_mod.Redis):
            client = client_or_url
        else:
            raise ConfigurationError(
                "RedisRateLimitStorage needs a redis.Redis client or a redis:// URL, got "
                f"{type(client_or_url).__name__} (use AsyncRedisRateLimitStorage for redis.asyncio)."
            )
        self.client: redis.Redis = client
        self._scripts = {s: client.register_script(s) for s in (GCRA, SLIDING_WINDOW)}
        self._no_script = redis_mod.exceptions.NoScriptError
        self._redis_error = redis_mod.exceptions.RedisError
        decoded = client.connection_pool.connection_kwargs.get("decode_responses", False)
        self._one: str | bytes = "1" if decoded else b"1"

    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: True if Redis answers ``PING`` within ``timeout`` seconds.

        The probe opens a connection of its own (the client's address, credentials, TLS
        and database, ``timeout`` to connect and read, no retries) and closes it; False,
        never an exception, when Redis is down, refuses or does not answer in time.

        Example (nothing listens on port 9)::

            >>> RedisRateLimitStorage("redis://127.0.0.1:9/0").ping(timeout=0.5)
            False
        """
        return ping_redis(self.client, check_timeout(timeout))

    async def aping(self, timeout: float = 2.0) -> bool:
        """:meth:`ping` in a worker thread, so the event loop keeps running."""
        timeout = check_timeout(timeout)
        return await asyncio.to_thread(ping_redis, self.client, timeout)

    def bind(self, limit: RateLimit) -> Acquire:
        script, arg1, arg2, scale = _script_args(limit)
        source = self._scripts[script]
        sha = source.sha
        execute: Callable[..., Any] = self.client.execute_command
        no_script = self._no_script
        redis_error = self._redis_error
        one = self._one

        def acquire(key: str, cost: int) -> Outcome:
            try:
                try:
                    reply = execute("EVALSHA", sha, 1, key, arg1, arg2, cost)
                except no_script:
                    self.client.script_load(script)
                    reply = execute("EVALSHA", sha, 1, key, arg1, arg2, cost)
            except redis_error as exc:
                raise _unavailable(exc) from exc
            ok, remaining, reset, retry = reply.split()
            return ok == one, int(remaining), int(reset) * scale, int(retry) * scale

        return acquire

    def clear(self, key: str) -> None:
        try:
            self.client.delete(key)
        except self._redis_error as exc:
            raise _unavailable(exc) from exc

    def close(self) -> None:
        """Close the client if this storage built it from a URL."""
        if self._owned:
            self.client.close()


class AsyncRedisRateLimitStorage(RateLimitStorage):
    """The asyncio twin of :class:`RedisRateLimitStorage` (``redis.asyncio``): same
    scripts, keys and timeouts; use it with ``ahit``/``acheck``/``apeek``/``areset``.

    Example (no connection is made until the first check)::

        >>> storage = AsyncRedisRateLimitStorage("redis://127.0.0.1:6379/0")
        >>> storage.is_async
        True
    """

    is_async = True

    def __init__(
        self,
        client_or_url: redis.asyncio.Redis | str,
        *,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
    ) -> None:
        redis_mod = _import_redis()
        import redis.asyncio as aioredis

        timeout = _validate_timeout(socket_timeout)
        self._owned = isinstance(client_or_url, str)
        if isinstance(client_or_url, str):
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            try:
                client = aioredis.Redis.from_url(
                    client_or_url,
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                    retry=Retry(NoBackoff(), 1),
                )
            except ValueError as exc:
                raise ConfigurationError(
                    f"Invalid Redis URL for the rate-limit storage: {exc}"
                ) from exc
        elif isinstance(client_or_url, aioredis.Redis):
            client = client_or_url
        else:
            raise ConfigurationError(
                "AsyncRedisRateLimitStorage needs a redis.asyncio.Redis client or a redis:// "
                f"URL, got {type(client_or_url).__name__}."
            )
        self.client: redis.asyncio.Redis = client
        self._scripts = {s: client.register_script(s) for s in (GCRA, SLIDING_WINDOW)}
        self._no_script = redis_mod.exceptions.NoScriptError
        self._redis_error = redis_mod.exceptions.RedisError
        decoded = client.connection_pool.connection_kwargs.get("decode_responses", False)
        self._one: str | bytes = "1" if decoded else b"1"

    def bind(self, limit: RateLimit) -> Acquire:
        raise ConfigurationError(
            "AsyncRedisRateLimitStorage is async-only: call ahit/acheck/apeek/areset, or use "
            "RedisRateLimitStorage in synchronous code."
        )

    def abind(self, limit: RateLimit) -> AsyncAcquire:
        script, arg1, arg2, scale = _script_args(limit)
        sha = self._scripts[script].sha
        execute: Callable[..., Any] = self.client.execute_command
        no_script = self._no_script
        redis_error = self._redis_error
        one = self._one

        async def acquire(key: str, cost: int) -> Outcome:
            try:
                try:
                    reply = await execute("EVALSHA", sha, 1, key, arg1, arg2, cost)
                except no_script:
                    await self.client.script_load(script)
                    reply = await execute("EVALSHA", sha, 1, key, arg1, arg2, cost)
            except (redis_error, OSError) as exc:
                raise _unavailable(exc) from exc
            ok, remaining, reset, retry = reply.split()
            return ok == one, int(remaining), int(reset) * scale, int(retry) * scale

        return acquire

    def clear(self, key: str) -> None:
        raise ConfigurationError(
            "AsyncRedisRateLimitStorage is async-only: call areset (or aclear)."
        )

    def ping(self, timeout: float = 2.0) -> bool:
        """:meth:`aping` for synchronous code (a health endpoint of a sync app): the same
        probe, run on its own event loop in a helper thread. In async code, await
        :meth:`aping`."""
        timeout = check_timeout(timeout)
        return within(lambda: asyncio.run(aping_redis(self.client, timeout)), timeout)

    async def aping(self, timeout: float = 2.0) -> bool:
        """Health check: True if Redis answers ``PING`` within ``timeout`` seconds, on a
        connection of its own (see :meth:`RedisRateLimitStorage.ping`); never raises.

        Example (nothing listens on port 9)::

            >>> import asyncio
            >>> asyncio.run(AsyncRedisRateLimitStorage("redis://127.0.0.1:9/0").aping(timeout=0.5))
            False
        """
        return await aping_redis(self.client, check_timeout(timeout))

    async def aclear(self, key: str) -> None:
        try:
            await self.client.delete(key)
        except (self._redis_error, OSError) as exc:
            raise _unavailable(exc) from exc

    async def aclose(self) -> None:
        """Close the client if this storage built it from a URL."""
        if self._owned:
            await self.client.aclose()
