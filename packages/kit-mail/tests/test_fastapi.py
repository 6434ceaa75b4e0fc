"""The FastAPI adapter: the lifespan, the dependency, problem+json; over httpx's ASGI
transport (not starlette.testclient, which warns when it finds httpx)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from smtp_server import SMTPTestServer, make_smtp_server, smtp_server

from kit_mail import ConfigurationError, Mailer, Message, ProviderRejected
from kit_mail._dev import ConsoleMailer, MemoryMailer
from kit_mail.fastapi import (
    STATE_KEY,
    MailerDependency,
    get_mailer,
    install_problem_handlers,
    kit_mail_lifespan,
)

__all__ = ["make_smtp_server", "smtp_server"]  # fixtures used by the tests below


@asynccontextmanager
async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    assert app.router.lifespan_context is not None
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def mail_app(mailer: Mailer | None = None) -> FastAPI:
    app = FastAPI(lifespan=kit_mail_lifespan(mailer))
    install_problem_handlers(app)

    @app.post("/invite/{name}")
    async def invite(name: str, mailer: MailerDependency) -> dict[str, Any]:
        result = await mailer.asend(
            Message(to=f"{name}@example.com", subject=f"Welcome {name}", text="Hi")
        )
        return {"id": result.message_id, "accepted": list(result.accepted)}

    @app.post("/sync/{name}")
    def sync(name: str, mailer: Mailer = Depends(get_mailer)) -> dict[str, str]:  # noqa: B008
        return {
            "id": mailer.send(Message(to=f"{name}@example.com", subject="s", text="t")).message_id
        }

    return app


async def test_given_mailer_serves_requests() -> None:
    mailer = MemoryMailer(default_sender="app@example.com")
    app = mail_app(mailer)
    async with client_for(app) as client:
        first = await client.post("/invite/ada")
        second = await client.post("/sync/bob")
        assert getattr(app.state, STATE_KEY) is mailer
    assert first.json() == {"id": "memory-1", "accepted": ["ada@example.com"]}
    assert second.json() == {"id": "memory-2"}
    assert [m.subject for m in mailer.outbox] == ["Welcome ada", "s"]
    assert not hasattr(app.state, STATE_KEY)


async def test_mailer_built_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_MAIL_BACKEND", "memory")
    monkeypatch.setenv("KIT_MAIL_DEFAULT_SENDER", "env@example.com")
    app = mail_app()
    async with client_for(app) as client:
        response = await client.post("/invite/ada")
        mailer = getattr(app.state, STATE_KEY)
    assert response.json()["id"] == "memory-1"
    assert isinstance(mailer, MemoryMailer)
    assert [str(m.sender) for m in mailer.outbox] == ["env@example.com"]


async def test_built_mailer_is_closed_at_shutdown(
    monkeypatch: pytest.MonkeyPatch, smtp_server: SMTPTestServer
) -> None:
    monkeypatch.setenv("KIT_MAIL_BACKEND", "smtp")
    monkeypatch.setenv("KIT_MAIL_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("KIT_MAIL_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("KIT_MAIL_SMTP_SECURITY", "none")
    monkeypatch.setenv("KIT_MAIL_DEFAULT_SENDER", "app@example.com")
    app = mail_app()
    closed: list[bool] = []
    async with client_for(app) as client:
        mailer = getattr(app.state, STATE_KEY)
        original_close = mailer.close

        def close() -> None:
            closed.append(True)
            original_close()

        monkeypatch.setattr(mailer, "close", close)
        assert (await client.post("/invite/ada")).status_code == 200
        assert (await client.post("/invite/bob")).status_code == 200
        assert closed == []
    assert closed == [True]
    assert [m.rcpt_tos for m in smtp_server.messages] == [
        ("ada@example.com",),
        ("bob@example.com",),
    ]
    assert {m.connection for m in smtp_server.messages} == {1}  # one connection for the app


async def test_given_mailer_is_left_open(monkeypatch: pytest.MonkeyPatch) -> None:
    mailer = MemoryMailer(default_sender="app@example.com")
    closed: list[bool] = []
    monkeypatch.setattr(mailer, "close", lambda: closed.append(True))
    async with client_for(mail_app(mailer)):
        pass
    assert closed == []


async def test_invalid_environment_fails_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_MAIL_BACKEND", "smtp")
    monkeypatch.delenv("KIT_MAIL_SMTP_HOST", raising=False)
    with pytest.raises(ConfigurationError, match="KIT_MAIL_SMTP_HOST is required"):
        async with client_for(mail_app()):
            pass


async def test_inside_a_lifespan_of_your_own() -> None:
    mailer = MemoryMailer(default_sender="app@example.com")
    opened: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened.append("db")
        async with kit_mail_lifespan(mailer)(app):
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/ping")
    async def ping(mailer: MailerDependency) -> str:
        return mailer.name

    async with client_for(app) as client:
        assert (await client.post("/ping")).json() == "memory"
    assert opened == ["db"]


async def test_without_the_lifespan_the_dependency_is_a_problem() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/ping")
    async def ping(mailer: MailerDependency) -> str:
        return mailer.name

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/ping")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://kit.dev/problems/mail-misconfigured"


async def test_invalid_message_is_a_422_problem() -> None:
    app = mail_app(MemoryMailer(default_sender="app@example.com"))
    async with client_for(app) as client:
        response = await client.post("/invite/bad name")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith("to 'bad name@example.com' is not valid")


async def test_provider_errors_are_502_with_a_fixed_detail_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = ProviderRejected("resend answered 403 for key re_abc", provider="resend")
    app = mail_app(MemoryMailer(default_sender="app@example.com", fail_with=error))
    with caplog.at_level(logging.ERROR, logger="kit_mail"):
        async with client_for(app) as client:
            response = await client.post("/invite/ada")
    assert response.status_code == 502
    assert response.json() == {
        "type": "https://kit.dev/problems/mail-rejected",
        "title": "Mail rejected by the provider",
        "status": 502,
        "detail": "The mail provider rejected the message.",
    }
    assert "re_abc" not in response.text
    assert "resend answered 403 for key re_abc" in caplog.text


def test_lifespan_argument_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="mailer must be a kit-mail mailer"):
        kit_mail_lifespan("console")  # type: ignore[arg-type]


async def test_console_backend_through_the_app(capsys: pytest.CaptureFixture[str]) -> None:
    app = mail_app(ConsoleMailer(default_sender="app@example.com"))
    async with client_for(app) as client:
        assert (await client.post("/invite/ada")).json()["id"] == "console-1"
    assert "To: ada@example.com" in capsys.readouterr().out
