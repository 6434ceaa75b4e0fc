"""kit_db.fastapi on SQLite, PostgreSQL and MariaDB: commit on success, rollback on error,
per-request tenants, the lifespan and problem+json statuses.

No ``from __future__ import annotations`` here: FastAPI reads the endpoints' ``Annotated``
dependencies, some of them local to :func:`build`, at definition time."""

import asyncio
import datetime as dt
import subprocess
import sys
import uuid
import warnings
from collections.abc import Callable
from typing import Annotated, Any

import httpx
import pytest
from _support import new_base
from fastapi import Depends, FastAPI, HTTPException, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from kit_db import (
    AsyncDatabase,
    ConfigurationError,
    Database,
    InvalidCursor,
    NotFound,
    TenantScopedMixin,
    UUIDMixin,
    current_tenant,
    unscoped,
)
from kit_db.fastapi import (
    get_database,
    install_problem_handlers,
    kit_db_lifespan,
    session_dependency,
    tenant_dependency,
)

with warnings.catch_warnings():
    # Starlette >= 1.x warns when its TestClient runs on httpx rather than httpx2
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

Base = new_base()


class Note(UUIDMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "api_notes"
    text: Mapped[str] = mapped_column(unique=True)


class Project(UUIDMixin, TenantScopedMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "api_projects"
    name: Mapped[str] = mapped_column(default="")


class Event(UUIDMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "api_events"
    at: Mapped[dt.datetime]


PROBLEM = "application/problem+json"


def tenant_header(request: Request) -> str | None:
    return request.headers.get("X-Tenant")


def build(database: AsyncDatabase, *, via_state: bool = False) -> FastAPI:
    """An app with ``database`` in its lifespan; ``via_state``: the session dependency
    finds the database on ``app.state`` instead of being given it."""
    app = FastAPI(lifespan=kit_db_lifespan(database))
    install_problem_handlers(app)
    get_tenant = tenant_dependency(tenant_header)
    get_session = session_dependency(None if via_state else database, tenant=get_tenant)
    Session = Annotated[AsyncSession, Depends(get_session)]
    must_have_tenant = tenant_dependency(tenant_header, required=True)

    async def note_count(session: Session) -> int:
        return int(await session.scalar(select(func.count()).select_from(Note)) or 0)

    @app.post("/notes", status_code=201)
    async def add_note(session: Session, text: str, fail: str = "") -> dict[str, str]:
        session.add(Note(text=text))
        if fail:
            await session.flush()  # written, then undone by the rollback
            if fail == "http":
                raise HTTPException(status_code=418, detail="no tea")
            raise RuntimeError("endpoint failed")
        return {"text": text}  # not flushed: the dependency's commit writes it

    @app.get("/notes")
    async def list_notes(session: Session) -> list[str]:
        return list(await session.scalars(select(Note.text).order_by(Note.text)))

    @app.get("/notes/count")
    async def count_notes(
        session: Session, counted: Annotated[int, Depends(note_count)]
    ) -> dict[str, Any]:
        again = await note_count(session)
        return {"count": counted, "same": counted == again}

    @app.get("/notes/{note_id}")
    async def get_note(session: Session, note_id: uuid.UUID) -> dict[str, str]:
        note = await session.get(Note, note_id)
        if note is None:
            raise NotFound(f"note {note_id}")
        return {"text": note.text}

    @app.post("/projects", status_code=201)
    async def add_project(session: Session, name: str, owner: str = "") -> dict[str, Any]:
        session.add(Project(name=name, tenant_id=owner or None))  # stamped at commit
        return {"tenant": current_tenant()}

    @app.get("/projects")
    async def list_projects(session: Session) -> list[str]:
        await asyncio.sleep(0)  # let concurrent requests interleave
        return list(await session.scalars(select(Project.name).order_by(Project.name)))

    @app.get("/strict")
    async def strict(
        tenant: Annotated[str, Depends(must_have_tenant)], session: Session
    ) -> dict[str, str]:
        return {"tenant": tenant}

    @app.post("/events")
    async def add_event(session: Session) -> None:
        session.add(Event(at=dt.datetime(2024, 1, 1)))  # naive: refused
        await session.flush()

    @app.get("/cursor")
    async def cursor() -> None:
        raise InvalidCursor("tampered")

    @app.get("/state")
    async def state(database: Annotated[AsyncDatabase, Depends(get_database)]) -> dict[str, str]:
        return {"dialect": database.dialect}

    return app


def client_for(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def database(make_db: Callable[..., Database], async_db_url: str) -> AsyncDatabase:
    """An AsyncDatabase on this test's dialect, with the tables made (and dropped) by a
    sync Database: the async engine only ever runs in the TestClient's event loop."""
    make_db(Base.metadata)
    # the tests' lifespans dispose it: nothing pooled is left for another event loop
    return AsyncDatabase(async_db_url)


def _problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"] == f"https://kit.dev/problems/{slug}"
    return body


# --------------------------------------------------------------------------- transactions


def test_commit_on_success_rollback_on_exception(database: AsyncDatabase) -> None:
    with client_for(build(database)) as client:
        assert client.post("/notes", params={"text": "kept"}).status_code == 201
        assert client.post("/notes", params={"text": "tea", "fail": "http"}).status_code == 418
        assert client.post("/notes", params={"text": "boom", "fail": "error"}).status_code == 500
        assert client.get("/notes").json() == ["kept"]


def test_a_failed_commit_decides_the_response(database: AsyncDatabase) -> None:
    """The commit runs when the endpoint returns but before the response is sent, so a
    unique violation at commit time is a 409, not a 201 for lost data."""
    with client_for(build(database)) as client:
        assert client.post("/notes", params={"text": "once"}).status_code == 201
        body = _problem(client.post("/notes", params={"text": "once"}), 409, "conflict")
        assert body["constraint"] == "uq_api_notes_text"
        assert client.get("/notes").json() == ["once"]


def test_one_session_per_request(database: AsyncDatabase) -> None:
    with client_for(build(database)) as client:
        client.post("/notes", params={"text": "a"})
        assert client.get("/notes/count").json() == {"count": 1, "same": True}


# --------------------------------------------------------------------------- tenants


def test_tenant_resolved_per_request_isolates_rows(database: AsyncDatabase) -> None:
    with client_for(build(database)) as client:
        for tenant, name in (("acme", "a1"), ("acme", "a2"), ("globex", "g1")):
            response = client.post("/projects", params={"name": name}, headers={"X-Tenant": tenant})
            assert response.status_code == 201, response.text
            assert response.json() == {"tenant": tenant}
        assert client.get("/projects", headers={"X-Tenant": "acme"}).json() == ["a1", "a2"]
        assert client.get("/projects", headers={"X-Tenant": "globex"}).json() == ["g1"]
        assert client.get("/projects", headers={"X-Tenant": "initech"}).json() == []

        _problem(client.get("/projects"), 403, "tenant-required")
        _problem(
            client.post(
                "/projects", params={"name": "x", "owner": "globex"}, headers={"X-Tenant": "acme"}
            ),
            403,
            "tenant-violation",
        )
        _problem(client.get("/strict"), 403, "tenant-required")
        assert client.get("/strict", headers={"X-Tenant": "acme"}).json() == {"tenant": "acme"}
        assert current_tenant() is None  # nothing leaks into the caller's context
    sync_db = Database(database.url.set(drivername=database.url.get_backend_name()))
    try:
        with sync_db.session() as session, unscoped():
            assert session.scalar(select(func.count()).select_from(Project)) == 3
    finally:
        sync_db.dispose()


async def test_concurrent_requests_keep_their_tenants(
    make_db: Callable[..., Database], async_db_url: str
) -> None:
    make_db(Base.metadata)
    database = AsyncDatabase(async_db_url)
    app = build(database)
    app.state.kit_db = database
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for tenant in ("t1", "t2", "t3"):
                for i in range(2):
                    response = await client.post(
                        "/projects", params={"name": f"{tenant}-{i}"}, headers={"X-Tenant": tenant}
                    )
                    assert response.status_code == 201
            tenants = ["t1", "t2", "t3"] * 6
            responses = await asyncio.gather(
                *(client.get("/projects", headers={"X-Tenant": t}) for t in tenants)
            )
        for tenant, response in zip(tenants, responses, strict=True):
            assert response.json() == [f"{tenant}-0", f"{tenant}-1"]
    finally:
        await database.dispose()


async def test_async_resolver(make_db: Callable[..., Database], async_db_url: str) -> None:
    make_db(Base.metadata)
    database = AsyncDatabase(async_db_url)

    async def from_token(request: Request) -> str | None:
        await asyncio.sleep(0)
        token = request.headers.get("Authorization", "")
        return token.removeprefix("Bearer tenant:") or None

    app = FastAPI()
    get_session = session_dependency(database, tenant=tenant_dependency(from_token))

    @app.get("/who")
    async def who(session: Annotated[AsyncSession, Depends(get_session)]) -> dict[str, Any]:
        return {"tenant": current_tenant()}

    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/who", headers={"Authorization": "Bearer tenant:acme"})
            assert response.json() == {"tenant": "acme"}
            assert (await client.get("/who")).json() == {"tenant": None}
    finally:
        await database.dispose()


# --------------------------------------------------------------------------- problems


def test_problem_json_statuses(database: AsyncDatabase) -> None:
    with client_for(build(database)) as client:
        _problem(client.get(f"/notes/{uuid.uuid4()}"), 404, "not-found")
        _problem(client.get("/cursor"), 400, "invalid-cursor")
        body = _problem(client.post("/events"), 400, "invalid-value")
        assert "naive" not in body["detail"]
        assert client.get("/notes").status_code == 200  # other requests unaffected


def test_unreachable_database_is_503(mariadb_url: str) -> None:
    database = AsyncDatabase("mysql+aiomysql://nobody@127.0.0.1:1/nowhere")
    with client_for(build(database)) as client:
        _problem(client.get("/notes"), 503, "database-unavailable")


def test_unreachable_postgresql_is_503(postgresql_url: str) -> None:
    database = AsyncDatabase("postgresql+asyncpg://nobody@127.0.0.1:1/nowhere")
    with client_for(build(database)) as client:
        _problem(client.get("/notes"), 503, "database-unavailable")


# --------------------------------------------------------------------------- lifespan


def test_lifespan_puts_the_database_on_state_and_disposes_it(
    database: AsyncDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    disposed: list[bool] = []
    original = database.dispose

    async def dispose() -> None:
        disposed.append(True)
        await original()

    monkeypatch.setattr(database, "dispose", dispose)
    app = build(database, via_state=True)
    with client_for(app) as client:
        assert app.state.kit_db is database
        assert client.get("/state").json() == {"dialect": database.dialect}
        assert client.post("/notes", params={"text": "via state"}).status_code == 201
        assert client.get("/notes").json() == ["via state"]
        assert disposed == []
    assert disposed == [True]
    assert not hasattr(app.state, "kit_db")


def test_missing_lifespan_is_a_server_error(tmp_path: Any) -> None:
    app = FastAPI()
    install_problem_handlers(app)
    get_session = session_dependency()

    @app.get("/x")
    async def x(session: Annotated[AsyncSession, Depends(get_session)]) -> None:
        return None

    with client_for(app) as client:
        response = client.get("/x")
    assert response.status_code == 500
    assert response.headers["content-type"] != PROBLEM


def test_misuse_is_explained(tmp_path: Any) -> None:
    sync_db = Database(f"sqlite:///{tmp_path}/sync.db")
    try:
        with pytest.raises(ConfigurationError, match="AsyncDatabase"):
            session_dependency(sync_db)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="AsyncDatabase"):
            kit_db_lifespan(sync_db)  # type: ignore[arg-type]
    finally:
        sync_db.dispose()
    with pytest.raises(ConfigurationError, match="callable"):
        tenant_dependency("X-Tenant")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="tenant_dependency"):
        session_dependency(tenant="acme")  # type: ignore[arg-type]


def test_import_guard_names_the_extra() -> None:
    code = "import sys; sys.modules['fastapi'] = None; import kit_db.fastapi"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode != 0
    assert 'pip install "kit-db[fastapi]"' in out.stderr
