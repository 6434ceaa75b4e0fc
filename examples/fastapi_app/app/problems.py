"""Every error answers RFC 9457 ``application/problem+json``: each kit's adapter handles
its own errors, and this module adds request validation errors in the same shape."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from kit_auth.fastapi import install_problem_handlers as auth_problems
from kit_cache.fastapi import install_problem_handlers as cache_problems
from kit_db.fastapi import install_problem_handlers as db_problems
from kit_jobs.fastapi import install_problem_handlers as jobs_problems
from kit_mail.fastapi import install_problem_handlers as mail_problems
from kit_netcore.fastapi import install_problem_handlers as netcore_problems
from kit_storage.fastapi import install_problem_handlers as storage_problems

__all__ = ["install_problem_handlers"]


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return JSONResponse(
        jsonable_encoder(
            {
                "type": "https://kit.dev/problems/invalid-request",
                "title": "Invalid request",
                "status": 422,
                "detail": "The request does not match what this endpoint accepts.",
                "errors": errors,
            }
        ),
        status_code=422,
        media_type="application/problem+json",
    )


def install_problem_handlers(app: FastAPI) -> None:
    for install in (
        db_problems,
        auth_problems,
        jobs_problems,
        cache_problems,
        storage_problems,
        mail_problems,
        netcore_problems,
    ):
        install(app)
    app.add_exception_handler(RequestValidationError, _invalid_request)
