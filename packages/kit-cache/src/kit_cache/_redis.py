"""The synchronous Redis cache."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import redis
from redis.exceptions import RedisError, ResponseError

from ._base import BaseCache, OnError
from ._envelope import Entry
from ._redis_common import (
    RedisCore,
    px,
)
from ._sentinel import MISSING, Missing
from .exceptions import BackendError, ConfigurationError
from .serializers import Serializer

__all__ = ["RedisCache"]


class RedisCache(RedisCore, BaseCache):
    """A cache on a Redis server through redis-py, shared by every process that uses it.

    Values are serialized (JSON by default) with a small header; namespace and tag versions
    ride along in the same ``MGET``, so a hit is one round trip. When Redis fails, reads
    miss and writes are skipped (``on_error="ignore"``, the default) and a circuit breaker
    stops every call from waiting for a timeout; ``on_error="raise"`` fails closed.

    Example::

        >>> cache = RedisCache("redis://localhost:6379/0", namespace="users")  # doctest: +SKIP
        >>> cache.set("42", {"name": "Ada"}, ttl=60)  # doctest: +SKIP
        True
        >>> cache.get("42")  # doctest: +SKIP
        {'name': 'Ada'}
    """

    blocking_io = True

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        serializer: str | Serializer | None = None,
        secret: str | bytes | None = None,
        prefix: str = "kit",
        namespace: str = "default",
        default_ttl: float | None = 300.0,
        on_error: OnError = "ignore",
        socket_timeout: float = 0.5,
        connect_timeout: float = 0.5,
        breaker_threshold: int = 3,
        breaker_reset: float = 5.0,
        max_connections: int = 50,
        pool_timeout: float = 1.0,
        max_key_length: int = 200,
        error_log_interval: float = 10.0,
        verify: bool = False,
    ) -> None:
        super().__init__(
            prefix=prefix,
            namespace=namespace,
            default_ttl=default_ttl,
            on_error=on_error,
            max_key_length=max_key_length,
            error_log_interval=error_log_interval,
        )
        self._setup_redis(
            serializer=serializer,
            secret=secret,
            breaker_threshold=breaker_threshold,
            breaker_reset=breaker_reset,
        )
        self.client: redis.Redis = self._connect(
            url,
            client,
            redis,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
            max_connections=max_connections,
            pool_timeout=pool_timeout,
        )
        if verify:
            try:
                self.client.ping()
            except RedisError as exc:
                raise BackendError(f"cannot reach Redis at {self.url}: {exc}") from exc

    # -- storage primitives ---------------------------------------------------------------

    def _call(self, op: str, fn: Any, *args: Any) -> Any:
        if not self.breaker.allow():
            raise self._unavailable()
        try:
            result = fn(*args)
        except ResponseError:
            raise
        except RedisError as exc:
            raise self._backend_error(op, exc) from exc
        self.breaker.success()
        return result

    def _fetch(
        self, full_key: str, version_keys: tuple[str, ...], count: bool = True
    ) -> tuple[Entry | None, object]:
        breaker = self.breaker
        if breaker._opened_until and not breaker.allow():
            raise self._unavailable()
        started = time.perf_counter()
        try:
            values = self.client.execute_command("MGET", *version_keys, full_key)  # type: ignore[no-untyped-call]
        except RedisError as exc:
            raise self._backend_error("MGET", exc) from exc
        if breaker._failures or breaker._opened_until:
            breaker.success()
        return self._decode_fetch(full_key, values, started, count)

    def _fetch_many(
        self, full_keys: list[str], version_keys: tuple[str, ...]
    ) -> tuple[list[Entry | None], object]:
        values = self._call("MGET", self.client.execute_command, "MGET", *version_keys, *full_keys)
        return self._decode_many(full_keys, values, len(version_keys))

    def _store(
        self,
        items: list[tuple[str, Any, float | None, float | None, float]],
        version_keys: tuple[str, ...],
        versions: object,
    ) -> None:
        if versions is None:
            keys, args = self._store_args(items, version_keys)
            self._call("SET", self._store_script, keys, args)
        else:
            assert isinstance(versions, bytes)
            encoded = self._encoded(items, versions)
            if len(encoded) == 1:
                key, body, ms = encoded[0]
                self._call("SET", partial(self.client.set, key, body, px=ms or None))
            else:
                pipe = self.client.pipeline(transaction=False)
                for key, body, ms in encoded:
                    pipe.set(key, body, px=ms or None)
                self._call("SET", pipe.execute)
        self._stats.count(sets=len(items))

    def _delete(self, full_keys: list[str]) -> int:
        removed = int(self._call("UNLINK", self.client.unlink, *full_keys))
        self._stats.count(deletes=removed)
        return removed

    def _incr(
        self, full_key: str, amount: int, ttl: float | None, version_keys: tuple[str, ...]
    ) -> int:
        keys = [*version_keys, full_key]
        args = [len(version_keys), amount, px(ttl)]
        try:
            return int(self._call("INCRBY", self._incr_script, keys, args))
        except ResponseError as exc:
            raise ConfigurationError(f"cannot incr {full_key!r}: {exc}") from exc

    def _ttl(self, full_key: str) -> float | Missing | None:
        ms = int(self._call("PTTL", self.client.pttl, full_key))
        if ms == -2:
            return MISSING
        return None if ms == -1 else ms / 1000

    def _bump(self, version_key: str) -> None:
        self._call("INCR", self.client.incr, version_key)

    def _ping(self) -> None:
        self._call("PING", self.client.ping)

    def lock(self, name: str, *, timeout: float, blocking_timeout: float) -> Any:
        """A redis-py lock (random token, Lua release) on ``<prefix>:@lock:<name>``."""
        return self.client.lock(
            f"{self.prefix}:@lock:{name}", timeout=timeout, blocking_timeout=blocking_timeout
        )

    def close(self) -> None:
        """Close the connection pool if this cache created it."""
        if self._owns_client:
            self.client.close()
            self._pool.disconnect()
