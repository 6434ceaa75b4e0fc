"""``@cached``: memoize sync and async functions in any kit-cache backend."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, cast, overload

from ._base import TTL, UNSET, BaseCache, _Unset, check_ttl
from ._envelope import Entry
from ._keys import check_segment, shorten
from ._singleflight import AsyncSingleFlight, SingleFlight
from .exceptions import BackendError, ConfigurationError
from .memory import MemoryCache
from .tenancy import _tenant

__all__ = ["cached", "get_default_cache", "set_default_cache"]

P = ParamSpec("P")
R = TypeVar("R")

AnyCache = Any  # BaseCache or AsyncRedisCache; kept loose to avoid an import cycle
CacheSource = BaseCache | Callable[[], Any] | Any | None

_XFETCH_HORIZON = 30.0  # beyond delta*beta*30 the chance of early recomputation is < 1e-13

_default_cache: AnyCache | None = None
_default_lock = threading.Lock()
_refresh_pool: ThreadPoolExecutor | None = None
_background: set[asyncio.Task[Any]] = set()


def set_default_cache(cache: AnyCache | None) -> None:
    """Set the cache ``@cached`` uses when none is given (``None``: a fresh MemoryCache)."""
    global _default_cache
    _default_cache = cache


def get_default_cache() -> AnyCache:
    """The cache ``@cached`` uses when none is given; a process-wide MemoryCache at first."""
    global _default_cache
    if _default_cache is None:
        with _default_lock:
            if _default_cache is None:
                _default_cache = MemoryCache()
    return _default_cache


def _pool() -> ThreadPoolExecutor:
    global _refresh_pool
    if _refresh_pool is None:
        with _default_lock:
            if _refresh_pool is None:
                _refresh_pool = ThreadPoolExecutor(4, thread_name_prefix="kit-cache-refresh")
    return _refresh_pool


class Cached(Protocol[P, R]):
    """A function wrapped by :func:`cached`, with helpers built from the same key template."""

    __wrapped__: Callable[P, R]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The full cache key a call with these arguments uses."""
        ...

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Drop the cached result of this call (awaitable for async functions)."""
        ...

    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Recompute now, store and return the result (awaitable for async functions)."""
        ...

    def invalidate_tags(self, *tags: str) -> Any:
        """Drop every entry stored with one of ``tags`` (awaitable for async functions)."""
        ...


_FRESH, _EARLY, _STALE = 0, 1, 2


def _state(entry: Entry, now: float, beta: float) -> int:
    fresh_until = entry[1]
    if not fresh_until:
        return _FRESH
    remaining = fresh_until - now
    if remaining <= 0:
        return _STALE
    scale = entry[2] * beta
    if (
        scale
        and remaining < scale * _XFETCH_HORIZON
        and -scale * math.log(random.random() or 1e-300) >= remaining  # noqa: S311
    ):
        return _EARLY  # XFetch (Vattani et al., VLDB 2015): recompute before expiry
    return _FRESH


class _Plan(Generic[P, R]):
    """Everything one decorated function needs, resolved at decoration time."""

    def __init__(
        self,
        func: Callable[P, R],
        *,
        ttl: TTL,
        key: str | None,
        namespace: str | None,
        tags: Sequence[str],
        cache: CacheSource,
        stale_ttl: float | None,
        early_recompute: float,
        lock: bool,
        lock_timeout: float,
        unless: Callable[[Any], bool] | None,
    ) -> None:
        from ._keys import compile_binder

        self.func = func
        self.ttl_arg = ttl
        self.namespace = None if namespace is None else check_segment(namespace, "namespace")
        self.tags = tuple(tags)
        self.binder, self.tag_binder = compile_binder(func, key, self.tags)
        # A key can only start with "@" (the tenant marker) if its template starts with a field.
        self.key_may_start_with_at = key is not None and (key.startswith("{") or key[:1] == "@")
        self.cache_source = cache
        self.stale = stale_ttl or 0.0
        self.beta = float(early_recompute)
        self.lock = lock
        self.lock_timeout = lock_timeout
        self.unless = unless

    # -- resolution per call ---------------------------------------------------------------

    def cache(self) -> AnyCache:
        source = self.cache_source
        if source is None:
            return get_default_cache()
        if callable(source) and not hasattr(source, "key_for"):
            return source()
        return source

    def ttls(self, cache: AnyCache) -> tuple[float | None, float | None]:
        fresh = cache.default_ttl if isinstance(self.ttl_arg, _Unset) else self.ttl_arg
        if fresh is None:
            return None, None
        return float(fresh), float(fresh) + self.stale

    def locate(
        self, cache: AnyCache, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, tuple[str, ...]]:
        ns = self.namespace or cache.namespace
        if self.tags:
            key, tags = self.tag_binder(*args, **kwargs)
            version_keys = cache.version_keys(ns, tags)
        else:
            key = self.binder(*args, **kwargs)
            version_keys = cache.version_keys(ns)
        return cache._compose(ns, shorten(key, cache.max_key_length)), version_keys

    # -- sync ------------------------------------------------------------------------------

    def static_cache(self) -> AnyCache | None:
        source = self.cache_source
        return source if source is not None and hasattr(source, "key_for") else None

    def call(self, flight: SingleFlight, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The general path (tags, or when the fast path in the wrapper does not apply)."""
        cache = self.cache()
        full, version_keys = self.locate(cache, args, kwargs)
        try:
            entry, token = cache._fetch(full, version_keys)
        except BackendError as exc:
            cache._failed("get", exc)
            return self.func(*args, **kwargs)
        return self.after_fetch(flight, cache, full, version_keys, entry, token, args, kwargs)

    def after_fetch(
        self,
        flight: SingleFlight,
        cache: AnyCache,
        full: str,
        version_keys: tuple[str, ...],
        entry: Entry | None,
        token: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if entry is not None:
            state = _state(entry, cache.clock(), self.beta)
            if state == _FRESH:
                return entry[0]
            if state == _EARLY or self.stale:
                self.refresh_in_background(flight, cache, full, version_keys, args, kwargs)
                return entry[0]
        return flight.run(full, lambda: self.load(cache, full, version_keys, token, args, kwargs))

    def refresh_in_background(
        self,
        flight: SingleFlight,
        cache: AnyCache,
        full: str,
        version_keys: tuple[str, ...],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        claim = flight.try_start(full)
        if claim is None:
            return  # already being recomputed
        context = contextvars.copy_context()

        def job() -> None:
            try:
                claim.value = context.run(self.store, cache, full, version_keys, None, args, kwargs)
            except BaseException as exc:
                claim.error = exc
                cache._log.error("kit_cache_refresh_failed", key=full, error=repr(exc))
            finally:
                flight.finish(full, claim)

        _pool().submit(job)

    def load(
        self,
        cache: AnyCache,
        full: str,
        version_keys: tuple[str, ...],
        token: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Compute and store, under the distributed lock when asked for and available.

        The leader checks the cache once more first: a caller that missed just before
        another leader stored the value must not compute it a second time.
        """
        fresh = self.recheck(cache, full, version_keys)
        if fresh is not None:
            return fresh[0]
        make_lock = getattr(cache, "lock", None) if self.lock else None
        if make_lock is None:
            return self.store(cache, full, version_keys, token, args, kwargs)
        lock = make_lock(full, timeout=self.lock_timeout, blocking_timeout=self.lock_timeout)
        try:
            acquired = lock.acquire()
        except Exception as exc:  # redis errors: fail open, compute without the lock
            cache._log.error("kit_cache_lock_failed", key=full, error=repr(exc))
            acquired = False
        try:
            fresh = self.recheck(cache, full, version_keys)  # filled while we waited?
            if fresh is not None:
                return fresh[0]
            return self.store(cache, full, version_keys, token, args, kwargs)
        finally:
            if acquired:
                try:
                    lock.release()
                except Exception as exc:  # expired lease or Redis gone: nothing to undo
                    cache._log.error("kit_cache_unlock_failed", key=full, error=repr(exc))

    @staticmethod
    def recheck(cache: AnyCache, full: str, version_keys: tuple[str, ...]) -> Entry | None:
        try:
            entry: Entry | None = cache._fetch(full, version_keys, False)[0]
        except BackendError:
            return None
        if entry is not None and _state(entry, cache.clock(), 0.0) == _FRESH:
            return entry
        return None

    def store(
        self,
        cache: AnyCache,
        full: str,
        version_keys: tuple[str, ...],
        token: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        started = time.perf_counter()
        value = self.func(*args, **kwargs)
        if self.unless is not None and self.unless(value):
            return value
        fresh, hard = self.ttls(cache)
        item = (full, value, fresh, hard, time.perf_counter() - started)
        try:
            cache._store([item], version_keys, token)
        except BackendError as exc:
            cache._failed("set", exc)
        return value

    # -- async -----------------------------------------------------------------------------

    async def acall(
        self, flight: AsyncSingleFlight, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        cache = self.cache()
        full, version_keys = self.locate(cache, args, kwargs)
        try:
            entry, token = await _afetch(cache, full, version_keys)
        except BackendError as exc:
            cache._failed("get", exc)
            return await cast(Awaitable[Any], self.func(*args, **kwargs))
        if entry is not None:
            state = _state(entry, cache.clock(), self.beta)
            if state == _FRESH:
                return entry[0]
            if state == _EARLY or self.stale:
                if not flight.in_flight(full):
                    task = flight.start(
                        full, lambda: self.astore(cache, full, version_keys, None, args, kwargs)
                    )
                    _background.add(task)
                    task.add_done_callback(_background.discard)
                return entry[0]
        return await flight.run(
            full, lambda: self.aload(cache, full, version_keys, token, args, kwargs)
        )

    async def aload(
        self,
        cache: AnyCache,
        full: str,
        version_keys: tuple[str, ...],
        token: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        fresh = await self.arecheck(cache, full, version_keys)
        if fresh is not None:
            return fresh[0]
        make_lock = getattr(cache, "lock", None) if self.lock else None
        if make_lock is None:
            return await self.astore(cache, full, version_keys, token, args, kwargs)
        lock = make_lock(full, timeout=self.lock_timeout, blocking_timeout=self.lock_timeout)
        is_async = getattr(cache, "is_async", False)
        try:  # a sync cache's redis-py lock blocks: wait for it in a thread
            acquired = await (lock.acquire() if is_async else asyncio.to_thread(lock.acquire))
        except Exception as exc:
            cache._log.error("kit_cache_lock_failed", key=full, error=repr(exc))
            acquired = False
        try:
            fresh = await self.arecheck(cache, full, version_keys)
            if fresh is not None:
                return fresh[0]
            return await self.astore(cache, full, version_keys, token, args, kwargs)
        finally:
            if acquired:
                try:
                    await (lock.release() if is_async else asyncio.to_thread(lock.release))
                except Exception as exc:
                    cache._log.error("kit_cache_unlock_failed", key=full, error=repr(exc))

    @staticmethod
    async def arecheck(cache: AnyCache, full: str, version_keys: tuple[str, ...]) -> Entry | None:
        try:
            entry: Entry | None = (await _afetch(cache, full, version_keys, count=False))[0]
        except BackendError:
            return None
        if entry is not None and _state(entry, cache.clock(), 0.0) == _FRESH:
            return entry
        return None

    async def astore(
        self,
        cache: AnyCache,
        full: str,
        version_keys: tuple[str, ...],
        token: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        started = time.perf_counter()
        value = await cast(Awaitable[Any], self.func(*args, **kwargs))
        if self.unless is not None and self.unless(value):
            return value
        fresh, hard = self.ttls(cache)
        item = (full, value, fresh, hard, time.perf_counter() - started)
        try:
            await _astore(cache, [item], version_keys, token)
        except BackendError as exc:
            cache._failed("set", exc)
        return value


async def _afetch(
    cache: AnyCache, full: str, version_keys: tuple[str, ...], count: bool = True
) -> tuple[Entry | None, object]:
    if getattr(cache, "is_async", False):
        return cast(tuple[Entry | None, object], await cache._fetch(full, version_keys, count))
    if not cache.blocking_io:
        return cast(tuple[Entry | None, object], cache._fetch(full, version_keys, count))
    local = getattr(cache, "_fetch_local", None)
    if local is not None:
        entry, token = local(full, version_keys)
        if entry is not None:
            return entry, token
    return cast(
        tuple[Entry | None, object],
        await asyncio.to_thread(cache._fetch, full, version_keys, count),
    )


async def _astore(
    cache: AnyCache, items: list[Any], version_keys: tuple[str, ...], token: object
) -> None:
    if getattr(cache, "is_async", False):
        await cache._store(items, version_keys, token)
    elif cache.blocking_io:
        await asyncio.to_thread(cache._store, items, version_keys, token)
    else:
        cache._store(items, version_keys, token)


async def _adelete(cache: AnyCache, full: str) -> None:
    if getattr(cache, "is_async", False):
        await cache._delete([full])
    elif cache.blocking_io:
        await asyncio.to_thread(cache._delete, [full])
    else:
        cache._delete([full])


def _wrap_sync(plan: _Plan[P, R]) -> Cached[P, R]:
    flight = SingleFlight()
    func, binder, call, after_fetch = plan.func, plan.binder, plan.call, plan.after_fetch
    static, tagged, at_risk = plan.static_cache(), bool(plan.tags), plan.key_may_start_with_at
    horizon = plan.beta * _XFETCH_HORIZON
    tenant_get = _tenant.get
    # (cache, "prefix:namespace:", version keys, max key length) of the last cache used
    memo: list[Any] = [None, "", (), 0]

    @functools.wraps(plan.func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        # The hit path, inlined: one call makes the key, one looks it up.
        if tagged:
            return cast(R, call(flight, args, kwargs))
        cache = static if static is not None else plan.cache()
        if memo[0] is not cache:
            ns = plan.namespace or cache.namespace
            memo[:] = [
                cache,
                cache.namespace_prefix(ns),
                cache.version_keys(ns),
                cache.max_key_length,
            ]
        _, pfx, version_keys, limit = memo
        key = binder(*args, **kwargs)
        if len(key) > limit or (at_risk and key[:1] == "@"):
            key = shorten(key, limit)
        tenant = tenant_get()
        full = pfx + key if tenant is None else f"{pfx}@{tenant}:{key}"
        try:
            entry, token = cache._fetch(full, version_keys)
        except BackendError as exc:
            cache._failed("get", exc)
            return func(*args, **kwargs)
        if entry is not None:
            fresh_until = entry[1]
            if not fresh_until:
                return cast(R, entry[0])
            remaining = fresh_until - cache.clock()
            if remaining > 0 and remaining >= entry[2] * horizon:
                return cast(R, entry[0])
        return cast(R, after_fetch(flight, cache, full, version_keys, entry, token, args, kwargs))

    def key(*args: P.args, **kwargs: P.kwargs) -> str:
        return plan.locate(plan.cache(), args, kwargs)[0]

    def invalidate(*args: P.args, **kwargs: P.kwargs) -> bool:
        cache = plan.cache()
        try:
            return bool(cache._delete([plan.locate(cache, args, kwargs)[0]]))
        except BackendError as exc:
            cache._failed("delete", exc)
            return False

    def refresh(*args: P.args, **kwargs: P.kwargs) -> R:
        cache = plan.cache()
        full, version_keys = plan.locate(cache, args, kwargs)
        return cast(R, plan.store(cache, full, version_keys, None, args, kwargs))

    def invalidate_tags(*tags: str) -> None:
        plan.cache().invalidate_tags(*tags)

    wrapper.key = key  # type: ignore[attr-defined]
    wrapper.invalidate = invalidate  # type: ignore[attr-defined]
    wrapper.refresh = refresh  # type: ignore[attr-defined]
    wrapper.invalidate_tags = invalidate_tags  # type: ignore[attr-defined]
    return cast(Cached[P, R], wrapper)


def _wrap_async(plan: _Plan[P, Any]) -> Cached[P, Any]:
    flight = AsyncSingleFlight()
    acall = plan.acall

    @functools.wraps(plan.func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        return await acall(flight, args, kwargs)

    def key(*args: P.args, **kwargs: P.kwargs) -> str:
        return plan.locate(plan.cache(), args, kwargs)[0]

    async def invalidate(*args: P.args, **kwargs: P.kwargs) -> None:
        cache = plan.cache()
        try:
            await _adelete(cache, plan.locate(cache, args, kwargs)[0])
        except BackendError as exc:
            cache._failed("delete", exc)

    async def refresh(*args: P.args, **kwargs: P.kwargs) -> Any:
        cache = plan.cache()
        full, version_keys = plan.locate(cache, args, kwargs)
        return await plan.astore(cache, full, version_keys, None, args, kwargs)

    async def invalidate_tags(*tags: str) -> None:
        cache = plan.cache()
        result = cache.invalidate_tags(*tags)
        if inspect.isawaitable(result):
            await result

    wrapper.key = key  # type: ignore[attr-defined]
    wrapper.invalidate = invalidate  # type: ignore[attr-defined]
    wrapper.refresh = refresh  # type: ignore[attr-defined]
    wrapper.invalidate_tags = invalidate_tags  # type: ignore[attr-defined]
    return cast(Cached[P, Any], wrapper)


def _check_options(
    ttl: object,
    namespace: object,
    tags: object,
    stale_ttl: object,
    early_recompute: object,
    lock_timeout: object,
    unless: object,
) -> None:
    """Validate ``@cached`` options when it is called, before any function is decorated."""
    if not isinstance(ttl, _Unset):
        check_ttl(ttl)
    if namespace is not None:
        check_segment(namespace, "namespace")
    if isinstance(tags, str) or not isinstance(tags, list | tuple):
        raise ConfigurationError(f"tags takes a list of templates, got {tags!r}")
    stale = check_ttl(stale_ttl, "stale_ttl")
    if stale and ttl is None:
        raise ConfigurationError("stale_ttl needs a ttl: entries without expiry never go stale")
    if (
        isinstance(early_recompute, bool)
        or not isinstance(early_recompute, int | float)
        or early_recompute < 0
    ):
        raise ConfigurationError(
            f"early_recompute is XFetch's beta (>= 0; 0 turns it off), got {early_recompute!r}"
        )
    check_ttl(lock_timeout, "lock_timeout")
    if unless is not None and not callable(unless):
        raise ConfigurationError(f"unless must be a callable taking the result, got {unless!r}")


@overload
def cached(ttl: Callable[P, R], /) -> Cached[P, R]: ...


@overload
def cached(
    ttl: TTL = ...,
    *,
    key: str | None = ...,
    namespace: str | None = ...,
    tags: Sequence[str] = ...,
    cache: CacheSource = ...,
    stale_ttl: float | None = ...,
    early_recompute: float = ...,
    lock: bool = ...,
    lock_timeout: float = ...,
    unless: Callable[[Any], bool] | None = ...,
) -> Callable[[Callable[P, R]], Cached[P, R]]: ...


def cached(
    ttl: TTL | Callable[..., Any] = UNSET,
    *,
    key: str | None = None,
    namespace: str | None = None,
    tags: Sequence[str] = (),
    cache: CacheSource = None,
    stale_ttl: float | None = None,
    early_recompute: float = 1.0,
    lock: bool = False,
    lock_timeout: float = 10.0,
    unless: Callable[[Any], bool] | None = None,
) -> Any:
    """Cache a function's results, sync or async, in any kit-cache backend.

    - ``ttl``: seconds a result stays fresh (default: the cache's ``default_ttl``;
      ``None``: forever).
    - ``key``: a template over the argument names, ``"user:{user_id}"`` or
      ``"{user.id}"``; checked at decoration time. Default: ``module.qualname(args...)``.
    - ``namespace``: default the cache's; ``cache.clear(namespace)`` drops all of it.
    - ``tags``: templates like ``["user:{user_id}"]``; ``invalidate_tags("user:42")``
      drops every entry tagged so, across functions and processes.
    - ``cache``: a cache, or a zero-argument callable returning one (late binding);
      default :func:`get_default_cache`.
    - ``stale_ttl``: serve a stale value for this long after ``ttl`` while one background
      refresh recomputes it (stale-while-revalidate).
    - ``early_recompute``: XFetch's beta; values close to expiry are recomputed early with
      a probability that rises as expiry nears, so a hot key never expires under load.
      ``0`` turns it off.
    - ``lock``: take a Redis lock around the computation so that only one process
      computes a missing key (within a process, concurrent callers always share one
      computation). ``lock_timeout`` bounds both the lease and the wait.
    - ``unless``: a predicate on the result; when true the result is not cached.

    Example::

        >>> from kit_cache import MemoryCache, cached
        >>> calls = []
        >>> @cached(ttl=60, key="square:{n}", cache=MemoryCache())
        ... def square(n: int) -> int:
        ...     calls.append(n)
        ...     return n * n
        >>> square(4), square(4), calls
        (16, 16, [4])
        >>> square.key(4)
        'kit:default:square:4'
        >>> square.invalidate(4)
        True
    """
    if callable(ttl) and not isinstance(ttl, _Unset):
        return cached()(ttl)
    _check_options(ttl, namespace, tags, stale_ttl, early_recompute, lock_timeout, unless)

    def decorate(func: Callable[P, R]) -> Cached[P, R]:
        if not callable(func):
            raise ConfigurationError(f"@cached decorates functions, got {func!r}")
        plan = _Plan(
            func,
            ttl=ttl,
            key=key,
            namespace=namespace,
            tags=tags,
            cache=cache,
            stale_ttl=stale_ttl,
            early_recompute=early_recompute,
            lock=lock,
            lock_timeout=lock_timeout,
            unless=unless,
        )
        if inspect.iscoroutinefunction(func):
            return cast(Cached[P, R], _wrap_async(plan))
        return _wrap_sync(plan)

    return decorate
