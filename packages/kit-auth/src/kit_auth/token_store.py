"""Where kit-auth keeps token revocations and refresh-token families.

Two records, both expiring on their own:

* a **revoked token**, keyed by ``(iss, jti)`` (never by the token or a hash of it: an
  ECDSA signature can be re-encoded, so the same token has several spellings);
* a **refresh family**: the ``jti`` of the one refresh token of a login that may still
  be used, or the mark *revoked*. :meth:`TokenStore.rotate_family` is an atomic
  compare-and-set: of two requests presenting the same refresh token exactly one wins,
  the other is a reuse and revokes the family.

:class:`MemoryTokenStore` (one process), :class:`RedisTokenStore` and
:class:`AsyncRedisTokenStore` (shared by every process; Lua for the compare-and-set,
``{family}`` hash tags so each key lives in one cluster slot). A family that is unknown
to the store (expired, or the store was flushed) rotates as ``"revoked"``: the user signs
in again rather than a refresh token being honoured without its record.

Example::

    >>> store = MemoryTokenStore()
    >>> store.start_family("f1", "jti-1", ttl=60)
    >>> store.rotate_family("f1", "jti-1", "jti-2", ttl=60)
    'ok'
    >>> store.rotate_family("f1", "jti-1", "jti-3", ttl=60)   # jti-1 came back
    'reused'
    >>> store.is_revoked("https://issuer", "jti-2", "f1")
    True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final, Literal, Protocol, TypeAlias, runtime_checkable

from kit_auth._health import aping_redis, check_timeout, ping_redis
from kit_auth.exceptions import BackendUnavailable, ConfigurationError, InvalidInput

__all__ = [
    "AsyncRedisTokenStore",
    "AsyncTokenStore",
    "MemoryTokenStore",
    "RedisTokenStore",
    "RotateResult",
    "TokenStore",
]

RotateResult: TypeAlias = Literal["ok", "reused", "revoked"]

_REVOKED: Final = "!revoked"
_MAX_ID: Final = 256


def _check_id(name: str, value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_ID:
        raise InvalidInput(f"{name} must be a non-empty string of at most {_MAX_ID} characters.")
    return value


def _check_ttl(ttl: object) -> float:
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
        raise InvalidInput(f"ttl must be a positive number of seconds, not {ttl!r}.")
    return float(ttl)


@runtime_checkable
class TokenStore(Protocol):
    """The synchronous store :class:`kit_auth.tokens.TokenManager` uses. ``ttl`` is in
    seconds; every record disappears after it."""

    def revoke(self, iss: str, jti: str, ttl: float) -> None:
        """Mark the token ``(iss, jti)`` revoked for *ttl* seconds."""

    def is_revoked(self, iss: str, jti: str, family_id: str | None = None) -> bool:
        """Whether ``(iss, jti)`` is revoked, or *family_id* (if given) is revoked."""

    def start_family(self, family_id: str, jti: str, ttl: float) -> None:
        """Record a new refresh family whose current refresh token is *jti*."""

    def rotate_family(self, family_id: str, old_jti: str, new_jti: str, ttl: float) -> RotateResult:
        """Atomically: if *old_jti* is current, make *new_jti* current (``"ok"``); if
        another jti is current, revoke the family (``"reused"``); if the family is
        revoked or unknown, ``"revoked"``."""

    def revoke_family(self, family_id: str, ttl: float) -> None:
        """Revoke the whole family for *ttl* seconds."""


@runtime_checkable
class AsyncTokenStore(Protocol):
    """The asyncio twin of :class:`TokenStore` (for ``TokenManager.averify`` & co)."""

    async def revoke(self, iss: str, jti: str, ttl: float) -> None:
        """See :meth:`TokenStore.revoke`."""

    async def is_revoked(self, iss: str, jti: str, family_id: str | None = None) -> bool:
        """See :meth:`TokenStore.is_revoked`."""

    async def start_family(self, family_id: str, jti: str, ttl: float) -> None:
        """See :meth:`TokenStore.start_family`."""

    async def rotate_family(
        self, family_id: str, old_jti: str, new_jti: str, ttl: float
    ) -> RotateResult:
        """See :meth:`TokenStore.rotate_family`."""

    async def revoke_family(self, family_id: str, ttl: float) -> None:
        """See :meth:`TokenStore.revoke_family`."""


class MemoryTokenStore:
    """A thread-safe, in-process :class:`TokenStore` with expiring entries.

    Right for one process (tests, a single worker); with several workers use
    :class:`RedisTokenStore`, or a revocation in one worker is unknown to the others.
    ``clock`` (monotonic seconds) is for tests.

    Example::

        >>> store = MemoryTokenStore()
        >>> store.revoke("iss", "j1", ttl=30)
        >>> store.is_revoked("iss", "j1"), store.is_revoked("iss", "j2")
        (True, False)
    """

    _SWEEP_EVERY: Final = 1024

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not callable(clock):
            raise ConfigurationError("clock must be a callable returning seconds.")
        self._clock = clock
        self._lock = threading.Lock()
        self._revoked: dict[tuple[str, str], float] = {}
        self._families: dict[str, tuple[str, float]] = {}
        self._writes = 0

    def _sweep_locked(self) -> None:
        self._writes += 1
        if self._writes % self._SWEEP_EVERY:
            return
        now = self._clock()
        for key in [k for k, exp in self._revoked.items() if exp <= now]:
            del self._revoked[key]
        for fid in [f for f, (_, exp) in self._families.items() if exp <= now]:
            del self._families[fid]

    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: always True (the store is this process's memory).

        Example::

            >>> MemoryTokenStore().ping()
            True
        """
        check_timeout(timeout)
        return True

    def revoke(self, iss: str, jti: str, ttl: float) -> None:
        """Mark ``(iss, jti)`` revoked for *ttl* seconds."""
        key = (_check_id("iss", iss), _check_id("jti", jti))
        expires = self._clock() + _check_ttl(ttl)
        with self._lock:
            self._revoked[key] = max(expires, self._revoked.get(key, 0.0))
            self._sweep_locked()

    def is_revoked(self, iss: str, jti: str, family_id: str | None = None) -> bool:
        """Whether ``(iss, jti)`` or the family is revoked (a lock-free read)."""
        exp = self._revoked.get((iss, jti))
        if exp is not None and exp > self._clock():
            return True
        if family_id is not None:
            fam = self._families.get(family_id)
            if fam is not None and fam[0] == _REVOKED and fam[1] > self._clock():
                return True
        return False

    def _family_locked(self, family_id: str) -> str | None:
        fam = self._families.get(family_id)
        if fam is None:
            return None
        if fam[1] <= self._clock():
            del self._families[family_id]
            return None
        return fam[0]

    def start_family(self, family_id: str, jti: str, ttl: float) -> None:
        """Record a new family whose current refresh token is *jti*."""
        _check_id("family_id", family_id)
        _check_id("jti", jti)
        expires = self._clock() + _check_ttl(ttl)
        with self._lock:
            self._families[family_id] = (jti, expires)
            self._sweep_locked()

    def rotate_family(self, family_id: str, old_jti: str, new_jti: str, ttl: float) -> RotateResult:
        """The atomic compare-and-set of :meth:`TokenStore.rotate_family`."""
        _check_id("family_id", family_id)
        _check_id("jti", new_jti)
        expires = self._clock() + _check_ttl(ttl)
        with self._lock:
            current = self._family_locked(family_id)
            if current is None or current == _REVOKED:
                return "revoked"
            if current != old_jti:
                self._families[family_id] = (_REVOKED, expires)
                return "reused"
            self._families[family_id] = (new_jti, expires)
            return "ok"

    def revoke_family(self, family_id: str, ttl: float) -> None:
        """Revoke the family for *ttl* seconds."""
        _check_id("family_id", family_id)
        expires = self._clock() + _check_ttl(ttl)
        with self._lock:
            self._families[family_id] = (_REVOKED, expires)
            self._sweep_locked()


# -- Redis -------------------------------------------------------------------------------

# KEYS[1] family key; ARGV: old jti, new jti, ttl ms, revoked mark
_ROTATE_LUA: Final = """
local cur = redis.call('GET', KEYS[1])
if not cur or cur == ARGV[4] then return 'revoked' end
if cur ~= ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[3])
  return 'reused'
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 'ok'
"""


def _ms(ttl: float) -> int:
    return max(1, int(_check_ttl(ttl) * 1000))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class _RedisKeys:
    """Key layout and error wrapping shared by the sync and async Redis stores."""

    def __init__(self, prefix: str, store_name: str) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError("prefix must be a non-empty string such as 'kit:tok:'.")
        self.prefix = prefix
        self.store_name = store_name
        self.where = "Redis"

    def describe(self, client: Any) -> None:
        try:
            kw = client.connection_pool.connection_kwargs
            where = kw.get("path") or f"{kw.get('host', '?')}:{kw.get('port', '?')}"
            self.where = f"Redis at {where}/{kw.get('db', 0)}"
        except AttributeError:
            self.where = "Redis"

    def jti_key(self, iss: str, jti: str) -> str:
        # The jti is the hash tag: one slot per token; iss is part of the key (never hashed
        # together with the token itself).
        return f"{self.prefix}rev:{{{_check_id('jti', jti)}}}:{_check_id('iss', iss)}"

    def family_key(self, family_id: str) -> str:
        return f"{self.prefix}fam:{{{_check_id('family_id', family_id)}}}"

    def unavailable(self, exc: Exception) -> BackendUnavailable:
        # Never str(exc) or the URL: either may carry the password.
        return BackendUnavailable(
            f"{self.store_name} cannot use {self.where} ({type(exc).__name__}); check that "
            "Redis is running and reachable."
        )


def _redis_errors() -> tuple[type[Exception], ...]:
    from redis.exceptions import RedisError

    return (RedisError, OSError)


class RedisTokenStore:
    """A :class:`TokenStore` in Redis, shared by every process of the app.

    *client_or_url* is a ``redis.Redis`` client or a ``redis://`` URL. Every Redis failure
    raises :class:`~kit_auth.exceptions.BackendUnavailable` (the message names the store
    and host, never the password). Needs the ``redis`` extra.

    Example::

        >>> store = RedisTokenStore("redis://127.0.0.1:6399/0")  # connects lazily
        >>> store.family_key("f1")
        'kit:tok:fam:{f1}'
    """

    def __init__(self, client_or_url: Any, *, prefix: str = "kit:tok:") -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigurationError(
                "RedisTokenStore needs redis-py: pip install 'kit-auth[redis]'."
            ) from exc
        self._keys = _RedisKeys(prefix, type(self).__name__)
        if isinstance(client_or_url, str):
            try:
                client = redis.Redis.from_url(client_or_url)
            except ValueError as exc:
                raise ConfigurationError(
                    "RedisTokenStore: the Redis URL is invalid; use redis://host:port/db."
                ) from exc
        elif isinstance(client_or_url, redis.Redis):
            client = client_or_url
        else:
            raise ConfigurationError(
                "RedisTokenStore takes a redis.Redis client or a redis:// URL "
                "(for redis.asyncio use AsyncRedisTokenStore)."
            )
        self._client = client
        self._keys.describe(client)
        self._rotate = client.register_script(_ROTATE_LUA)
        self._errors = _redis_errors()

    def family_key(self, family_id: str) -> str:
        """The Redis key of a family (``{family_id}`` is the cluster hash tag)."""
        return self._keys.family_key(family_id)

    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: True if Redis answers ``PING`` within ``timeout`` seconds.

        The probe opens a connection of its own (the client's address, credentials, TLS
        and database, ``timeout`` to connect and read, no retries) and closes it; False,
        never an exception, when Redis is down, refuses or does not answer in time.

        Example (nothing listens on port 9)::

            >>> RedisTokenStore("redis://127.0.0.1:9/0").ping(timeout=0.5)
            False
        """
        return ping_redis(self._client, check_timeout(timeout))

    def revoke(self, iss: str, jti: str, ttl: float) -> None:
        """Mark ``(iss, jti)`` revoked for *ttl* seconds."""
        key, ms = self._keys.jti_key(iss, jti), _ms(ttl)
        try:
            self._client.set(key, b"1", px=ms)
        except self._errors as exc:
            raise self._keys.unavailable(exc) from exc

    def is_revoked(self, iss: str, jti: str, family_id: str | None = None) -> bool:
        """Whether ``(iss, jti)`` or the family is revoked (one round trip)."""
        jkey = self._keys.jti_key(iss, jti)
        try:
            if family_id is None:
                return bool(self._client.exists(jkey))
            pipe = self._client.pipeline(transaction=False)
            pipe.exists(jkey)
            pipe.get(self._keys.family_key(family_id))
            exists, fam = pipe.execute()
        except self._errors as exc:
            raise self._keys.unavailable(exc) from exc
        return bool(exists) or _text(fam) == _REVOKED

    def start_family(self, family_id: str, jti: str, ttl: float) -> None:
        """Record a new family whose current refresh token is *jti*."""
        key, ms = self._keys.family_key(family_id), _ms(ttl)
        _check_id("jti", jti)
        try:
            self._client.set(key, jti, px=ms)
        except self._errors as exc:
            raise self._keys.unavailable(exc) from exc

    def rotate_family(self, family_id: str, old_jti: str, new_jti: str, ttl: float) -> RotateResult:
        """The atomic compare-and-set (one Lua script)."""
        key, ms = self._keys.family_key(family_id), _ms(ttl)
        _check_id("jti", new_jti)
        try:
            result = self._rotate(keys=[key], args=[old_jti, new_jti, ms, _REVOKED])
        except self._errors as exc:
            raise self._keys.unavailable(exc) from exc
        return _rotate_result(result)

    def revoke_family(self, family_id: str, ttl: float) -> None:
        """Revoke the family for *ttl* seconds."""
        key, ms = self._keys.family_key(family_id), _ms(ttl)
        try:
            self._client.set(key, _REVOKED, px=ms)
        except self._errors as exc:
            raise self._keys.unavailable(exc) from exc


def _rotate_result(value: Any) -> RotateResult:
    text = _text(value)
    if text == "ok":
        return "ok"
    if text == "reused":
        return "reused"
    return "revoked"


class AsyncRedisTokenStore:
    """The asyncio (``redis.asyncio``) twin of :class:`RedisTokenStore`.

    Example::

        >>> store = AsyncRedisTokenStore("redis://127.0.0.1:6399/0")  # connects lazily
        >>> store.family_key("f1")
        'kit:tok:fam:{f1}'
    """

    def __init__(self, client_or_url: Any, *, prefix: str = "kit:tok:") -> None:
        try:
            import redis.asyncio as aredis
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigurationError(
                "AsyncRedisTokenStore needs redis-py: pip install 'kit-auth[redis]'."
            ) from exc
        self._keys = _RedisKeys(prefix, type(self).__name__)
        if isinstance(client_or_url, str):
            try:
                client = aredis.Redis.from_url(client_or_url)
            except ValueError as exc:
                raise ConfigurationError(
                    "AsyncRedisTokenStore: the Redis URL is invalid; use redis://host:port/db."
                ) from exc
        elif isinstance(client_or_url, aredis.Redis):
            client = client_or_url
        else:
            raise ConfigurationError(
                "AsyncRedisTokenStore takes a redis.asyncio.Redis client or a redis:// URL "
                "(for a sync client use RedisTokenStore)."
            )
        self._client = client
        self._keys.describe(client)
        self._rotate = client.register_script(_ROTATE_LUA)
        self._errors = _redis_errors()

    def family_key(self, family_id: str) -> str:
        """The Redis key of a family (``{family_id}`` is the cluster hash tag)."""
        return self._keys.family_key(family_id)

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._client.aclose()

    async def ping(self, timeout: float = 2.0) -> bool:
        """Health check: True if Redis answers ``PING`` within ``timeout`` seconds, on
        a connection of its own (see :meth:`RedisTokenStore.ping`); never raises.

        Example (nothing listens on port 9)::

            >>> import asyncio
            >>> asyncio.run(AsyncRedisTokenStore("redis://127.0.0.1:9/0").ping(timeout=0.5))
            False
        """
        return await aping_redis(self._client, check_timeout(timeout))

    async def revoke(self, iss: str, jti: str, ttl: float) -> None:
        """Mark ``(iss, jti)`` revoked for *ttl* seconds."""
        key, ms = self._keys.jti_key(iss, jti), _ms(ttl)
        try:
            await self._client.set(key, b"1", px=ms)
        except self._errors as exc:
            raise self._keys.unavailable(exc) from exc

    async def is_revoked(self, iss: str, jti: str, family_id: str | None = None) -> bool:
        """Whether ``(iss, jti)`` or the family is revoked (one round trip)."""
        jkey = self._keys.jti_key(iss, jti)
        try:
            if family_id is None:
                return bool(await self._client.exists(jkey))
            pipe = self._client.pipeline(transaction=False)
            pipe.exists(jkey)
            pipe.get(self._keys.family_key(family_id))
            exists, fam = await pipe.execute()
        except self._errors as exc:
            raise self._keys.unavailable(exc) from exc
        return bool(exists) or _text(fam) == _REVOKED

    async def start_family(self, family_id: str, jti: str, ttl: float) -> None:
        """Record a new family whose current refresh token is *jti*."""
        key, ms = self._keys.family_key(family_id), _ms(ttl)
        _check_id("jti", jti)
        try:
            await self._client.set(key, jti, px=ms)
        except self._errors as exc:
            raise self._keys.unavailable(exc) from exc

    async def rotate_family(
        self, family_id: str, old_jti: str, new_jti: str, ttl: float
    ) -> RotateResult:
        """The atomic compare-and-set (one Lua script)."""
        key, ms = self._keys.family_key(family_id), _ms(ttl)
        _check_id("jti", new_jti)
        try:
            result = await self._rotate(keys=[key], args=[old_jti, new_jti, ms, _REVOKED])
        except self._errors as exc:
            raise self._keys.unavailable(exc) from exc
        return _rotate_result(result)

    async def revoke_family(self, family_id: str, ttl: float) -> None:
        """Revoke the family for *ttl* seconds."""
        key, ms = self._keys.family_key(family_id), _ms(ttl)
        try:
            await self._client.set(key, _REVOKED, px=ms)
        except self._errors as exc:
            raise self._keys.unavailable(exc) from exc
