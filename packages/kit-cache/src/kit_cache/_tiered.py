"""An in-process L1 over a Redis L2, kept coherent across processes through pub/sub."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import uuid
from typing import Any

from redis.exceptions import RedisError

from ._base import BaseCache, OnError, check_ttl
from ._envelope import Entry
from ._redis import RedisCache
from ._sentinel import Missing
from ._stats import CacheStats
from .exceptions import ConfigurationError
from .memory import MemoryCache

__all__ = ["TieredCache"]


class TieredCache(BaseCache):
    """L1 :class:`MemoryCache` in front of a :class:`RedisCache`, for hot keys.

    A hit in L1 costs no network round trip. Every write, delete, ``clear`` and tag
    invalidation made through any ``TieredCache`` on the same Redis is published on a
    pub/sub channel, and every other process drops its L1 copy when the message arrives.
    Staleness is bounded: an L1 entry lives at most ``l1_ttl`` seconds, and while the
    subscription is down (Redis restarting, network cut) L1 is bypassed and emptied, so
    nothing stale is served from it. Writes that bypass ``TieredCache`` (a plain
    ``RedisCache`` or another program) are seen after at most ``l1_ttl``.

    Example::

        >>> cache = TieredCache("redis://localhost:6379/0", l1_ttl=5)  # doctest: +SKIP
        >>> cache.set("config", {"feature": True})  # doctest: +SKIP
        True
        >>> cache.get("config")  # from L1 from now on  # doctest: +SKIP
        {'feature': True}
    """

    blocking_io = True

    def __init__(
        self,
        l2: RedisCache | str,
        *,
        l1_maxsize: int = 10_000,
        l1_ttl: float = 5.0,
        channel: str | None = None,
        default_ttl: float | None = None,
        on_error: OnError | None = None,
        **redis_options: Any,
    ) -> None:
        if isinstance(l2, str):
            l2 = RedisCache(l2, **redis_options)
            self._owns_l2 = True
        elif isinstance(l2, RedisCache):
            if redis_options:
                raise ConfigurationError(
                    f"options {sorted(redis_options)} apply when TieredCache creates the "
                    "RedisCache from a URL; set them on the RedisCache you pass instead"
                )
            self._owns_l2 = False
        else:
            raise ConfigurationError(f"TieredCache needs a Redis URL or a RedisCache, got {l2!r}")
        super().__init__(
            prefix=l2.prefix,
            namespace=l2.namespace,
            default_ttl=l2.default_ttl if default_ttl is None else default_ttl,
            on_error=l2.on_error if on_error is None else on_error,
            max_key_length=l2.max_key_length,
        )
        self.l2 = l2
        self.l1_ttl = check_ttl(l1_ttl, "l1_ttl") or 0.0
        self.l1 = MemoryCache(
            l1_maxsize, prefix=l2.prefix, namespace=l2.namespace, default_ttl=None, clock=time.time
        )
        self.channel = channel or f"{l2.prefix}:__invalidate__"
        self._origin = uuid.uuid4().hex.encode()
        self._live = False  # subscribed: L1 may be used
        self._epoch = 0  # bumped by every invalidation received
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=self._listen, name=f"kit-cache-invalidate-{self.channel}", daemon=True
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"TieredCache({self.l2!r}, l1_ttl={self.l1_ttl})"

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Block until the invalidation subscription is live (L1 in use); True if it is."""
        return self._ready.wait(timeout)

    # -- invalidation channel ---------------------------------------------------------------

    def _listen(self) -> None:
        delay = 0.05
        while not self._stop.is_set():
            pubsub = self.l2.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call, unused-ignore]  # typed since redis-py 8.x
            try:
                pubsub.subscribe(self.channel)
                pubsub.get_message(timeout=1.0)  # the subscribe confirmation
                self._reset_l1()
                self._live = True
                self._ready.set()
                delay = 0.05
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None and message.get("type") == "message":
                        self._apply(message["data"])
            except (RedisError, OSError, ValueError) as exc:
                self._log.error("kit_cache_invalidation_channel_down", error=str(exc))
            finally:
                self._live = False
                self._ready.clear()
                self._reset_l1()
                with contextlib.suppress(RedisError, OSError):
                    pubsub.close()
            self._stop.wait(delay)
            delay = min(delay * 2, 2.0)

    def _reset_l1(self) -> None:
        self._epoch += 1
        self.l1.flush()

    def _apply(self, data: bytes) -> None:
        origin, _, rest = data.partition(b"|")
        if origin == self._origin:
            return
        kind, _, payload = rest.partition(b"|")
        self._epoch += 1
        if kind == b"k":
            self.l1._delete(payload.decode().split("\n"))
        elif kind == b"v":
            self.l1._bump(payload.decode())
        else:
            self.l1.flush()

    def _publish(self, kind: bytes, payload: str) -> None:
        try:
            self.l2.client.publish(
                self.channel, self._origin + b"|" + kind + b"|" + payload.encode()
            )
        except RedisError as exc:
            # Others keep their L1 copy for at most l1_ttl; say so once per interval.
            self._log.error("kit_cache_invalidation_not_published", error=str(exc))

    # -- storage primitives -------------------------------------------------------------------

    def _fetch(
        self, full_key: str, version_keys: tuple[str, ...], count: bool = True
    ) -> tuple[Entry | None, object]:
        live = self._live
        if live:
            entry, l1_token = self.l1._fetch(full_key, version_keys, count)
            if entry is not None:
                return entry, (l1_token, None)
            epoch = self._epoch
        entry, l2_token = self.l2._fetch(full_key, version_keys, count)
        if not live:
            return entry, (None, l2_token)
        if entry is not None and epoch == self._epoch:
            self._fill_l1(full_key, entry, version_keys, l1_token)
        return entry, (l1_token, l2_token)

    def _fill_l1(
        self, full_key: str, entry: Entry, version_keys: tuple[str, ...], l1_token: object
    ) -> None:
        value, fresh_until, delta = entry
        hard = self.l1_ttl
        if fresh_until:
            remaining = fresh_until - time.time()
            if remaining <= 0:
                return  # stale in L2: never copy stale entries into L1
            hard = min(hard, remaining)
            fresh = remaining
        else:
            fresh = 0.0
        self.l1._store([(full_key, value, fresh or None, hard, delta)], version_keys, l1_token)

    def _fetch_local(
        self, full_key: str, version_keys: tuple[str, ...]
    ) -> tuple[Entry | None, object]:
        """L1 only, never blocking: lets async callers skip a thread hop on L1 hits."""
        if not self._live:
            return None, None
        entry, l1_token = self.l1._fetch(full_key, version_keys)
        return entry, (l1_token, None)

    def _fetch_many(
        self, full_keys: list[str], version_keys: tuple[str, ...]
    ) -> tuple[list[Entry | None], object]:
        return self.l2._fetch_many(full_keys, version_keys)

    def _store(
        self,
        items: list[tuple[str, Any, float | None, float | None, float]],
        version_keys: tuple[str, ...],
        versions: object,
    ) -> None:
        l1_token, l2_token = versions if isinstance(versions, tuple) else (None, None)
        self.l2._store(items, version_keys, l2_token)
        self._publish(b"k", "\n".join(item[0] for item in items))
        if self._live:
            for key, value, fresh, hard, delta in items:
                l1_hard = min(self.l1_ttl, hard) if hard else self.l1_ttl
                self.l1._store([(key, value, fresh, l1_hard, delta)], version_keys, l1_token)

    def _delete(self, full_keys: list[str]) -> int:
        self.l1._delete(full_keys)
        removed = self.l2._delete(full_keys)
        self._publish(b"k", "\n".join(full_keys))
        return removed

    def _incr(
        self, full_key: str, amount: int, ttl: float | None, version_keys: tuple[str, ...]
    ) -> int:
        value = self.l2._incr(full_key, amount, ttl, version_keys)
        self.l1._delete([full_key])
        self._publish(b"k", full_key)
        return value

    def _ttl(self, full_key: str) -> float | Missing | None:
        return self.l2._ttl(full_key)

    def _bump(self, version_key: str) -> None:
        self.l2._bump(version_key)
        self.l1._bump(version_key)
        self._publish(b"v", version_key)

    def _ping(self) -> None:
        self.l2._ping()

    def lock(self, name: str, *, timeout: float, blocking_timeout: float) -> Any:
        """The L2's distributed lock."""
        return self.l2.lock(name, timeout=timeout, blocking_timeout=blocking_timeout)

    def stats(self) -> CacheStats:
        """Hits in either tier, misses of both; ``l1.stats()``/``l2.stats()`` split them."""
        l1, l2 = self.l1.stats(), self.l2.stats()
        return dataclasses.replace(
            l2,
            hits=l1.hits + l2.hits,
            errors=l2.errors + self._stats.errors,
            evictions=l1.evictions,
        )

    def close(self) -> None:
        """Stop the invalidation thread and close the L2 if this cache created it."""
        self._stop.set()
        self._thread.join(timeout=3)
        if self._owns_l2:
            self.l2.close()
