"""``Jobs.ping()``: the health check, on every backend, against a real Redis that is up,
stopped, or a socket that never answers."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from kit_jobs import ConfigurationError, Jobs, JobStatus, job
from kit_jobs.backends.sync import SyncBackend


@job(name="ping.double")
def double(x: int) -> int:
    return 2 * x


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_sync_backend_is_healthy_until_shutdown() -> None:
    jobs = Jobs(backend="sync")
    assert jobs.ping() is True
    assert jobs.enqueue(double, 4).result() == 8
    assert jobs.ping() is True
    jobs.shutdown()
    assert jobs.ping() is False


def test_thread_backend_is_healthy_while_open() -> None:
    jobs = Jobs(backend="thread", max_workers=2)
    assert jobs.ping() is True  # the pool starts lazily: not started is not unhealthy
    with jobs:
        assert jobs.enqueue(double, 21).result(timeout=10) == 42
        assert jobs.ping() is True
    assert jobs.ping() is False  # shut down by the with block


def test_rq_backend_answers_true_when_redis_answers(redis_clean_url: str) -> None:
    jobs = Jobs(backend="rq", redis_url=redis_clean_url)
    assert jobs.ping() is True
    assert jobs.ping(timeout=0.5) is True


def test_rq_backend_given_a_connection_pings_through_it(redis_clean_url: str) -> None:
    jobs = Jobs(backend="rq", connection=redis.Redis.from_url(redis_clean_url))
    assert jobs.ping() is True


def test_rq_ping_follows_redis_down_and_back(redis_server: Any) -> None:
    jobs = Jobs(backend="rq", redis_url=redis_server.url)
    assert jobs.ping() is True
    redis_server.stop()
    assert jobs.ping(timeout=1) is False
    redis_server.start()  # same port
    assert jobs.ping() is True


def test_rq_ping_is_false_for_a_dead_port_even_with_the_sync_fallback() -> None:
    jobs = Jobs(backend="rq", redis_url=f"redis://127.0.0.1:{_free_port()}/0", fallback="sync")
    assert jobs.ping(timeout=0.5) is False
    # The fallback still runs jobs inline; ping reports the backend, not the fallback.
    assert jobs.enqueue(double, 5).result() == 10


def test_rq_ping_is_false_for_a_server_that_never_answers(silent_port: int) -> None:
    jobs = Jobs(backend="rq", redis_url=f"redis://127.0.0.1:{silent_port}/0")
    assert jobs.ping(timeout=0.3) is False


class _FlakyBackend(SyncBackend):
    """A custom backend that keeps the base class's default ping (counts() answers)."""

    name = "flaky"
    healthy = True

    def ping(self, timeout: float = 2.0) -> bool:
        return super(SyncBackend, self).ping(timeout)

    def counts(self) -> dict[JobStatus, int]:
        if not self.healthy:
            raise ConnectionError("store is down")
        return super().counts()


def test_custom_backend_default_ping_asks_counts() -> None:
    backend = _FlakyBackend()
    jobs = Jobs(backend=backend)
    assert jobs.ping() is True
    backend.healthy = False
    assert jobs.ping() is False


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), "1", True, None])
def test_a_bad_timeout_is_refused(timeout: object) -> None:
    with pytest.raises(ConfigurationError, match="timeout="):
        Jobs(backend="sync").ping(timeout=timeout)  # type: ignore[arg-type]
