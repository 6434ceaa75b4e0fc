"""Tests for the Redis fixtures and the plain Redis API."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

import pytest
import redis

from pytest_kit_services import REDIS_URL_ENV, RedisServer, ServerStartError, redis_service
from pytest_kit_services import _redis as redis_module
from pytest_kit_services._common import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _alive(server: RedisServer) -> bool:
    return server.running


def test_redis_url_answers_ping(redis_url: str) -> None:
    assert redis_url.startswith("redis://")
    assert _client(redis_url).ping()


def test_redis_clean_url_flushes(redis_url: str, request: pytest.FixtureRequest) -> None:
    client = _client(redis_url)
    client.set("kit:dirty", "1")
    clean_url = request.getfixturevalue("redis_clean_url")
    assert clean_url == redis_url
    assert client.exists("kit:dirty") == 0


def test_redis_server_stop_start_same_port(redis_server: RedisServer) -> None:
    client = _client(redis_server.url)
    assert client.ping()
    client.set("kit:key", "v")
    port = redis_server.port
    assert _alive(redis_server)

    redis_server.stop()
    assert not _alive(redis_server)
    with pytest.raises(redis.ConnectionError):
        client.ping()

    redis_server.start()
    assert _alive(redis_server)
    assert redis_server.port == port
    assert redis_server.url == f"redis://127.0.0.1:{port}/0"
    assert client.ping()  # the same client reconnects
    assert client.get("kit:key") is None  # nothing was persisted


def test_redis_server_is_private_and_not_persistent(
    redis_server: RedisServer, redis_url: str
) -> None:
    assert redis_server.url != redis_url
    config = _client(redis_server.url).config_get("*")
    assert config["save"] == ""
    assert config["appendonly"] == "no"


def test_throwaway_redis_starts_fast_and_cleans_up() -> None:
    started = time.monotonic()
    with RedisServer() as server:
        elapsed = time.monotonic() - started
        assert _client(server.url).ping()
        logfile = server.logfile
        assert logfile is not None
        tmpdir = logfile.parent
    assert elapsed < 1.0, elapsed
    assert not server.running
    assert not tmpdir.exists()


@pytest.mark.parametrize("listen", [True, False], ids=["port-listening", "port-bound"])
def test_port_clash_retries(monkeypatch: pytest.MonkeyPatch, listen: bool) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        if listen:
            busy.listen()
        busy_port = busy.getsockname()[1]
        ports: Iterator[int] = iter([busy_port])
        monkeypatch.setattr(redis_module, "free_port", lambda: next(ports, None) or free_port())
        with RedisServer() as server:
            assert server.port != busy_port
            assert _client(server.url).ping()


def test_fixed_port_clash_raises() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ServerStartError), RedisServer(port=busy.getsockname()[1]):
            pass


def test_redis_service_throwaway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REDIS_URL_ENV, raising=False)
    with redis_service() as url:
        assert _client(url).ping()
    with pytest.raises(redis.ConnectionError):
        _client(url).ping()


def test_redis_service_uses_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(REDIS_URL_ENV, "redis://127.0.0.1:1/7")
    with redis_service() as url:
        assert url == "redis://127.0.0.1:1/7"
