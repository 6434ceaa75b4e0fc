"""Alembic migrations with kit-db's defaults: a thin layer over :mod:`alembic.command`.

:func:`init` creates an ordinary Alembic project: ``alembic.ini`` next to the migrations
directory and an ``env.py`` wired to your models' metadata, with ``compare_type=True``,
batch mode (``render_as_batch``) on SQLite and kit-db's URL handling. Nothing is forked:
plain ``alembic upgrade head`` keeps working, and so do :func:`upgrade`, :func:`downgrade`,
:func:`revision` and :func:`current` here, the ``kit-db`` console script and
``flask kit-db``.

The database comes from, first found: the URL or :class:`~kit_db.Database` passed to a
function here, ``alembic -x url=...``, the ``KIT_DB_URL`` environment variable, then
``sqlalchemy.url`` in ``alembic.ini``. Async URLs (``postgresql+asyncpg://``, ...) run with
the matching sync driver, so an async app migrates with its own URL.

Example::

    from kit_db import migrations

    migrations.init("migrations", metadata="myapp.models:Model.metadata")
    migrations.revision("create users", "sqlite:///app.db")  # autogenerate from the models
    migrations.upgrade("sqlite:///app.db")                   # to "head"
    migrations.current("sqlite:///app.db")                   # ('3f2a...',)
    migrations.downgrade("sqlite:///app.db", "base")
"""

from __future__ import annotations

import argparse
import importlib
import io
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import URL, Connection, MetaData
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator, TypeEngine

import kit_db

from ._database import AsyncDatabase, Database
from .exceptions import ConfigurationError, KitDBError

try:
    from alembic import command
    from alembic.autogenerate.api import AutogenContext
    from alembic.config import Config
    from alembic.operations.ops import DropIndexOp, DropTableOp, ModifyTableOps
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError
except ImportError as exc:  # pragma: no cover - exercised by the CI session without Alembic
    raise ImportError('kit_db.migrations needs Alembic: pip install "kit-db[migrations]"') from exc

__all__ = [
    "DEFAULT_DIRECTORY",
    "MigrationError",
    "current",
    "downgrade",
    "heads",
    "init",
    "migration_connection",
    "process_revision_directives",
    "render_item",
    "revision",
    "upgrade",
]

DEFAULT_DIRECTORY = "migrations"
"""Where migrations live unless told otherwise (relative to the working directory)."""

DatabaseArg = str | URL | Database | AsyncDatabase | None
"""A database URL, a :class:`~kit_db.Database` or :class:`~kit_db.AsyncDatabase`, or None
(``KIT_DB_URL``, then ``sqlalchemy.url`` in alembic.ini)."""

_METADATA_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_SYNC_BACKEND_ONLY = {"aiosqlite", "asyncpg", "aiomysql", "asyncmy", "psycopg_async"}


class MigrationError(KitDBError, CommandError):
    """A migration command failed: bad directory or revision, missing URL, several heads, ...

    Also an :class:`alembic.util.CommandError`, so the ``alembic`` command line prints it as
    a one-line ``FAILED:`` message when ``env.py`` raises it.
    """


# --------------------------------------------------------------------------- env.py helpers


def _sync_url(url: str | URL) -> URL:
    """``url`` with an async driver swapped for kit-db's sync driver of the same database."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # ArgumentError, ValueError: the message says what is wrong
        raise MigrationError(f"invalid database URL: {exc}") from None
    driver = parsed.get_driver_name() if "+" in parsed.drivername else ""
    if driver in _SYNC_BACKEND_ONLY:
        parsed = parsed.set(drivername=parsed.get_backend_name())
    return parsed


def _sqlite_foreign_keys(connection: Connection, on: bool) -> None:
    # Outside any transaction (PRAGMA foreign_keys is a no-op inside one); the DBAPI
    # connection runs in autocommit mode under kit-db's SQLite settings.
    dbapi_connection: Any = connection.connection.driver_connection
    dbapi_connection.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


@contextmanager
def _transaction(database: Database) -> Iterator[Connection]:
    with database.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # batch operations copy and drop tables; with foreign keys on, dropping a
            # referenced table deletes (or refuses for) its children (Alembic's advice)
            _sqlite_foreign_keys(connection, False)
        try:
            with connection.begin():
                yield connection
        finally:
            if sqlite and not connection.invalidated:
                _sqlite_foreign_keys(connection, True)


@contextmanager
def migration_connection(url_or_db: DatabaseArg) -> Iterator[Connection]:
    """A connection in a transaction, committed on success, for running migrations.

    A URL gets kit-db's drivers and settings (``postgresql://`` is psycopg, MySQL gets
    ``utf8mb4``, async drivers become their sync twins) and a throwaway engine; a
    :class:`~kit_db.Database` lends its engine. On SQLite, foreign keys are off while the
    migrations run, as Alembic's batch mode needs. ``env.py`` files made by :func:`init`
    call this; raises :class:`MigrationError` when ``url_or_db`` is None or invalid.

    Example::

        with migration_connection("sqlite:///app.db") as connection:
            connection.exec_driver_sql("SELECT 1")
    """
    if url_or_db is None or url_or_db == "":
        raise MigrationError(
            "no database URL: set KIT_DB_URL, pass --url (kit-db) or -x url=... (alembic), "
            "or set sqlalchemy.url in alembic.ini"
        )
    if isinstance(url_or_db, Database):
        with _transaction(url_or_db) as connection:
            yield connection
        return
    url = url_or_db.url if isinstance(url_or_db, AsyncDatabase) else url_or_db
    sync_url = _sync_url(url)
    in_memory = sync_url.get_backend_name() == "sqlite" and sync_url.database in (
        None,
        "",
        ":memory:",
    )
    try:
        options: dict[str, Any] = {} if in_memory else {"poolclass": NullPool}
        database = Database(sync_url, **options)
    except ConfigurationError as exc:
        raise MigrationError(str(exc)) from exc
    try:
        with _transaction(database) as connection:
            yield connection
    finally:
        database.dispose()


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Alembic ``render_item`` hook: kit-db column types render as ``kit_db.UTCDateTime()``
    (with ``import kit_db`` added to the migration) rather than a private module path.

    Example::

        context.configure(connection=connection, target_metadata=metadata,
                          render_item=render_item)
    """
    if type_ != "type" or not isinstance(obj, TypeEngine):
        return False
    cls = type(obj)
    if cls.__module__.split(".")[0] != "kit_db" or getattr(kit_db, cls.__name__, None) is not cls:
        return False
    autogen_context.imports.add("import kit_db")
    if isinstance(obj, TypeDecorator) and "__init__" not in vars(cls):
        return f"kit_db.{cls.__name__}()"  # its arguments only describe the fixed impl
    return f"kit_db.{obj!r}"


def process_revision_directives(context: Any, revision: Any, directives: list[Any]) -> None:
    """Alembic ``process_revision_directives`` hook: leave out ``drop_index`` operations on
    a table the same migration drops.

    Dropping a table drops its indexes on every database, and MySQL/MariaDB refuse to drop
    the index of a foreign key column first ("needed in a foreign key constraint"), which
    breaks the downgrade Alembic writes for ``ForeignKey(..., index=True)`` columns.

    Example::

        context.configure(connection=connection, target_metadata=metadata,
                          process_revision_directives=process_revision_directives)
    """
    for script in directives:
        for ops in (getattr(script, "upgrade_ops", None), getattr(script, "downgrade_ops", None)):
            if ops is not None:
                ops.ops = _without_redundant_drop_index(ops.ops)


def _without_redundant_drop_index(ops: list[Any]) -> list[Any]:
    dropped = {(op.schema, op.table_name) for op in ops if isinstance(op, DropTableOp)}
    kept: list[Any] = []
    for op in ops:
        if isinstance(op, DropIndexOp) and (op.schema, op.table_name) in dropped:
            continue
        if isinstance(op, ModifyTableOps) and (op.schema, op.table_name) in dropped:
            op.ops = [inner for inner in op.ops if not isinstance(inner, DropIndexOp)]
            if not op.ops:
                continue
        kept.append(op)
    return kept


# --------------------------------------------------------------------------- env.py template

_ENV_PY = '''\
"""Alembic environment created by ``kit-db init``: ``alembic``, ``kit-db`` and
``flask kit-db`` all run it.

The database, first found: the connection kit-db hands over (``kit_db.migrations.upgrade(db)``,
``flask kit-db upgrade``), ``alembic -x url=...``, the ``KIT_DB_URL`` environment variable,
``sqlalchemy.url`` in alembic.ini. URLs get kit-db's drivers and settings; async URLs run
with the sync driver.

This file is yours: import more models, filter objects, add options.
"""

import os
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from kit_db.migrations import (
    MigrationError,
    migration_connection,
    process_revision_directives,
    render_item,
)

import {module} as _models_module

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# The MetaData autogenerate compares the database with; every model must be imported.
target_metadata = _models_module.{attribute}


def database_url() -> Any:
    return (
        context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("KIT_DB_URL")
        or config.get_main_option("sqlalchemy.url")
        or None
    )


def configure(dialect: str, **options: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,  # column type changes show up in autogenerate
        render_as_batch=dialect == "sqlite",  # SQLite alters tables by copying them
        render_item=render_item,  # kit-db types render as kit_db.UTCDateTime()
        # no drop_index before drop_table: MySQL refuses it for foreign key columns
        process_revision_directives=process_revision_directives,
        **options,
    )


def run_migrations_offline() -> None:
    """``--sql``: write the SQL instead of running it."""
    url = database_url()
    if not url:
        raise MigrationError("no database URL: set KIT_DB_URL or pass -x url=...")
    url = make_url(url)
    configure(
        url.get_backend_name(),
        url=url,
        literal_binds=True,
        dialect_opts={{"paramstyle": "named"}},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations(connection: Connection) -> None:
    configure(connection.dialect.name, connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    with migration_connection(database_url()) as connection:
        run_migrations(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''


# --------------------------------------------------------------------------- configuration


def _ini_path(directory: Path) -> Path:
    return directory.parent / "alembic.ini"


def _config(directory: str | os.PathLike[str], *, connection: Connection | None = None) -> Config:
    path = Path(directory)
    ini = _ini_path(path)
    config = Config(
        ini if ini.is_file() else None,
        stdout=io.StringIO(),
        cmd_opts=argparse.Namespace(quiet=True, x=[]),
    )
    # configparser interpolation: a literal % in a path is %%
    config.set_main_option("script_location", str(path).replace("%", "%%"))
    # env.py leaves the process's logging alone: kit-db reports progress itself
    config.attributes["configure_logger"] = False
    if connection is not None:
        config.attributes["connection"] = connection
    return config


class _RunningOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage().startswith("Running ")


@contextmanager
def _progress(quiet: bool) -> Iterator[None]:
    """Unless quiet, show Alembic's "Running upgrade a -> b" lines on stderr, without
    configuring the process's logging."""
    if quiet:
        yield
        return
    logger = logging.getLogger("alembic.runtime.migration")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(_RunningOnly())
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _script(config: Config) -> ScriptDirectory:
    try:
        return ScriptDirectory.from_config(config)
    except CommandError as exc:
        location = config.get_main_option("script_location")
        raise MigrationError(
            f"no migrations in {location!r}: {exc}. Create them with kit-db init "
            "(or kit_db.migrations.init)"
        ) from None


def _check_directory(directory: str | os.PathLike[str]) -> None:
    path = Path(directory)
    if not (path / "env.py").is_file():
        raise MigrationError(
            f"{str(path)!r} is not a migrations directory (no env.py): create it with "
            f"kit-db init --directory {path} --metadata package.module:Model.metadata, "
            "or pass the right --directory"
        )


@contextmanager
def _commands(
    url_or_db: DatabaseArg, directory: str | os.PathLike[str], *, quiet: bool = True
) -> Iterator[Config]:
    """A Config for ``directory`` whose env.py runs on ``url_or_db`` (or finds its own URL);
    Alembic and import errors come out as :class:`MigrationError`."""
    _check_directory(directory)
    try:
        with _progress(quiet):
            if url_or_db is None:
                yield _config(directory)
                return
            with migration_connection(url_or_db) as connection:
                yield _config(directory, connection=connection)
    except KitDBError:
        raise
    except CommandError as exc:
        raise MigrationError(str(exc)) from exc
    except ImportError as exc:  # env.py could not import the models
        raise MigrationError(f"the migrations' env.py failed to import: {exc}") from exc


# --------------------------------------------------------------------------- commands


def _check_metadata_path(metadata: str) -> tuple[str, str]:
    if not isinstance(metadata, str) or not _METADATA_PATH.match(metadata):
        raise ConfigurationError(
            f"metadata must be an import path like 'myapp.models:Model.metadata' "
            f"(module, colon, attribute), got {metadata!r}"
        )
    module, attribute = metadata.split(":", 1)
    return module, attribute


def _load_metadata(module: str, attribute: str) -> MetaData:
    try:
        found: Any = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import {module!r} for the migrations' metadata: {exc}. Run from the "
            "project root, or pass check=False if it is importable only later"
        ) from None
    for name in attribute.split("."):
        try:
            found = getattr(found, name)
        except AttributeError:
            raise ConfigurationError(f"{module}:{attribute}: {name!r} not found") from None
    if not isinstance(found, MetaData):
        raise ConfigurationError(
            f"{module}:{attribute} is a {type(found).__name__}, not a sqlalchemy MetaData; "
            "point at your declarative base's metadata, e.g. myapp.models:Model.metadata"
        )
    return found


def init(
    directory: str | os.PathLike[str] = DEFAULT_DIRECTORY,
    *,
    metadata: str,
    check: bool = True,
) -> Path:
    """Create an Alembic migrations environment in ``directory`` wired to ``metadata``.

    ``metadata`` is an import path, ``"package.module:Model.metadata"``, written into
    ``env.py`` (``check=True`` imports it now to catch typos). ``alembic.ini`` goes in the
    directory's parent (the project root) with ``script_location = %(here)s/<directory>``,
    so ``alembic upgrade head`` works from there. ``sqlalchemy.url`` is left empty: set
    ``KIT_DB_URL`` rather than writing credentials into the file. Returns the ini path.
    Raises :class:`MigrationError` if the directory is not empty or an ``alembic.ini``
    already exists there.

    Example::

        init("migrations", metadata="myapp.models:Model.metadata")
    """
    module, attribute = _check_metadata_path(metadata)
    if check:
        _load_metadata(module, attribute)
    path = Path(directory)
    ini = _ini_path(path)
    if ini.exists():
        raise MigrationError(
            f"{ini} already exists: kit-db init creates a new Alembic project; remove it or "
            "pick another directory"
        )
    config = Config(ini, stdout=io.StringIO(), cmd_opts=argparse.Namespace(quiet=True, x=[]))
    try:
        # Alembic reports every file on stdout, even when quiet, and says to edit
        # alembic.ini, which kit-db already did
        with redirect_stdout(io.StringIO()):
            command.init(config, str(path), template="generic")
    except CommandError as exc:
        raise MigrationError(str(exc)) from exc
    (path / "env.py").write_text(
        _ENV_PY.format(module=module, attribute=attribute), encoding="utf-8"
    )
    text = ini.read_text(encoding="utf-8")
    location = "%(here)s/" + path.name.replace("%", "%%")
    text = re.sub(r"(?m)^script_location = .*$", lambda _: f"script_location = {location}", text)
    text = re.sub(r"(?m)^prepend_sys_path = \.$", "prepend_sys_path = %(here)s", text)
    text = re.sub(
        r"(?m)^sqlalchemy\.url = .*$",
        "# Leave empty and set KIT_DB_URL (or run alembic -x url=...): credentials stay out\n"
        "# of version control. kit-db picks the driver: postgresql://, mysql://, sqlite:///.\n"
        "sqlalchemy.url =",
        text,
    )
    ini.write_text(text, encoding="utf-8")
    return ini


def upgrade(
    url_or_db: DatabaseArg = None,
    revision: str = "head",
    *,
    directory: str | os.PathLike[str] = DEFAULT_DIRECTORY,
    quiet: bool = True,
) -> None:
    """Apply migrations up to ``revision`` (default ``"head"``).

    Example::

        upgrade("postgresql://app@localhost/app")
        upgrade(db, "ae10")  # a kit_db.Database lends its engine
    """
    with _commands(url_or_db, directory, quiet=quiet) as config:
        command.upgrade(config, revision)


def downgrade(
    url_or_db: DatabaseArg = None,
    revision: str = "-1",
    *,
    directory: str | os.PathLike[str] = DEFAULT_DIRECTORY,
    quiet: bool = True,
) -> None:
    """Revert migrations down to ``revision``: ``"-1"`` (default, one step), a revision id,
    or ``"base"`` (everything).

    Example::

        downgrade("sqlite:///app.db", "base")
    """
    with _commands(url_or_db, directory, quiet=quiet) as config:
        command.downgrade(config, revision)


def revision(
    message: str,
    url_or_db: DatabaseArg = None,
    *,
    autogenerate: bool = True,
    directory: str | os.PathLike[str] = DEFAULT_DIRECTORY,
    rev_id: str | None = None,
    quiet: bool = True,
) -> Path:
    """Write a new migration script and return its path.

    With ``autogenerate`` (the default) Alembic compares the models' metadata with the
    database (which must be at head) and writes the operations that close the gap; review
    them before committing. ``autogenerate=False`` writes an empty script and needs no
    database.

    Example::

        path = revision("add users.last_login", "sqlite:///app.db")
    """
    if not isinstance(message, str) or not message.strip():
        raise ConfigurationError("a migration needs a message, e.g. 'add users.last_login'")
    with _commands(
        url_or_db if autogenerate else None,
        directory,
        quiet=quiet,
    ) as config:
        scripts = command.revision(
            config, message=message, autogenerate=autogenerate, rev_id=rev_id
        )
    script = scripts[0] if isinstance(scripts, list) else scripts
    if script is None:  # pragma: no cover - only with process_revision_directives
        raise MigrationError("Alembic wrote no migration script")
    return Path(script.path)


def current(
    url_or_db: DatabaseArg = None,
    *,
    directory: str | os.PathLike[str] = DEFAULT_DIRECTORY,
) -> tuple[str, ...]:
    """The revision ids the database is at (empty before the first upgrade).

    Example::

        if current(db) != heads():
            raise SystemExit("run kit-db upgrade first")
    """
    found: list[str] = []
    with _commands(url_or_db, directory) as config:
        script = _script(config)

        def collect(rev: Any, _context: Any) -> list[Any]:
            found.extend(r.revision for r in script.get_all_current(rev) if r is not None)
            return []

        with EnvironmentContext(config, script, fn=collect, dont_mutate=True):
            script.run_env()
    return tuple(sorted(found))


def heads(*, directory: str | os.PathLike[str] = DEFAULT_DIRECTORY) -> tuple[str, ...]:
    """The head revision ids of the migration scripts (no database needed).

    Example::

        heads()  # ('3f2a9c1d0b7e',)
    """
    _check_directory(directory)
    config = _config(directory)
    return tuple(sorted(_script(config).get_heads()))
