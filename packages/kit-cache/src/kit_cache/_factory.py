"""Build a cache from one URL, for configuration through ``app.config`` or the environment."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ._async_redis import AsyncRedisCache
from ._base import BaseCache
from ._redis import RedisCache
from ._redis_common import mask_url
from ._tiered import TieredCache
from .exceptions import ConfigurationError
from .memory import MemoryCache, NullCache

_SCHEMES = "memory://, null://, redis://, rediss://, tiered+redis:// or tiered+rediss://"


def cache_from_url(
    url: str, *, asyncio: bool = False, **options: Any
) -> BaseCache | AsyncRedisCache:
    """Create a cache from a URL; keyword options go to the cache's constructor.

    ``memory://?maxsize=1000``, ``null://``, ``redis://host:6379/0``,
    ``tiered+redis://host:6379/0?l1_ttl=5``. With ``asyncio=True`` a Redis URL gives an
    :class:`AsyncRedisCache`.

    Example::

        >>> cache_from_url("memory://?maxsize=100").maxsize
        100
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"cache URL must look like scheme://..., one of {_SCHEMES}; got {url!r}"
        )
    scheme = url.split("://", 1)[0].lower()
    parts = urlsplit(url)
    query: dict[str, Any] = dict(parse_qsl(parts.query))
    for name in ("maxsize", "l1_maxsize"):
        if name in query:
            query[name] = _number(url, name, query[name], int)
    for name in ("l1_ttl", "default_ttl"):
        if name in query:
            query[name] = _number(url, name, query[name], float)
    if scheme == "memory":
        memory_options: dict[str, Any] = {**query, **options}
        return MemoryCache(**memory_options)
    if scheme == "null":
        return NullCache(**options)
    if scheme in ("redis", "rediss", "unix"):
        cls: type[Any] = AsyncRedisCache if asyncio else RedisCache
        return cls(url, **options)  # type: ignore[no-any-return]
    if scheme in ("tiered+redis", "tiered+rediss"):
        if asyncio:
            raise ConfigurationError("TieredCache is synchronous; use redis:// with asyncio=True")
        redis_url = url.split("+", 1)[1].split("?", 1)[0]
        tiered_options: dict[str, Any] = {
            k: query.pop(k) for k in ("l1_ttl", "l1_maxsize") if k in query
        }
        tiered_options.update(options)
        return TieredCache(redis_url, **tiered_options)
    raise ConfigurationError(f"unknown cache URL scheme in {mask_url(url)}: use {_SCHEMES}")


def _number(url: str, name: str, raw: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} in {mask_url(url)} is not a number") from None
