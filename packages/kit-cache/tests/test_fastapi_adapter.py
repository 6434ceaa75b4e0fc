"""FastAPI adapter: lifespan, get_cache, problem handlers and @cache_response, on MemoryCache,
RedisCache (in a worker thread) and AsyncRedisCache against a real Redis."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
import uuid
import warnings
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel

from kit_cache import (
    AsyncRedisCache,
    BackendUnavailable,
    ConfigurationError,
    MemoryCache,
    RedisCache,
    get_default_cache,
    set_default_cache,
)
from kit_cache._http import etag_for
from kit_cache.fastapi import (
    AnyCache,
    cache_response,
    get_cache,
    install_problem_handlers,
    kit_cache_lifespan,
)

with warnings.catch_warnings():
    # Starlette >= 1.x warns when its TestClient runs on httpx rather than httpx2; the
    # test dependencies pin httpx, and the warning is not about kit-cache.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

ITEMS = {"items": [1, 2, 3], "name": "caf\u00e9"}


class UserOut(BaseModel):
    id: int
    name: str


class UserRow(BaseModel):
    id: int
    name: str
    password_hash: str


def build(cache_or_url: AnyCache | str, **options: Any) -> tuple[FastAPI, Counter[str]]:
    app = FastAPI(lifespan=kit_cache_lifespan(cache_or_url, **options))
    install_problem_handlers(app)
    calls: Counter[str] = Counter()

    @app.api_route("/items", methods=["GET", "HEAD", "POST"], include_in_schema=False)
    @cache_response(ttl=30)
    async def items() -> dict[str, Any]:
        calls["items"] += 1
        return ITEMS

    @app.get("/search/{section}")
    @cache_response(ttl=30)
    async def search(section: str, q: str = "", page: int = 1) -> dict[str, Any]:
        calls["search"] += 1
        return {"section": section, "q": q, "page": page}

    @app.get("/counter")
    @cache_response(ttl=30)
    async def counter() -> dict[str, int]:
        calls["counter"] += 1
        return {"n": calls["counter"]}

    @app.get("/missing")
    @cache_response(ttl=30)
    async def missing() -> Response:
        calls["missing"] += 1
        return PlainTextResponse("not here", status_code=404)

    @app.get("/cookie")
    @cache_response(ttl=30)
    async def cookie(response: Response) -> dict[str, str]:
        calls["cookie"] += 1
        response.set_cookie("sid", "abc")
        return {"cookie": "set"}

    @app.get("/header")
    @cache_response(ttl=30, store_headers=["X-Total-Count"])
    async def header(response: Response) -> list[int]:
        calls["header"] += 1
        response.headers["X-Total-Count"] = "3"
        response.headers["X-Request-Id"] = f"r{calls['header']}"
        return [1, 2, 3]

    @app.get("/me")
    @cache_response(ttl=30)
    async def me(request: Request) -> dict[str, Any]:
        calls["me"] += 1
        return {"auth": request.headers.get("authorization")}

    @app.get("/me-ok")
    @cache_response(ttl=30, allow_authorized=True)
    async def me_ok(request: Request) -> dict[str, Any]:
        calls["me-ok"] += 1
        return {"auth": request.headers.get("authorization")}

    @app.get("/lang")
    @cache_response(ttl=30, vary=["Accept-Language"])
    async def lang(request: Request) -> dict[str, Any]:
        calls["lang"] += 1
        return {"lang": request.headers.get("accept-language")}

    async def skip(request: Request) -> bool:
        return "fresh" in request.query_params

    @app.get("/unless")
    @cache_response(ttl=30, unless=skip)
    async def unless() -> str:
        calls["unless"] += 1
        return "ok"

    @app.get("/users/{user_id}", response_model=UserOut)
    @cache_response(ttl=30, key=lambda request: f"user:{request.path_params['user_id']}")
    async def user(user_id: int) -> Any:
        calls["user"] += 1
        return UserRow(id=user_id, name="Ada", password_hash="hunter2")

    @app.get("/stream")
    @cache_response(ttl=30)
    async def stream() -> StreamingResponse:
        calls["stream"] += 1

        async def chunks() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"b"

        return StreamingResponse(chunks())

    @app.get("/unavailable")
    async def unavailable() -> None:
        raise BackendUnavailable("redis://:hunter2@10.1.2.3:6379 breaker open")

    @app.get("/cache-type")
    async def cache_type(cache: Annotated[Any, Depends(get_cache)]) -> str:
        return type(cache).__name__

    return app, calls


@pytest.fixture
def memory_app() -> tuple[FastAPI, Counter[str]]:
    return build(MemoryCache())


@pytest.fixture
def client(memory_app: tuple[FastAPI, Counter[str]]) -> Any:
    with TestClient(memory_app[0]) as client:
        yield client


@pytest.fixture
def calls(memory_app: tuple[FastAPI, Counter[str]]) -> Counter[str]:
    return memory_app[1]


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- hits


def test_second_get_is_served_from_the_cache(client: TestClient, calls: Counter[str]) -> None:
    first = client.get("/items")
    second = client.get("/items")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == ITEMS
    assert first.content == second.content
    assert calls["items"] == 1
    assert second.headers["content-type"] == "application/json"
    assert second.headers["content-length"] == str(len(first.content))
    assert second.headers["cache-control"] == first.headers["cache-control"] == "public, max-age=30"
    assert "age" in second.headers


def test_path_and_query_params_keep_working(client: TestClient, calls: Counter[str]) -> None:
    assert client.get("/search/books?q=x&page=2").json() == {
        "section": "books",
        "q": "x",
        "page": 2,
    }
    assert client.get("/search/books?page=2&q=x").json() == {
        "section": "books",
        "q": "x",
        "page": 2,
    }
    assert calls["search"] == 1
    assert client.get("/search/films?page=2&q=x").json()["section"] == "films"
    assert calls["search"] == 2
    assert client.get("/search/books?page=oops").status_code == 422  # validation still runs


def test_signature_gets_a_request_parameter_and_openapi_is_unchanged(
    memory_app: tuple[FastAPI, Counter[str]],
) -> None:
    app, _ = memory_app
    search = next(r for r in app.routes if getattr(r, "path", "") == "/search/{section}")
    params = inspect.signature(search.endpoint).parameters  # type: ignore[attr-defined]
    assert list(params)[:3] == ["section", "q", "page"]
    assert params["__kit_cache_request"].annotation is Request
    spec = app.openapi()["paths"]["/search/{section}"]["get"]
    assert sorted(p["name"] for p in spec["parameters"]) == ["page", "q", "section"]
    user_spec = app.openapi()["paths"]["/users/{user_id}"]["get"]
    schema = user_spec["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/UserOut")


def test_response_model_filters_what_is_cached(client: TestClient, calls: Counter[str]) -> None:
    first = client.get("/users/7")
    second = client.get("/users/7")
    assert first.json() == second.json() == {"id": 7, "name": "Ada"}
    assert "hunter2" not in second.text
    assert calls["user"] == 1


def test_sub_response_headers_are_kept_and_only_stored_headers_replayed(
    client: TestClient, calls: Counter[str]
) -> None:
    first = client.get("/header")
    second = client.get("/header")
    assert calls["header"] == 1
    assert first.headers["x-request-id"] == "r1" and "x-request-id" not in second.headers
    assert first.headers["x-total-count"] == second.headers["x-total-count"] == "3"


def test_streaming_responses_are_not_cached(client: TestClient, calls: Counter[str]) -> None:
    assert client.get("/stream").content == b"ab"
    assert client.get("/stream").content == b"ab"
    assert calls["stream"] == 2


# --------------------------------------------------------------------------- ETags


def test_etag_is_strong_and_matches_the_body(client: TestClient) -> None:
    first, second = client.get("/items"), client.get("/items")
    etag = first.headers["etag"]
    assert etag == second.headers["etag"] == etag_for(first.content)
    assert etag.startswith('"') and not etag.startswith("W/")


FASTAPI_SCRIPT = """
from fastapi import FastAPI
from fastapi.testclient import TestClient
from kit_cache import MemoryCache
from kit_cache.fastapi import cache_response

app = FastAPI()

@app.get("/items")
@cache_response(ttl=30, cache=MemoryCache())
async def items():
    return {ITEMS!r}

print(TestClient(app).get("/items").headers["etag"])
"""


def test_etag_is_identical_across_app_instances_and_processes() -> None:
    etags = []
    for _ in range(2):
        app, _ = build(MemoryCache())
        with TestClient(app) as client:
            etags.append(client.get("/items").headers["etag"])
    out = subprocess.run(
        [sys.executable, "-c", FASTAPI_SCRIPT.replace("{ITEMS!r}", repr(ITEMS))],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "777"},
    )
    assert etags[0] == etags[1] == out.stdout.strip()


def test_if_none_match_gives_304_without_body(client: TestClient, calls: Counter[str]) -> None:
    etag = client.get("/items").headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = client.get("/items", headers={"If-None-Match": header})
        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert response.headers["cache-control"] == "public, max-age=30"
    assert client.get("/items", headers={"If-None-Match": '"stale"'}).status_code == 200
    assert calls["items"] == 1


def test_if_none_match_on_a_miss_also_gives_304(client: TestClient, calls: Counter[str]) -> None:
    app, other_calls = build(MemoryCache())
    with TestClient(app) as other:
        etag = other.get("/items").headers["etag"]
    response = client.get("/items", headers={"If-None-Match": etag})
    assert response.status_code == 304 and response.content == b""
    assert calls["items"] == 1 and other_calls["items"] == 1


# --------------------------------------------------------------------------- HEAD


def test_head_answers_like_get_without_a_body(client: TestClient, calls: Counter[str]) -> None:
    head = client.head("/items")  # a miss
    get = client.get("/items")  # a hit
    head2 = client.head("/items")  # a hit
    assert calls["items"] == 1
    assert head.status_code == head2.status_code == 200
    assert head.content == head2.content == b""
    assert head.headers["etag"] == get.headers["etag"] == head2.headers["etag"]
    assert (
        head.headers["content-length"] == head2.headers["content-length"] == str(len(get.content))
    )


# --------------------------------------------------------------------------- not cached


def test_post_is_not_cached(client: TestClient, calls: Counter[str]) -> None:
    client.post("/items")
    post = client.post("/items")
    assert post.json() == ITEMS
    assert calls["items"] == 2
    assert "etag" not in post.headers
    client.get("/items")
    assert calls["items"] == 3


def test_non_200_is_not_cached(client: TestClient, calls: Counter[str]) -> None:
    responses = [client.get("/missing") for _ in range(2)]
    assert [r.status_code for r in responses] == [404, 404]
    assert calls["missing"] == 2
    assert "etag" not in responses[1].headers


def test_set_cookie_response_is_not_cached(client: TestClient, calls: Counter[str]) -> None:
    first = client.get("/cookie")
    second = client.get("/cookie")
    assert calls["cookie"] == 2
    assert "sid=abc" in first.headers["set-cookie"] and "sid=abc" in second.headers["set-cookie"]
    assert first.json() == {"cookie": "set"}


def test_authorized_request_is_not_cached_unless_allowed(
    client: TestClient, calls: Counter[str]
) -> None:
    alice = {"Authorization": "Bearer alice"}
    bob = {"Authorization": "Bearer bob"}
    client.get("/me", headers=alice)
    response = client.get("/me", headers=alice)
    assert calls["me"] == 2
    assert "cache-control" not in response.headers

    first = client.get("/me-ok", headers=alice)
    again = client.get("/me-ok", headers=alice)
    other = client.get("/me-ok", headers=bob)
    assert calls["me-ok"] == 2
    assert again.json() == {"auth": "Bearer alice"} and other.json() == {"auth": "Bearer bob"}
    assert first.headers["cache-control"] == again.headers["cache-control"] == "private, max-age=30"
    assert "Authorization" in again.headers["vary"]


def test_vary_changes_the_key_and_sets_vary(client: TestClient, calls: Counter[str]) -> None:
    en = client.get("/lang", headers={"Accept-Language": "en"})
    fr = client.get("/lang", headers={"Accept-Language": "fr"})
    en2 = client.get("/lang", headers={"Accept-Language": "en"})
    assert calls["lang"] == 2
    assert en.json() == en2.json() == {"lang": "en"} and fr.json() == {"lang": "fr"}
    assert en.headers["vary"] == en2.headers["vary"] == "Accept-Language"


def test_async_unless_bypasses(client: TestClient, calls: Counter[str]) -> None:
    client.get("/unless")
    client.get("/unless")
    assert calls["unless"] == 1
    fresh = client.get("/unless?fresh=1")
    assert fresh.json() == "ok" and "etag" not in fresh.headers
    assert calls["unless"] == 2


def test_request_no_store_bypasses_and_no_cache_refreshes(
    client: TestClient, calls: Counter[str]
) -> None:
    assert client.get("/counter").json() == {"n": 1}
    assert client.get("/counter", headers={"Cache-Control": "no-store"}).json() == {"n": 2}
    assert client.get("/counter").json() == {"n": 1}
    assert client.get("/counter", headers={"Cache-Control": "no-cache"}).json() == {"n": 3}
    assert client.get("/counter").json() == {"n": 3}
    assert calls["counter"] == 3


def test_sync_endpoints_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="async def"):

        @cache_response(ttl=5)  # type: ignore[arg-type]
        def sync_view() -> str:
            return "x"


def test_without_lifespan_the_default_cache_is_used() -> None:
    saved = get_default_cache()
    fallback = MemoryCache()
    set_default_cache(fallback)
    try:
        app = FastAPI()
        hits: list[int] = []

        @app.get("/x")
        @cache_response(ttl=5)
        async def x() -> str:
            hits.append(1)
            return "x"

        with TestClient(app) as client:
            client.get("/x")
            client.get("/x")
        assert hits == [1] and len(fallback) == 1
    finally:
        set_default_cache(saved)


# --------------------------------------------------------------------------- problems


def test_kit_cache_error_in_an_endpoint_is_problem_json(client: TestClient) -> None:
    response = client.get("/unavailable")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 503
    assert body["type"] == "https://kit.dev/problems/cache-unavailable"
    assert body["title"] and body["detail"]
    assert "hunter2" not in response.text


def test_get_cache_without_lifespan_is_a_500_problem() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/c")
    async def c(cache: Annotated[Any, Depends(get_cache)]) -> str:
        return "never"

    with TestClient(app) as client:
        response = client.get("/c")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("cache-misconfigured")


# --------------------------------------------------------------------------- lifespan


class ClosingMemoryCache(MemoryCache):
    closed = 0

    def close(self) -> None:
        self.closed += 1


def test_lifespan_puts_the_cache_on_state_and_closes_it() -> None:
    cache = ClosingMemoryCache()
    app, _ = build(cache)
    with TestClient(app) as client:
        assert app.state.kit_cache is cache
        assert client.get("/cache-type").json() == "ClosingMemoryCache"
        assert cache.closed == 0
    assert cache.closed == 1
    assert getattr(app.state, "kit_cache", None) is None


def test_lifespan_inside_a_user_lifespan() -> None:
    seen: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with kit_cache_lifespan("memory://?maxsize=10")(app):
            seen.append(type(app.state.kit_cache).__name__)
            yield

    app = FastAPI(lifespan=lifespan)
    with TestClient(app):
        pass
    with TestClient(app):  # a second start builds a fresh cache from the URL
        pass
    assert seen == ["MemoryCache", "MemoryCache"]


def test_lifespan_rejects_bad_arguments_early() -> None:
    with pytest.raises(ConfigurationError, match="scheme"):
        kit_cache_lifespan("ftp://nowhere")
    with pytest.raises(ConfigurationError):
        kit_cache_lifespan(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="URL"):
        kit_cache_lifespan(MemoryCache(), maxsize=3)


# --------------------------------------------------------------------------- Redis


def test_async_redis_cache_from_url(redis_clean_url: str) -> None:
    app, calls = build(redis_clean_url, prefix=prefix())
    with TestClient(app) as client:
        assert isinstance(app.state.kit_cache, AsyncRedisCache)
        first = client.get("/items")
        second = client.get("/items")
        assert first.content == second.content and calls["items"] == 1
        assert second.headers["etag"] == etag_for(first.content)
        assert client.get("/users/1").json() == client.get("/users/1").json()
        assert calls["user"] == 1


def test_async_redis_responses_are_shared_by_app_instances(redis_clean_url: str) -> None:
    shared = prefix()
    one, calls_one = build(redis_clean_url, prefix=shared)
    two, calls_two = build(redis_clean_url, prefix=shared)
    with TestClient(one) as client_one, TestClient(two) as client_two:
        first = client_one.get("/items")
        other = client_two.get("/items")
        assert calls_one["items"] == 1 and calls_two["items"] == 0
        assert first.content == other.content
        assert first.headers["etag"] == other.headers["etag"]
        assert client_two.head("/items").content == b""
        assert calls_two["items"] == 0


def test_sync_redis_cache_runs_in_a_thread(redis_clean_url: str) -> None:
    cache = RedisCache(redis_clean_url, prefix=prefix())
    app, calls = build(cache)
    with TestClient(app) as client:
        client.get("/items")
        client.get("/items")
        etag = client.get("/items").headers["etag"]
        assert client.get("/items", headers={"If-None-Match": etag}).status_code == 304
    assert calls["items"] == 1
    assert cache.stats().hits >= 3


def test_redis_stopped_endpoints_still_answer(redis_server: Any) -> None:
    app, calls = build(redis_server.url, prefix=prefix())
    with TestClient(app) as client:
        assert client.get("/items").status_code == 200
        assert client.get("/items").status_code == 200
        assert calls["items"] == 1
        redis_server.stop()
        for _ in range(5):
            response = client.get("/items")
            assert response.status_code == 200
            assert response.json() == ITEMS
            assert response.headers["etag"] == etag_for(response.content)
        assert calls["items"] == 6


def test_problem_body_is_json_serializable() -> None:
    app, _ = build(MemoryCache())
    with TestClient(app) as client:
        body = client.get("/unavailable").content
    assert json.loads(body)["status"] == 503


def test_import_without_fastapi_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if FastAPI were not installed
    monkeypatch.delitem(sys.modules, "kit_cache.fastapi")
    with pytest.raises(ImportError, match=r"kit-cache\[fastapi\]"):
        importlib.import_module("kit_cache.fastapi")


def test_an_async_redis_cache_instance_can_be_passed_directly(redis_clean_url: str) -> None:
    cache = AsyncRedisCache(redis_clean_url, prefix=f"t{uuid.uuid4().hex[:8]}")
    app = FastAPI(lifespan=kit_cache_lifespan(cache))  # closes the cache on its own loop
    hits: list[int] = []

    @app.get("/direct")
    @cache_response(ttl=30, cache=cache)
    async def direct() -> dict[str, str]:
        hits.append(1)
        return {"ok": "yes"}

    with TestClient(app) as client:
        first, second = client.get("/direct"), client.get("/direct")
    assert first.json() == second.json() == {"ok": "yes"}
    assert first.headers["etag"] == second.headers["etag"]
    assert hits == [1]
