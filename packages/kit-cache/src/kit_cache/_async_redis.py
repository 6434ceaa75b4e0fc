"""The asyncio Redis cache: the same API as :class:`RedisCache`, awaited."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import redis.asyncio as aredis
from redis.exceptions import RedisError, ResponseError

from ._base import TTL, UNSET, OnError, check_ttl
from ._envelope import Entry
from ._keys import check_segment
from ._redis_common import (
    RedisCore,
    px,
)
from ._sentinel import MISSING, Missing
from .exceptions import BackendError, ConfigurationError
from .serializers import Serializer

__all__ = ["AsyncRedisCache"]


class AsyncRedisCache(RedisCore):
    """An asyncio cache on Redis (redis.asyncio); every method is a coroutine.

    Example::

        cache = AsyncRedisCache("redis://localhost:6379/0")
        await cache.set("k", [1, 2], ttl=30)
        assert await cache.get("k") == [1, 2]
        await cache.aclose()
    """

    is_async = True

    def __init__(
        self,
        url: str | None = None,
        *,
        client: aredis.Redis | None = None,
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
        self.client: aredis.Redis = self._connect(
            url,
            client,
            aredis,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
            max_connections=max_connections,
            pool_timeout=pool_timeout,
        )

    async def _call(self, op: str, awaitable: Any) -> Any:
        if not self.breaker.allow():
            awaitable.close()
            raise self._unavailable()
        try:
            result = await awaitable
        except ResponseError:
            raise
        except RedisError as exc:
            raise self._backend_error(op, exc) from exc
        self.breaker.success()
        return result

    # -- storage primitives ---------------------------------------------------------------

    async def _fetch(
        self, full_key: str, version_keys: tuple[str, ...], count: bool = True
    ) -> tuple[Entry | None, object]:
        started = time.perf_counter()
        values = await self._call(
            "MGET",
            self.client.execute_command("MGET", *version_keys, full_key),  # type: ignore[no-untyped-call]
        )
        return self._decode_fetch(full_key, values, started, count)

    async def _store(
        self,
        items: list[tuple[str, Any, float | None, float | None, float]],
        version_keys: tuple[str, ...],
        versions: object,
    ) -> None:
        if versions is None:
            keys, args = self._store_args(items, version_keys)
            await self._call("SET", self._store_script(keys, args))
        else:
            assert isinstance(versions, bytes)
            pipe = self.client.pipeline(transaction=False)
            for key, body, ms in self._encoded(items, versions):
                pipe.set(key, body, px=ms or None)
            await self._call("SET", pipe.execute())
        self._stats.count(sets=len(items))

    # -- public API -----------------------------------------------------------------------

    async def get(
        self, key: str, *, namespace: str | None = None, tenant: str | None = None
    ) -> Any | Missing:
        """Return the cached value, or :data:`MISSING`."""
        ns = self.namespace if namespace is None else namespace
        full = self.key_for(key, namespace=namespace, tenant=tenant)
        try:
            entry, _ = await self._fetch(full, self.version_keys(ns))
        except BackendError as exc:
            self._failed("get", exc)
            return MISSING
        return MISSING if entry is None else entry[0]

    async def set(
        self,
        key: str,
        value: Any,
        ttl: TTL = UNSET,
        *,
        namespace: str | None = None,
        tenant: str | None = None,
    ) -> bool:
        """Store ``value``; False if a failing backend skipped the write."""
        return await self.set_many({key: value}, ttl, namespace=namespace, tenant=tenant)

    async def delete(
        self, key: str, *, namespace: str | None = None, tenant: str | None = None
    ) -> bool:
        """Remove ``key``; True if it existed."""
        return await self.delete_many([key], namespace=namespace, tenant=tenant) > 0

    async def get_many(
        self, keys: Iterable[str], *, namespace: str | None = None, tenant: str | None = None
    ) -> dict[str, Any]:
        """``{key: value}`` for the cached keys, in one round trip."""
        ns = self.namespace if namespace is None else namespace
        keys = list(keys)
        fulls = [self.key_for(k, namespace=namespace, tenant=tenant) for k in keys]
        if not fulls:
            return {}
        vkeys = self.version_keys(ns)
        try:
            values = await self._call("MGET", self.client.execute_command("MGET", *vkeys, *fulls))  # type: ignore[no-untyped-call]
        except BackendError as exc:
            self._failed("get_many", exc)
            return {}
        entries, _ = self._decode_many(fulls, values, len(vkeys))
        return {k: e[0] for k, e in zip(keys, entries, strict=True) if e is not None}

    async def set_many(
        self,
        mapping: Mapping[str, Any],
        ttl: TTL = UNSET,
        *,
        namespace: str | None = None,
        tenant: str | None = None,
    ) -> bool:
        """Store every item with the same ``ttl``, in one round trip."""
        ns = self.namespace if namespace is None else namespace
        seconds = self._ttl_or_default(ttl)
        items = [
            (self.key_for(k, namespace=namespace, tenant=tenant), v, seconds, seconds, 0.0)
            for k, v in mapping.items()
        ]
        if not items:
            return True
        try:
            await self._store(items, self.version_keys(ns), None)
        except BackendError as exc:
            self._failed("set", exc)
            return False
        return True

    async def delete_many(
        self, keys: Iterable[str], *, namespace: str | None = None, tenant: str | None = None
    ) -> int:
        """Remove every key; return how many existed."""
        fulls = [self.key_for(k, namespace=namespace, tenant=tenant) for k in keys]
        if not fulls:
            return 0
        try:
            return await self._delete(fulls)
        except BackendError as exc:
            self._failed("delete", exc)
            return 0

    async def _delete(self, full_keys: list[str]) -> int:
        removed = int(await self._call("UNLINK", self.client.unlink(*full_keys)))
        self._stats.count(deletes=removed)
        return removed

    async def incr(
        self,
        key: str,
        amount: int = 1,
        *,
        ttl: float | None = None,
        namespace: str | None = None,
        tenant: str | None = None,
    ) -> int:
        """Atomically add ``amount``; backend failures raise :class:`BackendError`."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ConfigurationError(f"incr amount must be an int, got {amount!r}")
        seconds = check_ttl(ttl)
        ns = self.namespace if namespace is None else namespace
        full = self.key_for(key, namespace=namespace, tenant=tenant)
        vkeys = self.version_keys(ns)
        script = self._incr_script([*vkeys, full], [len(vkeys), amount, px(seconds)])
        try:
            return int(await self._call("INCRBY", script))
        except ResponseError as exc:
            raise ConfigurationError(f"cannot incr {full!r}: {exc}") from exc
        except BackendError:
            self._stats.error()
            raise

    async def ttl(
        self, key: str, *, namespace: str | None = None, tenant: str | None = None
    ) -> float | Missing | None:
        """Seconds left, ``None`` for no expiry, :data:`MISSING` if absent."""
        full = self.key_for(key, namespace=namespace, tenant=tenant)
        try:
            ms = int(await self._call("PTTL", self.client.pttl(full)))
        except BackendError as exc:
            self._failed("ttl", exc)
            return MISSING
        if ms == -2:
            return MISSING
        return None if ms == -1 else ms / 1000

    async def clear(self, namespace: str | None = None) -> None:
        """Invalidate every entry of ``namespace`` in O(1) (a version bump, no scan)."""
        ns = self.namespace if namespace is None else check_segment(namespace, "namespace")
        await self._bump([self.version_keys(ns)[0]], "clear")

    async def invalidate_tags(self, *tags: str) -> None:
        """Invalidate every entry stored with any of ``tags``."""
        await self._bump(list(self.version_keys("_", tags)[1:]), "invalidate_tags")

    async def _bump(self, keys: list[str], op: str) -> None:
        try:
            for key in keys:
                await self._call("INCR", self.client.incr(key))
        except BackendError as exc:
            self._failed(op, exc)

    async def ping(self) -> bool:
        """Health check: True if Redis answers now."""
        try:
            await self._call("PING", self.client.ping())
        except BackendError:
            return False
        return True

    def lock(self, name: str, *, timeout: float, blocking_timeout: float) -> Any:
        """A redis-py asyncio lock on ``<prefix>:@lock:<name>``."""
        return self.client.lock(
            f"{self.prefix}:@lock:{name}", timeout=timeout, blocking_timeout=blocking_timeout
        )

    async def aclose(self) -> None:
        """Close the connection pool if this cache created it."""
        if self._owns_client:
            await self.client.aclose()
            await self._pool.disconnect()

    async def __aenter__(self) -> AsyncRedisCache:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
