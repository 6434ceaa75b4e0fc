"""kit-db tests run on SQLite, PostgreSQL and MariaDB. The servers come from the shared
pytest-kit-services plugin: throwaway instances, or KIT_TEST_*_URL when set."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import MetaData
from sqlalchemy.engine import make_url

from kit_db import AsyncDatabase, Database, unscoped

DIALECTS = ["sqlite", "postgresql", "mariadb"]
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "mariadb": "mysql+aiomysql",
}


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(dialect: str, request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if dialect == "sqlite":
        return f"sqlite:///{tmp_path}/kit.db"
    if dialect == "postgresql":
        return str(request.getfixturevalue("postgresql_url"))
    return str(request.getfixturevalue("mariadb_url"))


@pytest.fixture
def async_db_url(db_url: str, dialect: str) -> str:
    return (
        make_url(db_url)
        .set(drivername=_ASYNC_DRIVERS[dialect])
        .render_as_string(hide_password=False)
    )


@pytest.fixture
def make_db(db_url: str) -> Iterator[Callable[..., Database]]:
    """``make_db(metadata)``: a Database on this test's dialect with ``metadata``'s tables
    created fresh (and dropped afterwards)."""
    made: list[tuple[Database, MetaData]] = []

    def make(metadata: MetaData, **options: Any) -> Database:
        db = Database(db_url, **options)
        metadata.drop_all(db.engine)
        metadata.create_all(db.engine)
        made.append((db, metadata))
        return db

    yield make
    for db, metadata in made:
        with unscoped():
            metadata.drop_all(db.engine)
        db.dispose()


@pytest.fixture
async def make_async_db(async_db_url: str) -> AsyncIterator[Callable[..., Any]]:
    made: list[tuple[AsyncDatabase, MetaData]] = []

    async def make(metadata: MetaData, **options: Any) -> AsyncDatabase:
        db = AsyncDatabase(async_db_url, **options)
        async with db.engine.begin() as connection:
            await connection.run_sync(metadata.drop_all)
            await connection.run_sync(metadata.create_all)
        made.append((db, metadata))
        return db

    yield make
    for db, metadata in made:
        async with db.engine.begin() as connection:
            await connection.run_sync(metadata.drop_all)
        await db.dispose()
