"""Smoke tests every kit package starts with: the public API, the errors, the adapters."""

from __future__ import annotations

import pytest

import kit_jobs
from kit_jobs import ConfigurationError, KitJobsError


def test_public_api_names_exist() -> None:
    assert kit_jobs.__all__ == sorted(kit_jobs.__all__)
    for name in kit_jobs.__all__:
        assert hasattr(kit_jobs, name), name


def test_version_is_a_string() -> None:
    assert isinstance(kit_jobs.__version__, str)


def test_errors_derive_from_the_package_base() -> None:
    error = ConfigurationError("KIT_JOBS_URL must be a URL")
    assert isinstance(error, KitJobsError)
    assert isinstance(error, ValueError)
    assert error.problem()["detail"] == "KIT_JOBS_URL must be a URL"


def test_flask_adapter_answers_errors_with_problem_json() -> None:
    flask = pytest.importorskip("flask")
    from kit_jobs.flask import KitJobs

    app = flask.Flask(__name__)
    KitJobs(app)

    @app.get("/boom")
    def boom() -> str:
        raise ConfigurationError("bad setting")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["detail"] == "bad setting"


async def test_fastapi_adapter_answers_errors_with_problem_json() -> None:
    fastapi = pytest.importorskip("fastapi")
    import httpx

    from kit_jobs.fastapi import install_problem_handlers, kit_jobs_lifespan

    app = fastapi.FastAPI(lifespan=kit_jobs_lifespan)
    install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise ConfigurationError("bad setting")

    # httpx's ASGI transport rather than starlette.testclient, which warns when it finds
    # httpx instead of httpx2 (Starlette >= 1.10), and warnings are errors here.
    async with kit_jobs_lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "bad setting"
