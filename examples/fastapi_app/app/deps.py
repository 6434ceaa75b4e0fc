"""The request dependencies every router shares, made once per app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request

from app.services import Services
from kit_db.fastapi import session_dependency, tenant_dependency

__all__ = ["Dependencies"]


@dataclass(frozen=True)
class Dependencies:
    services: Services
    session: Any
    """``Depends(deps.session)``: an AsyncSession inside the caller's tenant, committed
    when the endpoint returns (kit-db's FastAPI adapter)."""
    rate_limited: Any
    """For ``APIRouter(dependencies=[deps.rate_limited])``: every ``/api`` request counts
    against the caller's address (kit-auth); over the limit it is a 429 with
    ``Retry-After``, and the limiter's ``on_exceeded`` bans the address in the shield."""

    @classmethod
    def build(cls, services: Services) -> Dependencies:
        auth = services.security.auth

        async def tenant_of_caller(request: Request) -> str | None:
            authenticated = await auth.authenticate(request)  # cached per request
            return None if authenticated is None else authenticated.principal.tenant_id

        tenant = tenant_dependency(tenant_of_caller)
        return cls(
            services,
            session=session_dependency(services.database, tenant=tenant),
            rate_limited=Depends(auth.rate_limit(services.security.limiter)),
        )
