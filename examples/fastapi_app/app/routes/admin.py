"""Operator endpoints (role ``admin``): block and unblock addresses in the shield."""

from datetime import UTC, datetime

import structlog
from fastapi import APIRouter, Depends, Response

from app.deps import Dependencies
from app.schemas import BlockIn, BlockOut
from kit_netcore import Rule

__all__ = ["admin_router"]

log = structlog.get_logger("app.admin")


def _out(rule: Rule) -> BlockOut:
    expires = None if rule.expires_at is None else datetime.fromtimestamp(rule.expires_at, UTC)
    return BlockOut(
        action=rule.action, network=str(rule.network), expires_at=expires, hits=rule.hits
    )


def admin_router(deps: Dependencies) -> APIRouter:
    shields = deps.services.shields
    auth = deps.services.security.auth
    router = APIRouter(
        prefix="/api/admin",
        tags=["admin"],
        dependencies=[deps.rate_limited, Depends(auth.require_roles("admin"))],
    )

    @router.post("/blocks", status_code=201)
    async def block(body: BlockIn) -> BlockOut:
        """Refuse an address or network at the shield (403 before the app runs).
        A bad address or a CIDR with host bits set is a 422 naming the mistake."""
        rule = shields.block(body.address, body.ttl)
        log.warning("address_blocked", network=str(rule.network), ttl=body.ttl)
        return _out(rule)

    @router.get("/blocks")
    async def blocks() -> list[BlockOut]:
        return [_out(rule) for rule in shields.rules() if rule.action == "block"]

    @router.delete("/blocks/{address:path}", status_code=204)
    async def unblock(address: str) -> Response:
        shields.unblock(address)
        return Response(status_code=204)

    return router
