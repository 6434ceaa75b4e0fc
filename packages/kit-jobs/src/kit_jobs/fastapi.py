"""FastAPI adapter: a lifespan, ``Depends`` callables and problem+json handlers.

The only module that imports FastAPI/Starlette.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
except ImportError as exc:  # pragma: no cover - exercised by the slim session
    raise ImportError('kit_jobs.fastapi needs FastAPI: pip install "kit-jobs[fastapi]"') from exc

from .exceptions import KitJobsError

__all__ = ["install_problem_handlers", "kit_jobs_lifespan"]


@asynccontextmanager
async def kit_jobs_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open what the package needs at start-up and close it at shutdown.

    ``FastAPI(lifespan=kit_jobs_lifespan)``.
    """
    # <REPLACE ME: create the core objects, keep them on app.state, close them after yield>
    yield


def install_problem_handlers(app: FastAPI) -> None:
    """Answer :class:`KitJobsError` with an RFC 9457 ``application/problem+json`` response."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KitJobsError)
        return JSONResponse(
            exc.problem(), status_code=exc.status, media_type="application/problem+json"
        )

    app.add_exception_handler(KitJobsError, handle)
