"""FastAPI adapter: a lifespan that owns the cache, a ``Depends`` callable, problem+json
handlers and the :func:`cache_response` endpoint decorator.

Example::

    from typing import Annotated
    from fastapi import Depends, FastAPI
    from kit_cache import AsyncRedisCache
    from kit_cache.fastapi import cache_response, get_cache, install_problem_handlers
    from kit_cache.fastapi import kit_cache_lifespan

    app = FastAPI(lifespan=kit_cache_lifespan("redis://localhost:6379/0"))
    install_problem_handlers(app)

    @app.get("/products")
    @cache_response(ttl=60, vary=["Accept-Language"])
    async def products() -> list[Product]:
        return await load_products()

    @app.post("/products/refresh")
    async def refresh(cache: Annotated[AsyncRedisCache, Depends(get_cache)]) -> None:
        await cache.clear("http")
"""

from __future__ import annotations

import functools
import inspect
import logging
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ParamSpec, TypeVar

from ._async_redis import AsyncRedisCache
from ._base import BaseCache
from ._decorator import get_default_cache
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
from .exceptions import ConfigurationError, KitCacheError

try:
    import anyio.to_thread
    from fastapi import FastAPI, Request
    from fastapi.datastructures import DefaultPlaceholder
    from fastapi.encoders import jsonable_encoder
    from fastapi.routing import APIRoute, serialize_response
    from starlette.responses import JSONResponse, Response
except ImportError as exc:  # pragma: no cover - exercised by the CI session without FastAPI
    raise ImportError('kit_cache.fastapi needs FastAPI: pip install "kit-cache[fastapi]"') from exc

__all__ = [
    "AnyCache",
    "cache_response",
    "close_cache",
    "get_cache",
    "install_problem_handlers",
    "kit_cache_lifespan",
    "problem_handler",
]

AnyCache = BaseCache | AsyncRedisCache
CacheArg = AnyCache | Callable[[], AnyCache] | None
RequestPredicate = Callable[[Request], bool | Awaitable[bool]]
RequestKey = Callable[[Request], str | Awaitable[str]]

P = ParamSpec("P")
R = TypeVar("R")

_log = logging.getLogger("kit.cache")
_REQUEST_PARAM = "__kit_cache_request"


# --------------------------------------------------------------------------- calling caches


async def _call(cache: AnyCache, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call a cache method without blocking the event loop: awaited for AsyncRedisCache,
    in a worker thread for caches doing network I/O, directly for in-process caches."""
    function = getattr(cache, method)
    if getattr(cache, "is_async", False):
        return await function(*args, **kwargs)
    if getattr(cache, "blocking_io", False):
        return await anyio.to_thread.run_sync(functools.partial(function, *args, **kwargs))
    return function(*args, **kwargs)


async def close_cache(cache: AnyCache) -> None:
    """Close ``cache``: ``aclose()`` for :class:`AsyncRedisCache`, ``close()`` otherwise.

    Example::

        await close_cache(cache)
    """
    if isinstance(cache, AsyncRedisCache):
        await cache.aclose()
    else:
        await _call(cache, "close")


# --------------------------------------------------------------------------- lifespan


def kit_cache_lifespan(
    cache_or_url: AnyCache | str, **options: Any
) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A FastAPI lifespan putting a cache on ``app.state.kit_cache`` and closing it at
    shutdown.

    Give a cache, or a URL for :func:`kit_cache.cache_from_url` (``redis://`` gives an
    :class:`AsyncRedisCache`; ``options`` go to the cache's constructor). A bad URL fails
    here, when the app is built. Compose it with a lifespan of your own by entering it:

    Example::

        app = FastAPI(lifespan=kit_cache_lifespan("redis://localhost:6379/0"))

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            async with kit_cache_lifespan("memory://")(app):
                yield
    """
    if isinstance(cache_or_url, str):
        url = cache_or_url

        def build() -> AnyCache:
            return cache_from_url(url, asyncio=True, **options)

        first: list[AnyCache] = [build()]  # validates the URL and options now
    elif isinstance(cache_or_url, BaseCache | AsyncRedisCache):
        if options:
            raise ConfigurationError("options apply only when kit_cache_lifespan gets a URL")
        given = cache_or_url

        def build() -> AnyCache:
            return given

        first = [given]
    else:
        raise ConfigurationError(
            f"kit_cache_lifespan takes a cache or a cache URL, got {type(cache_or_url).__name__}"
        )

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        cache = first.pop() if first else build()
        app.state.kit_cache = cache
        try:
            yield
        finally:
            try:
                await close_cache(cache)
            finally:
                del app.state.kit_cache

    return lifespan


def get_cache(request: Request) -> AnyCache:
    """FastAPI dependency: the cache :func:`kit_cache_lifespan` put on ``app.state``.

    Example::

        @app.get("/stats")
        async def stats(cache: Annotated[AsyncRedisCache, Depends(get_cache)]) -> dict:
            return {"hits": cache.stats().hits}
    """
    cache = getattr(request.app.state, "kit_cache", None)
    if cache is None:
        raise ConfigurationError(
            "no cache on app.state.kit_cache: create the app with "
            "FastAPI(lifespan=kit_cache_lifespan(...)) or set app.state.kit_cache"
        )
    return typing.cast(AnyCache, cache)


# --------------------------------------------------------------------------- problems


async def problem_handler(request: Request, exc: Exception) -> Response:
    """Exception handler: an RFC 9457 ``application/problem+json`` response for a
    :class:`~kit_cache.KitCacheError` (503 for backend failures, 500 otherwise).

    Example::

        app.add_exception_handler(KitCacheError, problem_handler)
    """
    if not isinstance(exc, KitCacheError):
        raise exc
    status, body = problem_details(exc)
    if status >= 500 and status != 503:
        _log.error(
            "kit_cache_http_problem status=%d error=%s", status, type(exc).__name__, exc_info=exc
        )
    else:
        _log.warning(
            "kit_cache_http_problem status=%d error=%s: %s", status, type(exc).__name__, exc
        )
    return JSONResponse(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE)


def install_problem_handlers(app: FastAPI) -> None:
    """Register :func:`problem_handler` for every :class:`~kit_cache.KitCacheError`.

    Example::

        app = FastAPI()
        install_problem_handlers(app)
    """
    app.add_exception_handler(KitCacheError, problem_handler)


# --------------------------------------------------------------------------- endpoints


def _resolve_cache(cache: CacheArg, request: Request) -> AnyCache:
    found: Any
    if cache is None:
        found = getattr(request.app.state, "kit_cache", None)
        if found is None:
            found = get_default_cache()
    elif isinstance(cache, BaseCache | AsyncRedisCache):
        return cache
    else:
        found = cache()
    if not isinstance(found, BaseCache | AsyncRedisCache):
        raise ConfigurationError(f"cache_response needs a kit-cache cache, got {found!r}")
    return found


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _to_starlette(reply: Reply) -> Response:
    response = Response(reply.body, status_code=reply.status)
    response.raw_headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers
    ]
    return response


async def _render(value: Any, request: Request, sub_response: Response | None) -> Response:
    """Turn an endpoint's return value into the response FastAPI would have sent."""
    if isinstance(value, Response):
        return value
    route = request.scope.get("route")
    response_class: Any = JSONResponse
    status = 200
    if isinstance(route, APIRoute):
        # Validate and filter through the route's response_model, as FastAPI does.
        content = await serialize_response(
            field=route.response_field,
            response_content=value,
            include=route.response_model_include,
            exclude=route.response_model_exclude,
            by_alias=route.response_model_by_alias,
            exclude_unset=route.response_model_exclude_unset,
            exclude_defaults=route.response_model_exclude_defaults,
            exclude_none=route.response_model_exclude_none,
        )
        response_class = route.response_class
        if isinstance(response_class, DefaultPlaceholder):
            response_class = response_class.value
        status = route.status_code or 200
    else:
        content = jsonable_encoder(value)
    if sub_response is not None and sub_response.status_code:
        status = sub_response.status_code
    response: Response = response_class(content, status_code=status)
    if sub_response is not None:
        response.raw_headers.extend(
            h for h in sub_response.raw_headers if h[0] != b"content-length"
        )
    return response


def _head(response: Response) -> Response:
    """``response`` without its body, headers (Content-Length included) unchanged."""
    stripped = Response(b"", status_code=response.status_code, background=response.background)
    stripped.raw_headers = list(response.raw_headers)
    return stripped


def _is_class(annotation: Any, base: type) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, base)


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
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R | Response]]]:
    """Cache an ``async def`` FastAPI endpoint's responses, with a strong ETag,
    ``Cache-Control`` and 304s. Put it below the route decorator.

    The rules and options are those of :func:`kit_cache.flask.cache_response`: GET and
    HEAD only; ``Authorization`` bypasses unless ``allow_authorized`` (then ``private``);
    request ``no-store`` bypasses, ``no-cache`` recomputes; only 200 responses without
    ``Set-Cookie`` (unless ``allow_cookies``) or ``no-store``/``private`` are stored, in the
    ``"http"`` namespace. ``key`` and ``unless`` receive the :class:`~fastapi.Request`
    and may be async. ``cache`` defaults to ``app.state.kit_cache`` (see
    :func:`kit_cache_lifespan`), else :func:`kit_cache.get_default_cache`.

    A return value that is not a Response is rendered as FastAPI would render it (the
    route's ``response_model``, ``status_code`` and ``response_class``; a plain
    :func:`~fastapi.encoders.jsonable_encoder` JSON response outside a route). The endpoint
    keeps its signature; a ``request: Request`` parameter is added for FastAPI to fill if
    it has none. AsyncRedisCache is awaited, RedisCache and TieredCache run in a worker
    thread, MemoryCache is called directly. If the backend fails the endpoint still runs
    and its response is sent.

    Example::

        @app.get("/articles/{article_id}")
        @cache_response(ttl=120, vary=["Accept-Language"])
        async def article(article_id: int) -> Article:
            return await load(article_id)
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
    if (
        cache is not None
        and not callable(cache)
        and not isinstance(cache, BaseCache | AsyncRedisCache)
    ):
        raise ConfigurationError(f"cache= takes a cache or a callable returning one, got {cache!r}")

    def decorate(endpoint: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R | Response]]:
        if not inspect.iscoroutinefunction(endpoint):
            raise ConfigurationError(
                f"cache_response decorates async def endpoints; {endpoint!r} is not one"
            )
        signature = inspect.signature(endpoint)
        try:
            hints = typing.get_type_hints(endpoint, include_extras=True)
        except Exception:  # unresolvable names: FastAPI resolves them itself later
            hints = {}
        params = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in signature.parameters.values()
        ]
        request_name = next((p.name for p in params if _is_class(p.annotation, Request)), None)
        response_name = next((p.name for p in params if _is_class(p.annotation, Response)), None)
        added = request_name is None
        if request_name is None:
            request_name = _REQUEST_PARAM
            extra = inspect.Parameter(
                request_name, inspect.Parameter.KEYWORD_ONLY, annotation=Request
            )
            at = next(
                (i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD),
                len(params),
            )
            params.insert(at, extra)

        @functools.wraps(endpoint)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
            request = kwargs.pop(request_name) if added else kwargs[request_name]
            assert isinstance(request, Request)
            header = request.headers.get
            lookup = policy.lookup(request.method, header)
            if lookup is None or (unless is not None and await _maybe_await(unless(request))):
                return await endpoint(*args, **kwargs)
            store = _resolve_cache(cache, request)
            if key is not None:
                base = await _maybe_await(key(request))
            else:
                base = default_key_base(request.url.path, request.url.query)
            cache_key = policy.key(base, header, lookup)
            if_none_match = header("if-none-match")
            if lookup.read:
                stored = await _call(store, "get", cache_key, namespace=NAMESPACE)
                entry = CachedResponse.from_value(stored)
                if entry is not None:
                    reply = policy.reply(
                        entry, lookup, method=request.method, if_none_match=if_none_match
                    )
                    return _to_starlette(reply)
            value = await endpoint(*args, **kwargs)
            sub_response = kwargs.get(response_name) if response_name else None
            response = await _render(
                value, request, sub_response if isinstance(sub_response, Response) else None
            )
            body = getattr(response, "body", None)
            if not isinstance(body, bytes):  # streaming and file responses are not cached
                return response
            ttl_seconds = policy.ttl_for(store)
            entry = policy.capture(
                response.status_code, response.headers.items(), body, ttl_seconds
            )
            if entry is None:
                return response
            await _call(store, "set", cache_key, entry.to_value(), ttl_seconds, namespace=NAMESPACE)
            if etag_matches(if_none_match, entry.etag):
                not_modified = _to_starlette(
                    policy.reply(
                        entry, lookup, method="GET", if_none_match=if_none_match, hit=False
                    )
                )
                not_modified.raw_headers.extend(
                    h for h in response.raw_headers if h[0] == b"set-cookie"
                )
                not_modified.background = response.background
                return not_modified
            for name, header_value in policy.cache_headers(entry, lookup):
                response.headers[name] = header_value
            return _head(response) if request.method.upper() == "HEAD" else response

        return_annotation = hints.get("return", signature.return_annotation)
        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=params, return_annotation=return_annotation
        )
        return wrapper

    return decorate
