"""Fixtures for kit-cache's tests. Redis comes from the shared pytest-kit-services plugin:
a throwaway redis-server, or KIT_TEST_REDIS_URL when set."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from kit_cache import MemoryCache, RedisCache, TieredCache


class FakeClock:
    """A controllable clock for TTL tests on MemoryCache."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CommandCounter:
    """Counts commands the Redis server processed, through one long-lived connection."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.client.ping()
        self.mark = self.total()

    def total(self) -> int:
        return int(self.client.info("stats")["total_commands_processed"])

    def since_mark(self) -> int:
        """Commands processed since the last call, not counting this call's own INFO."""
        now = self.total()
        count, self.mark = now - self.mark - 1, now
        return count


@pytest.fixture
def commands(redis_url: str) -> Iterator[CommandCounter]:
    counter = CommandCounter(redis_url)
    yield counter
    counter.client.close()


class RoundTrips:
    """Counts requests redis-py writes to a socket: one per round trip (pipelines included)."""

    def __init__(self) -> None:
        self.count = 0

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    counter = RoundTrips()
    original = redis.connection.Connection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        counter.count += 1
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
    return counter


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def prefix() -> str:
    """A unique key prefix so tests sharing one Redis never see each other's keys."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def redis_cache(redis_url: str, prefix: str) -> Iterator[RedisCache]:
    cache = RedisCache(redis_url, prefix=prefix)
    yield cache
    cache.close()


@pytest.fixture
def make_tiered(redis_url: str, prefix: str) -> Iterator[Callable[..., TieredCache]]:
    made: list[TieredCache] = []

    def make(**options: Any) -> TieredCache:
        cache = TieredCache(redis_url, prefix=prefix, **options)
        assert cache.wait_ready(10), "the invalidation subscription did not come up"
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


@pytest.fixture(params=["memory", "redis", "tiered"])
def any_cache(request: pytest.FixtureRequest, prefix: str) -> Iterator[Any]:
    """The same contract, checked on every synchronous backend."""
    if request.param == "memory":
        yield MemoryCache(prefix=prefix)
        return
    url = request.getfixturevalue("redis_url")
    cache: Any = (
        RedisCache(url, prefix=prefix)
        if request.param == "redis"
        else TieredCache(url, prefix=prefix)
    )
    if isinstance(cache, TieredCache):
        assert cache.wait_ready(10)
    yield cache
    cache.close()
