"""Login lockout, in memory and over real Redis."""

from __future__ import annotations

from typing import Any, cast

import pytest

from kit_auth.exceptions import BackendUnavailable, ConfigurationError, InvalidInput, RateLimited
from kit_auth.ratelimit import (
    AsyncRedisRateLimitStorage,
    LoginLockout,
    MemoryRateLimitStorage,
    RateLimit,
    RedisRateLimitStorage,
)


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        yield MemoryRateLimitStorage()
        return
    url = request.getfixturevalue("redis_clean_url")
    s = RedisRateLimitStorage(url, socket_timeout=5)
    yield s
    s.close()


def test_account_locked_after_failures_from_many_addresses(storage: Any) -> None:
    lockout = LoginLockout(storage, per_account="5/15 minutes")
    for i in range(5):
        lockout.check("alice", f"192.0.2.{i}")
        lockout.failed("alice", f"192.0.2.{i}")
    with pytest.raises(RateLimited) as info:
        lockout.check("alice", "198.51.100.77")  # a fresh address does not help
    assert info.value.retry_after == pytest.approx(180, abs=1)
    assert info.value.headers["Retry-After"] == "180"
    assert "password" in str(info.value)
    lockout.check("bob", "192.0.2.1")  # other accounts are unaffected


def test_account_names_are_case_insensitive_and_not_stored(storage: Any) -> None:
    lockout = LoginLockout(storage, per_account="2/hour", per_address=None)
    lockout.failed("Alice@Example.com")
    lockout.failed(" alice@example.com ")
    with pytest.raises(RateLimited):
        lockout.check("ALICE@example.com")
    if isinstance(storage, RedisRateLimitStorage):
        keys = [k.decode() for k in cast(list[bytes], storage.client.keys("*"))]
        assert keys and not any("alice" in k.lower() for k in keys)


def test_success_resets_the_account_not_the_address(storage: Any) -> None:
    lockout = LoginLockout(storage, per_account="3/hour", per_address="4/hour")
    for _ in range(3):
        lockout.failed("alice", "192.0.2.1")
    with pytest.raises(RateLimited):
        lockout.check("alice", "198.51.100.1")
    lockout.succeeded("alice", "192.0.2.1")
    lockout.check("alice", "198.51.100.1")
    lockout.failed("carol", "192.0.2.1")  # the address's 4th failure
    with pytest.raises(RateLimited):
        lockout.check("dave", "192.0.2.1")  # the address is locked for every account
    lockout.check("dave", "198.51.100.1")


def test_address_limit_is_independent_and_groups_ipv6(storage: Any) -> None:
    lockout = LoginLockout(storage, per_account="100/hour", per_address="3/hour")
    for i in range(3):
        lockout.failed(f"user{i}", f"2001:db8:1:2::{i + 1}")  # same /64
    with pytest.raises(RateLimited):
        lockout.check("someone-else", "2001:db8:1:2::ffff")
    lockout.check("someone-else", "2001:db8:1:3::1")
    lockout.check("user0")  # no address: only the account counts


async def test_async_twins_over_async_redis(redis_clean_url: str) -> None:
    storage = AsyncRedisRateLimitStorage(redis_clean_url, socket_timeout=5)
    lockout = LoginLockout(storage, per_account="2/hour")
    await lockout.acheck("alice", "192.0.2.1")
    await lockout.afailed("alice", "192.0.2.1")
    await lockout.afailed("alice", "192.0.2.2")
    with pytest.raises(RateLimited):
        await lockout.acheck("alice", "192.0.2.3")
    await lockout.asucceeded("alice")
    await lockout.acheck("alice", "192.0.2.3")
    await storage.aclose()


def test_fails_closed_by_default_when_redis_is_down(redis_server: Any) -> None:
    storage = RedisRateLimitStorage(redis_server.url)
    lockout = LoginLockout(storage)
    lockout.check("alice", "192.0.2.1")
    redis_server.stop()
    with pytest.raises(BackendUnavailable):
        lockout.check("alice", "192.0.2.1")
    with pytest.raises(BackendUnavailable):
        lockout.failed("alice", "192.0.2.1")
    redis_server.start()
    lockout.check("alice", "192.0.2.1")
    storage.close()


def test_validation() -> None:
    with pytest.raises(ConfigurationError):
        LoginLockout(per_account="lots")
    with pytest.raises(ConfigurationError):
        LoginLockout(per_account=RateLimit(5, 60, name="x"), per_address=RateLimit(5, 60, name="x"))
    with pytest.raises(ConfigurationError):
        LoginLockout(ipv6_prefix=200)
    lockout = LoginLockout()
    for bad in ("", "   ", "a" * 2000, None):
        with pytest.raises(InvalidInput):
            lockout.check(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        lockout.failed("alice", 12)  # type: ignore[arg-type]
