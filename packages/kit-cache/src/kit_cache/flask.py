"""Flask adapter: the :class:`KitCache` extension and the :func:`cache_response` view decorator.

Example::

    from flask import Flask
    from kit_cache.flask import KitCache, cache_response

    app = Flask(__name__)
    app.config["KIT_CACHE_URL"] = "redis://localhost:6379/0"
    kit_cache = KitCache(app)

    @app.get("/products")
    @cache_response(ttl=60, vary=["Accept-Language"])
    def products():
        return {"products": load_products()}

    @kit_cache.cached(ttl=300, key="rates:{currency}")
    def exchange_rates(currency: str) -> dict[str, float]: ...
"""

from __future__ import annotations

import functools
import json
import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar, cast, overload

from ._base import TTL, UNSET, BaseCache, check_ttl
from ._decorator import Cached, cached, get_default_cache
from ._factory import cache_from_url
from ._http import (
    NAMESPACE,
    PROBLEM_CONTENT_TYPE,
    CachedResponse,
    Reply,
    ResponsePolicy,
    default_key_base,
    etag_matches,
    problem_details,
)
from ._keys import check_segment
from ._redis_common import to_secret
from .exceptions import ConfigurationError, KitCacheError
from .serializers import resolve_serializer

try:
    import flask
    from flask.typing import ResponseReturnValue
except ImportError as exc:  # pragma: no cover - exercised by the CI session without Flask
    raise ImportError('kit_cache.flask needs Flask: pip install "kit-cache[flask]"') from exc

__all__ = ["EXTENSION_KEY", "KitCache", "cache_response", "problem_response"]

EXTENSION_KEY = "kit-cache"
"""Where :class:`KitCache` registers itself: ``app.extensions["kit-cache"]``."""

P = ParamSpec("P")
R = TypeVar("R")

CacheArg = BaseCache | Callable[[], BaseCache] | None
RequestPredicate = Callable[[flask.Request], bool]
RequestKey = Callable[[flask.Request], str]

_log = logging.getLogger("kit.cache")
_IN_PROCESS = ("memory", "null")


# --------------------------------------------------------------------------- configuration


def _bad(name: str, exc: Exception | str) -> ConfigurationError:
    return ConfigurationError(f"invalid {name} in app.config: {exc}")


def cache_from_config(config: Mapping[str, Any]) -> BaseCache:
    """Build the cache described by ``KIT_CACHE_*`` keys of a Flask config.

    ``KIT_CACHE_URL`` (default ``"memory://"``), ``KIT_CACHE_PREFIX``,
    ``KIT_CACHE_NAMESPACE``, ``KIT_CACHE_DEFAULT_TTL`` (seconds, or None for no expiry),
    ``KIT_CACHE_ON_ERROR`` (``"ignore"``: fail open, or ``"raise"``),
    ``KIT_CACHE_SERIALIZER`` and ``KIT_CACHE_SECRET`` (Redis only). A bad value raises
    :class:`ConfigurationError` naming the key. Nothing connects to a server here.

    Example::

        >>> cache = cache_from_config({"KIT_CACHE_URL": "memory://", "KIT_CACHE_DEFAULT_TTL": 60})
        >>> type(cache).__name__, cache.default_ttl
        ('MemoryCache', 60.0)
    """
    url = config.get("KIT_CACHE_URL") or "memory://"
    if not isinstance(url, str) or "://" not in url:
        raise _bad(
            "KIT_CACHE_URL",
            "expected a cache URL such as 'memory://' or 'redis://localhost:6379/0', "
            f"got {type(url).__name__} {url if not isinstance(url, str) else '(no scheme)'}",
        )
    options: dict[str, Any] = {}
    for name, option in (("KIT_CACHE_PREFIX", "prefix"), ("KIT_CACHE_NAMESPACE", "namespace")):
        value = config.get(name)
        if value is not None:
            try:
                options[option] = check_segment(value, option)
            except ConfigurationError as exc:
                raise _bad(name, exc) from None
    if "KIT_CACHE_DEFAULT_TTL" in config:
        raw = config["KIT_CACHE_DEFAULT_TTL"]
        if isinstance(raw, str):
            try:
                raw = float(raw)
            except ValueError:
                raise _bad("KIT_CACHE_DEFAULT_TTL", f"{raw!r} is not a number of seconds") from None
        try:
            options["default_ttl"] = check_ttl(raw, "default_ttl")
        except ConfigurationError as exc:
            raise _bad("KIT_CACHE_DEFAULT_TTL", exc) from None
    on_error = config.get("KIT_CACHE_ON_ERROR")
    if on_error is not None and on_error not in ("ignore", "raise"):
        raise _bad(
            "KIT_CACHE_ON_ERROR",
            f"use 'ignore' (fail open) or 'raise' (fail closed), not {on_error!r}",
        )
    try:
        serializer = resolve_serializer(config.get("KIT_CACHE_SERIALIZER"))
    except ConfigurationError as exc:
        raise _bad("KIT_CACHE_SERIALIZER", exc) from None
    secret = config.get("KIT_CACHE_SECRET")
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _IN_PROCESS:
        if secret is not None and not isinstance(secret, str | bytes):
            raise _bad("KIT_CACHE_SECRET", f"expected str or bytes, got {type(secret).__name__}")
        try:
            to_secret(secret, serializer)
        except ConfigurationError as exc:
            name = "KIT_CACHE_SECRET" if secret is not None else "KIT_CACHE_SERIALIZER"
            raise _bad(name, exc) from None
        if on_error is not None:
            options["on_error"] = on_error
        options["serializer"] = serializer
        if secret is not None:
            options["secret"] = secret
    try:
        cache = cache_from_url(url, **options)
    except (ConfigurationError, TypeError) as exc:
        raise _bad("KIT_CACHE_URL", exc) from None
    assert isinstance(cache, BaseCache)
    return cache


# --------------------------------------------------------------------------- problems


def problem_response(exc: KitCacheError) -> flask.Response:
    """An RFC 9457 ``application/problem+json`` response for a kit-cache error; the error
    handler :class:`KitCache` registers.

    Example::

        app.register_error_handler(KitCacheError, problem_response)
    """
    status, body = problem_details(exc)
    if status >= 500 and status != 503:
        _log.error(
            "kit_cache_http_problem status=%d error=%s", status, type(exc).__name__, exc_info=exc
        )
    else:
        _log.warning(
            "kit_cache_http_problem status=%d error=%s: %s", status, type(exc).__name__, exc
        )
    return flask.Response(json.dumps(body), status=status, mimetype=PROBLEM_CONTENT_TYPE)


# --------------------------------------------------------------------------- extension


def _current_app() -> flask.Flask:
    return cast(flask.Flask, flask.current_app._get_current_object())  # type: ignore[attr-defined]


class KitCache:
    """The Flask extension: one cache per application, configured from ``app.config``.

    ``KitCache(app)`` or ``KitCache()`` then ``init_app(app)`` (application factories). A
    ``cache=`` given here is used for every app; otherwise each app gets the cache its
    ``KIT_CACHE_*`` config describes (see :func:`cache_from_config`). ``init_app`` also
    registers an error handler turning :class:`~kit_cache.KitCacheError` into
    ``application/problem+json`` (503 for backend failures, 500 otherwise).

    Example::

        >>> app = flask.Flask("shop")
        >>> app.config["KIT_CACHE_DEFAULT_TTL"] = 30
        >>> ext = KitCache(app)
        >>> with app.app_context():
        ...     ext.cache.set("greeting", "hi")
        ...     ext.cache.get("greeting")
        True
        'hi'
    """

    def __init__(self, app: flask.Flask | None = None, cache: BaseCache | None = None) -> None:
        if cache is not None and not isinstance(cache, BaseCache):
            raise ConfigurationError(
                f"KitCache needs a synchronous cache (MemoryCache, RedisCache, TieredCache), "
                f"got {type(cache).__name__}: Flask views are synchronous"
            )
        self._cache = cache
        self._caches: weakref.WeakKeyDictionary[flask.Flask, BaseCache] = (
            weakref.WeakKeyDictionary()
        )
        self.app = app
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        """Build (or take) the app's cache, register the extension and the error handler."""
        cache = self._cache if self._cache is not None else cache_from_config(app.config)
        self._caches[app] = cache
        app.extensions[EXTENSION_KEY] = self
        app.register_error_handler(KitCacheError, problem_response)

    def cache_for(self, app: flask.Flask) -> BaseCache:
        """The cache of ``app``; :class:`ConfigurationError` if ``init_app(app)`` never ran."""
        try:
            return self._caches[app]
        except KeyError:
            raise ConfigurationError(
                f"KitCache was not initialised for app {app.name!r}: call init_app(app)"
            ) from None

    @property
    def cache(self) -> BaseCache:
        """The cache of the current app (or of the app given to the constructor)."""
        if flask.has_app_context():
            return self.cache_for(_current_app())
        if self.app is not None:
            return self.cache_for(self.app)
        raise RuntimeError(
            "KitCache.cache needs an application context (with app.app_context(): ...) "
            "or an app passed to KitCache(app)"
        )

    @overload
    def cached(self, ttl: Callable[P, R], /) -> Cached[P, R]: ...

    @overload
    def cached(
        self, ttl: TTL = ..., **options: Any
    ) -> Callable[[Callable[P, R]], Cached[P, R]]: ...

    def cached(self, ttl: TTL | Callable[..., Any] = UNSET, **options: Any) -> Any:
        """:func:`kit_cache.cached` on the current app's cache (bound at call time).

        Takes the same options as :func:`kit_cache.cached` except ``cache``.

        Example::

            @kit_cache.cached(ttl=60, key="user:{user_id}")
            def load_user(user_id: int) -> dict[str, Any]: ...
        """
        if "cache" in options:
            raise ConfigurationError(
                "KitCache.cached() uses the app's cache; use kit_cache.cached(cache=...) instead"
            )
        if callable(ttl) and not isinstance(ttl, int | float):
            return cached(cache=lambda: self.cache)(ttl)
        return cached(ttl, cache=lambda: self.cache, **options)


# --------------------------------------------------------------------------- views


def _resolve_cache(cache: CacheArg) -> BaseCache:
    if cache is None:
        ext = flask.current_app.extensions.get(EXTENSION_KEY)
        found: Any = ext.cache_for(_current_app()) if isinstance(ext, KitCache) else None
        if found is None:
            found = get_default_cache()
    elif isinstance(cache, BaseCache):
        return cache
    else:
        found = cache()
    if not isinstance(found, BaseCache):
        raise ConfigurationError(
            f"Flask views need a synchronous cache, got {type(found).__name__}; "
            "use RedisCache rather than AsyncRedisCache"
        )
    return found


def _to_flask(reply: Reply) -> flask.Response:
    response = flask.Response(reply.body, status=reply.status)
    response.headers.clear()
    for name, value in reply.headers:
        response.headers.add(name, value)
    return response


def cache_response(
    ttl: float | None = None,
    *,
    key: RequestKey | None = None,
    unless: RequestPredicate | None = None,
    vary: Sequence[str] = (),
    allow_authorized: bool = False,
    allow_cookies: bool = False,
    store_headers: Sequence[str] = (),
    cache: CacheArg = None,
) -> Callable[[Callable[P, ResponseReturnValue]], Callable[P, flask.Response]]:
    """Cache a Flask view's responses, with a strong ETag, ``Cache-Control`` and 304s.

    Only GET and HEAD are cached (HEAD shares GET's entry); a request with
    ``Authorization`` bypasses the cache unless ``allow_authorized`` (its response is then
    ``private`` and keyed by the credentials); request ``Cache-Control: no-store`` bypasses
    it and ``no-cache`` recomputes and stores. Only 200 responses without ``Set-Cookie``
    (unless ``allow_cookies``) and without ``Cache-Control: no-store``/``private`` are
    stored, under the ``"http"`` namespace (``cache.clear("http")`` drops them all).

    - ``ttl``: seconds (default: the cache's ``default_ttl``); also the ``max-age``.
    - ``key``: ``key(request) -> str`` replacing the default key (path + sorted query);
      ``vary`` header values and credentials are still appended.
    - ``unless``: ``unless(request) -> bool``; True bypasses the cache.
    - ``vary``: request header names that select different entries; sent as ``Vary``.
    - ``store_headers``: response headers to keep besides the representation headers.
    - ``cache``: a cache or a zero-argument callable returning one; default the current
      app's :class:`KitCache` cache, else :func:`kit_cache.get_default_cache`.

    If the cache backend fails, the view runs and its response is sent (the cache fails
    open); a cache configured with ``on_error="raise"`` lets the error reach the
    problem+json handler instead. Views that read the session or the current user must
    say so with ``key=`` or ``vary=["Cookie"]``.

    Example::

        @app.get("/articles/<int:article_id>")
        @cache_response(ttl=120, vary=["Accept-Language"])
        def article(article_id: int):
            return render_template("article.html", article=load(article_id))
    """
    policy = ResponsePolicy(
        ttl,
        vary=vary,
        allow_authorized=allow_authorized,
        allow_cookies=allow_cookies,
        store_headers=store_headers,
    )
    for name, value in (("key", key), ("unless", unless)):
        if value is not None and not callable(value):
            raise ConfigurationError(f"{name}= takes a callable(request), got {value!r}")
    if cache is not None and not callable(cache) and not isinstance(cache, BaseCache):
        raise ConfigurationError(
            f"cache= takes a synchronous cache or a callable returning one, got {cache!r}"
        )

    def decorate(view: Callable[P, ResponseReturnValue]) -> Callable[P, flask.Response]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> flask.Response:
            request = flask.request
            header = request.headers.get
            lookup = policy.lookup(request.method, header)
            if lookup is None or (unless is not None and unless(request)):
                return flask.make_response(view(*args, **kwargs))
            store = _resolve_cache(cache)
            base = (
                key(request)
                if key is not None
                else default_key_base(request.path, request.query_string.decode("latin-1"))
            )
            cache_key = policy.key(base, header, lookup)
            if_none_match = header("if-none-match")
            if lookup.read:
                entry = CachedResponse.from_value(store.get(cache_key, namespace=NAMESPACE))
                if entry is not None:
                    # werkzeug drops the body of a HEAD response and keeps Content-Length
                    reply = policy.reply(entry, lookup, method="GET", if_none_match=if_none_match)
                    return _to_flask(reply)
            response = flask.make_response(view(*args, **kwargs))
            if response.is_streamed or response.direct_passthrough:
                return response
            ttl_seconds = policy.ttl_for(store)
            entry = policy.capture(
                response.status_code, response.headers.items(), response.get_data(), ttl_seconds
            )
            if entry is None:
                return response
            store.set(cache_key, entry.to_value(), ttl_seconds, namespace=NAMESPACE)
            if etag_matches(if_none_match, entry.etag):
                not_modified = _to_flask(
                    policy.reply(
                        entry, lookup, method="GET", if_none_match=if_none_match, hit=False
                    )
                )
                for cookie in response.headers.getlist("Set-Cookie"):
                    not_modified.headers.add("Set-Cookie", cookie)
                return not_modified
            for name, value in policy.cache_headers(entry, lookup):
                response.headers[name] = value
            return response

        return wrapper

    return decorate
