"""The framework-free core of HTTP response caching (kit_cache._http)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kit_cache import (
    BackendError,
    BackendUnavailable,
    CacheKeyError,
    ConfigurationError,
    JsonSerializer,
    KitCacheError,
    MemoryCache,
    SerializationError,
    SignatureError,
)
from kit_cache._http import (
    NAMESPACE,
    CachedResponse,
    Lookup,
    ResponsePolicy,
    default_key_base,
    etag_for,
    etag_matches,
    parse_cache_control,
    problem_details,
)

ANON = Lookup(read=True, authorized=False)


def no_headers(name: str) -> str | None:
    return None


# --------------------------------------------------------------------------- Cache-Control


def test_parse_cache_control_tokens_values_and_quoted_commas() -> None:
    assert parse_cache_control(None) == {}
    assert parse_cache_control("") == {}
    assert parse_cache_control('No-Store, max-age=0, no-cache="Set-Cookie, X-A", private') == {
        "no-store": None,
        "max-age": "0",
        "no-cache": "Set-Cookie, X-A",
        "private": None,
    }
    assert parse_cache_control(" , public ,, max-age = 5 ") == {"public": None, "max-age": "5"}


# --------------------------------------------------------------------------- ETags


def test_etag_is_strong_quoted_content_hash() -> None:
    tag = etag_for(b'{"a": 1}')
    assert tag.startswith('"') and tag.endswith('"') and not tag.startswith("W/")
    assert len(tag) == 34 and all(c in "0123456789abcdef" for c in tag[1:-1])
    assert tag == etag_for(b'{"a": 1}')
    assert tag != etag_for(b'{"a": 2}')


def test_etag_is_identical_in_another_process() -> None:
    body = b'{"items": [1, 2, 3], "name": "caf\xc3\xa9"}'
    code = f"from kit_cache._http import etag_for; print(etag_for({body!r}))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},  # a different hash() salt than this process
    ).stdout.strip()
    assert out == etag_for(body)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ('"abc"', True),
        ('W/"abc"', True),  # weak comparison
        ('"x", "abc"', True),
        ('"x" , W/"abc" ', True),
        ('"x", "y"', False),
        ("*", True),
        (" * ", True),
        ("abc", False),  # unquoted: not an entity tag
        ('"ab,c"', False),
    ],
)
def test_if_none_match(header: str | None, expected: bool) -> None:
    assert etag_matches(header, '"abc"') is expected


def test_if_none_match_weak_stored_tag_matches_strong_request_tag() -> None:
    assert etag_matches('"v1"', 'W/"v1"')
    assert etag_matches('"a,b", "z"', '"a,b"')  # commas inside a tag do not split it


@given(st.lists(st.text(alphabet="abcdef0123456789", min_size=1, max_size=8), max_size=5))
def test_if_none_match_lists(tags: list[str]) -> None:
    header = ", ".join(f'W/"{t}"' if i % 2 else f'"{t}"' for i, t in enumerate(tags))
    for tag in tags:
        assert etag_matches(header, f'"{tag}"')
    assert not etag_matches(header, '"not-in-the-list-xyz"')


# --------------------------------------------------------------------------- requests


def test_only_get_and_head_are_cacheable() -> None:
    policy = ResponsePolicy(10)
    assert policy.lookup("GET", no_headers) == ANON
    assert policy.lookup("head", no_headers) == ANON
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        assert policy.lookup(method, no_headers) is None


def test_authorization_bypasses_unless_allowed() -> None:
    auth = {"authorization": "Bearer abc"}.get
    assert ResponsePolicy(10).lookup("GET", auth) is None
    assert ResponsePolicy(10, allow_authorized=True).lookup("GET", auth) == Lookup(True, True)


def test_request_no_store_bypasses_and_no_cache_skips_the_read() -> None:
    policy = ResponsePolicy(10)
    assert policy.lookup("GET", {"cache-control": "no-store"}.get) is None
    assert policy.lookup("GET", {"cache-control": "max-age=0, No-Cache"}.get) == Lookup(
        False, False
    )
    assert policy.lookup("GET", {"cache-control": "max-age=0"}.get) == ANON


# --------------------------------------------------------------------------- keys


def test_default_key_sorts_the_query_and_is_printable() -> None:
    assert default_key_base("/a", "b=2&a=1") == default_key_base("/a", "a=1&b=2")
    assert default_key_base("/a", "a=1&a=0") == "/a?a=0&a=1"
    assert default_key_base("/a", "") == "/a"
    assert default_key_base("/a", "x") == "/a?x="
    assert default_key_base("/a", "a=1") != default_key_base("/b", "a=1")
    weird = default_key_base("/caf\u00e9/\n\x00 x", "q=\u00e9t\u00e9&z=%0A")
    assert weird.isprintable() and weird.isascii() and " " not in weird


def test_vary_headers_change_the_key_and_sensitive_values_are_hashed() -> None:
    policy = ResponsePolicy(10, vary=["Accept-Language", "Cookie"])
    base = default_key_base("/p", "")
    en = policy.key(base, {"accept-language": "en", "cookie": "sid=secret"}.get, ANON)
    fr = policy.key(base, {"accept-language": "fr", "cookie": "sid=secret"}.get, ANON)
    other = policy.key(base, {"accept-language": "en", "cookie": "sid=other"}.get, ANON)
    assert len({en, fr, other}) == 3
    assert "accept-language=en" in en and "secret" not in en
    long = policy.key(base, {"accept-language": "x" * 500}.get, ANON)
    assert len(long) < 200 and long.isprintable()


def test_authorized_requests_are_keyed_by_credentials_without_revealing_them() -> None:
    policy = ResponsePolicy(10, allow_authorized=True)
    alice = policy.key("/me", {"authorization": "Bearer alice-token"}.get, Lookup(True, True))
    bob = policy.key("/me", {"authorization": "Bearer bob-token"}.get, Lookup(True, True))
    anon = policy.key("/me", no_headers, ANON)
    assert len({alice, bob, anon}) == 3
    assert "token" not in alice and "Bearer" not in alice


def test_policy_validates_its_options() -> None:
    with pytest.raises(ConfigurationError):
        ResponsePolicy(0)
    with pytest.raises(ConfigurationError):
        ResponsePolicy(-1)
    with pytest.raises(ConfigurationError, match="list of header names"):
        ResponsePolicy(10, vary="Accept")
    with pytest.raises(ConfigurationError, match="header name"):
        ResponsePolicy(10, vary=["Bad Header"])


# --------------------------------------------------------------------------- responses


@pytest.mark.parametrize(
    ("status", "response_headers", "expected"),
    [
        (200, [("Content-Type", "application/json")], True),
        (201, [], False),
        (404, [], False),
        (500, [], False),
        (304, [], False),
        (200, [("Set-Cookie", "sid=1")], False),
        (200, [("Cache-Control", "no-store")], False),
        (200, [("Cache-Control", "Private, max-age=5")], False),
        (200, [("Cache-Control", "public, max-age=5")], True),
        (200, [("Vary", "*")], False),
        (200, [("Vary", "Accept-Encoding")], False),  # the key does not vary on it
        (200, [("Vary", "accept-language")], True),
    ],
)
def test_response_cacheability(
    status: int, response_headers: list[tuple[str, str]], expected: bool
) -> None:
    policy = ResponsePolicy(10, vary=["Accept-Language"])
    assert policy.cacheable(status, response_headers) is expected


def test_allow_cookies_stores_the_response_but_never_the_cookie() -> None:
    policy = ResponsePolicy(10, allow_cookies=True)
    entry = policy.capture(200, [("Set-Cookie", "sid=1"), ("Content-Type", "text/plain")], b"x", 10)
    assert entry is not None
    assert [name.lower() for name, _ in entry.headers] == ["content-type"]


def test_capture_keeps_representation_headers_only() -> None:
    policy = ResponsePolicy(10, store_headers=["X-Total-Count"])
    entry = policy.capture(
        200,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", "2"),
            ("Date", "today"),
            ("X-Request-Id", "r1"),
            ("X-Total-Count", "7"),
            ("Link", "</p2>; rel=next"),
        ],
        b"[]",
        10.9,
    )
    assert entry is not None
    assert dict(entry.headers) == {
        "Content-Type": "application/json",
        "X-Total-Count": "7",
        "Link": "</p2>; rel=next",
    }
    assert entry.etag == etag_for(b"[]") and entry.max_age == 10


def test_a_views_own_etag_is_kept() -> None:
    entry = ResponsePolicy(10).capture(200, [("ETag", 'W/"v7"')], b"body", 10)
    assert entry is not None and entry.etag == 'W/"v7"'


def test_cache_headers_public_private_vary_and_no_expiry() -> None:
    policy = ResponsePolicy(None, vary=["Accept"], allow_authorized=True)
    entry = policy.capture(200, [], b"x", 60)
    assert entry is not None
    assert dict(policy.cache_headers(entry, ANON)) == {
        "ETag": etag_for(b"x"),
        "Cache-Control": "public, max-age=60",
        "Vary": "Accept, Authorization",
    }
    assert dict(policy.cache_headers(entry, Lookup(True, True)))["Cache-Control"] == (
        "private, max-age=60"
    )
    forever = policy.capture(200, [], b"x", None)
    assert forever is not None
    assert dict(policy.cache_headers(forever, ANON))["Cache-Control"] == "public, no-cache"
    assert "Vary" not in dict(ResponsePolicy(5).cache_headers(entry, ANON))


def test_reply_serves_the_entry_with_age_and_304_on_a_matching_tag() -> None:
    policy = ResponsePolicy(60)
    entry = policy.capture(200, [("Content-Type", "application/json")], b"[1]", 60, now=1000.0)
    assert entry is not None
    reply = policy.reply(entry, ANON, method="GET", if_none_match=None, now=1012.7)
    assert reply.status == 200 and reply.body == b"[1]"
    assert dict(reply.headers) == {
        "Content-Type": "application/json",
        "ETag": entry.etag,
        "Cache-Control": "public, max-age=60",
        "Age": "12",
        "Content-Length": "3",
    }
    head = policy.reply(entry, ANON, method="HEAD", if_none_match=None, now=1000.0)
    assert head.body == b"" and dict(head.headers)["Content-Length"] == "3"
    not_modified = policy.reply(entry, ANON, method="GET", if_none_match=f"W/{entry.etag}")
    assert not_modified.status == 304 and not_modified.body == b""
    assert dict(not_modified.headers)["ETag"] == entry.etag
    assert "Cache-Control" in dict(not_modified.headers)
    fresh = policy.reply(entry, ANON, method="GET", if_none_match=None, hit=False)
    assert "Age" not in dict(fresh.headers)


def test_stored_value_round_trips_through_json_and_a_cache() -> None:
    policy = ResponsePolicy(60)
    entry = policy.capture(200, [("Content-Type", "image/png")], bytes(range(256)), 60)
    assert entry is not None
    serializer = JsonSerializer()
    value = serializer.loads(serializer.dumps(entry.to_value()))
    assert CachedResponse.from_value(value) == entry
    cache = MemoryCache()
    cache.set("/img", entry.to_value(), namespace=NAMESPACE)
    assert CachedResponse.from_value(cache.get("/img", namespace=NAMESPACE)) == entry
    cache.clear(NAMESPACE)
    assert CachedResponse.from_value(cache.get("/img", namespace=NAMESPACE)) is None


@pytest.mark.parametrize(
    "value",
    [
        None,
        "x",
        {},
        {"v": 99},
        {"v": 1, "status": 200, "headers": [], "body": "text", "etag": '"x"', "stored_at": 1},
        {"v": 1, "status": 200, "headers": [["a"]], "body": b"", "etag": '"x"', "stored_at": 1},
        {"v": 1, "status": "200", "headers": [], "body": b"", "etag": '"x"', "stored_at": 1},
    ],
)
def test_foreign_values_read_as_a_miss(value: object) -> None:
    assert CachedResponse.from_value(value) is None


# --------------------------------------------------------------------------- problems


@pytest.mark.parametrize(
    ("exc", "status", "slug"),
    [
        (BackendUnavailable("breaker open for redis://:hunter2@10.0.0.5:6379"), 503, "unavailable"),
        (BackendError("Redis GET failed: password hunter2 rejected"), 503, "unavailable"),
        (ConfigurationError("bad url redis://:hunter2@x"), 500, "misconfigured"),
        (CacheKeyError("invalid key 'hunter2\\n'"), 500, "key-invalid"),
        (SerializationError("cannot encode hunter2"), 500, "serialization-error"),
        (SignatureError("tampered hunter2"), 500, "serialization-error"),
        (KitCacheError("hunter2"), 500, "cache-error"),
    ],
)
def test_problem_details(exc: KitCacheError, status: int, slug: str) -> None:
    got_status, body = problem_details(exc)
    assert got_status == status == body["status"]
    assert set(body) == {"type", "title", "status", "detail"}
    assert body["type"].startswith("https://kit.dev/problems/") and body["type"].endswith(slug)
    assert body["title"] and body["detail"]
    assert "hunter2" not in json.dumps(body)
