"""``ping()``: every mailer's health check, against a real aiosmtpd server on loopback (plain,
STARTTLS, implicit TLS, AUTH), the local Resend stand-in over real HTTP, a port nobody
listens on and a server that accepts connections and never answers."""

from __future__ import annotations

import io
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import resend
import smtp_server as servers
import trustme
from resend_server import FakeResend, Scripted, resend_server_fixture  # noqa: F401
from smtp_server import HOST, SMTPTestServer

from kit_mail import (
    BaseMailer,
    ConfigurationError,
    ConsoleMailer,
    Mailer,
    MemoryMailer,
    Message,
    ProviderRejected,
    ProviderUnavailable,
)
from kit_mail.resend import ResendMailer
from kit_mail.smtp import SMTPMailer

# the fixtures of smtp_server.py, made visible to pytest in this module
make_smtp_server = servers.make_smtp_server
tls_ca = servers.tls_ca
client_tls_context = servers.client_tls_context

MakeServer = Callable[..., SMTPTestServer]
SENDER = "App <app@example.com>"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung server)."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(8)
        yield listener.getsockname()[1]


# ----------------------------------------------------------------------------- dev mailers


def test_console_and_memory_mailers_are_healthy() -> None:
    for mailer in (ConsoleMailer(stream=io.StringIO()), MemoryMailer()):
        assert isinstance(mailer, Mailer)
        assert mailer.ping() is True
        assert mailer.ping(timeout=0.1) is True


def test_memory_mailer_is_down_only_while_it_fails_every_send_as_unavailable() -> None:
    mailer = MemoryMailer()
    mailer.fail_with = ProviderUnavailable("down")
    assert mailer.ping() is False
    mailer.fail_with = ProviderRejected("no such user")  # refusing messages is not down
    assert mailer.ping() is True
    mailer.fail_with = lambda message: ProviderUnavailable("down")  # per message: unknown
    assert mailer.ping() is True
    mailer.fail_with = None
    assert mailer.ping() is True


def test_a_custom_mailer_inherits_a_true_ping() -> None:
    class Null(BaseMailer):
        name = "null"

        def _send(self, message: Message) -> Any:
            raise AssertionError("not sent")

    assert Null().ping() is True


# ----------------------------------------------------------------------------- smtp


def test_smtp_ping_opens_its_own_session_and_sends_nothing(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server()
    mailer = SMTPMailer(server.host, server.port, security="none", default_sender=SENDER)
    mailer.send(Message(to="a@example.com", subject="one", text="x"))
    assert mailer.ping() is True
    assert mailer.ping(timeout=1) is True
    mailer.send(Message(to="b@example.com", subject="two", text="x"))
    # Two pings, two connections of their own; both sends went over the kept connection.
    assert server.connections == 3
    assert [(str(r.message["Subject"]), r.connection) for r in server.messages] == [
        ("one", 1),
        ("two", 1),
    ]
    mailer.close()


def test_smtp_ping_is_false_once_the_server_stops() -> None:
    server = SMTPTestServer().start()
    try:
        mailer = SMTPMailer(server.host, server.port, security="none")
        assert mailer.ping() is True
    finally:
        server.stop()
    assert mailer.ping() is False


def test_smtp_ping_over_starttls_logs_in(
    make_smtp_server: MakeServer, tls_ca: trustme.CA, client_tls_context: ssl.SSLContext
) -> None:
    server = make_smtp_server(security="starttls", ca=tls_ca, users={"app": "s3cret"})
    good = SMTPMailer(
        server.host, server.port, username="app", password="s3cret", ssl_context=client_tls_context
    )
    assert good.ping() is True
    wrong = SMTPMailer(
        server.host, server.port, username="app", password="wrong", ssl_context=client_tls_context
    )
    assert wrong.ping() is False  # a refused login is not a usable server
    untrusted = SMTPMailer(server.host, server.port, username="app", password="s3cret")
    assert untrusted.ping() is False  # the certificate is checked, as for a send
    assert server.messages == []


def test_smtp_ping_over_implicit_tls(
    make_smtp_server: MakeServer, tls_ca: trustme.CA, client_tls_context: ssl.SSLContext
) -> None:
    server = make_smtp_server(security="tls", ca=tls_ca)
    mailer = SMTPMailer(server.host, server.port, security="tls", ssl_context=client_tls_context)
    assert mailer.ping() is True
    plain = SMTPMailer(server.host, server.port, security="none")
    assert plain.ping(timeout=1) is False  # a plain session on a TLS port fails


def test_smtp_ping_is_false_when_nothing_listens() -> None:
    assert SMTPMailer(HOST, free_port(), security="none").ping(timeout=1) is False


def test_smtp_ping_is_false_for_a_server_that_never_answers(silent_port: int) -> None:
    assert SMTPMailer(HOST, silent_port, security="none").ping(timeout=0.3) is False


# ----------------------------------------------------------------------------- resend


def test_resend_ping_asks_for_the_domains_with_the_key(resend_server: FakeResend) -> None:
    mailer = ResendMailer("re_ping", api_url=resend_server.url)
    assert mailer.ping() is True
    assert [(r.method, r.path, r.authorization) for r in resend_server.requests] == [
        ("GET", "/domains", "Bearer re_ping")
    ]
    assert resend_server.sent == []


def test_resend_ping_accepts_a_sending_only_key_and_refuses_an_unknown_one() -> None:
    server = FakeResend(api_keys={"re_full"}, sending_only_keys={"re_send"}).start()
    try:
        assert ResendMailer("re_full", api_url=server.url).ping() is True
        assert ResendMailer("re_send", api_url=server.url).ping() is True
        assert ResendMailer("re_unknown", api_url=server.url).ping() is False
    finally:
        server.stop()


def test_resend_ping_is_false_on_a_server_error_and_does_not_retry(
    resend_server: FakeResend,
) -> None:
    resend_server.script(Scripted.server_error(503), Scripted.rate_limited())
    mailer = ResendMailer("re_ping", api_url=resend_server.url, max_retries=3, backoff=0)
    assert mailer.ping() is False
    assert mailer.ping() is False  # 429
    assert len(resend_server.requests) == 2
    assert mailer.ping() is True


def test_resend_ping_is_false_when_nothing_listens() -> None:
    mailer = ResendMailer("re_ping", api_url=f"http://{HOST}:{free_port()}")
    assert mailer.ping(timeout=1) is False


def test_resend_ping_is_false_for_a_server_that_never_answers(silent_port: int) -> None:
    mailer = ResendMailer("re_ping", api_url=f"http://{HOST}:{silent_port}")
    assert mailer.ping(timeout=0.3) is False


def test_resend_ping_goes_through_a_custom_http_client(resend_server: FakeResend) -> None:
    calls: list[tuple[str, str]] = []

    class Recording(resend.RequestsClient):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            calls.append((kwargs["method"], kwargs["url"]))
            return super().request(*args, **kwargs)

    mailer = ResendMailer("re_ping", api_url=resend_server.url, http_client=Recording())
    assert mailer.ping() is True
    assert calls == [("get", resend_server.url + "/domains")]


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), "1", True, None])
def test_a_bad_timeout_is_refused(timeout: object) -> None:
    mailers: list[Mailer] = [
        ConsoleMailer(stream=io.StringIO()),
        MemoryMailer(),
        SMTPMailer(HOST, 25, security="none"),
        ResendMailer("re_ping", api_url="http://127.0.0.1:9"),
    ]
    for mailer in mailers:
        with pytest.raises(ConfigurationError, match="timeout="):
            mailer.ping(timeout=timeout)  # type: ignore[arg-type]
