"""Smoke tests every kit package starts with: the public API, the errors, the adapters."""

from __future__ import annotations

import pytest

import kit_mail
from kit_mail import ConfigurationError, InvalidMessage, KitMailError


def test_public_api_names_exist() -> None:
    assert kit_mail.__all__ == sorted(kit_mail.__all__)
    for name in kit_mail.__all__:
        assert hasattr(kit_mail, name), name


def test_version_is_a_string() -> None:
    assert isinstance(kit_mail.__version__, str)


FIXED_500_DETAIL = "The server's mail sending is misconfigured."


def test_errors_derive_from_the_package_base() -> None:
    error = ConfigurationError("KIT_MAIL_SMTP_PORT must be an integer")
    assert isinstance(error, KitMailError)
    assert isinstance(error, ValueError)
    # a 5xx problem carries a fixed detail (the message may name hosts or accounts)
    assert error.problem()["detail"] == FIXED_500_DETAIL
    assert error.problem()["status"] == 500
    # a 4xx one says what was wrong
    invalid = InvalidMessage("to 'bob@' is not valid")
    assert isinstance(invalid, KitMailError)
    assert invalid.problem()["detail"] == "to 'bob@' is not valid"


def test_flask_adapter_answers_errors_with_problem_json() -> None:
    pytest.importorskip("flask")
    from flask import Flask

    from kit_mail.flask import KitMail

    app = Flask(__name__)
    KitMail(app)

    @app.get("/boom")
    def boom() -> str:
        raise ConfigurationError("bad setting")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["detail"] == FIXED_500_DETAIL


async def test_fastapi_adapter_answers_errors_with_problem_json() -> None:
    pytest.importorskip("fastapi")
    import httpx
    from fastapi import FastAPI

    from kit_mail._dev import MemoryMailer
    from kit_mail.fastapi import install_problem_handlers, kit_mail_lifespan

    lifespan = kit_mail_lifespan(MemoryMailer())
    app = FastAPI(lifespan=lifespan)
    install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise ConfigurationError("bad setting")

    # httpx's ASGI transport rather than starlette.testclient, which warns when it finds
    # httpx instead of httpx2 (Starlette >= 1.10), and warnings are errors here.
    async with lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == FIXED_500_DETAIL
