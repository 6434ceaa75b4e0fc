"""``/health/live`` (the process answers) and ``/health/ready`` (each kit's backend
answers its ``ping()``, or ``aping()`` where a kit has an asyncio twin).

A failed check of something the app cannot serve without (the database, the job queue,
storage, the token store, the shield) makes the instance unready: 503. The others only
degrade it (200, ``"status": "degraded"``): the cache and the rate limits fail open, mail
is retried by its job, and an unreachable OIDC provider stops sign-ins, not the API;
taking every instance out of rotation for them would turn a partial outage into a full one.
A backend without a ``ping()`` is reported ``unchecked``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app.services import Services

__all__ = ["health_router"]

TIMEOUT = 3.0
DEGRADING = frozenset({"cache", "rate_limits", "mail", "oidc"})


async def _ping(target: object) -> str:
    ping: Callable[[], Any] | None = getattr(target, "aping", None) or getattr(target, "ping", None)
    if ping is None:
        return "unchecked"
    try:
        if inspect.iscoroutinefunction(ping):
            answer = await asyncio.wait_for(ping(), TIMEOUT)
        else:
            answer = await asyncio.wait_for(run_in_threadpool(ping), TIMEOUT)
    except Exception:  # a health check reports failures, it does not raise them
        return "fail"
    if answer is None:
        return "unchecked"
    return "ok" if answer else "fail"


def health_router(services: Services) -> APIRouter:
    router = APIRouter(prefix="/health", tags=["health"])
    security = services.security
    targets: dict[str, object] = {
        "database": services.database,
        "jobs": services.jobs,
        "storage": services.storage,
        "auth_stores": security.token_store,
        "shield": services.shields,
        "cache": services.cache,
        "rate_limits": security.limiter.storage,
        "mail": services.mailer,
        "oidc": security.oidc,
    }

    @router.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready")
    async def ready() -> JSONResponse:
        results = dict(
            zip(
                targets,
                await asyncio.gather(*(_ping(t) for t in targets.values())),
                strict=True,
            )
        )
        backends = services.backends()
        checks = {
            name: {"status": result, "backend": backends[name], "critical": name not in DEGRADING}
            for name, result in results.items()
        }
        failed = {name for name, result in results.items() if result == "fail"}
        status = "fail" if failed - DEGRADING else "degraded" if failed else "ok"
        return JSONResponse(
            {"status": status, "checks": checks},
            status_code=503 if status == "fail" else 200,
            headers={"Cache-Control": "no-store"},
        )

    return router
