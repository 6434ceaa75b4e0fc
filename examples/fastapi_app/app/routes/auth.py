"""Sign-in (OIDC authorization code + PKCE through kit-auth's router), token refresh and
sign-out, ``/api/me`` and API keys."""

from typing import Annotated

import structlog
from fastapi import APIRouter, Response, Security
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from app.deps import Dependencies
from app.jobs import send_welcome_mail
from app.models import User
from app.schemas import ApiKeyIn, ApiKeyOut, IssuedKeyOut, MeOut, RefreshIn
from app.security import ALL_SCOPES
from kit_auth import (
    ApiKeyRecord,
    Identity,
    IdentityRefused,
    InactivePrincipal,
    InvalidInput,
    Principal,
)
from kit_auth.fastapi import oauth_router
from kit_db import NotFound, tenant_context

__all__ = ["auth_routers"]

log = structlog.get_logger("app.auth")


def _key_out(record: ApiKeyRecord) -> ApiKeyOut:
    return ApiKeyOut(
        key_id=record.key_id,
        name=record.name,
        scopes=sorted(record.scopes),
        created_at=record.created_at,
        expires_at=record.expires_at,
        last_used_at=record.last_used_at,
        revoked=record.revoked,
    )


def auth_routers(deps: Dependencies) -> list[APIRouter]:
    services = deps.services
    settings = services.settings
    security = services.security
    tokens, auth = security.tokens, security.auth
    Caller = Annotated[Principal, Security(auth.principal)]

    async def on_login(identity: Identity) -> Response:
        """Find or create the user of a verified identity; answer with a token pair."""
        email = (identity.email or "").lower()
        tenant = identity.tenant_id or email.rpartition("@")[2]
        if not tenant:
            raise IdentityRefused("The provider shared no email address to place you in a team.")
        role = "admin" if email in settings.admin_emails else "editor"
        with tenant_context(tenant):
            async with services.database.begin() as session:
                user = await session.scalar(
                    select(User).where(
                        User.provider == identity.provider, User.subject == identity.subject
                    )
                )
                created = user is None
                if user is None:
                    user = User(
                        provider=identity.provider,
                        subject=identity.subject,
                        email=email,
                        name=identity.name,
                        role=role,
                    )
                    session.add(user)
                else:
                    user.email, user.name = email, identity.name or user.name
                    if role == "admin":
                        user.role = role
                await session.flush()
                user_id, user_role, active = str(user.id), user.role, user.active
        structlog.contextvars.bind_contextvars(tenant=tenant, user_id=user_id)
        if not active:
            raise InactivePrincipal("This account is deactivated.", reason="deactivated")
        welcome_job = None
        if created:  # after the commit, so that the job finds the user
            ref = await run_in_threadpool(services.jobs.enqueue, send_welcome_mail, user_id, tenant)
            welcome_job = ref.id
        log.info("signed_in", provider=identity.provider, new_user=created, role=user_role)
        pair = await tokens.aissue_pair(
            user_id, scopes=ALL_SCOPES, roles=[user_role], tenant_id=tenant
        )
        body = {
            **pair.as_dict(),
            "user": {"id": user_id, "email": email, "tenant_id": tenant, "role": user_role},
            "new_user": created,
            "welcome_job": welcome_job,
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    sign_in = oauth_router(
        security.oidc,
        on_login=on_login,
        cookie_secure=settings.production,
    )

    session_routes = APIRouter(prefix="/auth", tags=["auth"])

    @session_routes.post("/refresh")
    async def refresh(body: RefreshIn) -> JSONResponse:
        """Rotate a refresh token; a replayed one signs the whole family out."""
        pair = await tokens.arefresh(body.refresh_token)
        return JSONResponse(pair.as_dict(), headers={"Cache-Control": "no-store"})

    @session_routes.post("/logout", status_code=204)
    async def logout(body: RefreshIn) -> Response:
        await tokens.arevoke(body.refresh_token)
        return Response(status_code=204)

    api = APIRouter(prefix="/api", tags=["account"], dependencies=[deps.rate_limited])

    @api.get("/me")
    async def me(caller: Caller) -> MeOut:
        return MeOut(
            id=caller.id,
            tenant_id=caller.tenant_id,
            roles=sorted(caller.roles),
            scopes=sorted(caller.scopes),
        )

    @api.post("/keys", status_code=201)
    async def create_key(body: ApiKeyIn, caller: Caller) -> IssuedKeyOut:
        scopes = set(body.scopes or caller.scopes)
        if not scopes <= set(caller.scopes):
            raise InvalidInput("An API key can only get scopes its creator holds.")
        issued = await run_in_threadpool(
            security.api_keys.create,
            caller.id,
            name=body.name,
            scopes=scopes,
            expires_in=None if body.expires_in_days is None else body.expires_in_days * 86400,
            tenant_id=caller.tenant_id,
        )
        log.info("api_key_created", key_id=issued.record.key_id)
        return IssuedKeyOut(token=issued.token, **_key_out(issued.record).model_dump())

    @api.get("/keys")
    async def list_keys(caller: Caller) -> list[ApiKeyOut]:
        records = await run_in_threadpool(security.api_keys.list, caller.id)
        return [_key_out(record) for record in records]

    @api.delete("/keys/{key_id}", status_code=204)
    async def revoke_key(key_id: str, caller: Caller) -> Response:
        record = await run_in_threadpool(security.api_keys.get, key_id)
        if record is None or record.owner_id != caller.id:
            raise NotFound(f"API key {key_id} of {caller.id}")
        await run_in_threadpool(security.api_keys.revoke, key_id)
        return Response(status_code=204)

    return [sign_in, session_routes, api]
