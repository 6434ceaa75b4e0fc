"""A pytest plugin: every test runs in a transaction that is rolled back afterwards.

Load it from your ``conftest.py``::

    pytest_plugins = ["kit_db.testing"]

    @pytest.fixture(scope="session")
    def kit_db_metadata():
        from myapp.models import Model
        return Model.metadata

then take ``db_session`` (or ``async_db_session``) in a test. The test may ``commit()``,
``rollback()`` and ``begin_nested()`` as it likes: its session joins an outer transaction
through a SAVEPOINT (SQLAlchemy's ``join_transaction_mode="create_savepoint"`` recipe), and
the outer transaction is rolled back when the test ends, so the next test sees the database
as it was. On SQLite this holds for files too, thanks to kit-db's ``BEGIN`` handling
(pysqlite alone would keep the work of released SAVEPOINTs).

Fixtures, each overridable by defining one with the same name:

=========================  =========  ====================================================
fixture                    scope      value
=========================  =========  ====================================================
``kit_db_url``             session    ``KIT_DB_TEST_URL``, else a SQLite file in pytest's
                                      session temp dir (shared by sync and async fixtures)
``kit_db_metadata``        session    the tables to create: ``kit_db.Model.metadata``;
                                      return ``None`` to manage the schema yourself
                                      (e.g. run ``kit_db.migrations.upgrade``)
``kit_db_database``        session    a :class:`~kit_db.Database` on ``kit_db_url`` with
                                      the tables created; dropped and disposed at the end
``kit_db_connection``      function   a connection in the test's outer transaction
``db_session``             function   a :class:`~kit_db.KitSession` on that connection
``kit_db_async_url``       session    ``kit_db_url`` with the async driver
                                      (``KIT_DB_TEST_ASYNC_URL`` overrides)
``kit_db_async_database``  function   an :class:`~kit_db.AsyncDatabase` on it
``async_db_session``       function   an ``AsyncSession`` rolled back the same way
=========================  =========  ====================================================

While a test holds ``db_session`` (or ``kit_db_connection``), ``kit_db_database.session()``
and ``kit_db_database.begin()`` join the same outer transaction, and so does a Flask
:class:`~kit_db.flask.KitDB` built on ``kit_db_database``: code under test that uses the
fixture's Database is rolled back too. Work on other engines or connections is not.
``async_db_session`` does the same for ``kit_db_async_database``.

The async fixtures need pytest-asyncio (``pip install pytest-asyncio``); they work in its
strict and auto modes. ``kit_db_database`` drops ``kit_db_metadata``'s tables at the end of
the session: point ``KIT_DB_TEST_URL`` at a database that exists for tests only.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar, cast

import pytest
from sqlalchemy import URL, Connection, MetaData
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from ._database import _ASYNC_DRIVERS, AsyncDatabase, Database
from ._model import Model
from ._scoping import KitSession, unscoped

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the async fixtures then fail with a clear message
    pytest_asyncio = None  # type: ignore[assignment]

__all__ = [
    "async_db_session",
    "db_session",
    "kit_db_async_database",
    "kit_db_async_url",
    "kit_db_connection",
    "kit_db_database",
    "kit_db_metadata",
    "kit_db_url",
]

F = TypeVar("F", bound=Callable[..., Any])


def _async_fixture(function: F) -> F:
    """An async fixture in pytest-asyncio's strict and auto modes alike."""
    if pytest_asyncio is not None:
        return cast(F, pytest_asyncio.fixture(function))
    return cast(F, pytest.fixture(function))  # pragma: no cover


_SYNC_TO_ASYNC = {"pysqlite": "aiosqlite", "psycopg": "asyncpg", "pymysql": "aiomysql"}


def _async_url(url: str | URL) -> str:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    driver = parsed.get_driver_name() if "+" in parsed.drivername else ""
    if driver in _ASYNC_DRIVERS.values() or driver == "psycopg_async":
        return parsed.render_as_string(hide_password=False)
    async_driver = _SYNC_TO_ASYNC.get(driver) or _ASYNC_DRIVERS.get(backend)
    if async_driver is None:
        return parsed.render_as_string(hide_password=False)  # AsyncDatabase explains
    return parsed.set(drivername=f"{backend}+{async_driver}").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def kit_db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test database: ``KIT_DB_TEST_URL``, else a SQLite file in a session temp dir."""
    url = os.environ.get("KIT_DB_TEST_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('kit_db')}/test.db"


@pytest.fixture(scope="session")
def kit_db_metadata() -> MetaData | None:
    """The tables ``kit_db_database`` creates: ``kit_db.Model.metadata`` (models deriving
    from :class:`kit_db.Model`). Override it to return your own metadata, or ``None``."""
    return Model.metadata


@pytest.fixture(scope="session")
def kit_db_database(kit_db_url: str, kit_db_metadata: MetaData | None) -> Iterator[Database]:
    """A :class:`~kit_db.Database` on ``kit_db_url`` with ``kit_db_metadata``'s tables."""
    database = Database(kit_db_url)
    if kit_db_metadata is not None:
        with unscoped():
            kit_db_metadata.create_all(database.engine)
    try:
        yield database
    finally:
        try:
            if kit_db_metadata is not None:
                with unscoped():
                    kit_db_metadata.drop_all(database.engine)
        finally:
            database.dispose()


@pytest.fixture
def kit_db_connection(kit_db_database: Database) -> Iterator[Connection]:
    """A connection inside the test's outer transaction, rolled back at teardown.

    For the test's duration, sessions of ``kit_db_database`` bind to it and join the
    transaction through SAVEPOINTs.
    """
    connection = kit_db_database.engine.connect()
    transaction = connection.begin()
    factory = kit_db_database.sessionmaker
    saved = dict(factory.kw)
    factory.configure(bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield connection
    finally:
        factory.kw.clear()
        factory.kw.update(saved)
        try:
            if transaction.is_active:
                transaction.rollback()
        finally:
            connection.close()


@pytest.fixture
def db_session(kit_db_database: Database, kit_db_connection: Connection) -> Iterator[KitSession]:
    """A :class:`~kit_db.KitSession` whose work is rolled back when the test ends; the test
    may commit and roll back freely."""
    session = kit_db_database.sessionmaker()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="session")
def kit_db_async_url(kit_db_url: str) -> str:
    """``KIT_DB_TEST_ASYNC_URL``, else ``kit_db_url`` with the async driver (aiosqlite,
    asyncpg, aiomysql)."""
    return os.environ.get("KIT_DB_TEST_ASYNC_URL") or _async_url(kit_db_url)


def _needs_pytest_asyncio() -> None:
    if pytest_asyncio is None:  # pragma: no cover
        pytest.fail(
            "kit_db.testing's async fixtures need pytest-asyncio: pip install pytest-asyncio",
            pytrace=False,
        )


@_async_fixture
async def kit_db_async_database(
    kit_db_async_url: str, kit_db_database: Database, kit_db_metadata: MetaData | None
) -> AsyncIterator[AsyncDatabase]:
    """An :class:`~kit_db.AsyncDatabase` on ``kit_db_async_url``, per test (async engines
    belong to one event loop). ``kit_db_database`` has created the tables; an in-memory
    SQLite database gets its own."""
    _needs_pytest_asyncio()
    database = AsyncDatabase(kit_db_async_url)
    url = database.url
    if (
        kit_db_metadata is not None
        and url.get_backend_name() == "sqlite"
        and url.database in (None, "", ":memory:")
    ):
        async with database.engine.begin() as connection:
            await connection.run_sync(kit_db_metadata.create_all)
    try:
        yield database
    finally:
        await database.dispose()


@_async_fixture
async def async_db_session(kit_db_async_database: AsyncDatabase) -> AsyncIterator[AsyncSession]:
    """The asyncio twin of ``db_session``: an ``AsyncSession`` (kit-db's scoping included)
    whose work is rolled back when the test ends."""
    database = kit_db_async_database
    connection = await database.engine.connect()
    transaction = await connection.begin()
    factory = database.sessionmaker
    saved = dict(factory.kw)
    factory.configure(bind=connection, join_transaction_mode="create_savepoint")
    session = factory()
    try:
        yield session
    finally:
        try:
            await session.close()
        finally:
            factory.kw.clear()
            factory.kw.update(saved)
            try:
                if transaction.is_active:
                    await transaction.rollback()
            finally:
                await connection.close()
