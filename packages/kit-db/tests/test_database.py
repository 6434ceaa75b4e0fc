"""Database and AsyncDatabase: URLs, drivers, SQLite defaults, health, error translation."""

from __future__ import annotations

import datetime as dt
import socket
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from _support import new_base
from sqlalchemy import UniqueConstraint, select, text
from sqlalchemy.orm import Mapped, mapped_column

from kit_db import (
    AsyncDatabase,
    ConfigurationError,
    Conflict,
    Database,
    DatabaseUnavailable,
    KitDBError,
    MissingDriver,
    SoftDeleteMixin,
    TenantScopedMixin,
    UUIDMixin,
    tenant_context,
)
from kit_db._database import resolve_url

Base = new_base()


class Account(UUIDMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "db_accounts"
    __table_args__ = (UniqueConstraint("email"),)
    email: Mapped[str]
    handle: Mapped[str] = mapped_column(unique=True, default=lambda: uuid.uuid4().hex)


class Item(UUIDMixin, TenantScopedMixin, SoftDeleteMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "db_items"
    name: Mapped[str]


@pytest.fixture
def db(make_db: Callable[..., Database]) -> Database:
    return make_db(Base.metadata)


# -- URLs and drivers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///x.db", "sqlite+pysqlite"),
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("mysql://u@h/db", "mysql+pymysql"),
        ("mariadb://u@h/db", "mariadb+pymysql"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg"),
    ],
)
def test_default_drivers(url: str, driver: str) -> None:
    assert resolve_url(url, use_async=False).drivername == driver


def test_async_default_drivers_and_utf8mb4() -> None:
    assert resolve_url("postgresql://u@h/db", use_async=True).drivername == "postgresql+asyncpg"
    assert resolve_url("mysql://u@h/db", use_async=True).drivername == "mysql+aiomysql"
    assert resolve_url("sqlite:///x.db", use_async=True).drivername == "sqlite+aiosqlite"
    assert resolve_url("mysql://u@h/db", use_async=False).query["charset"] == "utf8mb4"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "invalid database URL"),
        ("oracle://u@h/db", "unsupported database 'oracle'"),
        ("", "invalid database URL"),
    ],
)
def test_bad_urls_fail_at_construction(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Database(url)


def test_a_missing_driver_names_the_extra() -> None:
    with pytest.raises(MissingDriver, match=r"kit-db\[postgres\]") as info:
        Database("postgresql+pg8000://u:secret@h/db")
    assert "secret" not in str(info.value)
    assert isinstance(info.value, ImportError)
    with pytest.raises(MissingDriver, match=r"kit-db\[mysql\]"):
        Database("mysql+mysqldb://u@h/db")


def test_bad_engine_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="engine options"):
        Database("sqlite://", pool_size="huge")


def test_the_default_url_is_a_local_sqlite_file(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = Database()
    assert db.url.database == "kit.db" and db.dialect == "sqlite"
    assert db.ping()
    db.dispose()
    assert (tmp_path / "kit.db").exists()


# -- SQLite defaults ---------------------------------------------------------------------------


def test_sqlite_defaults(tmp_path: Any) -> None:
    db = Database(f"sqlite:///{tmp_path}/d.db")
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    db.dispose()


def test_in_memory_sqlite_is_shared_between_sessions() -> None:
    db = Database("sqlite://")
    Base.metadata.create_all(db.engine)
    with db.begin() as session:
        session.add(Account(email="a@example.com"))
    with db.session() as session:
        assert session.scalars(select(Account.email)).all() == ["a@example.com"]
    db.dispose()


def test_sqlite_savepoints_really_roll_back(tmp_path: Any) -> None:
    db = Database(f"sqlite:///{tmp_path}/s.db")
    Base.metadata.create_all(db.engine)
    with db.engine.connect() as connection:
        outer = connection.begin()
        nested = connection.begin_nested()
        connection.execute(
            Account.__table__.insert().values(id=uuid.uuid4(), email="x", handle="h")
        )
        nested.commit()  # RELEASE SAVEPOINT
        outer.rollback()
    with db.session() as session:
        assert session.scalars(select(Account)).all() == []
    db.dispose()


# -- health and failure ------------------------------------------------------------------------


def test_ping(db: Database) -> None:
    assert db.ping() is True


def test_database_down_ping_false_and_operations_raise_kit_errors() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = Database(
        f"postgresql://postgres@127.0.0.1:{port}/nothing", connect_args={"connect_timeout": 1}
    )
    assert db.ping(timeout=2) is False
    with pytest.raises(DatabaseUnavailable) as info, db.session() as session:
        session.execute(text("SELECT 1"))
    assert isinstance(info.value, KitDBError)
    assert info.value.__cause__ is not None
    db.dispose()


def test_ping_gives_up_at_its_timeout() -> None:
    """A server that accepts TCP but never answers: ping returns False instead of hanging."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        db = Database(f"postgresql://postgres@127.0.0.1:{port}/nothing")
        assert db.ping(timeout=0.5) is False
        db.engine.pool.dispose()


# -- error translation -------------------------------------------------------------------------


def test_unique_violations_are_conflicts_naming_the_constraint(db: Database) -> None:
    with db.begin() as session:
        session.add(Account(email="dup@example.com", handle="one"))
    with pytest.raises(Conflict) as info, db.begin() as session:
        session.add(Account(email="dup@example.com", handle="two"))
    assert info.value.constraint == "uq_db_accounts_email"
    with pytest.raises(Conflict) as info, db.begin() as session:
        session.add(Account(email="other@example.com", handle="one"))
    assert info.value.constraint in ("uq_db_accounts_handle", "db_accounts_handle_key")


# -- async ----------------------------------------------------------------------------------


@pytest.fixture
async def adb(make_async_db: Callable[..., Any]) -> Any:
    return await make_async_db(Base.metadata)


async def test_async_database_scopes_and_translates(adb: AsyncDatabase) -> None:
    assert await adb.ping() is True
    with tenant_context("acme"):
        async with adb.begin() as session:
            session.add_all([Item(name="a"), Item(name="b")])
        async with adb.begin() as session:
            item = (await session.scalars(select(Item).where(Item.name == "b"))).one()
            item.soft_delete()
        async with adb.session() as session:
            assert [i.name for i in await session.scalars(select(Item))] == ["a"]
    with tenant_context("globex"):
        async with adb.session() as session:
            assert (await session.scalars(select(Item))).all() == []
    async with adb.begin() as session:
        session.add(Account(email="same@example.com"))
    with pytest.raises(Conflict):
        async with adb.begin() as session:
            session.add(Account(email="same@example.com"))


async def test_async_database_down() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adb = AsyncDatabase(f"postgresql://postgres@127.0.0.1:{port}/nothing")
    assert await adb.ping(timeout=2) is False
    await adb.dispose()


class Event(UUIDMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "db_events"
    at: Mapped[dt.datetime]


def test_a_missing_table_is_not_an_outage(db: Database) -> None:
    with db.session() as session:
        with pytest.raises(Exception) as info:
            session.execute(text("SELECT * FROM no_such_table"))
        assert not isinstance(info.value, DatabaseUnavailable)
        session.rollback()
        assert session.execute(text("SELECT 1")).scalar_one() == 1


def test_naive_datetimes_are_refused_with_kit_errors(db: Database) -> None:
    with db.session() as session:
        session.add(Event(at=dt.datetime(2026, 1, 1)))
        with pytest.raises(ConfigurationError, match="naive datetime"):
            session.commit()
        session.rollback()
        session.add(Event(at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))))
        session.commit()
        stored = session.scalars(select(Event)).one()
        session.expire_all()
        assert session.scalars(select(Event)).one().at == dt.datetime(
            2025, 12, 31, 22, tzinfo=dt.UTC
        )
        assert stored.id is not None


async def test_async_postgresql_refused_connection_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adb = AsyncDatabase(f"postgresql+asyncpg://nobody@127.0.0.1:{port}/nowhere")
    with pytest.raises(DatabaseUnavailable):
        async with adb.session() as session:
            await session.execute(text("SELECT 1"))
    await adb.dispose()
