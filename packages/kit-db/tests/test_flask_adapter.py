"""kit_db.flask: configuration, the request-scoped session, problem+json responses and the
``flask kit-db`` commands, with Flask's test client and CLI runner."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import flask
import pytest
from _support import new_base
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Mapped, mapped_column

from kit_db import (
    AsyncDatabase,
    ConfigurationError,
    Conflict,
    Database,
    DatabaseError,
    DatabaseUnavailable,
    InvalidCursor,
    KitDBError,
    KitSession,
    MissingDriver,
    NotFound,
    TenantRequired,
    TenantScopedMixin,
    TenantViolation,
    UUIDMixin,
    tenant_context,
)
from kit_db._problems import problem_details
from kit_db.flask import KitDB, database_from_config

Base = new_base()


class User(UUIDMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "flask_users"
    email: Mapped[str] = mapped_column(unique=True)


class Project(UUIDMixin, TenantScopedMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "flask_projects"
    name: Mapped[str] = mapped_column(default="")


class Event(UUIDMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "flask_events"
    at: Mapped[dt.datetime]


PROBLEM = "application/problem+json"


def make_app(ext: KitDB | None = None, **config: Any) -> tuple[flask.Flask, KitDB]:
    app = flask.Flask("kit_db_flask_test")
    app.config.update(TESTING=True, **config)
    if ext is None:
        ext = KitDB(app)
    else:
        ext.init_app(app)

    @app.post("/users")
    def create_user() -> Any:
        body = flask.request.get_json()
        user = User(email=body["email"])
        ext.session.add(user)
        if body.get("commit", True):
            ext.session.commit()
        return {"id": str(user.id)}, 201

    @app.get("/users")
    def list_users() -> Any:
        return sorted(u.email for u in ext.session.scalars(select(User)))

    @app.get("/users/<user_id>")
    def get_user(user_id: str) -> Any:
        user = ext.session.get(User, uuid.UUID(user_id))
        if user is None:
            raise NotFound(f"user {user_id} does not exist")
        return {"email": user.email}

    @app.get("/session-id")
    def session_id() -> Any:
        first = ext.session()
        assert ext.session() is first  # one session per request
        return {"id": id(first), "kit": isinstance(first, KitSession)}

    @app.get("/projects")
    def projects() -> Any:
        tenant = flask.request.headers.get("X-Tenant")
        if tenant is None:
            return [p.name for p in ext.session.scalars(select(Project))]
        with tenant_context(tenant):
            return [p.name for p in ext.session.scalars(select(Project))]

    @app.post("/projects")
    def create_project() -> Any:
        with tenant_context(flask.request.headers["X-Tenant"]):
            ext.session.add(Project(name="p", tenant_id=flask.request.args.get("for")))
            ext.session.commit()
        return {}, 201

    @app.post("/events")
    def create_event() -> Any:
        ext.session.add(Event(at=dt.datetime(2024, 1, 1)))  # naive: refused
        ext.session.commit()
        return {}, 201

    @app.get("/cursor")
    def cursor() -> Any:
        raise InvalidCursor("tampered")

    @app.get("/select-1")
    def select_1() -> Any:
        return {"one": ext.session.scalar(text("SELECT 1"))}

    return app, ext


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/flask.db"


@pytest.fixture
def app_and_ext(sqlite_url: str) -> Iterator[tuple[flask.Flask, KitDB]]:
    app, ext = make_app(KIT_DB_URL=sqlite_url)
    ext.database_for(app).create_all(Base.metadata)
    yield app, ext
    ext.database_for(app).dispose()


# --------------------------------------------------------------------------- configuration


def test_default_url_is_a_file_in_the_instance_folder(tmp_path: Path) -> None:
    app = flask.Flask("kit_db_default", instance_path=str(tmp_path / "instance"))
    ext = KitDB(app)
    try:
        assert ext.database_for(app).url.database == str(tmp_path / "instance" / "kit.db")
        assert (tmp_path / "instance").is_dir()
        with app.app_context():
            assert ext.session.scalar(text("SELECT 1")) == 1
    finally:
        ext.database_for(app).dispose()


def test_echo_and_engine_options(sqlite_url: str) -> None:
    app = flask.Flask("kit_db_options")
    app.config.update(
        KIT_DB_URL=sqlite_url, KIT_DB_ECHO=True, KIT_DB_ENGINE_OPTIONS={"pool_size": 3}
    )
    db = database_from_config(app)
    try:
        assert db.engine.echo is True
        assert db.engine.pool.size() == 3  # type: ignore[attr-defined]
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"KIT_DB_URL": "not a url"}, "KIT_DB_URL"),
        ({"KIT_DB_URL": "oracle://scott@db/x"}, "KIT_DB_URL"),
        ({"KIT_DB_ECHO": "yes"}, "KIT_DB_ECHO"),
        ({"KIT_DB_ENGINE_OPTIONS": ["pool_size"]}, "KIT_DB_ENGINE_OPTIONS"),
        ({"KIT_DB_ENGINE_OPTIONS": {"no_such_option": 1}}, "KIT_DB_ENGINE_OPTIONS"),
    ],
)
def test_bad_config_names_the_key(sqlite_url: str, config: dict[str, Any], key: str) -> None:
    app = flask.Flask("kit_db_bad")
    app.config.update({"KIT_DB_URL": sqlite_url, **config})
    with pytest.raises(ConfigurationError, match=f"invalid {key} in app.config"):
        KitDB(app)


def test_missing_driver_keeps_its_type() -> None:
    app = flask.Flask("kit_db_driver")
    app.config["KIT_DB_URL"] = "postgresql+pg8000://u@localhost/x"
    with pytest.raises(MissingDriver, match="pip install"):
        KitDB(app)


def test_given_database_and_application_factory(sqlite_url: str, tmp_path: Path) -> None:
    shared = Database(sqlite_url)
    try:
        ext = KitDB(database=shared)
        first, _ = make_app(ext)
        second, _ = make_app(ext)
        assert ext.database_for(first) is shared and ext.database_for(second) is shared
        with first.app_context():
            assert ext.database is shared
        assert first.extensions["kit-db"] is ext
    finally:
        shared.dispose()

    factory = KitDB()
    one, _ = make_app(factory, KIT_DB_URL=f"sqlite:///{tmp_path}/one.db")
    two, _ = make_app(factory, KIT_DB_URL=f"sqlite:///{tmp_path}/two.db")
    try:
        with one.app_context():
            assert factory.database.url.database == f"{tmp_path}/one.db"
        with two.app_context():
            assert factory.database.url.database == f"{tmp_path}/two.db"
    finally:
        factory.database_for(one).dispose()
        factory.database_for(two).dispose()


def test_misuse_is_explained() -> None:
    with pytest.raises(ConfigurationError, match="synchronous"):
        KitDB(database=AsyncDatabase("sqlite+aiosqlite://"))  # type: ignore[arg-type]
    ext = KitDB()
    with pytest.raises(RuntimeError, match="application context"):
        _ = ext.database
    app = flask.Flask("kit_db_uninit")
    with app.app_context(), pytest.raises(RuntimeError, match="init_app"):
        _ = ext.database
    with pytest.raises(RuntimeError, match="application context"):
        _ = ext.session


# --------------------------------------------------------------------------- sessions


def test_one_session_per_request_removed_at_teardown(
    app_and_ext: tuple[flask.Flask, KitDB],
) -> None:
    app, ext = app_and_ext
    assert app.test_client().get("/session-id").get_json() == {"id": ANY, "kit": True}
    with app.app_context():
        scoped = ext.session
        session = scoped()
        session.execute(text("SELECT 1"))
        assert session.in_transaction()
        assert len(scoped.registry.registry) == 1
    # teardown_appcontext closed the session and forgot it
    assert not session.in_transaction()
    assert scoped.registry.registry == {}


def test_uncommitted_work_is_rolled_back_at_teardown(
    app_and_ext: tuple[flask.Flask, KitDB],
) -> None:
    app, _ = app_and_ext
    client = app.test_client()
    assert client.post("/users", json={"email": "kept@x.io"}).status_code == 201
    assert client.post("/users", json={"email": "lost@x.io", "commit": False}).status_code == 201
    assert client.get("/users").get_json() == ["kept@x.io"]


def test_sessions_of_different_app_contexts_differ(
    app_and_ext: tuple[flask.Flask, KitDB],
) -> None:
    app, ext = app_and_ext
    with app.app_context():
        outer = ext.session()
        with app.app_context():
            inner = ext.session()
        assert inner is not outer
        assert ext.session() is outer


# --------------------------------------------------------------------------- problems


def _problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    assert body["type"] == f"https://kit.dev/problems/{slug}"
    assert body["title"] and body["detail"]
    return body


def test_problem_json_statuses(app_and_ext: tuple[flask.Flask, KitDB]) -> None:
    app, _ = app_and_ext
    client = app.test_client()
    body = _problem(client.get(f"/users/{uuid.uuid4()}"), 404, "not-found")
    assert "does not exist" in body["detail"]
    _problem(client.get("/projects"), 403, "tenant-required")
    _problem(
        client.post("/projects?for=globex", headers={"X-Tenant": "acme"}), 403, "tenant-violation"
    )
    _problem(client.get("/cursor"), 400, "invalid-cursor")
    body = _problem(client.post("/events"), 400, "invalid-value")
    assert "naive" not in body["detail"]  # messages are logged, not sent
    assert client.post("/projects", headers={"X-Tenant": "acme"}).status_code == 201
    assert client.get("/projects", headers={"X-Tenant": "acme"}).get_json() == ["p"]


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (NotFound("x"), 404, "not-found"),
        (Conflict("x"), 409, "conflict"),
        (TenantRequired("x"), 403, "tenant-required"),
        (TenantViolation("x"), 403, "tenant-violation"),
        (InvalidCursor("x"), 400, "invalid-cursor"),
        (ConfigurationError("x"), 400, "invalid-value"),
        (MissingDriver("x"), 500, "database-misconfigured"),
        (DatabaseUnavailable("x"), 503, "database-unavailable"),
        (DatabaseError("x"), 500, "database-error"),
        (KitDBError("x"), 500, "database-error"),
    ],
)
def test_problem_mapping(error: KitDBError, status: int, slug: str) -> None:
    got_status, body = problem_details(error)
    assert (got_status, body["status"]) == (status, status)
    assert body["type"] == f"https://kit.dev/problems/{slug}"
    assert "constraint" not in body  # only a Conflict that knows its constraint has one


def test_conflict_names_the_constraint(db_url: str) -> None:
    app, ext = make_app(KIT_DB_URL=db_url)
    database = ext.database_for(app)
    Base.metadata.drop_all(database.engine)
    database.create_all(Base.metadata)
    try:
        client = app.test_client()
        assert client.post("/users", json={"email": "a@x.io"}).status_code == 201
        body = _problem(client.post("/users", json={"email": "a@x.io"}), 409, "conflict")
        assert body["constraint"] == "uq_flask_users_email"
        assert "a@x.io" not in str(body)
        assert client.get("/users").get_json() == ["a@x.io"]  # the session was usable again
    finally:
        Base.metadata.drop_all(database.engine)
        database.dispose()


def test_unreachable_database_is_503(postgresql_url: str) -> None:
    app, ext = make_app(KIT_DB_URL="postgresql://nobody@127.0.0.1:1/nowhere")
    try:
        _problem(app.test_client().get("/select-1"), 503, "database-unavailable")
    finally:
        ext.database_for(app).dispose()


def test_other_statement_errors_stay_500(app_and_ext: tuple[flask.Flask, KitDB]) -> None:
    app, ext = app_and_ext

    @app.get("/broken-sql")
    def broken() -> Any:
        return {"x": ext.session.scalar(text("SELECT :a + :b"), {"a": 1})}  # missing :b

    app.config["TESTING"] = False
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().get("/broken-sql")
    assert response.status_code == 500
    assert response.mimetype != PROBLEM


# --------------------------------------------------------------------------- CLI

MODELS = """
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kit_db import NAMING_CONVENTION, UUIDMixin
from kit_db._model import TYPE_ANNOTATION_MAP


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = TYPE_ANNOTATION_MAP


class Gadget(UUIDMixin, Base):
    __tablename__ = "flask_cli_gadgets"
    name: Mapped[str]
"""


def _drop_cli_tables(database: Database) -> None:
    with database.engine.begin() as connection:
        for table in ("flask_cli_gadgets", "alembic_version"):
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")


def test_cli_commands(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = f"flask_cli_models_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    directory = str(tmp_path / "migrations")
    app, ext = make_app(KIT_DB_URL=db_url, KIT_DB_MIGRATIONS_DIR=directory)
    database = ext.database_for(app)
    _drop_cli_tables(database)
    runner = app.test_cli_runner()
    try:
        result = runner.invoke(args=["kit-db", "init", "--metadata", f"{module}:Base.metadata"])
        assert result.exit_code == 0, result.output
        assert (tmp_path / "alembic.ini").is_file()

        result = runner.invoke(args=["kit-db", "revision", "-m", "gadgets", "--autogenerate"])
        assert result.exit_code == 0, result.output
        assert Path(result.output.strip()).is_file()

        result = runner.invoke(args=["kit-db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert "Running upgrade" in result.output and "database at" in result.output
        assert inspect(database.engine).has_table("flask_cli_gadgets")

        result = runner.invoke(args=["kit-db", "current"])
        assert result.exit_code == 0 and result.output.strip().endswith("(head)")

        result = runner.invoke(args=["kit-db", "downgrade"])
        assert result.exit_code == 0, result.output
        assert not inspect(database.engine).has_table("flask_cli_gadgets")
        result = runner.invoke(args=["kit-db", "current"])
        assert "(none" in result.output

        result = runner.invoke(args=["kit-db", "upgrade", "nosuchrev"])
        assert result.exit_code == 1
        assert "Error: " in result.output and "nosuchrev" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)

        result = runner.invoke(args=["kit-db", "current", "-d", str(tmp_path / "elsewhere")])
        assert result.exit_code == 1 and "not a migrations directory" in result.output
    finally:
        _drop_cli_tables(database)
        database.dispose()
        sys.modules.pop(module, None)


def test_import_guard_names_the_extra() -> None:
    code = "import sys; sys.modules['flask'] = None; import kit_db.flask"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode != 0
    assert 'pip install "kit-db[flask]"' in out.stderr
