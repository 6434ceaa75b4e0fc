"""The interface every synchronous cache shares, and the key and failure plumbing behind it."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal

from ._breaker import LogThrottle
from ._envelope import Entry
from ._keys import check_key, check_segment, check_tag, shorten
from ._sentinel import MISSING, Missing
from ._stats import CacheStats, StatsRecorder
from .exceptions import BackendError, ConfigurationError, SerializationError
from .tenancy import _tenant

OnError = Literal["ignore", "raise"]


class _Unset:
    def __repr__(self) -> str:
        return "<default ttl>"


UNSET: Final = _Unset()
TTL = float | int | None | _Unset


def check_ttl(ttl: object, what: str = "ttl") -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
        raise ConfigurationError(
            f"{what} must be a positive number of seconds or None for no expiry, got {ttl!r}"
        )
    return float(ttl)


class CacheCore:
    """What sync and async caches share: key layout ``prefix:namespace[:@tenant]:key``,
    TTL defaults, namespace and tag version keys, stats and the failure policy."""

    #: True when calls do network I/O (async callers then run them in a thread).
    blocking_io: bool = False

    def __init__(
        self,
        *,
        prefix: str = "kit",
        namespace: str = "default",
        default_ttl: float | None = 300.0,
        on_error: OnError = "ignore",
        max_key_length: int = 200,
        error_log_interval: float = 10.0,
    ) -> None:
        self.prefix = check_segment(prefix, "prefix")
        self.namespace = check_segment(namespace, "namespace")
        self.default_ttl = check_ttl(default_ttl, "default_ttl")
        if on_error not in ("ignore", "raise"):
            raise ConfigurationError(
                f"on_error must be 'ignore' (fail open) or 'raise' (fail closed), got {on_error!r}"
            )
        self.on_error: OnError = on_error
        if not isinstance(max_key_length, int) or max_key_length < KEEP_MIN:
            raise ConfigurationError(f"max_key_length must be an int >= {KEEP_MIN}")
        self.max_key_length = max_key_length
        self._stats = StatsRecorder()
        self._log = LogThrottle(error_log_interval)
        self._ns_version_keys: dict[str, tuple[str, ...]] = {}
        self._prefixes: dict[str, str] = {}
        #: The clock entries' ``fresh_until`` refers to (wall time, shared across processes).
        self.clock: Callable[[], float] = time.time

    # ------------------------------------------------------------------ keys

    def key_for(self, key: str, *, namespace: str | None = None, tenant: str | None = None) -> str:
        """The full key stored for ``key``: ``prefix:namespace[:@tenant]:key``."""
        if namespace is None:
            pfx = self.namespace_prefix(self.namespace)
        else:
            pfx = self.namespace_prefix(check_segment(namespace, "namespace"))
        key = shorten(check_key(key), self.max_key_length)
        if tenant is None:
            tenant = _tenant.get()
        else:
            check_segment(tenant, "tenant")
        return pfx + key if tenant is None else f"{pfx}@{tenant}:{key}"

    def _compose(self, namespace: str, key: str, tenant: str | None = None) -> str:
        if tenant is None:
            tenant = _tenant.get()
        if tenant is None:
            return f"{self.prefix}:{namespace}:{key}"
        return f"{self.prefix}:{namespace}:@{tenant}:{key}"

    def namespace_prefix(self, namespace: str) -> str:
        """``prefix:namespace:``, memoized (hot path of ``@cached``)."""
        pfx = self._prefixes.get(namespace)
        if pfx is None:
            if len(self._prefixes) >= _MEMO_LIMIT:  # dynamic namespaces: stay bounded
                self._prefixes.clear()
            pfx = self._prefixes[namespace] = f"{self.prefix}:{namespace}:"
        return pfx

    def version_keys(self, namespace: str, tags: Sequence[str] = ()) -> tuple[str, ...]:
        """Keys whose values an entry remembers; bumping one invalidates the entry."""
        base = self._ns_version_keys.get(namespace)
        if base is None:
            # "@@version" cannot collide with data keys: a key never starts with "@", and a
            # tenant segment "@tenant" is always followed by ":key".
            base = (f"{self.prefix}:{namespace}:@@version",)
            if len(self._ns_version_keys) >= _MEMO_LIMIT:
                self._ns_version_keys.clear()
            self._ns_version_keys[namespace] = base
        if not tags:
            return base
        # "@tag" cannot collide with a namespace: namespaces never start with "@".
        return base + tuple(f"{self.prefix}:@tag:{check_tag(t)}" for t in tags)

    # ------------------------------------------------------------------ failure policy

    def _failed(self, op: str, exc: Exception) -> None:
        """Count and log a backend failure; re-raise it if the cache fails closed."""
        self._stats.error()
        self._log.error("kit_cache_backend_error", cache=type(self).__name__, op=op, error=str(exc))
        if self.on_error == "raise":
            raise exc

    def _corrupt(self, key: str, exc: SerializationError) -> None:
        self._stats.error()
        self._log.error("kit_cache_unreadable_entry", key=key, error=str(exc))

    def stats(self) -> CacheStats:
        """Counters since creation: hits, misses, sets, deletes, errors, evictions, latency."""
        return self._stats.snapshot()

    def _ttl_or_default(self, ttl: TTL) -> float | None:
        if isinstance(ttl, _Unset):
            return self.default_ttl
        return check_ttl(ttl)


class BaseCache(CacheCore, abc.ABC):
    """The synchronous cache interface. Subclasses implement the ``_``-prefixed storage
    primitives on full keys; this class turns them into the public API."""

    # ------------------------------------------------------------------ public API

    def get(
        self, key: str, *, namespace: str | None = None, tenant: str | None = None
    ) -> Any | Missing:
        """Return the cached value, or :data:`MISSING` (a cached ``None`` is a hit)."""
        if (
            namespace is None
            and tenant is None
            and type(key) is str
            and 0 < len(key) <= self.max_key_length
            and key[0] != "@"
            and key.isprintable()
        ):  # the common call, without the general path's validation calls
            pfx = self.namespace_prefix(self.namespace)
            current = _tenant.get()
            full = pfx + key if current is None else f"{pfx}@{current}:{key}"
            version_keys = self.version_keys(self.namespace)
        else:
            full = self.key_for(key, namespace=namespace, tenant=tenant)
            version_keys = self.version_keys(self.namespace if namespace is None else namespace)
        try:
            entry, _ = self._fetch(full, version_keys)
        except BackendError as exc:
            self._failed("get", exc)
            return MISSING
        return MISSING if entry is None else entry[0]

    def set(
        self,
        key: str,
        value: Any,
        ttl: TTL = UNSET,
        *,
        namespace: str | None = None,
        tenant: str | None = None,
    ) -> bool:
        """Store ``value`` for ``ttl`` seconds (default: ``default_ttl``; ``None``: no expiry).

        Returns False if a failing backend skipped the write (fail-open).
        """
        ns = self.namespace if namespace is None else namespace
        full = self.key_for(key, namespace=namespace, tenant=tenant)
        seconds = self._ttl_or_default(ttl)
        try:
            self._store([(full, value, seconds, seconds, 0.0)], self.version_keys(ns), None)
        except BackendError as exc:
            self._failed("set", exc)
            return False
        return True

    def delete(self, key: str, *, namespace: str | None = None, tenant: str | None = None) -> bool:
        """Remove ``key``; True if it existed."""
        full = self.key_for(key, namespace=namespace, tenant=tenant)
        try:
            return self._delete([full]) > 0
        except BackendError as exc:
            self._failed("delete", exc)
            return False

    def get_many(
        self, keys: Iterable[str], *, namespace: str | None = None, tenant: str | None = None
    ) -> dict[str, Any]:
        """Return ``{key: value}`` for the keys that are cached, in one round trip."""
        ns = self.namespace if namespace is None else namespace
        keys = list(keys)
        fulls = [self.key_for(k, namespace=namespace, tenant=tenant) for k in keys]
        if not fulls:
            return {}
        try:
            entries, _ = self._fetch_many(fulls, self.version_keys(ns))
        except BackendError as exc:
            self._failed("get_many", exc)
            return {}
        return {k: e[0] for k, e in zip(keys, entries, strict=True) if e is not None}

    def set_many(
        self,
        mapping: Mapping[str, Any],
        ttl: TTL = UNSET,
        *,
        namespace: str | None = None,
        tenant: str | None = None,
    ) -> bool:
        """Store every item of ``mapping`` with the same ``ttl``, in one round trip."""
        ns = self.namespace if namespace is None else namespace
        seconds = self._ttl_or_default(ttl)
        items = [
            (self.key_for(k, namespace=namespace, tenant=tenant), v, seconds, seconds, 0.0)
            for k, v in mapping.items()
        ]
        if not items:
            return True
        try:
            self._store(items, self.version_keys(ns), None)
        except BackendError as exc:
            self._failed("set_many", exc)
            return False
        return True

    def delete_many(
        self, keys: Iterable[str], *, namespace: str | None = None, tenant: str | None = None
    ) -> int:
        """Remove every key; return how many existed."""
        fulls = [self.key_for(k, namespace=namespace, tenant=tenant) for k in keys]
        if not fulls:
            return 0
        try:
            return self._delete(fulls)
        except BackendError as exc:
            self._failed("delete_many", exc)
            return 0

    def incr(
        self,
        key: str,
        amount: int = 1,
        *,
        ttl: float | None = None,
        namespace: str | None = None,
        tenant: str | None = None,
    ) -> int:
        """Atomically add ``amount`` to an integer (missing counts as 0) and return it.

        ``ttl`` is applied when the counter is created. Backend failures always raise
        :class:`BackendError`: a counter cannot invent a value.
        """
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ConfigurationError(f"incr amount must be an int, got {amount!r}")
        seconds = check_ttl(ttl)
        ns = self.namespace if namespace is None else namespace
        full = self.key_for(key, namespace=namespace, tenant=tenant)
        try:
            return self._incr(full, amount, seconds, self.version_keys(ns))
        except BackendError as exc:
            self._stats.error()
            self._log.error("kit_cache_backend_error", op="incr", error=str(exc))
            raise

    def ttl(
        self, key: str, *, namespace: str | None = None, tenant: str | None = None
    ) -> float | Missing | None:
        """Seconds ``key`` has left, ``None`` if it never expires, :data:`MISSING` if absent."""
        full = self.key_for(key, namespace=namespace, tenant=tenant)
        try:
            return self._ttl(full)
        except BackendError as exc:
            self._failed("ttl", exc)
            return MISSING

    def clear(self, namespace: str | None = None) -> None:
        """Invalidate every entry of ``namespace`` (default: this cache's) in O(1).

        The namespace's version is bumped; older entries are never served again and expire
        with their TTL. Nothing scans the keyspace.
        """
        ns = self.namespace if namespace is None else check_segment(namespace, "namespace")
        try:
            self._bump(self.version_keys(ns)[0])
        except BackendError as exc:
            self._failed("clear", exc)

    def invalidate_tags(self, *tags: str) -> None:
        """Invalidate every entry stored with any of ``tags`` (see ``@cached(tags=...)``)."""
        for tag in tags:
            check_tag(tag)
        try:
            for key in self.version_keys("_", tags)[1:]:
                self._bump(key)
        except BackendError as exc:
            self._failed("invalidate_tags", exc)

    def ping(self) -> bool:
        """Health check: True if the backend answers now."""
        try:
            self._ping()
        except BackendError:
            return False
        return True

    def close(self) -> None:
        """Release connections and background threads."""

    def __enter__(self) -> BaseCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ storage primitives

    @abc.abstractmethod
    def _fetch(
        self, full_key: str, version_keys: tuple[str, ...], count: bool = True
    ) -> tuple[Entry | None, object]:
        """Return the live entry of ``full_key`` written under the current versions of
        ``version_keys``, and an opaque token of those versions for a later :meth:`_store`.
        ``count=False`` leaves hits and misses out of :meth:`stats` (internal re-checks)."""

    @abc.abstractmethod
    def _fetch_many(
        self, full_keys: list[str], version_keys: tuple[str, ...]
    ) -> tuple[list[Entry | None], object]:
        """Like :meth:`_fetch` for many keys sharing version keys, in one round trip."""

    @abc.abstractmethod
    def _store(
        self,
        items: list[tuple[str, Any, float | None, float | None, float]],
        version_keys: tuple[str, ...],
        versions: object,
    ) -> None:
        """Store ``(full_key, value, fresh_ttl, hard_ttl, delta)`` items under ``versions``
        (a token from :meth:`_fetch`), or the current versions of ``version_keys`` if None."""

    @abc.abstractmethod
    def _delete(self, full_keys: list[str]) -> int: ...

    @abc.abstractmethod
    def _incr(
        self, full_key: str, amount: int, ttl: float | None, version_keys: tuple[str, ...]
    ) -> int: ...

    @abc.abstractmethod
    def _ttl(self, full_key: str) -> float | Missing | None: ...

    @abc.abstractmethod
    def _bump(self, version_key: str) -> None: ...

    @abc.abstractmethod
    def _ping(self) -> None: ...


KEEP_MIN: Final = 80
_MEMO_LIMIT: Final = 1024
