"""kit-cache: memory, Redis and tiered caches with ``@cached``, stampede protection and
HTTP response caching for Flask and FastAPI.

Example::

    >>> from kit_cache import MemoryCache, cached, MISSING
    >>> cache = MemoryCache()
    >>> cache.set("answer", None)
    True
    >>> cache.get("answer") is None, cache.get("other") is MISSING
    (True, True)
    >>> @cached(ttl=30, key="double:{x}", cache=cache)
    ... def double(x: int) -> int:
    ...     return 2 * x
    >>> double(21)
    42
"""

from __future__ import annotations

from ._async_redis import AsyncRedisCache
from ._base import BaseCache
from ._decorator import Cached, cached, get_default_cache, set_default_cache
from ._factory import cache_from_url
from ._redis import RedisCache
from ._sentinel import MISSING, Missing
from ._stats import CacheStats
from ._tiered import TieredCache
from ._version import __version__
from .exceptions import (
    BackendError,
    BackendUnavailable,
    CacheKeyError,
    ConfigurationError,
    KitCacheError,
    SerializationError,
    SignatureError,
)
from .memory import MemoryCache, NullCache
from .serializers import JsonSerializer, MsgpackSerializer, PickleSerializer, Serializer
from .tenancy import current_tenant, tenant_context

__all__ = [
    "MISSING",
    "AsyncRedisCache",
    "BackendError",
    "BackendUnavailable",
    "BaseCache",
    "CacheKeyError",
    "CacheStats",
    "Cached",
    "ConfigurationError",
    "JsonSerializer",
    "KitCacheError",
    "MemoryCache",
    "Missing",
    "MsgpackSerializer",
    "NullCache",
    "PickleSerializer",
    "RedisCache",
    "SerializationError",
    "Serializer",
    "SignatureError",
    "TieredCache",
    "__version__",
    "cache_from_url",
    "cached",
    "current_tenant",
    "get_default_cache",
    "set_default_cache",
    "tenant_context",
]
