"""kit_db.testing: per-test rollback that really isolates, on SQLite files, PostgreSQL and
MariaDB, sync and async. Each case runs a small test suite of its own in a pytest
subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import Integer, MetaData, String, create_engine, func, inspect, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from kit_db import Database

MODELS = """
from sqlalchemy import MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kit_db import NAMING_CONVENTION


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Item(Base):
    __tablename__ = "plugin_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
"""

CONFTEST = """
import pytest

from plugin_models import Base

pytest_plugins = ["kit_db.testing"]


@pytest.fixture(scope="session")
def kit_db_metadata():
    return Base.metadata
"""

SUITE = """
import pytest
from sqlalchemy import func, select, text

from kit_db import Conflict
from plugin_models import Item


def count(session):
    return session.scalar(select(func.count()).select_from(Item))


def outside(database):
    # a connection of its own, outside the test's transaction: what is really committed
    if database.url.database in (None, "", ":memory:"):
        return 0  # in-memory SQLite has a single connection: the test's
    with database.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(Item)).scalar()


def test_01_commit_rollback_nested_and_a_conflict(db_session, kit_db_connection):
    assert db_session.get_bind() is kit_db_connection
    db_session.add(Item(name="committed"))
    db_session.commit()
    assert count(db_session) == 1
    db_session.add(Item(name="rolled back"))
    db_session.flush()
    db_session.rollback()
    assert count(db_session) == 1
    with db_session.begin_nested():
        db_session.add(Item(name="nested"))
    db_session.commit()
    assert count(db_session) == 2
    db_session.add(Item(name="committed"))
    with pytest.raises(Conflict):
        db_session.commit()
    db_session.rollback()
    assert count(db_session) == 2
    db_session.add(Item(name="after the conflict"))
    db_session.commit()
    assert count(db_session) == 3


def test_02_nothing_left(db_session, kit_db_database):
    assert count(db_session) == 0
    assert outside(kit_db_database) == 0


def test_03_the_database_s_own_sessions_join(kit_db_database, db_session):
    with kit_db_database.begin() as session:
        session.add(Item(name="via begin"))
    with kit_db_database.session() as session:
        session.add(Item(name="via session"))
        session.commit()
        assert count(session) == 2
    assert count(db_session) == 2


def test_04_nothing_left(kit_db_database):
    assert outside(kit_db_database) == 0
    with kit_db_database.session() as session:  # the Database is itself again
        assert session.get_bind() is kit_db_database.engine
        assert count(session) == 0


@pytest.mark.asyncio
async def test_05_async_commit_and_rollback(async_db_session, kit_db_async_database):
    async_db_session.add(Item(name="async"))
    await async_db_session.commit()
    async_db_session.add(Item(name="async rolled back"))
    await async_db_session.flush()
    await async_db_session.rollback()
    async with kit_db_async_database.begin() as session:
        session.add(Item(name="async via begin"))
    assert await async_db_session.scalar(select(func.count()).select_from(Item)) == 2


@pytest.mark.asyncio
async def test_06_async_nothing_left(async_db_session):
    assert await async_db_session.scalar(select(func.count()).select_from(Item)) == 0


def test_07_nothing_left_at_all(kit_db_database):
    assert outside(kit_db_database) == 0
"""

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


def _run(root: Path, files: dict[str, str], *args: str) -> str:
    """Run pytest on ``files`` in ``root``, in a subprocess; return its output.

    A subprocess rather than pytester: pytester's sys.modules restore re-imports psycopg
    under the outer session's feet."""
    root.mkdir(exist_ok=True)
    for name, content in {"pytest.ini": INI, **files}.items():
        (root / name).write_text(textwrap.dedent(content))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return out.stdout + out.stderr


def _suite() -> dict[str, str]:
    return {"plugin_models.py": MODELS, "conftest.py": CONFTEST, "test_suite.py": SUITE}


def _table_exists(url: str) -> bool:
    db = Database(url)
    try:
        return inspect(db.engine).has_table("plugin_items")
    finally:
        db.dispose()


def test_rollback_isolates_on_every_dialect(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIT_DB_TEST_URL", db_url)
    monkeypatch.delenv("KIT_DB_TEST_ASYNC_URL", raising=False)
    output = _run(tmp_path / "suite", _suite())
    assert "7 passed" in output and "failed" not in output and "error" not in output, output
    assert not _table_exists(db_url)  # the session's tables are dropped at the end


def test_default_database_is_a_sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIT_DB_TEST_URL", raising=False)
    monkeypatch.delenv("KIT_DB_TEST_ASYNC_URL", raising=False)
    files = _suite()
    files["test_url.py"] = """
        def test_url(kit_db_url, kit_db_async_url, kit_db_database):
            assert kit_db_url.startswith("sqlite:///") and kit_db_url.endswith("/test.db")
            assert kit_db_async_url.startswith("sqlite+aiosqlite:///")
            assert kit_db_database.dialect == "sqlite"
        """
    output = _run(tmp_path / "suite", files)
    assert "8 passed" in output and "failed" not in output, output


def test_in_memory_sqlite_and_strict_mode_async(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIT_DB_TEST_URL", "sqlite://")
    monkeypatch.delenv("KIT_DB_TEST_ASYNC_URL", raising=False)
    output = _run(tmp_path / "suite", _suite(), "-o", "asyncio_mode=strict")
    assert "7 passed" in output and "failed" not in output, output


def test_overriding_the_url_and_metadata_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KIT_DB_TEST_URL", raising=False)
    url = f"sqlite:///{tmp_path}/own.db"
    conftest = f"""
        import pytest

        pytest_plugins = ["kit_db.testing"]


        @pytest.fixture(scope="session")
        def kit_db_url():
            return {url!r}


        @pytest.fixture(scope="session")
        def kit_db_metadata():
            return None  # the schema is the test's business
        """
    test_own = """
        from sqlalchemy import text


        def test_own_schema(db_session, kit_db_database):
            assert str(kit_db_database.url).endswith("own.db")
            db_session.execute(text("CREATE TABLE own_t (x INTEGER)"))
            db_session.execute(text("INSERT INTO own_t VALUES (1)"))
            db_session.commit()


        def test_schema_rolled_back_too(db_session):
            names = db_session.execute(
                text("SELECT name FROM sqlite_master WHERE name = 'own_t'")
            ).all()
            assert names == []
        """
    output = _run(tmp_path / "suite", {"conftest.py": conftest, "test_own.py": test_own})
    assert "2 passed" in output and "failed" not in output, output


class _Base(DeclarativeBase):
    metadata = MetaData()


class _Row(_Base):
    __tablename__ = "quirk_rows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


def _leftover_after_recipe(engine: object) -> int:
    """Run the per-test rollback recipe (commit inside, roll back outside); count what
    is left in the table afterwards."""
    from sqlalchemy import Engine

    assert isinstance(engine, Engine)
    connection = engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    session.add(_Row(name="inside"))
    session.commit()
    session.close()
    transaction.rollback()
    connection.close()
    with engine.connect() as check:
        return int(check.execute(select(func.count()).select_from(_Row)).scalar_one())


def test_the_sqlite_savepoint_quirk_is_real_and_fixed(tmp_path: Path) -> None:
    """Stock pysqlite keeps the work of a released SAVEPOINT after the outer ROLLBACK (so
    the isolation tests above would fail on it); kit-db's Database does not."""
    stock = create_engine(f"sqlite:///{tmp_path}/stock.db")
    _Base.metadata.create_all(stock)
    try:
        assert _leftover_after_recipe(stock) == 1
    finally:
        stock.dispose()
    db = Database(f"sqlite:///{tmp_path}/kit.db")
    _Base.metadata.create_all(db.engine)
    try:
        assert _leftover_after_recipe(db.engine) == 0
    finally:
        db.dispose()
