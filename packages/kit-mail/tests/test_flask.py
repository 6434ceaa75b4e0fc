"""The Flask extension: configuration from app.config, sending from views, problem+json."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from flask import Flask

from kit_mail import (
    ConfigurationError,
    InvalidMessage,
    Message,
    ProviderUnavailable,
)
from kit_mail._dev import ConsoleMailer, MemoryMailer
from kit_mail.flask import EXTENSION_KEY, KitMail, get_mailer
from kit_mail.smtp import SMTPMailer


def make_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    return app


def test_testing_app_defaults_to_the_memory_backend() -> None:
    app = make_app(TESTING=True, KIT_MAIL_DEFAULT_SENDER="App <app@example.com>")
    mail = KitMail(app)
    assert isinstance(app.extensions[EXTENSION_KEY], MemoryMailer)
    assert mail.mailer is app.extensions[EXTENSION_KEY]
    assert isinstance(mail.mailer, MemoryMailer)
    assert str(mail.mailer.default_sender) == "App <app@example.com>"


def test_other_apps_default_to_the_console_backend() -> None:
    app = make_app()
    KitMail(app)
    assert isinstance(app.extensions[EXTENSION_KEY], ConsoleMailer)


def test_backend_from_config() -> None:
    app = make_app(
        TESTING=True,
        KIT_MAIL_BACKEND="smtp",
        KIT_MAIL_SMTP_HOST="smtp.example.com",
        KIT_MAIL_SMTP_PORT=2525,
    )
    KitMail(app)
    mailer = app.extensions[EXTENSION_KEY]
    assert isinstance(mailer, SMTPMailer)
    assert (mailer.host, mailer.port) == ("smtp.example.com", 2525)


def test_invalid_config_fails_at_init_naming_the_key() -> None:
    app = make_app(KIT_MAIL_BACKEND="smtp", KIT_MAIL_SMTP_HOST="h", KIT_MAIL_SMTP_PORT="x")
    with pytest.raises(ConfigurationError, match=r"^KIT_MAIL_SMTP_PORT must be an integer"):
        KitMail(app)
    assert EXTENSION_KEY not in app.extensions


def test_given_mailer_is_used() -> None:
    mailer = MemoryMailer(default_sender="app@example.com")
    app = make_app(KIT_MAIL_BACKEND="console")
    mail = KitMail(app, mailer=mailer)
    assert mail.mailer is mailer
    with pytest.raises(ConfigurationError, match="mailer must be a kit-mail mailer"):
        KitMail(mailer="smtp://x")  # type: ignore[arg-type]


def test_views_send_and_the_outbox_records() -> None:
    app = make_app(TESTING=True, KIT_MAIL_DEFAULT_SENDER="app@example.com")
    mail = KitMail(app)

    @app.post("/invite/<name>")
    def invite(name: str) -> dict[str, Any]:
        result = mail.send(Message(to=f"{name}@example.com", subject=f"Welcome {name}", text="Hi"))
        results = get_mailer().send_many(
            [Message(to="audit@example.com", subject=f"Invited {name}", text="log")]
        )
        return {"id": result.message_id, "audit": results[0].message_id}

    client = app.test_client()
    response = client.post("/invite/ada")
    assert response.status_code == 200
    assert response.get_json() == {"id": "memory-1", "audit": "memory-2"}
    assert [m.subject for m in mail.outbox] == ["Welcome ada", "Invited ada"]
    assert mail.outbox[0].sender is not None
    assert mail.outbox[0].sender.email == "app@example.com"


def test_send_many_through_the_extension() -> None:
    app = make_app(TESTING=True, KIT_MAIL_DEFAULT_SENDER="app@example.com")
    mail = KitMail(app)
    results = mail.send_many(
        [Message(to=f"u{i}@example.com", subject="s", text="t") for i in range(3)]
    )
    assert [r.message_id for r in results] == ["memory-1", "memory-2", "memory-3"]


def test_app_factory_pattern_keeps_one_mailer_per_app() -> None:
    mail = KitMail()
    first = make_app(TESTING=True, KIT_MAIL_DEFAULT_SENDER="one@example.com")
    second = make_app(TESTING=True, KIT_MAIL_DEFAULT_SENDER="two@example.com")
    mail.init_app(first)
    mail.init_app(second)
    message = Message(to="ada@example.com", subject="s", text="t")
    with first.app_context():
        mail.send(message)
    with second.app_context():
        mail.send(message)
        mail.send(message)
        second_outbox = mail.outbox
    with first.app_context():
        first_outbox = mail.outbox
    assert [str(m.sender) for m in first_outbox] == ["one@example.com"]
    assert [str(m.sender) for m in second_outbox] == ["two@example.com"] * 2


def test_mailer_outside_an_app_context() -> None:
    mail = KitMail()
    with pytest.raises(ConfigurationError, match="needs an app"):
        _ = mail.mailer
    with pytest.raises(ConfigurationError, match="get_mailer\\(\\) needs an app context"):
        get_mailer()


def test_app_without_the_extension() -> None:
    app = make_app()
    with app.app_context(), pytest.raises(ConfigurationError, match="no kit-mail mailer"):
        get_mailer()


def test_outbox_only_with_the_memory_backend() -> None:
    app = make_app(KIT_MAIL_BACKEND="console")
    mail = KitMail(app)
    with pytest.raises(ConfigurationError, match="outbox exists only with the memory backend"):
        _ = mail.outbox


def test_console_backend_prints_from_a_view(capsys: pytest.CaptureFixture[str]) -> None:
    app = make_app(KIT_MAIL_DEFAULT_SENDER="app@example.com")
    mail = KitMail(app)

    @app.post("/hello")
    def hello() -> str:
        mail.send(Message(to="ada@example.com", subject="Printed", text="Hi"))
        return "ok"

    assert app.test_client().post("/hello").status_code == 200
    assert "Subject: Printed" in capsys.readouterr().out


def test_invalid_message_is_a_422_problem_with_its_detail() -> None:
    app = make_app(TESTING=True, KIT_MAIL_DEFAULT_SENDER="app@example.com")
    mail = KitMail(app)

    @app.post("/send")
    def send() -> str:
        mail.send(Message(to="bob@", subject="s", text="t"))
        return "unreachable"

    response = app.test_client().post("/send")
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"] == "https://kit.dev/problems/invalid-message"
    assert problem["detail"].startswith("to 'bob@' is not valid")


def test_provider_failure_is_a_503_with_a_fixed_detail_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mailer = MemoryMailer(
        default_sender="app@example.com",
        fail_with=ProviderUnavailable(
            "resend answered 503 for ada@example.com", provider="resend", provider_code=503
        ),
    )
    app = make_app()
    KitMail(app, mailer=mailer)

    @app.post("/send")
    def send() -> str:
        get_mailer().send(Message(to="ada@example.com", subject="s", text="t"))
        return "unreachable"

    with caplog.at_level(logging.ERROR, logger="kit_mail"):
        response = app.test_client().post("/send")
    assert response.status_code == 503
    problem = response.get_json()
    assert problem["detail"] == "The mail provider cannot be reached right now. Try again later."
    assert "ada@example.com" not in response.get_data(as_text=True)
    assert "resend answered 503 for ada@example.com" in caplog.text


def test_invalid_message_is_not_logged_as_an_error(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(TESTING=True)
    KitMail(app)

    @app.post("/send")
    def send() -> str:
        raise InvalidMessage("to: bad")

    with caplog.at_level(logging.ERROR, logger="kit_mail"):
        assert app.test_client().post("/send").status_code == 422
    assert caplog.records == []


def test_console_mailer_stream_stays_the_users_choice() -> None:
    stream = io.StringIO()
    app = make_app()
    mail = KitMail(app, mailer=ConsoleMailer(default_sender="a@example.com", stream=stream))
    with app.app_context():
        mail.send(Message(to="ada@example.com", subject="To a stream", text="x"))
    assert "Subject: To a stream" in stream.getvalue()
