"""Rate limiting for kit-auth: GCRA (token bucket) and sliding-window counter policies, in
memory or Redis (sync and asyncio), IETF ``RateLimit`` headers, client addresses behind
proxies, and login lockout.

Example::

    >>> from kit_auth.ratelimit import RateLimiter
    >>> limiter = RateLimiter("2/minute")
    >>> limiter.hit("192.0.2.1").headers()
    {'RateLimit-Policy': '"default";q=2;w=60', 'RateLimit': '"default";r=1;t=30'}
"""

from __future__ import annotations

from kit_auth.ratelimit._base import RateLimitStorage
from kit_auth.ratelimit._client import (
    KeyFunc,
    RequestInfo,
    TrustedProxies,
    by_ip,
    by_ip_and_user,
    by_user,
    client_address,
    ip_key,
)
from kit_auth.ratelimit._limit import Decision, RateLimit
from kit_auth.ratelimit._limiter import RateLimiter
from kit_auth.ratelimit._lockout import LoginLockout
from kit_auth.ratelimit._memory import MemoryRateLimitStorage
from kit_auth.ratelimit._redis import AsyncRedisRateLimitStorage, RedisRateLimitStorage

__all__ = [
    "AsyncRedisRateLimitStorage",
    "Decision",
    "KeyFunc",
    "LoginLockout",
    "MemoryRateLimitStorage",
    "RateLimit",
    "RateLimitStorage",
    "RateLimiter",
    "RedisRateLimitStorage",
    "RequestInfo",
    "TrustedProxies",
    "by_ip",
    "by_ip_and_user",
    "by_user",
    "client_address",
    "ip_key",
]
