"""FastAPI adapter: a session dependency that commits on success, a tenant dependency, a
lifespan that disposes the engine, and problem+json handlers.

Example::

    from typing import Annotated
    from fastapi import Depends, FastAPI, Request
    from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncSession
    from kit_db import AsyncDatabase
    from kit_db.fastapi import (
        install_problem_handlers, kit_db_lifespan, session_dependency, tenant_dependency,
    )

    db = AsyncDatabase("postgresql://app@localhost/app")
    app = FastAPI(lifespan=kit_db_lifespan(db))
    install_problem_handlers(app)

    get_tenant = tenant_dependency(lambda request: request.headers.get("X-Tenant"))
    get_session = session_dependency(db, tenant=get_tenant)
    Session = Annotated[AsyncSession, Depends(get_session)]

    @app.post("/projects", status_code=201)
    async def create_project(body: ProjectIn, session: Session) -> ProjectOut:
        project = Project(name=body.name)  # tenant_id is the request's tenant
        session.add(project)
        await session.flush()
        return ProjectOut.model_validate(project)  # committed before the response is sent
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncSession

from ._database import AsyncDatabase
from ._problems import PROBLEM_CONTENT_TYPE, kit_error, log_problem, problem_details
from ._scoping import tenant_context
from .exceptions import ConfigurationError, KitDBError, TenantRequired

try:
    from fastapi import Depends, FastAPI, Request
    from starlette.responses import JSONResponse, Response
except ImportError as exc:  # pragma: no cover - exercised by the CI session without FastAPI
    raise ImportError('kit_db.fastapi needs FastAPI: pip install "kit-db[fastapi]"') from exc

__all__ = [
    "SessionDependency",
    "TenantDependency",
    "TenantResolver",
    "get_database",
    "install_problem_handlers",
    "kit_db_lifespan",
    "problem_handler",
    "session_dependency",
    "tenant_dependency",
]

TenantResolver = Callable[[Request], Any]
"""``resolver(request) -> tenant_id | None`` (or an awaitable of it)."""
SessionDependency = Callable[..., Awaitable[AsyncSession]]
TenantDependency = Callable[..., AsyncIterator[Any]]

_SCOPED_DEPENDS = "scope" in inspect.signature(Depends).parameters


def _around_endpoint(dependency: Callable[..., Any]) -> Any:
    """``Depends(dependency)`` whose code after ``yield`` runs when the endpoint returns,
    before the response is sent (FastAPI >= 0.121: ``scope="function"``), so a failed
    commit still decides the response."""
    if _SCOPED_DEPENDS:
        return Depends(dependency, scope="function")
    return Depends(dependency)  # pragma: no cover - older FastAPI: its default timing


# --------------------------------------------------------------------------- lifespan


def kit_db_lifespan(
    database: AsyncDatabase,
) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A FastAPI lifespan putting ``database`` on ``app.state.kit_db`` and disposing its
    engine (closing pooled connections) at shutdown. Compose it with your own lifespan by
    entering it.

    Example::

        app = FastAPI(lifespan=kit_db_lifespan(db))

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            async with kit_db_lifespan(db)(app), other_lifespan(app):
                yield
    """
    if not isinstance(database, AsyncDatabase):
        raise ConfigurationError(
            f"kit_db_lifespan needs a kit_db.AsyncDatabase, got {type(database).__name__}"
        )

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        app.state.kit_db = database
        try:
            yield
        finally:
            try:
                await database.dispose()
            finally:
                del app.state.kit_db

    return lifespan


def get_database(request: Request) -> AsyncDatabase:
    """FastAPI dependency: the :class:`~kit_db.AsyncDatabase` :func:`kit_db_lifespan` put on
    ``app.state``."""
    database = getattr(request.app.state, "kit_db", None)
    if not isinstance(database, AsyncDatabase):
        # the server's set-up, not the request, is wrong: a 500, not a problem+json 400
        raise RuntimeError(
            "no AsyncDatabase on app.state.kit_db: create the app with "
            "FastAPI(lifespan=kit_db_lifespan(db)) or pass the database to session_dependency"
        )
    return database


# --------------------------------------------------------------------------- tenants


def tenant_dependency(resolver: TenantResolver, *, required: bool = False) -> TenantDependency:
    """A dependency running the rest of the request inside
    :func:`~kit_db.tenant_context` of ``resolver(request)``.

    ``resolver`` takes the :class:`~fastapi.Request` and returns the tenant id, or ``None``
    for none (then tenant-scoped models raise :class:`~kit_db.TenantRequired`, a 403, when
    used); it may be async. With ``required=True`` a request without a tenant is refused at
    once with :class:`~kit_db.TenantRequired`. The dependency's value is the tenant id.
    Pass it to :func:`session_dependency` so commits happen inside the tenant context.

    Example::

        get_tenant = tenant_dependency(lambda request: request.headers.get("X-Tenant"))

        @app.get("/whoami")
        async def whoami(tenant: Annotated[str | None, Depends(get_tenant)]) -> dict:
            return {"tenant": tenant}
    """
    if not callable(resolver):
        raise ConfigurationError(
            f"tenant_dependency takes a callable(request) -> tenant id, got {resolver!r}"
        )

    async def tenant(request: Request) -> AsyncIterator[Any]:
        tenant_id = resolver(request)
        if inspect.isawaitable(tenant_id):
            tenant_id = await tenant_id
        if tenant_id is None or tenant_id == "":
            if required:
                raise TenantRequired("this endpoint needs a tenant and the request names none")
            yield None
            return
        with tenant_context(tenant_id):
            yield tenant_id

    return tenant


# --------------------------------------------------------------------------- sessions


def session_dependency(
    database: AsyncDatabase | None = None,
    *,
    tenant: TenantDependency | None = None,
    commit: bool = True,
) -> SessionDependency:
    """A dependency giving each request one :class:`~sqlalchemy.ext.asyncio.AsyncSession`
    (kit-db's :class:`~kit_db.KitSession` underneath: soft delete and tenant scoping apply).

    When the endpoint returns, the session commits (``commit=False``: the endpoint commits
    itself) and closes, before the response is sent, so a failed commit (a
    :class:`~kit_db.Conflict`, 409) is what the client gets. If the endpoint raises,
    including :class:`~fastapi.HTTPException`, everything is rolled back. An endpoint that
    returns an error response without raising is committed: raise to roll back.

    ``database`` defaults to the one :func:`kit_db_lifespan` put on ``app.state``.
    ``tenant`` is a :func:`tenant_dependency`: the session is used and committed inside its
    tenant context. Use it as ``Depends(get_session)``; several uses in one request share
    the session.

    Example::

        get_session = session_dependency(db)

        @app.post("/notes")
        async def add(text: str, session: Annotated[AsyncSession, Depends(get_session)]):
            session.add(Note(text=text))
    """
    if database is not None and not isinstance(database, AsyncDatabase):
        raise ConfigurationError(
            f"session_dependency needs a kit_db.AsyncDatabase, got {type(database).__name__}"
        )
    if tenant is not None and not callable(tenant):
        raise ConfigurationError(f"tenant= takes a tenant_dependency(...), got {tenant!r}")

    @asynccontextmanager
    async def managed(request: Request) -> AsyncIterator[AsyncSession]:
        chosen = database if database is not None else get_database(request)
        async with chosen.sessionmaker() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            if commit:
                await session.commit()

    if tenant is None:

        async def scope(request: Request) -> AsyncIterator[AsyncSession]:
            async with managed(request) as session:
                yield session

    else:
        in_tenant = _around_endpoint(tenant)

        async def scope(  # type: ignore[misc]  # the same dependency, with a tenant
            request: Request, _tenant: Any = in_tenant
        ) -> AsyncIterator[AsyncSession]:
            async with managed(request) as session:
                yield session

    scoped = _around_endpoint(scope)

    async def get_session(session: AsyncSession = scoped) -> AsyncSession:
        return session

    return get_session


# --------------------------------------------------------------------------- problems


async def problem_handler(request: Request, exc: Exception) -> Response:
    """Exception handler: an RFC 9457 ``application/problem+json`` response for a
    :class:`~kit_db.KitDBError` (404, 409 with the ``constraint``, 403, 400, 503, ...).

    Example::

        app.add_exception_handler(KitDBError, problem_handler)
    app.add_exception_handler(StatementError, problem_handler)
    """
    found = kit_error(exc)
    if found is None:
        raise exc
    status, body = problem_details(found)
    log_problem(found, status)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE)


def install_problem_handlers(app: FastAPI) -> None:
    """Register :func:`problem_handler` for every :class:`~kit_db.KitDBError` (and for
    :class:`~sqlalchemy.exc.StatementError`, which can carry one; others stay 500s).

    Example::

        app = FastAPI()
        install_problem_handlers(app)
    """
    app.add_exception_handler(KitDBError, problem_handler)
    app.add_exception_handler(StatementError, problem_handler)
