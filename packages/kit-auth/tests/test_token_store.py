"""Token stores: memory, Redis and async Redis, against a real redis-server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import pytest
import redis
import redis.asyncio as aredis

from kit_auth.exceptions import (
    BackendUnavailable,
    ConfigurationError,
    InvalidInput,
    RefreshTokenReused,
    TokenRevoked,
)
from kit_auth.keys import KeySet
from kit_auth.token_store import (
    AsyncRedisTokenStore,
    AsyncTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    TokenStore,
)
from kit_auth.tokens import TokenManager, TokenPair

ISS = "https://api.test"


def wait_until_gone(check: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not check():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def redis_store(redis_clean_url: str) -> Iterator[RedisTokenStore]:
    client = redis.Redis.from_url(redis_clean_url)
    yield RedisTokenStore(client)
    client.close()


@pytest.fixture
async def async_store(redis_clean_url: str) -> AsyncIterator[AsyncRedisTokenStore]:
    store = AsyncRedisTokenStore(redis_clean_url)
    yield store
    await store.aclose()


# -- contract, run against memory and Redis -----------------------------------------------


@pytest.fixture(params=["memory", "redis", "redis-decoded"])
def store(request: pytest.FixtureRequest, redis_clean_url: str) -> Iterator[TokenStore]:
    if request.param == "memory":
        yield MemoryTokenStore()
        return
    client = redis.Redis.from_url(
        redis_clean_url, decode_responses=request.param == "redis-decoded"
    )
    yield RedisTokenStore(client, prefix="t:")
    client.close()


def test_protocols_are_satisfied(
    redis_store: RedisTokenStore, async_store: AsyncRedisTokenStore
) -> None:
    assert isinstance(MemoryTokenStore(), TokenStore)
    assert isinstance(redis_store, TokenStore)
    assert isinstance(async_store, AsyncTokenStore)


def test_revoke_is_keyed_on_issuer_and_jti(store: TokenStore) -> None:
    store.revoke(ISS, "j1", 60)
    assert store.is_revoked(ISS, "j1")
    assert not store.is_revoked(ISS, "j2")
    assert not store.is_revoked("https://other", "j1")


def test_family_lifecycle(store: TokenStore) -> None:
    assert not store.is_revoked(ISS, "a", "f")
    store.start_family("f", "r1", 60)
    assert not store.is_revoked(ISS, "a", "f")
    assert store.rotate_family("f", "r1", "r2", 60) == "ok"
    assert store.rotate_family("f", "r2", "r3", 60) == "ok"
    assert store.rotate_family("f", "r1", "r4", 60) == "reused"
    assert store.is_revoked(ISS, "any", "f")
    assert store.rotate_family("f", "r3", "r5", 60) == "revoked"
    assert store.rotate_family("unknown", "x", "y", 60) == "revoked"
    store.start_family("g", "s1", 60)
    store.revoke_family("g", 60)
    assert store.rotate_family("g", "s1", "s2", 60) == "revoked"


@pytest.mark.parametrize("ttl", [0, -1, "60", True, float("nan")])
def test_bad_ttl_is_refused(store: TokenStore, ttl: Any) -> None:
    with pytest.raises(InvalidInput, match="ttl"):
        store.revoke(ISS, "j", ttl)


def test_bad_ids_are_refused(store: TokenStore) -> None:
    with pytest.raises(InvalidInput, match="jti"):
        store.revoke(ISS, "", 10)
    with pytest.raises(InvalidInput, match="family_id"):
        store.start_family("f" * 300, "j", 10)


# -- memory store -------------------------------------------------------------------------


def test_memory_entries_expire() -> None:
    now = [100.0]
    store = MemoryTokenStore(clock=lambda: now[0])
    store.revoke(ISS, "j", 10)
    store.start_family("f", "r1", 10)
    store.start_family("g", "r1", 10)
    store.revoke_family("g", 10)
    now[0] += 9.9
    assert store.is_revoked(ISS, "j") and store.is_revoked(ISS, "x", "g")
    now[0] += 0.2
    assert not store.is_revoked(ISS, "j")
    assert not store.is_revoked(ISS, "x", "g")
    assert store.rotate_family("f", "r1", "r2", 10) == "revoked"


def test_memory_sweeps_expired_entries() -> None:
    now = [0.0]
    store = MemoryTokenStore(clock=lambda: now[0])
    for i in range(1000):
        store.revoke(ISS, f"j{i}", 1)
    now[0] = 5.0
    for i in range(100):
        store.revoke(ISS, f"k{i}", 1)
    assert len(store._revoked) < 200


# -- Redis specifics ----------------------------------------------------------------------


def test_redis_keys_use_hash_tags(redis_store: RedisTokenStore, redis_clean_url: str) -> None:
    redis_store.revoke(ISS, "j1", 60)
    redis_store.start_family("fam1", "r1", 60)
    keys = sorted(cast(list[bytes], redis.Redis.from_url(redis_clean_url).keys("*")))
    assert keys == [b"kit:tok:fam:{fam1}", f"kit:tok:rev:{{j1}}:{ISS}".encode()]


def test_redis_entries_expire(redis_store: RedisTokenStore) -> None:
    redis_store.revoke(ISS, "short", 0.15)
    redis_store.start_family("f", "r1", 0.15)
    assert redis_store.is_revoked(ISS, "short")
    assert wait_until_gone(lambda: redis_store.is_revoked(ISS, "short"))
    assert redis_store.rotate_family("f", "r1", "r2", 60) == "revoked"


def test_redis_rotation_refreshes_ttl(redis_store: RedisTokenStore, redis_clean_url: str) -> None:
    redis_store.start_family("f", "r1", 5)
    assert redis_store.rotate_family("f", "r1", "r2", 500) == "ok"
    assert cast(int, redis.Redis.from_url(redis_clean_url).pttl("kit:tok:fam:{f}")) > 5000


def test_redis_store_argument_validation(redis_clean_url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"redis\.Redis client or a redis:// URL"):
        RedisTokenStore(42)
    with pytest.raises(ConfigurationError, match="AsyncRedisTokenStore"):
        RedisTokenStore(aredis.Redis.from_url(redis_clean_url))
    with pytest.raises(ConfigurationError, match="URL is invalid"):
        RedisTokenStore("nothttp://x")
    with pytest.raises(ConfigurationError, match="prefix"):
        RedisTokenStore(redis_clean_url, prefix="")
    with pytest.raises(ConfigurationError, match="RedisTokenStore"):
        AsyncRedisTokenStore(redis.Redis.from_url(redis_clean_url))


def test_redis_down_raises_backend_unavailable(redis_server: Any) -> None:
    url = redis_server.url.replace("redis://", "redis://:s3cret-pw@")
    client = redis.Redis.from_url(redis_server.url, socket_timeout=2, socket_connect_timeout=2)
    store = RedisTokenStore(client)
    tm = TokenManager(KeySet.generate("HS256", kid="k"), issuer=ISS, audience="a", store=store)
    pair = tm.issue_pair("u")
    redis_server.stop()
    for call in (
        lambda: tm.verify(pair.access_token),
        lambda: tm.refresh(pair.refresh_token),
        lambda: tm.revoke(pair.refresh_token),
        lambda: tm.issue_pair("u"),
    ):
        with pytest.raises(BackendUnavailable, match="RedisTokenStore cannot use Redis at") as info:
            call()
        assert "s3cret" not in str(info.value)
        assert info.value.problem()["status"] == 503
    client.close()
    # A URL carrying a password never shows up in the message either.
    pw_store = RedisTokenStore(url)
    with pytest.raises(BackendUnavailable) as info:
        pw_store.is_revoked(ISS, "j")
    assert "s3cret" not in str(info.value)
    redis_server.start()
    assert tm.verify(pair.access_token).subject == "u"


# -- concurrency: exactly one refresh wins ------------------------------------------------


def _race(tm: TokenManager, token: str, n: int = 20) -> tuple[list[TokenPair], list[Exception]]:
    barrier = threading.Barrier(n)
    wins: list[TokenPair] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        try:
            pair = tm.refresh(token)
        except TokenRevoked as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                wins.append(pair)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wins, errors


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_twenty_concurrent_refreshes_one_wins_family_revoked(
    backend: str, redis_clean_url: str
) -> None:
    store: TokenStore = (
        MemoryTokenStore() if backend == "memory" else RedisTokenStore(redis_clean_url)
    )
    tm = TokenManager(KeySet.generate("HS256", kid="k"), issuer=ISS, audience="a", store=store)
    pair = tm.issue_pair("u")
    wins, errors = _race(tm, pair.refresh_token)
    assert len(wins) == 1
    assert len(errors) == 19
    assert any(isinstance(e, RefreshTokenReused) for e in errors)
    with pytest.raises(TokenRevoked):
        tm.verify(wins[0].access_token)
    with pytest.raises(TokenRevoked):
        tm.refresh(wins[0].refresh_token)


def test_one_refresh_at_a_time_keeps_the_family_alive(redis_store: RedisTokenStore) -> None:
    tm = TokenManager(
        KeySet.generate("EdDSA", kid="e"), issuer=ISS, audience="a", store=redis_store
    )
    pair = tm.issue_pair("u", scopes=["read"])
    for _ in range(5):
        pair = tm.refresh(pair.refresh_token)
    assert tm.verify(pair.access_token).scopes == frozenset({"read"})


def test_revocation_is_shared_between_processes(redis_clean_url: str) -> None:
    keys = KeySet.generate("HS256", kid="k")
    worker_a = TokenManager(keys, issuer=ISS, audience="a", store=RedisTokenStore(redis_clean_url))
    worker_b = TokenManager(keys, issuer=ISS, audience="a", store=RedisTokenStore(redis_clean_url))
    pair = worker_a.issue_pair("u")
    worker_a.revoke(pair.access_token)
    with pytest.raises(TokenRevoked):
        worker_b.verify(pair.access_token)
    new = worker_b.refresh(pair.refresh_token)
    with pytest.raises(RefreshTokenReused):
        worker_a.refresh(pair.refresh_token)
    with pytest.raises(TokenRevoked):
        worker_b.verify(new.access_token)


# -- async --------------------------------------------------------------------------------


async def test_async_store_contract(async_store: AsyncRedisTokenStore) -> None:
    await async_store.revoke(ISS, "j", 60)
    assert await async_store.is_revoked(ISS, "j")
    assert not await async_store.is_revoked(ISS, "k", "f")
    await async_store.start_family("f", "r1", 60)
    assert await async_store.rotate_family("f", "r1", "r2", 60) == "ok"
    assert await async_store.rotate_family("f", "r1", "r3", 60) == "reused"
    assert await async_store.is_revoked(ISS, "k", "f")
    await async_store.revoke_family("g", 60)
    assert await async_store.rotate_family("g", "x", "y", 60) == "revoked"


async def test_async_manager_with_async_store(async_store: AsyncRedisTokenStore) -> None:
    tm = TokenManager(
        KeySet.generate("ES256", kid="e"), issuer=ISS, audience="a", store=async_store
    )
    pair = await tm.aissue_pair("u", roles=["admin"])
    assert (await tm.averify(pair.access_token)).roles == frozenset({"admin"})
    for sync_call in (
        lambda: tm.verify(pair.access_token),
        lambda: tm.refresh(pair.refresh_token),
        lambda: tm.issue_pair("u"),
        lambda: tm.revoke(pair.access_token),
    ):
        with pytest.raises(ConfigurationError, match="async store; call await"):
            sync_call()
    results = await asyncio.gather(
        *(tm.arefresh(pair.refresh_token) for _ in range(10)), return_exceptions=True
    )
    wins = [r for r in results if isinstance(r, TokenPair)]
    assert len(wins) == 1
    assert all(isinstance(r, TokenRevoked) for r in results if not isinstance(r, TokenPair))
    with pytest.raises(TokenRevoked):
        await tm.averify(wins[0].access_token)
    other = await tm.aissue_pair("v")
    await tm.arevoke(other.refresh_token)
    with pytest.raises(TokenRevoked):
        await tm.averify(other.access_token)


async def test_async_redis_down(redis_server: Any) -> None:
    store = AsyncRedisTokenStore(
        aredis.Redis.from_url(redis_server.url, socket_timeout=2, socket_connect_timeout=2)
    )
    redis_server.stop()
    with pytest.raises(BackendUnavailable, match="AsyncRedisTokenStore cannot use Redis at"):
        await store.is_revoked(ISS, "j", "f")
    with pytest.raises(BackendUnavailable):
        await store.rotate_family("f", "a", "b", 10)
    await store.aclose()
