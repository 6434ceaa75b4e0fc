"""Building a mailer from settings and from the environment."""

from __future__ import annotations

from typing import Any

import pytest
from smtp_server import SMTPTestServer, make_smtp_server, smtp_server

from kit_mail import ConfigurationError, Message
from kit_mail._config import SETTINGS, mailer_from_env, mailer_from_settings
from kit_mail._dev import ConsoleMailer, MemoryMailer
from kit_mail.resend import ResendMailer
from kit_mail.smtp import SMTPMailer

__all__ = ["make_smtp_server", "smtp_server"]  # fixtures used by the tests below

SECRET = "s3cret-Pa55word"
API_KEY = "re_live_ThisIsASecretKey"


def build(**values: Any) -> Any:  # Any: each test checks its own mailer class
    return mailer_from_settings({f"KIT_MAIL_{k}": v for k, v in values.items()})


@pytest.mark.parametrize(("backend", "cls"), [("memory", MemoryMailer), ("console", ConsoleMailer)])
def test_dev_backends(backend: str, cls: type[MemoryMailer | ConsoleMailer]) -> None:
    mailer = build(BACKEND=backend, DEFAULT_SENDER="App <app@example.com>")
    assert isinstance(mailer, cls)
    assert str(mailer.default_sender) == "App <app@example.com>"


def test_backend_name_is_case_and_space_insensitive() -> None:
    assert isinstance(build(BACKEND="  Memory "), MemoryMailer)


def test_smtp_backend_with_every_setting() -> None:
    mailer = build(
        BACKEND="smtp",
        SMTP_HOST="smtp.example.com",
        SMTP_PORT="2525",
        SMTP_SECURITY="TLS",
        SMTP_USERNAME="app",
        SMTP_PASSWORD=SECRET,
        SMTP_TIMEOUT="2.5",
        DEFAULT_SENDER="app@example.com",
    )
    assert isinstance(mailer, SMTPMailer)
    assert (mailer.host, mailer.port, mailer.security, mailer.username, mailer.timeout) == (
        "smtp.example.com",
        2525,
        "tls",
        "app",
        2.5,
    )
    assert mailer.default_sender is not None and mailer.default_sender.email == "app@example.com"


def test_smtp_backend_defaults_and_typed_values() -> None:
    mailer = build(BACKEND="smtp", SMTP_HOST="smtp.example.com")
    assert (mailer.port, mailer.security, mailer.username, mailer.timeout) == (
        587,
        "starttls",
        None,
        10.0,
    )
    typed = build(BACKEND="smtp", SMTP_HOST="smtp.example.com", SMTP_PORT=465, SMTP_TIMEOUT=3)
    assert (typed.port, typed.timeout) == (465, 3.0)


def test_smtp_backend_sends_to_a_real_server(smtp_server: SMTPTestServer) -> None:
    mailer = build(
        BACKEND="smtp",
        SMTP_HOST=smtp_server.host,
        SMTP_PORT=str(smtp_server.port),
        SMTP_SECURITY="none",
        DEFAULT_SENDER="app@example.com",
    )
    with mailer:
        result = mailer.send(Message(to="ada@example.com", subject="From settings", text="Hi"))
    assert result.accepted == ("ada@example.com",)
    [received] = smtp_server.messages
    assert (received.mail_from, received.rcpt_tos) == ("app@example.com", ("ada@example.com",))
    assert received.message["Subject"] == "From settings"


def test_resend_backend() -> None:
    mailer = build(
        BACKEND="resend",
        RESEND_API_KEY=API_KEY,
        RESEND_API_URL="http://127.0.0.1:9/",
        RESEND_TIMEOUT="5",
        RESEND_MAX_RETRIES="0",
        DEFAULT_SENDER="app@example.com",
    )
    assert isinstance(mailer, ResendMailer)
    assert (mailer.api_url, mailer.timeout, mailer.max_retries) == ("http://127.0.0.1:9", 5.0, 0)
    assert API_KEY not in repr(mailer)


def test_resend_backend_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESEND_API_URL", raising=False)
    mailer = build(BACKEND="resend", RESEND_API_KEY=API_KEY)
    assert (mailer.api_url, mailer.timeout, mailer.max_retries) == (
        "https://api.resend.com",
        30.0,
        3,
    )


def test_settings_of_other_backends_are_ignored() -> None:
    mailer = build(BACKEND="memory", SMTP_PORT="not a number", RESEND_API_KEY="x y")
    assert isinstance(mailer, MemoryMailer)


def test_empty_and_none_values_mean_unset() -> None:
    mailer = build(BACKEND="smtp", SMTP_HOST="smtp.example.com", SMTP_PORT="", SMTP_USERNAME=None)
    assert (mailer.port, mailer.username) == (587, None)
    assert build(BACKEND="memory", DEFAULT_SENDER="").default_sender is None


def test_default_backend_applies_only_when_unset() -> None:
    assert isinstance(mailer_from_settings({}, default_backend="console"), ConsoleMailer)
    assert isinstance(
        mailer_from_settings({"KIT_MAIL_BACKEND": "memory"}, default_backend="console"),
        MemoryMailer,
    )


def test_other_prefix_and_unrelated_keys() -> None:
    mailer = mailer_from_settings(
        {"MAIL_BACKEND": "memory", "SECRET_KEY": "x", "KIT_MAIL_BACKEND": "nonsense"},
        prefix="MAIL_",
    )
    assert isinstance(mailer, MemoryMailer)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({}, "^KIT_MAIL_BACKEND is not set: set it to console, memory, smtp, resend"),
        ({"BACKEND": "sendgrid"}, "^KIT_MAIL_BACKEND must be one of .* not 'sendgrid'"),
        ({"BACKEND": 3}, "^KIT_MAIL_BACKEND must be a string"),
        ({"BACKEND": "memory", "DEFAULT_SENDER": "app@"}, "^KIT_MAIL_DEFAULT_SENDER 'app@' is"),
        ({"BACKEND": "memory", "SMTP_PROT": "25"}, "^KIT_MAIL_SMTP_PROT is not a kit-mail setting"),
        ({"BACKEND": "smtp"}, "^KIT_MAIL_SMTP_HOST is required by the smtp backend"),
        ({"BACKEND": "smtp", "SMTP_HOST": "h", "SMTP_PORT": "smtp"}, "^KIT_MAIL_SMTP_PORT must be an integer"),
        ({"BACKEND": "smtp", "SMTP_HOST": "h", "SMTP_PORT": 25.5}, "^KIT_MAIL_SMTP_PORT must be an integer"),
        ({"BACKEND": "smtp", "SMTP_HOST": "h", "SMTP_PORT": True}, "^KIT_MAIL_SMTP_PORT must be an integer"),
        ({"BACKEND": "smtp", "SMTP_HOST": "h", "SMTP_PORT": "0"}, "^KIT_MAIL_SMTP_PORT must be an integer >= 1"),
        ({"BACKEND": "smtp", "SMTP_HOST": "h", "SMTP_PORT": "70000"}, "^KIT_MAIL_SMTP_PORT must be a port number"),
        ({"BACKEND": "smtp", "SMTP_HOST": "h", "SMTP_SECURITY": "ssl"}, "^KIT_MAIL_SMTP_SECURITY must be starttls, tls or none"),
        ({"BACKEND": "smtp", "SMTP_HOST": "h", "SMTP_TIMEOUT": "soon"}, "^KIT_MAIL_SMTP_TIMEOUT must be a number"),
        ({"BACKEND": "smtp", "SMTP_HOST": "h", "SMTP_TIMEOUT": "0"}, "^KIT_MAIL_SMTP_TIMEOUT must be more than 0"),
        ({"BACKEND": "smtp", "SMTP_HOST": "h", "SMTP_TIMEOUT": "nan"}, "^KIT_MAIL_SMTP_TIMEOUT must be a number >= 0"),
        ({"BACKEND": "smtp", "SMTP_HOST": "h", "SMTP_USERNAME": "app"}, "^KIT_MAIL_SMTP_PASSWORD is not set"),
        ({"BACKEND": "smtp", "SMTP_HOST": "h", "SMTP_PASSWORD": SECRET}, "^KIT_MAIL_SMTP_USERNAME is not set"),
        ({"BACKEND": "smtp", "SMTP_HOST": "h", "SMTP_USERNAME": 5, "SMTP_PASSWORD": SECRET}, "^KIT_MAIL_SMTP_USERNAME must be a string"),
        ({"BACKEND": "smtp", "SMTP_HOST": "bad host"}, "^the KIT_MAIL_SMTP_\\* settings: SMTPMailer: host must be"),
        ({"BACKEND": "smtp", "SMTP_HOST": "smtp.example.com", "SMTP_SECURITY": "none", "SMTP_USERNAME": "u", "SMTP_PASSWORD": SECRET}, "sends the password in clear"),
        ({"BACKEND": "resend"}, "^KIT_MAIL_RESEND_API_KEY is required by the resend backend"),
        ({"BACKEND": "resend", "RESEND_API_KEY": "re_1 2"}, "^KIT_MAIL_RESEND_API_KEY holds whitespace"),
        ({"BACKEND": "resend", "RESEND_API_KEY": "re_1", "RESEND_API_URL": "ftp://x"}, "^the KIT_MAIL_RESEND_\\* settings: api_url 'ftp://x'"),
        ({"BACKEND": "resend", "RESEND_API_KEY": "re_1", "RESEND_MAX_RETRIES": "-1"}, "^KIT_MAIL_RESEND_MAX_RETRIES must be an integer >= 0"),
        ({"BACKEND": "resend", "RESEND_API_KEY": "re_1", "RESEND_TIMEOUT": "0"}, "^KIT_MAIL_RESEND_TIMEOUT must be more than 0"),
    ],
)  # fmt: skip
def test_invalid_settings_name_the_key(values: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        build(**values)


@pytest.mark.parametrize(
    "values",
    [
        {"BACKEND": "smtp", "SMTP_HOST": "h", "SMTP_PASSWORD": f"{SECRET} x"},
        {"BACKEND": "smtp", "SMTP_HOST": "h", "SMTP_PORT": "x", "SMTP_PASSWORD": SECRET},
        {"BACKEND": "resend", "RESEND_API_KEY": f"{API_KEY} x"},
        {"BACKEND": "resend", "RESEND_API_KEY": API_KEY, "RESEND_API_URL": "nope"},
    ],
)
def test_errors_never_quote_secrets(values: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        build(**values)
    assert SECRET not in str(info.value)
    assert API_KEY not in str(info.value)


def test_unknown_key_error_lists_the_settings() -> None:
    with pytest.raises(ConfigurationError) as info:
        build(BACKEND="memory", HOST="x")
    for key in SETTINGS:
        assert f"KIT_MAIL_{key}" in str(info.value)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([("KIT_MAIL_BACKEND", "memory")],), {}, "settings must be a mapping"),
        (({},), {"default_backend": "smtp2"}, "default_backend must be one of"),
        (({}, 5), {}, "prefix must be a string"),
    ],
)
def test_arguments_are_validated(args: tuple[Any, ...], kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        mailer_from_settings(*args, **kwargs)


def test_mailer_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_MAIL_BACKEND", "smtp")
    monkeypatch.setenv("KIT_MAIL_SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("KIT_MAIL_SMTP_PORT", "465")
    monkeypatch.setenv("KIT_MAIL_SMTP_SECURITY", "tls")
    mailer = mailer_from_env()
    assert isinstance(mailer, SMTPMailer)
    assert (mailer.port, mailer.security) == (465, "tls")


def test_mailer_from_env_prefix_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in SETTINGS:
        monkeypatch.delenv(f"KIT_MAIL_{key}", raising=False)
    with pytest.raises(ConfigurationError, match="KIT_MAIL_BACKEND is not set"):
        mailer_from_env()
    assert isinstance(mailer_from_env(default_backend="memory"), MemoryMailer)
    monkeypatch.setenv("MYAPP_MAIL_BACKEND", "console")
    assert isinstance(mailer_from_env("MYAPP_MAIL_"), ConsoleMailer)
