"""``ping()`` / ``aping()``: the health checks of the token stores, the rate-limit storages
and the OIDC client, against a real Redis (up, stopped and restarted on the same port), a
server that accepts connections and never answers, and the local OIDC provider."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from oidc_provider import OIDCTestProvider, oidc_provider_fixture  # noqa: F401

from kit_auth import (
    AsyncRedisRateLimitStorage,
    AsyncRedisTokenStore,
    ConfigurationError,
    MemoryRateLimitStorage,
    MemoryTokenStore,
    RedisRateLimitStorage,
    RedisTokenStore,
)
from kit_auth.oidc import OIDCClient, OIDCProvider

SECRET = b"k" * 32


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A redis:// URL whose port accepts TCP connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


# ----------------------------------------------------------------------------- memory


async def test_memory_stores_are_healthy() -> None:
    assert MemoryTokenStore().ping() is True
    storage = MemoryRateLimitStorage()
    assert storage.ping() is True
    assert await storage.aping() is True


# ----------------------------------------------------------------------------- token stores


def test_redis_token_store_follows_redis_down_and_back(redis_server: Any) -> None:
    store = RedisTokenStore(redis_server.url)
    assert store.ping() is True
    redis_server.stop()
    assert store.ping(timeout=1) is False
    redis_server.start()  # same port
    assert store.ping() is True


def test_redis_token_store_given_a_client_pings_its_server(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert RedisTokenStore(client).ping() is True


async def test_async_redis_token_store_follows_redis_down_and_back(redis_server: Any) -> None:
    store = AsyncRedisTokenStore(redis_server.url)
    assert await store.ping() is True
    redis_server.stop()
    assert await store.ping(timeout=1) is False
    redis_server.start()
    assert await store.ping() is True
    await store.aclose()


async def test_async_redis_token_store_given_a_client(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url)
    assert await AsyncRedisTokenStore(client).ping() is True
    await client.aclose()


async def test_token_stores_are_false_for_a_server_that_never_answers(silent_url: str) -> None:
    assert RedisTokenStore(silent_url).ping(timeout=0.3) is False
    assert await AsyncRedisTokenStore(silent_url).ping(timeout=0.3) is False


# ----------------------------------------------------------------------------- rate limits


async def test_redis_rate_limit_storage_follows_redis_down_and_back(redis_server: Any) -> None:
    storage = RedisRateLimitStorage(redis_server.url)
    assert storage.ping() is True
    assert await storage.aping() is True
    redis_server.stop()
    assert storage.ping(timeout=1) is False
    assert await storage.aping(timeout=1) is False
    redis_server.start()
    assert storage.ping() is True
    storage.close()


async def test_async_redis_rate_limit_storage_follows_redis_down_and_back(
    redis_server: Any,
) -> None:
    storage = AsyncRedisRateLimitStorage(redis_server.url)
    assert await storage.aping() is True
    assert storage.ping() is True  # the sync form works too (its own loop, off this one)
    redis_server.stop()
    assert await storage.aping(timeout=1) is False
    assert storage.ping(timeout=1) is False
    redis_server.start()
    assert await storage.aping() is True
    await storage.aclose()


async def test_rate_limit_storages_are_false_for_a_server_that_never_answers(
    silent_url: str,
) -> None:
    assert RedisRateLimitStorage(silent_url).ping(timeout=0.3) is False
    assert await AsyncRedisRateLimitStorage(silent_url).aping(timeout=0.3) is False


# ----------------------------------------------------------------------------- oidc


def _client(issuer: str, p: OIDCTestProvider) -> OIDCClient:
    provider = OIDCProvider("local", p.client_id, p.client_secret, issuer=issuer)
    return OIDCClient(provider, state_secret=SECRET)


async def test_oidc_ping_fetches_the_discovery_document(oidc_provider: OIDCTestProvider) -> None:
    client = _client(oidc_provider.issuer, oidc_provider)
    assert client.ping() is True
    assert await client.aping() is True
    assert oidc_provider.requests["/.well-known/openid-configuration"] == 2
    # The fresh document was cached: a login starts without fetching it again.
    client.begin("http://127.0.0.1:9/callback")
    assert oidc_provider.requests["/.well-known/openid-configuration"] == 2


async def test_oidc_ping_is_false_for_a_bad_document_or_a_stopped_provider(
    oidc_provider: OIDCTestProvider,
) -> None:
    wrong = _client(f"{oidc_provider.issuer}/tenant-x", oidc_provider)  # 404
    assert wrong.ping() is False
    assert await wrong.aping() is False
    client = _client(oidc_provider.issuer, oidc_provider)
    oidc_provider.stop()
    assert client.ping(timeout=1) is False
    assert await client.aping(timeout=1) is False


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), "1", True, None])
async def test_a_bad_timeout_is_refused(timeout: Any) -> None:
    url = "redis://127.0.0.1:9/0"
    checks = [
        MemoryTokenStore().ping,
        RedisTokenStore(url).ping,
        MemoryRateLimitStorage().ping,
        RedisRateLimitStorage(url).ping,
        AsyncRedisRateLimitStorage(url).ping,
        OIDCClient(OIDCProvider.google("id", "secret"), state_secret=SECRET).ping,
    ]
    for check in checks:
        with pytest.raises(ConfigurationError, match="timeout="):
            check(timeout)
    async_checks = [
        AsyncRedisTokenStore(url).ping,
        MemoryRateLimitStorage().aping,
        RedisRateLimitStorage(url).aping,
        AsyncRedisRateLimitStorage(url).aping,
        OIDCClient(OIDCProvider.google("id", "secret"), state_secret=SECRET).aping,
    ]
    for acheck in async_checks:
        with pytest.raises(ConfigurationError, match="timeout="):
            await acheck(timeout)
