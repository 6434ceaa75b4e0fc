"""Rate limiting over a real Redis: atomicity across threads, processes and tasks, the
Lua scripts, and the failure policy when Redis goes away."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import redis
import redis.asyncio as aioredis

from kit_auth.exceptions import BackendUnavailable, ConfigurationError
from kit_auth.ratelimit import (
    AsyncRedisRateLimitStorage,
    RateLimit,
    RateLimiter,
    RedisRateLimitStorage,
)
from kit_auth.ratelimit._limit import Algorithm

ALGORITHMS: list[Algorithm] = ["gcra", "sliding-window"]
PROC = Path(__file__).with_name("_ratelimit_proc.py")


def day_limit(n: int, algorithm: Algorithm = "gcra") -> RateLimit:
    # a day-long period: no refill (or window turnover) can happen during a test
    return RateLimit(n, 86400, algorithm=algorithm)


@pytest.fixture
def storage(redis_clean_url: str) -> Any:
    s = RedisRateLimitStorage(redis_clean_url, socket_timeout=5)
    yield s
    s.close()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_limit_then_refuse(storage: RedisRateLimitStorage, algorithm: Algorithm) -> None:
    limiter = RateLimiter(day_limit(5, algorithm), storage=storage, failure="closed")
    decisions = [limiter.hit("k") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert decisions[-1].retry_after > 0
    assert limiter.peek("k").remaining == 0
    limiter.reset("k")
    assert limiter.peek("k").remaining == 5
    assert limiter.hit("other").allowed


def test_gcra_retry_after_and_reset_match_the_policy(storage: RedisRateLimitStorage) -> None:
    limiter = RateLimiter(RateLimit(10, 3600), storage=storage, failure="closed")
    for _ in range(10):
        last = limiter.hit("k")
    assert last.reset_after == pytest.approx(3600, abs=1)
    refused = limiter.hit("k")
    assert refused.retry_after == pytest.approx(360, abs=1)
    assert refused.headers()["Retry-After"] == "360"


def test_sliding_window_retry_after_is_within_the_next_window(
    storage: RedisRateLimitStorage,
) -> None:
    limiter = RateLimiter(day_limit(2, "sliding-window"), storage=storage, failure="closed")
    limiter.hit("k")
    limiter.hit("k")
    refused = limiter.hit("k")
    assert 0 < refused.retry_after <= 86400
    assert refused.reset_after > refused.retry_after


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_fifty_threads_get_exactly_n(redis_clean_url: str, algorithm: Algorithm) -> None:
    storages = [RedisRateLimitStorage(redis_clean_url, socket_timeout=5) for _ in range(5)]
    limiters = [
        RateLimiter(day_limit(20, algorithm), storage=s, failure="closed") for s in storages
    ]
    barrier = threading.Barrier(50)
    results: list[bool] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        barrier.wait()
        allowed = limiters[i % 5].hit("shared").allowed
        with lock:
            results.append(allowed)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in storages:
        s.close()
    assert len(results) == 50
    assert results.count(True) == 20


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_fifty_hits_across_five_processes_get_exactly_n(
    redis_clean_url: str, algorithm: Algorithm
) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, str(PROC), redis_clean_url, "shared", "10", "20", algorithm],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(5)
    ]
    counts = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        counts.append(int(out.strip()))
    assert sum(counts) == 20


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_async_gather_gets_exactly_n(redis_clean_url: str, algorithm: Algorithm) -> None:
    storage = AsyncRedisRateLimitStorage(redis_clean_url, socket_timeout=5)
    limiter = RateLimiter(day_limit(20, algorithm), storage=storage, failure="closed")
    decisions = await asyncio.gather(*(limiter.ahit("shared") for _ in range(50)))
    assert sum(d.allowed for d in decisions) == 20
    assert (await limiter.apeek("shared")).remaining == 0
    await limiter.areset("shared")
    assert (await limiter.acheck("shared")).remaining == 19
    await storage.aclose()


async def test_async_storage_refuses_sync_calls(redis_clean_url: str) -> None:
    storage = AsyncRedisRateLimitStorage(redis_clean_url)
    limiter = RateLimiter("1/s", storage=storage)
    with pytest.raises(ConfigurationError):
        limiter.hit("k")
    with pytest.raises(ConfigurationError):
        limiter.reset("k")
    await storage.aclose()


def test_keys_are_hash_tagged_and_expire(
    storage: RedisRateLimitStorage, redis_clean_url: str
) -> None:
    RateLimiter(RateLimit(10, 60), storage=storage).hit("user:1")
    RateLimiter(RateLimit(10, 60, algorithm="sliding-window"), storage=storage).hit("user:1")
    client = redis.Redis.from_url(redis_clean_url)
    keys = sorted(k.decode() for k in cast(list[bytes], client.keys("*")))
    assert keys == ["{kit:rl:default:gcra:user:1}", "{kit:rl:default:sw:user:1}"]
    for key in keys:
        assert 0 < cast(int, client.pttl(key)) <= 120_000
    client.close()


def test_scripts_never_send_the_app_clock(redis_clean_url: str) -> None:
    """The only arguments are the key, the policy and the cost: time comes from Redis TIME."""
    client = redis.Redis.from_url(redis_clean_url)
    sent: list[tuple[Any, ...]] = []
    original: Callable[..., Any] = client.execute_command

    def recording(*args: Any, **options: Any) -> Any:
        sent.append(args)
        return original(*args, **options)

    client.execute_command = recording  # type: ignore[method-assign]
    storage = RedisRateLimitStorage(client)
    limiter = RateLimiter(RateLimit(10, 60), storage=storage)
    limiter.hit("k")
    time.sleep(0.01)
    limiter.hit("k")
    evals = [a for a in sent if a[0] == "EVALSHA"]
    assert len(evals) == 2
    assert evals[0] == evals[1]
    assert evals[0][2:] == (1, "{kit:rl:default:gcra:k}", 6_000_000, 60_000_000, 1)
    client.close()


def test_survives_script_flush_and_decoded_clients(redis_clean_url: str) -> None:
    client = redis.Redis.from_url(redis_clean_url, decode_responses=True)
    limiter = RateLimiter(day_limit(3), storage=RedisRateLimitStorage(client), failure="closed")
    assert limiter.hit("k").remaining == 2
    client.script_flush()
    assert limiter.hit("k").remaining == 1
    assert limiter.hit("k").allowed
    assert not limiter.hit("k").allowed
    client.close()


def test_storage_validates_arguments() -> None:
    with pytest.raises(ConfigurationError):
        RedisRateLimitStorage(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        RedisRateLimitStorage("redis://127.0.0.1/0", socket_timeout=0)
    with pytest.raises(ConfigurationError):
        RedisRateLimitStorage("not-a-url")
    with pytest.raises(ConfigurationError):
        AsyncRedisRateLimitStorage(redis.Redis())  # type: ignore[arg-type]


# -- Redis down -----------------------------------------------------------------------


def test_redis_down_open_degrades_closed_refuses_then_recovers(
    redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    storage = RedisRateLimitStorage(redis_server.url)
    open_limiter = RateLimiter(day_limit(5), storage=storage, failure="open")
    closed_limiter = RateLimiter(
        RateLimit(5, 86400, name="strict"), storage=storage, failure="closed"
    )
    assert open_limiter.hit("k").remaining == 4
    assert closed_limiter.hit("k").remaining == 4

    redis_server.stop()
    with caplog.at_level(logging.WARNING, logger="kit_auth.ratelimit"):
        degraded = open_limiter.hit("k")
        assert open_limiter.hit("k").degraded
    assert degraded.allowed and degraded.degraded
    assert len(caplog.records) == 1  # logged once per interval, not per request
    with pytest.raises(BackendUnavailable) as info:
        closed_limiter.hit("k")
    assert info.value.problem()["status"] == 503

    redis_server.start()  # empty again: no persistence
    recovered = closed_limiter.hit("k")
    assert recovered.allowed and not recovered.degraded
    assert recovered.remaining == 4
    assert not open_limiter.hit("k").degraded
    storage.close()


async def test_async_redis_down(redis_server: Any) -> None:
    storage = AsyncRedisRateLimitStorage(redis_server.url)
    open_limiter = RateLimiter(day_limit(5), storage=storage, failure="open")
    closed_limiter = RateLimiter(
        RateLimit(5, 86400, name="strict"), storage=storage, failure="closed"
    )
    assert (await closed_limiter.ahit("k")).allowed
    redis_server.stop()
    assert (await open_limiter.ahit("k")).degraded
    with pytest.raises(BackendUnavailable):
        await closed_limiter.ahit("k")
    redis_server.start()
    assert not (await closed_limiter.ahit("k")).degraded
    await storage.aclose()


def test_async_client_object_is_accepted(redis_clean_url: str) -> None:
    client = aioredis.Redis.from_url(redis_clean_url)
    storage = AsyncRedisRateLimitStorage(client)
    assert storage.client is client
