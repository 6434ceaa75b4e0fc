"""kit-auth, wired for this app: OIDC sign-in, JWTs with refresh rotation, API keys kept
in the database, a per-address rate limit whose offenders the shield bans, and the
principal loaded from the users table on every request (so a deactivated or deleted user
is refused at once, whatever their token says)."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass

import structlog

from app.api_key_store import DatabaseApiKeyStore
from app.models import User
from app.settings import Settings
from app.shields import Shields
from kit_auth import (
    ApiKeyRecord,
    ApiKeys,
    AsyncRedisRateLimitStorage,
    AsyncRedisTokenStore,
    EmailPolicy,
    KeySet,
    MemoryRateLimitStorage,
    MemoryTokenStore,
    OIDCClient,
    OIDCProvider,
    Principal,
    RateLimiter,
    SimplePrincipal,
    TokenClaims,
    TokenManager,
    TrustedProxies,
)
from kit_auth.fastapi import FastAPIAuth
from kit_db import AsyncDatabase, Database, tenant_context

__all__ = ["ALL_SCOPES", "SCOPES", "Security", "build_security"]

SCOPES = {
    "projects:read": "Read projects",
    "projects:write": "Create and delete projects",
    "reports:read": "Read reports",
    "reports:write": "Request reports",
}
ALL_SCOPES = tuple(SCOPES)
ISSUER = "kit-fastapi-demo"
AUDIENCE = "kit-fastapi-demo-api"


@dataclass(frozen=True)
class Security:
    tokens: TokenManager
    token_store: MemoryTokenStore | AsyncRedisTokenStore
    api_keys: ApiKeys
    limiter: RateLimiter
    auth: FastAPIAuth
    oidc: OIDCClient

    async def aclose(self) -> None:
        for store in (self.token_store, self.limiter.storage):
            aclose = getattr(store, "aclose", None)
            if aclose is not None:
                await aclose()


async def _load_principal(
    database: AsyncDatabase, source: TokenClaims | ApiKeyRecord
) -> Principal | None:
    """The signed-in user, from a verified token or API key; None (a 401) if gone."""
    tenant = source.tenant_id
    try:
        user_id = uuid.UUID(source.subject)
    except ValueError:
        return None
    if not tenant:
        return None
    with tenant_context(tenant):
        async with database.session() as session:
            user = await session.get(User, user_id)
    if user is None:
        return None
    structlog.contextvars.bind_contextvars(tenant=tenant, user_id=str(user.id))
    return SimplePrincipal(
        str(user.id),
        active=user.active,
        roles={user.role},
        scopes=source.scopes,
        tenant_id=tenant,
        inactive_reason="deactivated",
    )


def build_security(
    settings: Settings, database: AsyncDatabase, sync_database: Database, shields: Shields
) -> Security:
    token_store: MemoryTokenStore | AsyncRedisTokenStore
    if settings.redis_url:
        token_store = AsyncRedisTokenStore(settings.redis_url)
        storage: MemoryRateLimitStorage | AsyncRedisRateLimitStorage = AsyncRedisRateLimitStorage(
            settings.redis_url
        )
    else:
        token_store = MemoryTokenStore()
        storage = MemoryRateLimitStorage()
    tokens = TokenManager(
        KeySet.from_secret(settings.derive("jwt"), kid="demo"),
        issuer=ISSUER,
        audience=AUDIENCE,
        store=token_store,
    )
    api_keys = ApiKeys(
        settings.derive("api-keys"), store=DatabaseApiKeyStore(sync_database), prefix="kitdemo"
    )
    limiter = RateLimiter(
        settings.rate_limit,
        storage=storage,
        on_exceeded=functools.partial(shields.ban_rate_offender, ttl=settings.ban_seconds),
    )
    auth = FastAPIAuth(
        tokens=tokens,
        api_keys=api_keys,
        load_principal=functools.partial(_load_principal, database),
        trusted_proxies=TrustedProxies(settings.trusted_proxies)
        if settings.trusted_proxies
        else None,
        scopes=SCOPES,
    )
    provider = OIDCProvider(
        settings.oidc_provider_name,
        settings.oidc_client_id,
        settings.oidc_client_secret,
        issuer=settings.oidc_issuer,
    )
    oidc = OIDCClient(
        provider,
        state_secret=settings.derive("oidc-state"),
        email_policy=EmailPolicy(
            tenant_domains=settings.tenant_domains or None, refuse_public_domains=True
        ),
    )
    return Security(tokens, token_store, api_keys, limiter, auth, oidc)
