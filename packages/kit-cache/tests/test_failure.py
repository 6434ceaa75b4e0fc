"""Redis failing under a running app: fail-open, breaker, fail-closed, recovery."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from kit_cache import (
    MISSING,
    AsyncRedisCache,
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    RedisCache,
    TieredCache,
    cached,
)


def _until(predicate: Any, seconds: float = 10.0) -> bool:
    """Poll ``predicate`` for at most ``seconds`` (a bound on the loop, not a speed claim)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def test_redis_stopped_mid_test_values_keep_coming_and_caching_resumes(redis_server: Any) -> None:
    cache = RedisCache(redis_server.url, breaker_threshold=2, breaker_reset=0.2)
    calls: list[int] = []

    @cached(ttl=60, key="item:{n}", cache=cache)
    def item(n: int) -> dict[str, int]:
        calls.append(n)
        return {"n": n}

    assert item(1) == {"n": 1} and item(1) == {"n": 1}
    assert calls == [1]

    redis_server.stop()
    for _ in range(20):  # every call still answers, computed each time
        assert item(2) == {"n": 2}
    assert calls == [1] + [2] * 20
    assert cache.get("anything") is MISSING
    assert cache.set("anything", 1) is False
    assert cache.stats().errors >= 2
    assert cache.breaker.is_open  # later calls fail fast instead of waiting for timeouts
    assert cache.ping() is False

    redis_server.start()
    assert _until(lambda: cache.set("probe", 1))  # breaker half-opens, then closes
    calls.clear()
    item(3)
    item(3)
    assert calls == [3]  # cached again
    cache.close()


def test_backend_errors_are_logged_at_most_once_per_interval(
    redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cache = RedisCache(redis_server.url, breaker_threshold=1000, error_log_interval=60)
    redis_server.stop()
    with caplog.at_level(logging.WARNING, logger="kit.cache"):
        for _ in range(10):
            cache.get("k")
    logged = [r for r in caplog.records if "kit_cache_backend_error" in r.getMessage()]
    assert len(logged) == 1
    assert cache.stats().errors == 10
    cache.close()


def test_fail_closed_raises(redis_server: Any) -> None:
    cache = RedisCache(redis_server.url, on_error="raise", breaker_threshold=1)

    @cached(cache=cache)
    def f() -> int:
        return 1

    redis_server.stop()
    with pytest.raises(BackendError):
        cache.get("k")
    with pytest.raises(BackendUnavailable, match="skipped"):  # breaker now open
        cache.set("k", 1)
    with pytest.raises(BackendError):
        f()
    cache.close()


def test_incr_always_raises_when_redis_is_down(redis_server: Any) -> None:
    cache = RedisCache(redis_server.url)
    redis_server.stop()
    with pytest.raises(BackendError):
        cache.incr("counter")
    cache.close()


async def test_async_cache_fails_open_and_recovers(redis_server: Any) -> None:
    cache = AsyncRedisCache(redis_server.url, breaker_threshold=1, breaker_reset=0.2)
    calls: list[int] = []

    @cached(ttl=60, cache=cache)
    async def f(n: int) -> int:
        calls.append(n)
        return n

    assert await f(1) == 1
    redis_server.stop()
    assert await f(1) == 1 and await f(1) == 1
    assert await cache.get("x") is MISSING
    assert await cache.set("x", 1) is False
    assert await cache.ping() is False
    redis_server.start()
    deadline = time.monotonic() + 10
    while not await cache.set("probe", 1) and time.monotonic() < deadline:
        await cache.ping()
        time.sleep(0.05)
    assert await cache.get("probe") == 1
    await cache.aclose()


def test_tiered_keeps_serving_and_refills_after_redis_returns(redis_server: Any) -> None:
    cache = TieredCache(redis_server.url, breaker_threshold=1, breaker_reset=0.2)
    assert cache.wait_ready(10)
    cache.set("k", "v1")
    redis_server.stop()
    # the subscription drops: L1 is emptied and bypassed, so nothing stale is served from it
    assert _until(lambda: not cache._live)
    assert cache.get("k") is MISSING
    redis_server.start()
    assert cache.wait_ready(10)
    assert _until(lambda: cache.set("k", "v2"))
    assert cache.get("k") == "v2"
    cache.close()


def test_unreachable_redis_with_verify_names_the_masked_url(redis_server: Any) -> None:
    url = f"redis://:s3cret@127.0.0.1:{redis_server.port}/0"
    redis_server.stop()
    with pytest.raises(BackendError) as info:
        RedisCache(url, verify=True)
    assert "***" in str(info.value) and "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://localhost:6379", "scheme"),
        ("redis://:hunter2@localhost:notaport/0", "invalid Redis URL"),
        ("redis://:hunter2@localhost:6379/db", "not a number"),
        ("redis://", "no host"),
        ("", "non-empty"),
    ],
)
def test_wrong_urls_fail_at_construction(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        RedisCache(url)
    assert "hunter2" not in str(info.value)


def test_decode_responses_clients_are_refused(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    with pytest.raises(ConfigurationError, match="decode_responses"):
        RedisCache(client=client)
    client.close()
