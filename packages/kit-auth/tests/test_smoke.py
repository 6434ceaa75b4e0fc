"""Smoke tests every kit package starts with: the public API, the errors, the adapters."""

from __future__ import annotations

import pytest

import kit_auth
from kit_auth import ConfigurationError, KitAuthError


def test_public_api_names_exist() -> None:
    assert kit_auth.__all__ == sorted(kit_auth.__all__)
    for name in kit_auth.__all__:
        assert hasattr(kit_auth, name), name


def test_version_is_a_string() -> None:
    assert isinstance(kit_auth.__version__, str)


def test_errors_derive_from_the_package_base() -> None:
    error = ConfigurationError("KIT_AUTH_URL must be a URL")
    assert isinstance(error, KitAuthError)
    assert isinstance(error, ValueError)
    # a 5xx problem never echoes the message (it may name hosts or keys): a fixed sentence
    assert error.problem()["detail"] == "The server's authentication is misconfigured."
    assert error.problem()["status"] == 500


def test_flask_adapter_answers_errors_with_problem_json() -> None:
    flask = pytest.importorskip("flask")
    from kit_auth.flask import KitAuth

    app = flask.Flask(__name__)
    KitAuth(app)

    @app.get("/boom")
    def boom() -> str:
        raise ConfigurationError("bad setting")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    # a 5xx problem carries a fixed detail: the message may name hosts or keys
    assert response.get_json()["detail"] == "The server's authentication is misconfigured."


async def test_fastapi_adapter_answers_errors_with_problem_json() -> None:
    fastapi = pytest.importorskip("fastapi")
    import httpx

    from kit_auth.fastapi import install_problem_handlers, kit_auth_lifespan

    app = fastapi.FastAPI(lifespan=kit_auth_lifespan)
    install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise ConfigurationError("bad setting")

    # httpx's ASGI transport rather than starlette.testclient, which warns when it finds
    # httpx instead of httpx2 (Starlette >= 1.10), and warnings are errors here.
    async with kit_auth_lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "The server's authentication is misconfigured."
