"""Projects: tenant-scoped rows (kit-db), keyset pages with signed cursors, soft delete,
and a cached read endpoint with ETags (kit-cache)."""

import inspect
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, Security
from sqlalchemy import desc, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.deps import Dependencies
from app.models import Project
from app.schemas import ProjectIn, ProjectOut
from kit_auth import Principal
from kit_cache.fastapi import cache_response
from kit_db import CursorPage, NotFound, apaginate_keyset

__all__ = ["projects_router"]


def projects_router(deps: Dependencies) -> APIRouter:
    services = deps.services
    auth = services.security.auth
    cache = services.cache
    cursor_secret = services.settings.derive("cursors")
    Session = Annotated[AsyncSession, Depends(deps.session)]
    Reader = Annotated[Principal, Security(auth.principal, scopes=["projects:read"])]
    Writer = Annotated[Principal, Security(auth.principal, scopes=["projects:write"])]
    router = APIRouter(prefix="/api/projects", tags=["projects"], dependencies=[deps.rate_limited])

    async def forget_cached_responses() -> None:
        """Drop every cached response (one version bump of the "http" namespace)."""
        cleared = cache.clear("http")
        if inspect.isawaitable(cleared):
            await cleared

    @router.post("", status_code=201)
    async def create_project(body: ProjectIn, caller: Writer, session: Session) -> ProjectOut:
        project = Project(
            name=body.name, description=body.description, owner_id=uuid.UUID(caller.id)
        )
        session.add(project)
        await session.flush()  # id, timestamps and tenant_id are set here
        await forget_cached_responses()
        return ProjectOut.model_validate(project)

    @router.get("")
    async def list_projects(
        caller: Reader,
        session: Session,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        after: Annotated[str | None, Query(max_length=512)] = None,
        before: Annotated[str | None, Query(max_length=512)] = None,
    ) -> CursorPage[ProjectOut]:
        """Newest first. Pass ``next_cursor`` back as ``after`` (``previous_cursor`` as
        ``before``); a tampered cursor is a 400."""
        page = await apaginate_keyset(
            session,
            select(Project),
            [desc(Project.created_at)],
            after=after,
            before=before,
            limit=limit,
            secret=cursor_secret,
        )
        return CursorPage[ProjectOut].model_validate(page, from_attributes=True)

    @router.get("/{project_id}")
    @cache_response(ttl=services.settings.cache_ttl, allow_authorized=True, cache=cache)
    async def get_project(project_id: uuid.UUID, caller: Reader, session: Session) -> ProjectOut:
        """Cached per caller (``Cache-Control: private``) with a strong ETag: a repeat
        within the TTL is served from the cache (``Age``), ``If-None-Match`` gets a 304."""
        project = await session.get(Project, project_id)
        if project is None:
            raise NotFound(f"project {project_id}")
        return ProjectOut.model_validate(project)

    @router.delete("/{project_id}", status_code=204)
    async def delete_project(project_id: uuid.UUID, caller: Writer, session: Session) -> Response:
        """A soft delete: the row stays, with ``deleted_at`` set, and disappears from reads."""
        project = await session.get(Project, project_id)
        if project is None:
            raise NotFound(f"project {project_id}")
        project.soft_delete()
        await session.flush()
        await forget_cached_responses()
        return Response(status_code=204)

    return router
