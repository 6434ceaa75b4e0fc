"""Flask adapter: the :class:`KitDB` extension, a request-scoped session, ``flask kit-db``
migration commands and problem+json error responses.

Example::

    from flask import Flask
    from sqlalchemy import select
    from kit_db.flask import KitDB

    app = Flask(__name__)
    app.config["KIT_DB_URL"] = "postgresql://app@localhost/app"
    db = KitDB(app)

    @app.post("/users")
    def create_user():
        db.session.add(User(email=request.json["email"]))
        db.session.commit()  # a taken email answers 409 application/problem+json
        return {}, 201

    @app.get("/users")
    def users():
        return [u.email for u in db.session.scalars(select(User))]

and ``flask kit-db upgrade`` / ``downgrade`` / ``revision -m ... --autogenerate`` /
``current`` run the migrations of ``./migrations`` (``kit-db init`` creates them) on the
app's database.
"""

from __future__ import annotations

import functools
import json
import os
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ParamSpec, TypeVar, cast

from sqlalchemy.exc import StatementError
from sqlalchemy.orm import scoped_session

from ._database import Database, resolve_url
from ._problems import PROBLEM_CONTENT_TYPE, kit_error, log_problem, problem_details
from ._scoping import KitSession
from .exceptions import ConfigurationError, KitDBError

try:
    import click
    import flask
    from flask.cli import AppGroup
    from flask.globals import app_ctx
except ImportError as exc:  # pragma: no cover - exercised by the CI session without Flask
    raise ImportError('kit_db.flask needs Flask: pip install "kit-db[flask]"') from exc

__all__ = ["EXTENSION_KEY", "KitDB", "database_from_config", "problem_response"]

EXTENSION_KEY = "kit-db"
"""Where :class:`KitDB` registers itself: ``app.extensions["kit-db"]``."""

P = ParamSpec("P")
R = TypeVar("R")


# --------------------------------------------------------------------------- configuration


def _bad(name: str, exc: Exception | str) -> ConfigurationError:
    return ConfigurationError(f"invalid {name} in app.config: {exc}")


def database_from_config(app: flask.Flask) -> Database:
    """The :class:`~kit_db.Database` described by an app's ``KIT_DB_*`` config.

    ``KIT_DB_URL`` (default: ``sqlite:///<instance_path>/kit.db``, the instance folder is
    created), ``KIT_DB_ECHO`` (bool: log SQL) and ``KIT_DB_ENGINE_OPTIONS`` (a dict of
    :func:`sqlalchemy.create_engine` options, e.g. ``{"pool_size": 10}``). A bad value
    raises :class:`~kit_db.ConfigurationError` naming the key; nothing connects here.

    Example::

        >>> app = flask.Flask("shop")
        >>> app.config["KIT_DB_URL"] = "sqlite://"
        >>> database_from_config(app)
        Database('sqlite+pysqlite://')
    """
    config = app.config
    url = config.get("KIT_DB_URL")
    if url is None or url == "":
        os.makedirs(app.instance_path, exist_ok=True)
        url = f"sqlite:///{os.path.join(app.instance_path, 'kit.db')}"
    try:
        resolve_url(url, use_async=False)
    except ConfigurationError as exc:
        raise _bad("KIT_DB_URL", exc) from None
    echo = config.get("KIT_DB_ECHO", False)
    if not isinstance(echo, bool):
        raise _bad("KIT_DB_ECHO", f"expected True or False, got {echo!r}")
    options = config.get("KIT_DB_ENGINE_OPTIONS") or {}
    if not isinstance(options, Mapping):
        raise _bad(
            "KIT_DB_ENGINE_OPTIONS",
            f"expected a dict of create_engine() options, got {type(options).__name__}",
        )
    try:
        return Database(url, echo=echo, **dict(options))
    except ConfigurationError as exc:
        if isinstance(exc, ImportError):  # MissingDriver: the message names the extra
            raise
        raise _bad("KIT_DB_ENGINE_OPTIONS", exc) from None


# --------------------------------------------------------------------------- problems


def problem_response(exc: KitDBError) -> flask.Response:
    """An RFC 9457 ``application/problem+json`` response for a kit-db error: the error
    handler :class:`KitDB` registers (404, 409 with the ``constraint``, 403, 400, 503; see
    :mod:`kit_db._problems`). A kit-db error SQLAlchemy wrapped in a
    :class:`~sqlalchemy.exc.StatementError` is answered the same way.

    Example::

        app.register_error_handler(KitDBError, problem_response)
        app.register_error_handler(StatementError, _statement_error_response)
    """
    status, body = problem_details(exc)
    log_problem(exc, status)
    return flask.Response(json.dumps(body), status=status, mimetype=PROBLEM_CONTENT_TYPE)


def _statement_error_response(exc: StatementError) -> flask.Response:
    """A kit-db error SQLAlchemy wrapped while preparing a statement; anything else goes
    on to Flask's 500 handling."""
    found = kit_error(exc)
    if found is None:
        raise exc
    return problem_response(found)


# --------------------------------------------------------------------------- extension


@dataclass(slots=True)
class _AppState:
    database: Database
    session: scoped_session[KitSession]


def _current_app() -> flask.Flask:
    return cast(flask.Flask, flask.current_app._get_current_object())  # type: ignore[attr-defined]


def _app_context_id() -> int:
    return id(app_ctx._get_current_object())  # type: ignore[attr-defined]


class KitDB:
    """The Flask extension: a :class:`~kit_db.Database` per app and a session per
    application context (so per request), closed at ``teardown_appcontext``.

    ``KitDB(app)``, or ``KitDB()`` then ``init_app(app)`` in an application factory. A
    ``database=`` given here serves every app; otherwise each app gets the database its
    ``KIT_DB_*`` config describes (:func:`database_from_config`). ``init_app`` also
    registers the problem+json error handler for :class:`~kit_db.KitDBError` and the
    ``flask kit-db`` command group.

    ``ext.session`` is a :class:`~sqlalchemy.orm.scoped_session` of
    :class:`~kit_db.KitSession`: soft delete and tenant scoping apply, nothing commits on
    its own (call ``ext.session.commit()``), and uncommitted work is rolled back when the
    request ends. The migrations directory is ``KIT_DB_MIGRATIONS_DIR`` (default
    ``migrations``, relative to the working directory).

    Example::

        >>> from sqlalchemy import text
        >>> app = flask.Flask("shop")
        >>> app.config["KIT_DB_URL"] = "sqlite://"
        >>> ext = KitDB(app)
        >>> with app.app_context():
        ...     ext.session.scalar(text("SELECT 1"))
        1
    """

    def __init__(self, app: flask.Flask | None = None, *, database: Database | None = None):
        if database is not None and not isinstance(database, Database):
            raise ConfigurationError(
                f"KitDB needs a kit_db.Database, got {type(database).__name__}: Flask views "
                "are synchronous (use kit_db.fastapi for an AsyncDatabase)"
            )
        self._database = database
        self._states: weakref.WeakKeyDictionary[flask.Flask, _AppState] = (
            weakref.WeakKeyDictionary()
        )
        self.app = app
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        """Build (or take) the app's database and session; register the teardown, the
        error handler and the ``kit-db`` CLI group."""
        database = self._database if self._database is not None else database_from_config(app)
        session = scoped_session(database.sessionmaker, scopefunc=_app_context_id)
        self._states[app] = _AppState(database, session)
        app.extensions[EXTENSION_KEY] = self

        def remove_session(_exc: BaseException | None) -> None:
            session.remove()

        app.teardown_appcontext(remove_session)
        app.register_error_handler(KitDBError, problem_response)
        app.register_error_handler(StatementError, _statement_error_response)
        app.cli.add_command(cli)

    def _state(self, app: flask.Flask | None = None) -> _AppState:
        if app is None:
            if flask.has_app_context():
                app = _current_app()
            elif self.app is not None:
                app = self.app
            else:
                raise RuntimeError(
                    "KitDB needs an application context (with app.app_context(): ...) or "
                    "an app passed to KitDB(app)"
                )
        try:
            return self._states[app]
        except KeyError:
            # the app's set-up, not the request, is wrong: a 500, not a problem+json 400
            raise RuntimeError(
                f"KitDB was not initialised for app {app.name!r}: call init_app(app)"
            ) from None

    def database_for(self, app: flask.Flask) -> Database:
        """The :class:`~kit_db.Database` of ``app``."""
        return self._state(app).database

    @property
    def database(self) -> Database:
        """The :class:`~kit_db.Database` of the current app (or of the constructor's)."""
        return self._state().database

    @property
    def session(self) -> scoped_session[KitSession]:
        """The current app's request-scoped session registry; use it like a session:
        ``ext.session.add(obj)``, ``ext.session.commit()``, ``ext.session.scalars(...)``."""
        if not flask.has_app_context():
            raise RuntimeError(
                "KitDB.session needs an application context: inside a request, a CLI "
                "command, or `with app.app_context():`"
            )
        return self._state().session


# --------------------------------------------------------------------------- CLI


def _command(function: Callable[P, R]) -> Callable[P, R]:
    """Run a CLI command with kit-db errors as one-line click errors."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except KitDBError as exc:
            raise click.ClickException(str(exc)) from exc
        except ImportError as exc:  # Alembic missing: the message names the extra
            raise click.ClickException(str(exc)) from exc

    return wrapper


def _context(directory: str | None) -> tuple[Database, str]:
    app = _current_app()
    ext = app.extensions.get(EXTENSION_KEY)
    if not isinstance(ext, KitDB):
        raise ConfigurationError("flask kit-db needs the KitDB extension: KitDB(app)")
    chosen = directory or app.config.get("KIT_DB_MIGRATIONS_DIR") or "migrations"
    return ext.database_for(app), str(chosen)


_directory_option = click.option(
    "--directory",
    "-d",
    default=None,
    help="Migrations directory (default: KIT_DB_MIGRATIONS_DIR or ./migrations).",
)

cli = AppGroup("kit-db", help="Database migrations (Alembic) on the app's kit-db database.")


@cli.command("init")
@click.option(
    "--metadata",
    required=True,
    help="Import path of the models' MetaData, e.g. myapp.models:Model.metadata.",
)
@_directory_option
@_command
def _init_command(metadata: str, directory: str | None) -> None:
    """Create the migrations directory and alembic.ini."""
    from . import migrations

    _, chosen = _context(directory)
    ini = migrations.init(chosen, metadata=metadata)
    click.echo(f"created {chosen}/ and {ini}")


@cli.command("upgrade")
@click.argument("revision", default="head")
@_directory_option
@_command
def _upgrade_command(revision: str, directory: str | None) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from . import migrations

    database, chosen = _context(directory)
    migrations.upgrade(database, revision, directory=chosen, quiet=False)
    click.echo(f"database at {_revisions(migrations.current(database, directory=chosen))}")


@cli.command("downgrade")
@click.argument("revision", default="-1")
@_directory_option
@_command
def _downgrade_command(revision: str, directory: str | None) -> None:
    """Revert migrations down to REVISION (default: -1, one step; base: all)."""
    from . import migrations

    database, chosen = _context(directory)
    migrations.downgrade(database, revision, directory=chosen, quiet=False)
    click.echo(f"database at {_revisions(migrations.current(database, directory=chosen))}")


@cli.command("revision")
@click.option("--message", "-m", required=True, help="What the migration does.")
@click.option(
    "--autogenerate",
    is_flag=True,
    help="Fill it in by comparing the models with the database (which must be at head).",
)
@_directory_option
@_command
def _revision_command(message: str, autogenerate: bool, directory: str | None) -> None:
    """Write a new migration script."""
    from . import migrations

    database, chosen = _context(directory)
    path = migrations.revision(message, database, autogenerate=autogenerate, directory=chosen)
    click.echo(str(path))


@cli.command("current")
@_directory_option
@_command
def _current_command(directory: str | None) -> None:
    """Show the revision the database is at."""
    from . import migrations

    database, chosen = _context(directory)
    found = migrations.current(database, directory=chosen)
    heads = set(migrations.heads(directory=chosen))
    for rev in found:
        click.echo(f"{rev} (head)" if rev in heads else rev)
    if not found:
        click.echo("(none: no migration applied)")


def _revisions(revisions: tuple[str, ...]) -> str:
    return ", ".join(revisions) if revisions else "base (no migration applied)"
