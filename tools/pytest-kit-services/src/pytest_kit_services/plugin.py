"""Pytest fixtures for Redis, PostgreSQL and MariaDB.

Fixtures: ``redis_url``, ``redis_clean_url``, ``redis_server``, ``postgresql_url``,
``mariadb_url``.

The plugin only defines fixtures; nothing runs unless a test requests one of them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import TYPE_CHECKING, NoReturn, TypeVar

import pytest

from ._common import ServiceUnavailable, in_ci
from ._mariadb import mariadb_service
from ._postgresql import postgresql_service
from ._redis import RedisServer, flushdb, redis_service

if TYPE_CHECKING:
    from collections.abc import Iterator

T = TypeVar("T")


def unavailable(message: str) -> NoReturn:
    """Skip the test, or fail it when ``CI`` is set (a missing service is a CI failure)."""
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextmanager
def _provide(manager: AbstractContextManager[T]) -> Iterator[T]:
    """Enter *manager*, turning ServiceUnavailable into skip/fail."""
    with ExitStack() as stack:
        yield _enter(stack, manager)


def _enter(stack: ExitStack, manager: AbstractContextManager[T]) -> T:
    """Enter *manager* on *stack*; skip/fail (outside the except block) if unavailable."""
    try:
        return stack.enter_context(manager)
    except ServiceUnavailable as exc:
        message = str(exc)
    unavailable(message)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Session Redis URL: ``KIT_TEST_REDIS_URL`` if set, else a throwaway redis-server."""
    with _provide(redis_service()) as url:
        yield url


@pytest.fixture
def redis_clean_url(redis_url: str) -> str:
    """``redis_url`` after FLUSHDB (so KIT_TEST_REDIS_URL must be a disposable database)."""
    try:
        flushdb(redis_url)
    except ServiceUnavailable as exc:
        message = str(exc)
    else:
        return redis_url
    unavailable(message)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """Start a private throwaway redis-server for this test (restartable on its port)."""
    with _provide(RedisServer()) as server:
        yield server


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """URL of a fresh ``kit_test_<hex>`` database, dropped at session end."""
    with _provide(postgresql_service()) as url:
        yield url


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """URL (``mysql://``) of a fresh ``kit_test_<hex>`` database, dropped at session end."""
    with _provide(mariadb_service()) as url:
        yield url
