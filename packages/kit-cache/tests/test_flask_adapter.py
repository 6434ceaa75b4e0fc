"""Flask adapter: the KitCache extension and @cache_response, on MemoryCache and real Redis."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Response, make_response, request

from kit_cache import (
    BackendUnavailable,
    BaseCache,
    CacheKeyError,
    ConfigurationError,
    MemoryCache,
    RedisCache,
    get_default_cache,
    set_default_cache,
)
from kit_cache._http import etag_for
from kit_cache.flask import KitCache, cache_from_config, cache_response

ITEMS = {"items": [1, 2, 3], "name": "caf\u00e9"}


def build(cache: BaseCache | None = None, **config: Any) -> tuple[Flask, KitCache, Counter[str]]:
    """An app with one view per behaviour under test; ``calls`` counts view executions."""
    app = Flask(f"app{uuid.uuid4().hex[:6]}")
    app.config.update(config)
    ext = KitCache(app, cache=cache)
    calls: Counter[str] = Counter()

    @app.get("/items")
    @cache_response(ttl=30)
    def items() -> Any:
        calls["items"] += 1
        return ITEMS

    @app.get("/search")
    @cache_response(ttl=30)
    def search() -> Any:
        calls["search"] += 1
        return {"q": request.args.get("q"), "page": request.args.get("page")}

    @app.get("/counter")
    @cache_response(ttl=30)
    def counter() -> Any:
        calls["counter"] += 1
        return {"n": calls["counter"]}

    @app.get("/default-ttl")
    @cache_response()
    def default_ttl() -> Any:
        calls["default-ttl"] += 1
        return "ok"

    @app.route("/form", methods=["GET", "POST"])
    @cache_response(ttl=30)
    def form() -> Any:
        calls["form"] += 1
        return {"method": request.method}

    @app.get("/missing")
    @cache_response(ttl=30)
    def missing() -> Any:
        calls["missing"] += 1
        return {"error": "not here"}, 404

    @app.get("/cookie")
    @cache_response(ttl=30)
    def cookie() -> Response:
        calls["cookie"] += 1
        response = make_response("with cookie")
        response.set_cookie("sid", "abc")
        return response

    @app.get("/cookie-ok")
    @cache_response(ttl=30, allow_cookies=True)
    def cookie_ok() -> Response:
        calls["cookie-ok"] += 1
        response = make_response("with cookie")
        response.set_cookie("sid", "abc")
        return response

    @app.get("/private")
    @cache_response(ttl=30)
    def private() -> Any:
        calls["private"] += 1
        return "mine", 200, {"Cache-Control": "private"}

    @app.get("/me")
    @cache_response(ttl=30)
    def me() -> Any:
        calls["me"] += 1
        return {"auth": request.headers.get("Authorization")}

    @app.get("/me-ok")
    @cache_response(ttl=30, allow_authorized=True)
    def me_ok() -> Any:
        calls["me-ok"] += 1
        return {"auth": request.headers.get("Authorization")}

    @app.get("/lang")
    @cache_response(ttl=30, vary=["Accept-Language"])
    def lang() -> Any:
        calls["lang"] += 1
        return {"lang": request.headers.get("Accept-Language")}

    @app.get("/unless")
    @cache_response(ttl=30, unless=lambda req: "fresh" in req.args)
    def unless() -> Any:
        calls["unless"] += 1
        return "ok"

    @app.get("/by-user/<user>")
    @cache_response(ttl=30, key=lambda req: f"user:{(req.view_args or {})['user'].lower()}")
    def by_user(user: str) -> Any:
        calls["by-user"] += 1
        return {"user": user}

    @app.get("/unavailable")
    def unavailable() -> Any:
        raise BackendUnavailable("redis://:hunter2@10.1.2.3:6379 breaker open")

    @app.get("/bad-key")
    @cache_response(ttl=30, key=lambda req: "@reserved")
    def bad_key() -> Any:
        return "never"

    return app, ext, calls


@pytest.fixture
def app_calls() -> tuple[Flask, KitCache, Counter[str]]:
    return build(MemoryCache())


@pytest.fixture
def redis_config(redis_clean_url: str) -> dict[str, Any]:
    return {"KIT_CACHE_URL": redis_clean_url, "KIT_CACHE_PREFIX": f"t{uuid.uuid4().hex[:8]}"}


@pytest.fixture
def redis_apps(
    redis_config: dict[str, Any],
) -> Iterator[list[tuple[Flask, KitCache, Counter[str]]]]:
    """Two app instances (two "processes") sharing one Redis."""
    apps = [build(**redis_config), build(**redis_config)]
    yield apps
    for app, ext, _ in apps:
        with app.app_context():
            ext.cache.close()


# --------------------------------------------------------------------------- hits


def test_second_get_is_served_from_the_cache(
    app_calls: tuple[Flask, KitCache, Counter[str]],
) -> None:
    app, _, calls = app_calls
    client = app.test_client()
    first = client.get("/items")
    second = client.get("/items")
    assert first.status_code == second.status_code == 200
    assert first.get_json() == second.get_json() == ITEMS
    assert first.data == second.data
    assert calls["items"] == 1
    assert second.headers["Content-Type"] == "application/json"
    assert second.headers["Content-Length"] == str(len(first.data))
    assert "Age" in second.headers and "Age" not in first.headers


def test_query_order_does_not_matter_but_values_do(
    app_calls: tuple[Flask, KitCache, Counter[str]],
) -> None:
    app, _, calls = app_calls
    client = app.test_client()
    assert client.get("/search?q=a&page=2").get_json() == {"q": "a", "page": "2"}
    assert client.get("/search?page=2&q=a").get_json() == {"q": "a", "page": "2"}
    assert calls["search"] == 1
    assert client.get("/search?q=b&page=2").get_json() == {"q": "b", "page": "2"}
    assert calls["search"] == 2


def test_cache_control_max_age(app_calls: tuple[Flask, KitCache, Counter[str]]) -> None:
    app, _, _ = app_calls
    client = app.test_client()
    assert client.get("/items").headers["Cache-Control"] == "public, max-age=30"
    assert client.get("/items").headers["Cache-Control"] == "public, max-age=30"


def test_ttl_defaults_to_kit_cache_default_ttl() -> None:
    app, ext, _ = build(KIT_CACHE_DEFAULT_TTL=42)
    with app.app_context():
        assert ext.cache.default_ttl == 42
    assert app.test_client().get("/default-ttl").headers["Cache-Control"] == "public, max-age=42"


def test_clearing_the_http_namespace_drops_cached_responses(
    app_calls: tuple[Flask, KitCache, Counter[str]],
) -> None:
    app, ext, calls = app_calls
    client = app.test_client()
    client.get("/items")
    with app.app_context():
        ext.cache.clear("http")
    client.get("/items")
    assert calls["items"] == 2


# --------------------------------------------------------------------------- ETags


def test_etag_is_strong_and_matches_the_body(
    app_calls: tuple[Flask, KitCache, Counter[str]],
) -> None:
    app, _, _ = app_calls
    client = app.test_client()
    first, second = client.get("/items"), client.get("/items")
    etag = first.headers["ETag"]
    assert etag == second.headers["ETag"] == etag_for(first.data)
    assert etag.startswith('"') and not etag.startswith("W/")


FLASK_SCRIPT = """
from flask import Flask
from kit_cache import MemoryCache
from kit_cache.flask import cache_response

app = Flask("elsewhere")

@app.get("/items")
@cache_response(ttl=30, cache=MemoryCache())
def items():
    return {ITEMS!r}

print(app.test_client().get("/items").headers["ETag"])
"""


def test_etag_is_identical_across_app_instances_and_processes() -> None:
    one, _, _ = build(MemoryCache())
    two, _, _ = build(MemoryCache())
    etag = one.test_client().get("/items").headers["ETag"]
    assert two.test_client().get("/items").headers["ETag"] == etag
    out = subprocess.run(
        [sys.executable, "-c", FLASK_SCRIPT.replace("{ITEMS!r}", repr(ITEMS))],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "4242"},
    )
    assert out.stdout.strip() == etag


def test_if_none_match_gives_304_without_body(
    app_calls: tuple[Flask, KitCache, Counter[str]],
) -> None:
    app, _, calls = app_calls
    client = app.test_client()
    etag = client.get("/items").headers["ETag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = client.get("/items", headers={"If-None-Match": header})
        assert response.status_code == 304
        assert response.data == b""
        assert response.headers["ETag"] == etag
        assert response.headers["Cache-Control"] == "public, max-age=30"
    assert client.get("/items", headers={"If-None-Match": '"stale"'}).status_code == 200
    assert calls["items"] == 1


def test_if_none_match_on_a_miss_also_gives_304() -> None:
    rendered = build(MemoryCache())[0].test_client().get("/items").data
    app, _, calls = build(MemoryCache())  # a cold cache: the view runs, then 304
    response = app.test_client().get("/items", headers={"If-None-Match": etag_for(rendered)})
    assert response.status_code == 304 and response.data == b""
    assert response.headers["ETag"] == etag_for(rendered)
    assert calls["items"] == 1
    assert app.test_client().get("/items").status_code == 200  # and it was stored
    assert calls["items"] == 1


# --------------------------------------------------------------------------- HEAD


def test_head_answers_like_get_without_a_body(
    app_calls: tuple[Flask, KitCache, Counter[str]],
) -> None:
    app, _, calls = app_calls
    client = app.test_client()
    head = client.head("/items")  # a miss: computed and stored
    get = client.get("/items")  # a hit
    head2 = client.head("/items")  # a hit
    assert calls["items"] == 1
    assert head.status_code == head2.status_code == 200
    assert head.data == head2.data == b""
    assert head.headers["ETag"] == get.headers["ETag"] == head2.headers["ETag"]
    assert head2.headers["Content-Length"] == str(len(get.data))
    assert head2.headers["Content-Type"] == "application/json"


# --------------------------------------------------------------------------- not cached


def test_post_is_not_cached(app_calls: tuple[Flask, KitCache, Counter[str]]) -> None:
    app, _, calls = app_calls
    client = app.test_client()
    assert client.post("/form").get_json() == {"method": "POST"}
    post = client.post("/form")
    assert calls["form"] == 2
    assert "ETag" not in post.headers and "Cache-Control" not in post.headers
    assert client.get("/form").get_json() == {"method": "GET"}  # POST stored nothing
    assert calls["form"] == 3


def test_non_200_is_not_cached(app_calls: tuple[Flask, KitCache, Counter[str]]) -> None:
    app, _, calls = app_calls
    client = app.test_client()
    responses = [client.get("/missing") for _ in range(2)]
    assert [r.status_code for r in responses] == [404, 404]
    assert calls["missing"] == 2
    assert "ETag" not in responses[1].headers


def test_set_cookie_response_is_not_cached_unless_allowed(
    app_calls: tuple[Flask, KitCache, Counter[str]],
) -> None:
    app, _, calls = app_calls
    client = app.test_client()
    client.get("/cookie")
    second = client.get("/cookie")
    assert calls["cookie"] == 2
    assert "sid=abc" in second.headers["Set-Cookie"]

    first_ok = client.get("/cookie-ok")
    second_ok = client.get("/cookie-ok")
    assert calls["cookie-ok"] == 1
    assert "sid=abc" in first_ok.headers["Set-Cookie"]  # the client that computed it
    assert "Set-Cookie" not in second_ok.headers  # never replayed to others
    assert second_ok.data == b"with cookie"


def test_private_response_is_not_cached(app_calls: tuple[Flask, KitCache, Counter[str]]) -> None:
    app, _, calls = app_calls
    client = app.test_client()
    client.get("/private")
    assert client.get("/private").headers["Cache-Control"] == "private"
    assert calls["private"] == 2


def test_authorized_request_is_not_cached_unless_allowed(
    app_calls: tuple[Flask, KitCache, Counter[str]],
) -> None:
    app, _, calls = app_calls
    client = app.test_client()
    alice = {"Authorization": "Bearer alice"}
    bob = {"Authorization": "Bearer bob"}
    client.get("/me", headers=alice)
    response = client.get("/me", headers=alice)
    assert calls["me"] == 2
    assert "Cache-Control" not in response.headers
    client.get("/me")  # anonymous: cached
    assert client.get("/me", headers=alice).get_json() == {"auth": "Bearer alice"}
    assert calls["me"] == 4

    first = client.get("/me-ok", headers=alice)
    again = client.get("/me-ok", headers=alice)
    other = client.get("/me-ok", headers=bob)
    anon = client.get("/me-ok")
    assert calls["me-ok"] == 3  # alice once, bob once, anonymous once
    assert again.get_json() == {"auth": "Bearer alice"}
    assert other.get_json() == {"auth": "Bearer bob"}
    assert first.headers["Cache-Control"] == again.headers["Cache-Control"] == "private, max-age=30"
    assert anon.headers["Cache-Control"] == "public, max-age=30"
    assert "Authorization" in anon.headers["Vary"]


def test_vary_changes_the_key_and_sets_vary(
    app_calls: tuple[Flask, KitCache, Counter[str]],
) -> None:
    app, _, calls = app_calls
    client = app.test_client()
    en = client.get("/lang", headers={"Accept-Language": "en"})
    fr = client.get("/lang", headers={"Accept-Language": "fr"})
    en2 = client.get("/lang", headers={"Accept-Language": "en"})
    assert calls["lang"] == 2
    assert en.get_json() == en2.get_json() == {"lang": "en"}
    assert fr.get_json() == {"lang": "fr"}
    assert en.headers["Vary"] == en2.headers["Vary"] == "Accept-Language"
    assert en.headers["ETag"] != fr.headers["ETag"]


def test_unless_bypasses(app_calls: tuple[Flask, KitCache, Counter[str]]) -> None:
    app, _, calls = app_calls
    client = app.test_client()
    client.get("/unless")
    client.get("/unless")
    assert calls["unless"] == 1
    fresh = client.get("/unless?fresh=1")
    client.get("/unless?fresh=1")
    assert calls["unless"] == 3
    assert "ETag" not in fresh.headers


def test_custom_key(app_calls: tuple[Flask, KitCache, Counter[str]]) -> None:
    app, _, calls = app_calls
    client = app.test_client()
    assert client.get("/by-user/Ada").get_json() == {"user": "Ada"}
    assert client.get("/by-user/ADA").get_json() == {"user": "Ada"}  # same key
    assert calls["by-user"] == 1


def test_request_no_store_bypasses_and_no_cache_refreshes(
    app_calls: tuple[Flask, KitCache, Counter[str]],
) -> None:
    app, _, calls = app_calls
    client = app.test_client()
    assert client.get("/counter").get_json() == {"n": 1}
    bypass = client.get("/counter", headers={"Cache-Control": "no-store"})
    assert bypass.get_json() == {"n": 2}
    assert "ETag" not in bypass.headers
    assert client.get("/counter").get_json() == {"n": 1}  # no-store did not overwrite
    refreshed = client.get("/counter", headers={"Cache-Control": "no-cache"})
    assert refreshed.get_json() == {"n": 3}
    assert client.get("/counter").get_json() == {"n": 3}  # no-cache stored the fresh one
    assert calls["counter"] == 3


def test_without_kit_cache_the_default_cache_is_used() -> None:
    saved = get_default_cache()
    fallback = MemoryCache()
    set_default_cache(fallback)
    try:
        app = Flask("plain")
        calls: list[int] = []

        @app.get("/x")
        @cache_response(ttl=5)
        def x() -> Any:
            calls.append(1)
            return "x"

        client = app.test_client()
        client.get("/x")
        client.get("/x")
        assert calls == [1]
        assert len(fallback) == 1
    finally:
        set_default_cache(saved)


def test_cache_response_rejects_bad_options() -> None:
    with pytest.raises(ConfigurationError):
        cache_response(ttl=-1)
    with pytest.raises(ConfigurationError):
        cache_response(key="not-callable")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        cache_response(vary="Accept")
    with pytest.raises(ConfigurationError):
        cache_response(cache="memory://")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- problems


def test_kit_cache_error_in_a_view_is_problem_json(
    app_calls: tuple[Flask, KitCache, Counter[str]], caplog: pytest.LogCaptureFixture
) -> None:
    app, _, _ = app_calls
    client = app.test_client()
    response = client.get("/unavailable")
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/problem+json"
    body = json.loads(response.data)
    assert body["status"] == 503
    assert body["type"] == "https://kit.dev/problems/cache-unavailable"
    assert body["title"] and body["detail"]
    assert "hunter2" not in response.get_data(as_text=True)

    bad = client.get("/bad-key")  # a key function returning an unusable key: a server bug
    assert bad.status_code == 500
    assert bad.headers["Content-Type"] == "application/problem+json"
    assert json.loads(bad.data)["type"].endswith("cache-key-invalid")


def test_problem_handler_covers_subclasses_raised_directly() -> None:
    app, _, _ = build(MemoryCache())

    @app.get("/raise-key")
    def raise_key() -> Any:
        raise CacheKeyError("bad key")

    response = app.test_client().get("/raise-key")
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"


# --------------------------------------------------------------------------- configuration


def test_config_builds_the_cache() -> None:
    app, ext, _ = build(
        KIT_CACHE_URL="memory://?maxsize=50",
        KIT_CACHE_PREFIX="shop",
        KIT_CACHE_NAMESPACE="web",
        KIT_CACHE_DEFAULT_TTL="15",
    )
    assert app.extensions["kit-cache"] is ext
    with app.app_context():
        cache = ext.cache
    assert isinstance(cache, MemoryCache)
    assert (cache.maxsize, cache.prefix, cache.namespace, cache.default_ttl) == (
        50,
        "shop",
        "web",
        15.0,
    )
    assert ext.cache is cache  # outside an app context: the app given to KitCache(app)


def test_default_config_is_an_in_memory_cache() -> None:
    app = Flask("defaults")
    ext = KitCache()
    ext.init_app(app)
    with app.app_context():
        assert isinstance(ext.cache, MemoryCache)
    with pytest.raises(RuntimeError, match="application context"):
        _ = ext.cache


def test_redis_config(redis_config: dict[str, Any]) -> None:
    app, ext, _ = build(**redis_config, KIT_CACHE_ON_ERROR="raise", KIT_CACHE_SERIALIZER="json")
    with app.app_context():
        cache = ext.cache
    try:
        assert isinstance(cache, RedisCache)
        assert cache.on_error == "raise" and cache.prefix == redis_config["KIT_CACHE_PREFIX"]
    finally:
        cache.close()


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"KIT_CACHE_URL": "ftp://files.example.com"}, "KIT_CACHE_URL"),
        ({"KIT_CACHE_URL": "localhost:6379"}, "KIT_CACHE_URL"),
        ({"KIT_CACHE_URL": 6379}, "KIT_CACHE_URL"),
        ({"KIT_CACHE_URL": "redis://:hunter2@localhost:6379/zero"}, "KIT_CACHE_URL"),
        ({"KIT_CACHE_URL": "memory://?maxsize=lots"}, "KIT_CACHE_URL"),
        ({"KIT_CACHE_URL": "memory://?colour=blue"}, "KIT_CACHE_URL"),
        ({"KIT_CACHE_DEFAULT_TTL": -5}, "KIT_CACHE_DEFAULT_TTL"),
        ({"KIT_CACHE_DEFAULT_TTL": 0}, "KIT_CACHE_DEFAULT_TTL"),
        ({"KIT_CACHE_DEFAULT_TTL": "soon"}, "KIT_CACHE_DEFAULT_TTL"),
        ({"KIT_CACHE_DEFAULT_TTL": True}, "KIT_CACHE_DEFAULT_TTL"),
        ({"KIT_CACHE_PREFIX": "a:b"}, "KIT_CACHE_PREFIX"),
        ({"KIT_CACHE_NAMESPACE": "with space"}, "KIT_CACHE_NAMESPACE"),
        ({"KIT_CACHE_ON_ERROR": "explode"}, "KIT_CACHE_ON_ERROR"),
        ({"KIT_CACHE_SERIALIZER": "yaml"}, "KIT_CACHE_SERIALIZER"),
        (
            {"KIT_CACHE_URL": "redis://localhost:6379/0", "KIT_CACHE_SERIALIZER": "pickle"},
            "KIT_CACHE_SERIALIZER",
        ),
        (
            {"KIT_CACHE_URL": "redis://localhost:6379/0", "KIT_CACHE_SECRET": "short"},
            "KIT_CACHE_SECRET",
        ),
    ],
)
def test_bad_config_fails_at_init_app_naming_the_key(config: dict[str, Any], named: str) -> None:
    app = Flask("bad")
    app.config.update(config)
    ext = KitCache()
    with pytest.raises(ConfigurationError, match=named) as info:
        ext.init_app(app)
    assert "hunter2" not in str(info.value)
    assert "kit-cache" not in app.extensions


def test_kit_cache_rejects_an_async_cache() -> None:
    with pytest.raises(ConfigurationError, match="synchronous"):
        KitCache(cache=object())  # type: ignore[arg-type]


def test_cache_from_config_is_usable_alone() -> None:
    cache = cache_from_config({"KIT_CACHE_DEFAULT_TTL": None})
    assert isinstance(cache, MemoryCache) and cache.default_ttl is None


# --------------------------------------------------------------------------- KitCache.cached


def test_cached_binds_to_the_current_apps_cache() -> None:
    ext = KitCache()
    one, two = Flask("one"), Flask("two")
    ext.init_app(one)
    ext.init_app(two)
    calls: list[int] = []

    @ext.cached(ttl=60, key="square:{n}")
    def square(n: int) -> int:
        calls.append(n)
        return n * n

    with one.app_context():
        assert square(3) == 9 and square(3) == 9
    with two.app_context():
        assert square(3) == 9  # another app, another cache
        assert ext.cache.get("square:3") == 9
    assert calls == [3, 3]

    @ext.cached
    def cube(n: int) -> int:
        return n**3

    with one.app_context():
        assert cube(2) == 8

    with pytest.raises(ConfigurationError, match="app's cache"):
        ext.cached(cache=MemoryCache())


# --------------------------------------------------------------------------- Redis


def test_responses_cached_in_redis_are_shared_by_app_instances(
    redis_apps: list[tuple[Flask, KitCache, Counter[str]]],
) -> None:
    (one, _, calls_one), (two, _, calls_two) = redis_apps
    first = one.test_client().get("/items")
    again = one.test_client().get("/items")
    other = two.test_client().get("/items")  # another instance: served from Redis
    assert calls_one["items"] == 1 and calls_two["items"] == 0
    assert first.data == again.data == other.data
    assert first.headers["ETag"] == other.headers["ETag"] == etag_for(first.data)
    assert other.headers["Content-Type"] == "application/json"
    not_modified = two.test_client().get("/items", headers={"If-None-Match": first.headers["ETag"]})
    assert not_modified.status_code == 304 and not_modified.data == b""


def test_redis_stopped_views_still_answer(redis_server: Any) -> None:
    app, ext, calls = build(
        KIT_CACHE_URL=redis_server.url, KIT_CACHE_PREFIX=f"t{uuid.uuid4().hex[:8]}"
    )
    client = app.test_client()
    try:
        assert client.get("/items").status_code == 200
        assert client.get("/items").status_code == 200
        assert calls["items"] == 1
        redis_server.stop()
        for _ in range(5):
            response = client.get("/items")
            assert response.status_code == 200
            assert response.get_json() == ITEMS
            assert response.headers["ETag"] == etag_for(response.data)
        assert calls["items"] == 6  # computed every time while the cache is down
    finally:
        with app.app_context():
            ext.cache.close()


def test_import_without_flask_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flask", None)  # as if Flask were not installed
    monkeypatch.delitem(sys.modules, "kit_cache.flask")
    with pytest.raises(ImportError, match=r"kit-cache\[flask\]"):
        importlib.import_module("kit_cache.flask")
