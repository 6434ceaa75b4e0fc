"""RedisCache specifics: one round trip, serializers, signing, tampering, counters."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import redis

from kit_cache import (
    MISSING,
    AsyncRedisCache,
    CacheKeyError,
    ConfigurationError,
    RedisCache,
    cache_from_url,
)
from kit_cache.memory import MemoryCache, NullCache

SECRET = secrets.token_hex(32)


def test_get_many_and_set_many_are_one_round_trip(
    redis_cache: RedisCache, commands: Any, round_trips: Any
) -> None:
    redis_cache.set_many({"warm": 1})  # loads the script and warms a pooled connection
    round_trips.take()
    redis_cache.set_many({f"k{i}": i for i in range(100)})
    assert round_trips.take() == 1  # one EVALSHA writes all 100
    commands.since_mark()
    round_trips.take()
    assert len(redis_cache.get_many([f"k{i}" for i in range(100)])) == 100
    assert round_trips.take() == 1
    assert commands.since_mark() == 1  # and the server ran one MGET


def test_a_hit_is_one_command(redis_cache: RedisCache, commands: Any) -> None:
    redis_cache.set("k", {"v": 1})
    commands.since_mark()
    assert redis_cache.get("k") == {"v": 1}
    assert commands.since_mark() == 1


def test_entries_are_readable_by_another_cache_on_the_same_prefix(
    redis_url: str, prefix: str
) -> None:
    a, b = RedisCache(redis_url, prefix=prefix), RedisCache(redis_url, prefix=prefix)
    a.set("shared", {"x": 1})
    assert b.get("shared") == {"x": 1}
    a.clear()
    assert b.get("shared") is MISSING
    a.close()
    b.close()


@pytest.mark.parametrize("serializer", ["json", "msgpack", "pickle"])
def test_serializers_over_redis(redis_url: str, prefix: str, serializer: str) -> None:
    secret = SECRET if serializer == "pickle" else None
    cache = RedisCache(redis_url, prefix=prefix, serializer=serializer, secret=secret)
    cache.set("v", {"a": [1, 2], "b": None})
    assert cache.get("v") == {"a": [1, 2], "b": None}
    cache.close()


def test_pickle_without_a_secret_is_refused(redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="secret"):
        RedisCache(redis_url, serializer="pickle")
    with pytest.raises(ConfigurationError, match="32 bytes"):
        RedisCache(redis_url, serializer="pickle", secret="short")


def test_tampered_signed_entries_are_ignored_not_unpickled(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = RedisCache(redis_url, prefix=prefix, serializer="pickle", secret=SECRET)
    cache.set("victim", "safe")
    full = cache.key_for("victim")
    raw = cache.client.get(full)
    assert raw is not None
    forged = raw[:-5] + b"EVIL!"
    cache.client.set(full, forged)
    assert cache.get("victim") is MISSING
    assert "HMAC" in caplog.text
    # moving a signed value to another key is detected too (the key is signed)
    cache.set("other", "payload")
    cache.client.set(full, cache.client.get(cache.key_for("other")))
    assert cache.get("victim") is MISSING
    other = RedisCache(redis_url, prefix=prefix, serializer="pickle", secret=secrets.token_hex(32))
    assert other.get("other") is MISSING  # another secret cannot read it
    cache.close()
    other.close()


def test_foreign_values_are_misses_not_crashes(redis_cache: RedisCache) -> None:
    redis_cache.client.set(redis_cache.key_for("foreign"), b"written by someone else")
    assert redis_cache.get("foreign") is MISSING
    assert redis_cache.stats().errors == 1


def test_counters(redis_cache: RedisCache) -> None:
    redis_cache.set("n", 41)
    assert redis_cache.incr("n") == 42
    assert redis_cache.get("n") == 42
    redis_cache.set("doc", {"a": 1})
    with pytest.raises(ConfigurationError, match="non-integer"):
        redis_cache.incr("doc")
    redis_cache.incr("fresh", ttl=30)
    redis_cache.incr("fresh")
    remaining = redis_cache.ttl("fresh")
    assert isinstance(remaining, float) and 0 < remaining <= 30  # TTL kept across increments
    redis_cache.clear()
    assert redis_cache.incr("n") == 1  # a cleared namespace restarts its counters


async def test_async_api(redis_url: str, prefix: str) -> None:
    async with AsyncRedisCache(redis_url, prefix=prefix) as cache:
        assert await cache.get("k") is MISSING
        assert await cache.set("k", None) is True
        assert await cache.get("k") is None
        await cache.set_many({"a": 1, "b": 2}, ttl=30)
        assert await cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
        assert await cache.delete("a") is True
        assert await cache.delete_many(["a", "b"]) == 1
        assert await cache.incr("n", 2) == 2
        assert await cache.incr("n") == 3
        assert await cache.ttl("n") is None
        assert await cache.ttl("zz") is MISSING
        await cache.set("x", 1, namespace="ns")
        await cache.clear("ns")
        assert await cache.get("x", namespace="ns") is MISSING
        await cache.invalidate_tags("t")
        assert await cache.ping() is True
        assert cache.stats().hits >= 2
        assert repr(cache).startswith("AsyncRedisCache(")


def test_exactly_one_of_url_or_client(redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="exactly one"):
        RedisCache()
    client = redis.Redis.from_url(redis_url)
    with pytest.raises(ConfigurationError, match="exactly one"):
        RedisCache(redis_url, client=client)
    cache = RedisCache(client=client)
    assert cache.set("k", 1) and cache.get("k") == 1
    cache.close()  # does not close a client it did not create
    assert client.ping()
    client.close()


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("memory://", MemoryCache),
        ("memory://?maxsize=7", MemoryCache),
        ("null://", NullCache),
    ],
)
def test_cache_from_url_embedded(url: str, kind: type) -> None:
    cache = cache_from_url(url)
    assert type(cache) is kind


def test_cache_from_url_redis_and_tiered(redis_url: str) -> None:
    from kit_cache import TieredCache

    sync = cache_from_url(redis_url, namespace="x")
    assert isinstance(sync, RedisCache) and sync.namespace == "x"
    sync.close()
    tiered = cache_from_url("tiered+" + redis_url + "?l1_ttl=2")
    assert isinstance(tiered, TieredCache) and tiered.l1_ttl == 2
    tiered.close()
    asynchronous: Any = cache_from_url(redis_url, asyncio=True)
    assert isinstance(asynchronous, AsyncRedisCache)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memcached://x", "unknown cache URL scheme"),
        ("nothing", "scheme://"),
        ("memory://?maxsize=lots", "not a number"),
        ("tiered+redis://localhost", None),
    ],
)
def test_cache_from_url_errors(url: str, message: str | None) -> None:
    if message is None:
        with pytest.raises(ConfigurationError, match="synchronous"):
            cache_from_url(url, asyncio=True)
        return
    with pytest.raises(ConfigurationError, match=message):
        cache_from_url(url)


def test_memory_cache_specifics(clock: Any) -> None:
    cache = MemoryCache(maxsize=2, clock=clock)
    cache.set("a", 1)
    cache.set("b", 2)
    cache.get("a")  # a is now most recent
    cache.set("c", 3)
    assert cache.get("b") is MISSING and cache.get("a") == 1
    assert cache.stats().evictions == 1
    assert len(cache) == 2
    cache.flush()
    assert len(cache) == 0
    with pytest.raises(ConfigurationError, match="maxsize"):
        MemoryCache(maxsize=0)
    with pytest.raises(ConfigurationError, match="on_error"):
        RedisCache("redis://localhost", on_error="explode")  # type: ignore[arg-type]
    null = NullCache()
    assert null.set("k", 1) is True and null.get("k") is MISSING


def test_cache_from_url_splits_kit_options_from_redis_options(redis_url: str) -> None:
    cache = cache_from_url(f"{redis_url}?default_ttl=60&namespace=api&health_check_interval=5")
    assert isinstance(cache, RedisCache)
    assert cache.default_ttl == 60 and cache.namespace == "api"
    assert cache.set("k", 1) and cache.get("k") == 1
    cache.close()
    with pytest.raises(ConfigurationError, match="colour"):
        cache_from_url("memory://?colour=blue")


@pytest.mark.parametrize("name", ["@lock", "@tag", "with:colon"])
def test_reserved_namespaces_are_refused(redis_cache: RedisCache, name: str) -> None:
    with pytest.raises(ConfigurationError, match=r"'@'|':'"):
        redis_cache.set("k", 1, namespace=name)


def test_a_key_named_like_internal_keys_cannot_touch_versions(redis_cache: RedisCache) -> None:
    redis_cache.set("data", 1)
    with pytest.raises(CacheKeyError, match="'@'"):
        redis_cache.set("@@version", 99)
    redis_cache.set("__version__", 99)
    assert redis_cache.get("data") == 1
