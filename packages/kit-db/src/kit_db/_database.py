"""Engines and sessions: :class:`Database` (sync) and :class:`AsyncDatabase` (asyncio)."""

from __future__ import annotations

import asyncio
import re
import socket
import weakref
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from sqlalchemy import URL, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import StaticPool

from ._scoping import KitSession
from .exceptions import (
    ConfigurationError,
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    MissingDriver,
)

__all__ = ["DEFAULT_URL", "AsyncDatabase", "Database"]

DEFAULT_URL = "sqlite:///kit.db"
"""A SQLite file in the working directory: the embedded default."""

_SYNC_DRIVERS = {
    "postgresql": "psycopg",
    "mysql": "pymysql",
    "mariadb": "pymysql",
    "sqlite": "pysqlite",
}
_ASYNC_DRIVERS = {
    "postgresql": "asyncpg",
    "mysql": "aiomysql",
    "mariadb": "aiomysql",
    "sqlite": "aiosqlite",
}
_EXTRAS = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}
_UNIQUE_MYSQL = re.compile(r"Duplicate entry .* for key '(?:[^'.]*\.)?([^']+)'")
_UNIQUE_SQLITE = re.compile(r"UNIQUE constraint failed: (.+)$")

#: Metadata kit-db searches to name the constraint behind a SQLite unique violation.
registered_metadata: list[MetaData] = []


def mask(url: URL | str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return "<unparseable URL>"


def resolve_url(url: str | URL, *, use_async: bool) -> URL:
    """Parse ``url`` and pick kit-db's driver when the URL names none."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"invalid database URL {url!r}: {exc}; expected e.g. sqlite:///app.db, "
            "postgresql://user@host/db or mysql://user@host/db"
        ) from None
    backend = parsed.get_backend_name()
    drivers = _ASYNC_DRIVERS if use_async else _SYNC_DRIVERS
    if backend not in drivers:
        raise ConfigurationError(
            f"unsupported database {backend!r} in {mask(parsed)}: kit-db supports "
            "sqlite, postgresql, mysql and mariadb"
        )
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=f"{backend}+{drivers[backend]}")
    if backend in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def _extra_for(url: URL, use_async: bool) -> str:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return "sqlite-async" if use_async else "all"
    return _EXTRAS.get(backend, "all")


def _engine_options(url: URL, options: dict[str, Any]) -> dict[str, Any]:
    merged = dict(options)
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database in (None, "", ":memory:"):
            # one shared connection, or every session would see its own empty database
            merged.setdefault("poolclass", StaticPool)
            merged.setdefault("connect_args", {}).setdefault("check_same_thread", False)
    else:
        merged.setdefault("pool_pre_ping", True)
        if backend in ("mysql", "mariadb"):
            merged.setdefault("pool_recycle", 3600)
    return merged


def _sqlite_defaults(engine: Engine, url: URL) -> None:
    """Foreign keys, WAL, a busy timeout, and SAVEPOINTs that really roll back.

    pysqlite's legacy transaction handling does not roll back released SAVEPOINTs; kit-db
    takes over ``BEGIN`` itself (SQLAlchemy's documented recipe), so nested transactions and
    per-test rollbacks isolate on SQLite as they do on servers.
    """
    in_memory = url.database in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")


def _constraint_for_sqlite(columns: str) -> str:
    """Map SQLite's ``table.col, table.col2`` to the constraint or index name in metadata."""
    pairs = [c.strip().split(".", 1) for c in columns.split(",")]
    if not all(len(p) == 2 for p in pairs):
        return columns
    table_name = pairs[0][0]
    wanted = {p[1] for p in pairs}
    for metadata in registered_metadata:
        table = metadata.tables.get(table_name)
        if table is None:
            continue
        candidates: list[Any] = [*table.constraints, *table.indexes]
        for candidate in candidates:
            names = {c.name for c in getattr(candidate, "columns", [])}
            if names == wanted and getattr(candidate, "name", None):
                return str(candidate.name)
    return columns


def _constraint_name(exc: IntegrityError) -> str | None:
    orig: Any = exc.orig
    diag = getattr(orig, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return str(diag.constraint_name)
    cause = getattr(orig, "__cause__", None)
    if cause is not None and getattr(cause, "constraint_name", None):
        return str(cause.constraint_name)
    message = str(orig)
    found = _UNIQUE_MYSQL.search(message)
    if found:
        return found.group(1)
    found = _UNIQUE_SQLITE.search(message)
    if found:
        return _constraint_for_sqlite(found.group(1))
    return None


def _is_unique_violation(exc: IntegrityError) -> bool:
    orig: Any = exc.orig
    code = str(getattr(orig, "sqlstate", "") or getattr(orig, "pgcode", "") or "")
    args = getattr(orig, "args", ())
    mysql_code = args[0] if args and isinstance(args[0], int) else None
    message = str(orig)
    return (
        code == "23505"
        or mysql_code == 1062
        or "UNIQUE constraint failed" in message
        or "duplicate key value" in message
        or "Duplicate entry" in message
        or type(getattr(orig, "__cause__", None)).__name__ == "UniqueViolationError"
    )


def translate(exc: BaseException, *, unreachable: bool = False) -> BaseException | None:
    """kit-db's exception for a driver error, or None to keep SQLAlchemy's.

    ``unreachable`` says the error came from connecting or from a dropped connection; only
    those become :class:`DatabaseUnavailable` (a missing table is an ``OperationalError``
    on SQLite too, and is not an outage).
    """
    if isinstance(exc, IntegrityError):
        if _is_unique_violation(exc):
            name = _constraint_name(exc)
            shown = f" {name!r}" if name else ""
            error = Conflict(f"unique constraint{shown} violated: {exc.orig}", constraint=name)
            error.__cause__ = exc
            return error
        return None
    if isinstance(exc, DBAPIError) and (unreachable or exc.connection_invalidated):
        unavailable = DatabaseUnavailable(f"the database failed: {exc.orig}")
        unavailable.__cause__ = exc
        return unavailable
    return None


def _install_error_translation(engine: Engine) -> None:
    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        # asyncpg raises the operating system's connection errors unwrapped, and they
        # bypass handle_error: translate them where the connection is made
        try:
            return dialect.connect(*cargs, **cparams)
        except (ConnectionError, socket.gaierror, TimeoutError) as exc:
            raise DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc

    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> BaseException | None:
        if context.is_pre_ping:
            return None
        if context.sqlalchemy_exception is None:
            return None
        unreachable = bool(context.is_disconnect) or (
            context.connection is None
            and isinstance(context.sqlalchemy_exception, OperationalError)
        )
        return translate(context.sqlalchemy_exception, unreachable=unreachable)


def _missing_driver(url: URL, exc: BaseException, use_async: bool) -> MissingDriver:
    extra = _extra_for(url, use_async)
    return MissingDriver(
        f'cannot use {mask(url)}: {exc}. Install the driver: pip install "kit-db[{extra}]"'
    )


class Database:
    """A SQLAlchemy engine and session factory with kit-db's defaults.

    Sessions filter soft-deleted rows and scope tenant models (see :mod:`kit_db.mixins`).

    Example::

        >>> from kit_db import Database
        >>> db = Database("sqlite://")  # in memory; the default is a file, sqlite:///kit.db
        >>> with db.session() as session:
        ...     session.scalar(text("select 1"))
        1
        >>> db.ping()
        True
    """

    def __init__(self, url: str | URL = DEFAULT_URL, *, echo: bool = False, **engine_options: Any):
        self.url = resolve_url(url, use_async=False)
        try:
            self.engine: Engine = create_engine(
                self.url, echo=echo, **_engine_options(self.url, engine_options)
            )
        except (NoSuchModuleError, ImportError) as exc:
            raise _missing_driver(self.url, exc, False) from exc
        except (ArgumentError, TypeError) as exc:
            raise ConfigurationError(f"invalid engine options for {mask(self.url)}: {exc}") from exc
        if self.url.get_backend_name() == "sqlite":
            _sqlite_defaults(self.engine, self.url)
        _install_error_translation(self.engine)
        self.sessionmaker = sessionmaker(self.engine, class_=KitSession, expire_on_commit=False)
        self.dialect = self.engine.dialect.name
        # a Database dropped without dispose() still closes its pooled connections
        weakref.finalize(self, self.engine.dispose)

    def __repr__(self) -> str:
        return f"Database({mask(self.url)!r})"

    @contextmanager
    def session(self) -> Iterator[KitSession]:
        """A session closed on exit; commit explicitly, or use :meth:`begin`."""
        with self.sessionmaker() as session:
            yield session

    @contextmanager
    def begin(self) -> Iterator[KitSession]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self.sessionmaker.begin() as session:
            yield session

    def ping(self, timeout: float = 2.0) -> bool:
        """True if ``SELECT 1`` answers within ``timeout`` seconds."""

        def probe() -> bool:
            with self.engine.connect() as connection:
                return bool(connection.execute(text("SELECT 1")).scalar_one() == 1)

        pool = ThreadPoolExecutor(1, thread_name_prefix="kit-db-ping")
        try:
            return pool.submit(probe).result(timeout=timeout)
        except (FutureTimeout, DBAPIError, DatabaseError, OSError):
            return False
        finally:
            pool.shutdown(wait=False)

    def create_all(self, metadata: MetaData | None = None) -> None:
        """Create every table of ``metadata`` (default: :class:`kit_db.Model`'s)."""
        from ._model import Model

        (metadata or Model.metadata).create_all(self.engine)

    def drop_all(self, metadata: MetaData | None = None) -> None:
        """Drop every table of ``metadata`` (default: :class:`kit_db.Model`'s)."""
        from ._model import Model

        (metadata or Model.metadata).drop_all(self.engine)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


class AsyncDatabase:
    """The asyncio twin of :class:`Database` (aiosqlite, asyncpg, aiomysql).

    Example::

        db = AsyncDatabase("postgresql://app@localhost/app")
        async with db.begin() as session:
            session.add(user)
        assert await db.ping()
    """

    def __init__(
        self,
        url: str | URL = "sqlite+aiosqlite:///kit.db",
        *,
        echo: bool = False,
        **engine_options: Any,
    ):
        self.url = resolve_url(url, use_async=True)
        try:
            self.engine: AsyncEngine = create_async_engine(
                self.url, echo=echo, **_engine_options(self.url, engine_options)
            )
        except (NoSuchModuleError, ImportError, ValueError) as exc:
            if isinstance(exc, ValueError) and "greenlet" not in str(exc).lower():
                raise ConfigurationError(
                    f"invalid engine options for {mask(self.url)}: {exc}"
                ) from exc
            raise _missing_driver(self.url, exc, True) from exc
        except (ArgumentError, TypeError) as exc:
            raise ConfigurationError(f"invalid engine options for {mask(self.url)}: {exc}") from exc
        if self.url.get_backend_name() == "sqlite":
            _sqlite_defaults(self.engine.sync_engine, self.url)
        _install_error_translation(self.engine.sync_engine)
        self.sessionmaker = async_sessionmaker(
            self.engine, class_=AsyncSession, sync_session_class=KitSession, expire_on_commit=False
        )
        self.dialect = self.engine.dialect.name

    def __repr__(self) -> str:
        return f"AsyncDatabase({mask(self.url)!r})"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session closed on exit; commit explicitly, or use :meth:`begin`."""
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on success, rolled back on error."""
        async with self.sessionmaker.begin() as session:
            yield session

    async def ping(self, timeout: float = 2.0) -> bool:
        """True if ``SELECT 1`` answers within ``timeout`` seconds."""

        async def probe() -> bool:
            async with self.engine.connect() as connection:
                return bool((await connection.execute(text("SELECT 1"))).scalar_one() == 1)

        try:
            return await asyncio.wait_for(probe(), timeout)
        except (TimeoutError, DBAPIError, DatabaseError, OSError):
            return False

    async def create_all(self, metadata: MetaData | None = None) -> None:
        """Create every table of ``metadata`` (default: :class:`kit_db.Model`'s)."""
        from ._model import Model

        async with self.engine.begin() as connection:
            await connection.run_sync((metadata or Model.metadata).create_all)

    async def drop_all(self, metadata: MetaData | None = None) -> None:
        """Drop every table of ``metadata`` (default: :class:`kit_db.Model`'s)."""
        from ._model import Model

        async with self.engine.begin() as connection:
            await connection.run_sync((metadata or Model.metadata).drop_all)

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
