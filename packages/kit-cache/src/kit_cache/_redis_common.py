"""What the sync and async Redis caches share: URL checks, client options, Lua, decoding."""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from ._base import CacheCore
from ._breaker import CircuitBreaker
from ._envelope import Entry, Envelope
from .exceptions import BackendError, BackendUnavailable, ConfigurationError, SerializationError
from .serializers import Serializer, resolve_serializer

# KEYS = version keys..., data keys...; ARGV = n_version_keys, then (payload, px_ms) per key.
# The entry is prefixed with the versions read here, in the same atomic step as the write.
STORE_LUA = """
local n = tonumber(ARGV[1])
local parts = {}
for i = 1, n do parts[i] = redis.call('GET', KEYS[i]) or '0' end
local versions = table.concat(parts, ',') .. '|'
for i = n + 1, #KEYS do
  local j = 2 + (i - n - 1) * 2
  local px = tonumber(ARGV[j + 1])
  if px > 0 then
    redis.call('SET', KEYS[i], versions .. ARGV[j], 'PX', px)
  else
    redis.call('SET', KEYS[i], versions .. ARGV[j])
  end
end
return #KEYS - n
"""

# KEYS = version keys..., counter; ARGV = n_version_keys, amount, px_ms (used on creation).
# Counters are stored as "<versions>|=<int>"; one written under older versions restarts at 0.
INCR_LUA = """
local n = tonumber(ARGV[1])
local parts = {}
for i = 1, n do parts[i] = redis.call('GET', KEYS[i]) or '0' end
local versions = table.concat(parts, ',')
local key = KEYS[n + 1]
local raw = redis.call('GET', key)
local current, keep = 0, false
if raw then
  local stored, number = string.match(raw, '^([^|]*)|=(-?%d+)$')
  if stored == nil then
    return redis.error_reply('NOT_A_COUNTER the key holds a non-integer value')
  end
  if stored == versions then current, keep = tonumber(number), true end
end
local text = versions .. '|=' .. string.format('%d', current + tonumber(ARGV[2]))
local px = tonumber(ARGV[3])
if keep then
  redis.call('SET', key, text, 'KEEPTTL')
elseif px > 0 then
  redis.call('SET', key, text, 'PX', px)
else
  redis.call('SET', key, text)
end
return current + tonumber(ARGV[2])
"""

SCHEMES = ("redis", "rediss", "unix")


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (works on malformed URLs too)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def check_url(url: object) -> str:
    """Reject malformed Redis URLs early, naming the (masked) URL and what is wrong."""
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"Redis URL must be a non-empty string, got {url!r}")
    shown = mask_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"invalid Redis URL {shown}: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise ConfigurationError(
            f"invalid Redis URL {shown}: the scheme must be one of {', '.join(SCHEMES)}, "
            "e.g. redis://localhost:6379/0"
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigurationError(f"invalid Redis URL {shown}: no host")
    if port == 0:
        raise ConfigurationError(f"invalid Redis URL {shown}: port 0")
    db = parts.path.lstrip("/")
    if parts.scheme != "unix" and db and not db.isdigit():
        raise ConfigurationError(f"invalid Redis URL {shown}: database {db!r} is not a number")
    return url


def client_options(
    socket_timeout: float,
    connect_timeout: float,
    max_connections: int,
    pool_timeout: float,
    *,
    asynchronous: bool = False,
) -> dict[str, Any]:
    """Short timeouts, one immediate retry (a stale pooled connection), never backoff, and a
    bounded pool that makes callers wait briefly for a connection instead of failing (redis-py's
    default pool raises past 100 connections). ``asynchronous`` picks redis.asyncio's own
    ``Retry`` (redis-py 8 warns when an asyncio client is given the synchronous one)."""
    if max_connections < 1 or pool_timeout <= 0:
        raise ConfigurationError("max_connections must be >= 1 and pool_timeout > 0")
    return {
        "max_connections": max_connections,
        "timeout": pool_timeout,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "retry": (AsyncRetry if asynchronous else Retry)(NoBackoff(), 1),
        "retry_on_timeout": False,
        "health_check_interval": 30,
        "decode_responses": False,
    }


def check_client(client: Any) -> None:
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    if kwargs.get("decode_responses"):
        raise ConfigurationError(
            "the Redis client was created with decode_responses=True; kit-cache stores bytes: "
            "pass a client without it, or a URL"
        )


def to_secret(secret: str | bytes | None, serializer: Serializer) -> bytes | None:
    if secret is None:
        if serializer.requires_secret:
            raise ConfigurationError(
                f"serializer {serializer.name!r} can execute code when reading a tampered "
                "entry: pass secret=... (at least 32 bytes) so entries are signed with HMAC"
            )
        return None
    raw = secret.encode() if isinstance(secret, str) else secret
    if not isinstance(raw, bytes) or len(raw) < 32:
        raise ConfigurationError("secret must be at least 32 bytes (e.g. secrets.token_hex(32))")
    return raw


def px(seconds: float | None) -> int:
    return max(1, int(seconds * 1000)) if seconds else 0


class RedisCore(CacheCore):
    """Configuration and decoding shared by :class:`RedisCache` and :class:`AsyncRedisCache`."""

    def _setup_redis(
        self,
        *,
        serializer: str | Serializer | None,
        secret: str | bytes | None,
        breaker_threshold: int,
        breaker_reset: float,
    ) -> None:
        self.serializer = resolve_serializer(serializer)
        self._envelope = Envelope(self.serializer, to_secret(secret, self.serializer))
        if breaker_threshold < 1 or breaker_reset <= 0:
            raise ConfigurationError("breaker_threshold must be >= 1 and breaker_reset > 0")
        self.breaker = CircuitBreaker(breaker_threshold, breaker_reset)

    def _connect(
        self,
        url: str | None,
        client: Any,
        module: ModuleType,
        *,
        socket_timeout: float,
        connect_timeout: float,
        max_connections: int,
        pool_timeout: float,
    ) -> Any:
        """Return the client to use: ``client`` as given, or a new one on a bounded blocking
        pool for ``url``. ``module`` is ``redis`` or ``redis.asyncio``."""
        name = type(self).__name__
        if (url is None) == (client is None):
            raise ConfigurationError(f"pass exactly one of url=... or client=... to {name}")
        self.url = mask_url(url) if url is not None else "<client>"
        self._owns_client = client is None
        if client is None:
            assert url is not None
            check_url(url)
            options = client_options(
                socket_timeout,
                connect_timeout,
                max_connections,
                pool_timeout,
                asynchronous=module.__name__ == "redis.asyncio",
            )
            try:
                self._pool = module.BlockingConnectionPool.from_url(url, **options)
            except ValueError as exc:
                raise ConfigurationError(f"invalid Redis URL {self.url}: {exc}") from None
            client = module.Redis(connection_pool=self._pool)
        else:
            check_client(client)
        self._store_script = client.register_script(STORE_LUA)
        self._incr_script = client.register_script(INCR_LUA)
        return client

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, namespace={self.namespace!r})"

    def _unavailable(self) -> BackendUnavailable:
        return BackendUnavailable(
            f"{type(self).__name__}: Redis failed {self.breaker.threshold} times in a row; "
            f"calls are skipped for {self.breaker.reset_after:g}s before the next try"
        )

    def _backend_error(self, op: str, exc: Exception) -> BackendError:
        self.breaker.failure()
        return BackendError(f"Redis {op} failed: {type(exc).__name__}: {exc}")

    def _decode(self, full_key: str, raw: bytes | None, versions: bytes) -> Entry | None:
        if raw is None:
            return None
        try:
            return self._envelope.decode(full_key, raw, versions)
        except SerializationError as exc:
            self._corrupt(full_key, exc)
            return None

    def _decode_fetch(
        self, full_key: str, values: list[bytes | None], started: float, count: bool = True
    ) -> tuple[Entry | None, bytes]:
        n = len(values) - 1
        versions = (values[0] or b"0") if n == 1 else b",".join([v or b"0" for v in values[:n]])
        entry = self._decode(full_key, values[n], versions)
        stats = self._stats
        with stats._lock:
            if not count:
                pass
            elif entry is None:
                stats.misses += 1
            else:
                stats.hits += 1
            elapsed = time.perf_counter() - started
            stats.latency_count += 1
            stats.latency_total += elapsed
            if elapsed > stats.latency_max:
                stats.latency_max = elapsed
        return entry, versions

    def _decode_many(
        self, full_keys: list[str], values: list[bytes | None], n_versions: int
    ) -> tuple[list[Entry | None], bytes]:
        versions = b",".join([v or b"0" for v in values[:n_versions]])
        entries = [
            self._decode(k, raw, versions)
            for k, raw in zip(full_keys, values[n_versions:], strict=True)
        ]
        hits = sum(1 for e in entries if e is not None)
        self._stats.count(hits=hits, misses=len(entries) - hits)
        return entries, versions

    def _store_args(
        self,
        items: list[tuple[str, Any, float | None, float | None, float]],
        version_keys: tuple[str, ...],
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV for :data:`STORE_LUA`; serialization errors surface here."""
        now = time.time()
        keys = [*version_keys]
        args: list[Any] = [len(version_keys)]
        for key, value, fresh_ttl, hard_ttl, delta in items:
            if _is_counter(value, fresh_ttl, hard_ttl, delta):
                body = b"|=" + str(value).encode()
            else:
                body = self._envelope.encode(
                    key, b"", value, now + fresh_ttl if fresh_ttl else 0.0, delta
                )
            keys.append(key)
            args += [body[1:], px(hard_ttl)]  # drop the empty versions' "|": Lua adds its own
        return keys, args

    def _encoded(
        self,
        items: list[tuple[str, Any, float | None, float | None, float]],
        versions: bytes,
    ) -> list[tuple[str, bytes, int]]:
        now = time.time()
        return [
            (
                key,
                versions + b"|=" + str(value).encode()
                if _is_counter(value, fresh, hard, delta)
                else self._envelope.encode(
                    key, versions, value, now + fresh if fresh else 0.0, delta
                ),
                px(hard),
            )
            for key, value, fresh, hard, delta in items
        ]


def _is_counter(value: Any, fresh: float | None, hard: float | None, delta: float) -> bool:
    """Plain ints written by ``set`` are stored as counters, so ``incr`` works on them."""
    return type(value) is int and fresh == hard and not delta
