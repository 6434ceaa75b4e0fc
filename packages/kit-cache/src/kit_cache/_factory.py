"""Build a cache from one URL, for configuration through ``app.config`` or the environment."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._async_redis import AsyncRedisCache
from ._base import BaseCache
from ._redis import RedisCache
from ._redis_common import mask_url
from ._tiered import TieredCache
from .exceptions import ConfigurationError
from .memory import MemoryCache, NullCache

_SCHEMES = "memory://, null://, redis://, rediss://, tiered+redis:// or tiered+rediss://"
_KIT_OPTIONS = frozenset({"maxsize", "l1_maxsize", "l1_ttl", "default_ttl", "namespace", "prefix"})


def cache_from_url(
    url: str, *, asyncio: bool = False, **options: Any
) -> BaseCache | AsyncRedisCache:
    """Create a cache from a URL; keyword options go to the cache's constructor.

    ``memory://?maxsize=1000``, ``null://``, ``redis://host:6379/0?default_ttl=60``,
    ``tiered+redis://host:6379/0?l1_ttl=5``. The query may carry ``maxsize``,
    ``l1_maxsize``, ``l1_ttl``, ``default_ttl``, ``namespace`` and ``prefix``; other
    parameters are left to redis-py. With ``asyncio=True`` a Redis URL gives an
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
    pairs = parse_qsl(parts.query)
    # kit-cache's own options travel in the query; everything else stays for redis-py
    query: dict[str, Any] = {k: v for k, v in pairs if k in _KIT_OPTIONS}
    rest = urlencode([(k, v) for k, v in pairs if k not in _KIT_OPTIONS])
    url = urlunsplit(parts._replace(query=rest))
    for name in ("maxsize", "l1_maxsize"):
        if name in query:
            query[name] = _number(url, name, query[name], int)
    for name in ("l1_ttl", "default_ttl"):
        if name in query:
            query[name] = _number(url, name, query[name], float)
    unknown = sorted(k for k, _ in pairs if k not in _KIT_OPTIONS)
    if scheme in ("memory", "null") and unknown:
        raise ConfigurationError(
            f"unknown option(s) {', '.join(unknown)} in {mask_url(url)}: "
            f"{scheme}:// takes {', '.join(sorted(_KIT_OPTIONS - {'l1_ttl', 'l1_maxsize'}))}"
        )
    if scheme == "memory":
        for name in ("l1_ttl", "l1_maxsize"):
            query.pop(name, None)
        memory_options: dict[str, Any] = {**query, **options}
        return MemoryCache(**memory_options)
    if scheme == "null":
        return NullCache(
            **{k: v for k, v in query.items() if k in ("prefix", "namespace")}, **options
        )
    if scheme in ("redis", "rediss", "unix"):
        cls: type[Any] = AsyncRedisCache if asyncio else RedisCache
        query.pop("maxsize", None)
        return cls(url, **{**query, **options})  # type: ignore[no-any-return]
    if scheme in ("tiered+redis", "tiered+rediss"):
        if asyncio:
            raise ConfigurationError("TieredCache is synchronous; use redis:// with asyncio=True")
        redis_url = url.split("+", 1)[1]
        query.pop("maxsize", None)
        tiered_options: dict[str, Any] = {**query, **options}
        return TieredCache(redis_url, **tiered_options)
    raise ConfigurationError(f"unknown cache URL scheme in {mask_url(url)}: use {_SCHEMES}")


def _number(url: str, name: str, raw: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} in {mask_url(url)} is not a number") from None
