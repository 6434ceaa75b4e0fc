"""SMTPMailer against a real aiosmtpd server on loopback (see smtp_server.py)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
import smtp_server as servers
import trustme
from smtp_server import HOST, RecordingHandler, SMTPTestServer

from kit_mail._message import Attachment, Message
from kit_mail._result import SendResult
from kit_mail.exceptions import (
    BatchDeliveryError,
    ConfigurationError,
    ProviderRejected,
    ProviderUnavailable,
)
from kit_mail.smtp import SMTPMailer

# the fixtures of smtp_server.py, made visible to pytest in this module
smtp_server = servers.smtp_server
make_smtp_server = servers.make_smtp_server
tls_ca = servers.tls_ca
client_tls_context = servers.client_tls_context

MakeServer = Callable[..., SMTPTestServer]
SENDER = "App <app@example.com>"


def plain(server: SMTPTestServer, **kwargs: object) -> SMTPMailer:
    return SMTPMailer(server.host, server.port, security="none", default_sender=SENDER, **kwargs)  # type: ignore[arg-type]


def batch(n: int, **kwargs: object) -> list[Message]:
    return [
        Message(to=f"user{i}@example.com", subject=f"message {i}", text=f"body {i}", **kwargs)  # type: ignore[arg-type]
        for i in range(n)
    ]


def subjects(server: SMTPTestServer) -> list[str]:
    return [str(r.message["Subject"]) for r in server.messages]


def sent_results(error: BatchDeliveryError) -> list[SendResult]:
    """The results in ``error.sent``, which pairs each message's index with its result."""
    return [result for _index, result in error.sent]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------- sending


def test_send_delivers_and_reports(smtp_server: SMTPTestServer) -> None:
    with plain(smtp_server) as mailer:
        result = mailer.send(
            Message(to="Ada <ada@example.com>", cc="bob@example.com", subject="Hi", text="Hello")
        )
    [got] = smtp_server.messages
    assert got.mail_from == "app@example.com"
    assert got.rcpt_tos == ("ada@example.com", "bob@example.com")
    assert result.provider == "smtp"
    assert result.accepted == ("ada@example.com", "bob@example.com")
    assert result.message_id == got.message["Message-ID"]
    assert result.message_id.endswith("@example.com>")
    assert got.message["Date"]
    assert got.message.get_content().strip() == "Hello"


def test_content_multipart_attachments_headers_and_no_bcc_header(
    smtp_server: SMTPTestServer, tmp_path: Path
) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 fake")
    message = Message(
        to="ada@example.com",
        bcc=["audit@example.com", "Secret Watcher <watch@example.com>"],
        reply_to="support@example.com",
        subject="Your invoice",
        text="Plain body",
        html="<p>Rich <b>body</b></p>",
        attachments=[Attachment("data.csv", b"a,b\n1,2\n"), Attachment("report.pdf", path=report)],
        headers={"X-Campaign": "spring", "List-Unsubscribe": "<mailto:u@example.com>"},
    )
    with plain(smtp_server) as mailer:
        mailer.send(message)
    [got] = smtp_server.messages
    assert set(got.rcpt_tos) == {"ada@example.com", "audit@example.com", "watch@example.com"}
    assert b"audit@example.com" not in got.content
    assert b"watch@example.com" not in got.content
    assert b"Bcc" not in got.content
    mime = got.message
    assert mime["Subject"] == "Your invoice"
    assert mime["Reply-To"] == "support@example.com"
    assert mime["X-Campaign"] == "spring"
    assert mime["List-Unsubscribe"] == "<mailto:u@example.com>"
    assert mime.get_content_type() == "multipart/mixed"
    body = mime.get_body(("plain",))
    html = mime.get_body(("html",))
    assert isinstance(body, EmailMessage)
    assert isinstance(html, EmailMessage)
    assert body.get_content().strip() == "Plain body"
    assert html.get_content().strip() == "<p>Rich <b>body</b></p>"
    attachments = {a.get_filename(): a for a in mime.iter_attachments()}
    assert attachments["data.csv"].get_content_type() == "text/csv"
    assert attachments["data.csv"].get_payload(decode=True) == b"a,b\n1,2\n"
    assert attachments["report.pdf"].get_content_type() == "application/pdf"
    assert attachments["report.pdf"].get_payload(decode=True) == b"%PDF-1.4 fake"


def test_non_ascii_subject_and_names_are_encoded(smtp_server: SMTPTestServer) -> None:
    message = Message(
        to="Zoë Ŝmith <zoe@example.com>",
        sender="Équipe Café <cafe@example.com>",
        subject="Réservation confirmée ☕",
        text="Merci, à bientôt",
    )
    with plain(smtp_server) as mailer:
        mailer.send(message)
    [got] = smtp_server.messages
    headers, _, _ = got.content.partition(b"\r\n\r\n")
    headers.decode("ascii")  # every header is 7-bit (RFC 2047 encoded words) on the wire
    assert b"=?utf-8?" in headers
    assert "BODY=8BITMIME" in got.mail_options  # the UTF-8 body is declared as 8-bit
    mime = got.message
    assert mime["Subject"] == "Réservation confirmée ☕"
    assert mime["To"].addresses[0].display_name == "Zoë Ŝmith"
    assert mime["From"].addresses[0].display_name == "Équipe Café"
    assert mime.get_content().strip() == "Merci, à bientôt"


def test_idempotency_key_gives_a_stable_message_id(smtp_server: SMTPTestServer) -> None:
    message = Message(
        to="ada@example.com", subject="Welcome", text="Hi", idempotency_key="welcome/user-42"
    )
    with plain(smtp_server) as mailer:
        first = mailer.send(message)
        second = mailer.send(message)
        other = mailer.send(message.replace(idempotency_key="welcome/user-43"))
    assert first.message_id == second.message_id != other.message_id
    assert first.idempotency_key == "welcome/user-42"
    assert [r.message["Message-ID"] for r in smtp_server.messages] == [
        first.message_id,
        first.message_id,
        other.message_id,
    ]


def test_message_without_sender_and_no_default_is_refused(smtp_server: SMTPTestServer) -> None:
    mailer = SMTPMailer(smtp_server.host, smtp_server.port, security="none")
    with pytest.raises(Exception, match="no sender"):
        mailer.send(Message(to="ada@example.com", subject="x", text="y"))
    assert smtp_server.connections == 0


# ---------------------------------------------------------------------- TLS and AUTH


def test_starttls_with_a_trusted_certificate(
    make_smtp_server: MakeServer, tls_ca: trustme.CA, client_tls_context: ssl.SSLContext
) -> None:
    server = make_smtp_server(security="starttls", ca=tls_ca)
    with SMTPMailer(
        server.host, server.port, default_sender=SENDER, ssl_context=client_tls_context
    ) as mailer:
        mailer.send(Message(to="ada@example.com", subject="Secure", text="over TLS"))
    [got] = server.messages
    assert got.tls


def test_starttls_with_the_default_context_refuses_an_untrusted_certificate(
    make_smtp_server: MakeServer, tls_ca: trustme.CA
) -> None:
    server = make_smtp_server(security="starttls", ca=tls_ca)
    mailer = SMTPMailer(server.host, server.port, default_sender=SENDER)
    with pytest.raises(ProviderUnavailable, match="certificate could not be verified") as info:
        mailer.send(Message(to="ada@example.com", subject="Secure", text="x"))
    assert f"{server.host}:{server.port}" in str(info.value)
    assert "ssl_context=" in str(info.value)
    assert server.messages == []


def test_starttls_to_a_server_that_does_not_offer_it(smtp_server: SMTPTestServer) -> None:
    mailer = SMTPMailer(smtp_server.host, smtp_server.port, default_sender=SENDER)
    with pytest.raises(ConfigurationError, match="does not offer STARTTLS"):
        mailer.send(Message(to="ada@example.com", subject="x", text="y"))


def test_implicit_tls(
    make_smtp_server: MakeServer, tls_ca: trustme.CA, client_tls_context: ssl.SSLContext
) -> None:
    server = make_smtp_server(security="tls", ca=tls_ca)
    with SMTPMailer(
        server.host,
        server.port,
        security="tls",
        default_sender=SENDER,
        ssl_context=client_tls_context,
    ) as mailer:
        mailer.send_many(batch(3))
    assert [r.tls for r in server.messages] == [True, True, True]
    assert server.connections == 1


def test_auth_success_over_starttls(
    make_smtp_server: MakeServer, tls_ca: trustme.CA, client_tls_context: ssl.SSLContext
) -> None:
    server = make_smtp_server(security="starttls", ca=tls_ca, users={"app": "s3cret"})
    with SMTPMailer(
        server.host,
        server.port,
        username="app",
        password="s3cret",
        default_sender=SENDER,
        ssl_context=client_tls_context,
    ) as mailer:
        mailer.send(Message(to="ada@example.com", subject="x", text="y"))
    assert [r.authenticated_as for r in server.messages] == ["app"]


def test_auth_failure_is_rejected_without_the_password(
    make_smtp_server: MakeServer, tls_ca: trustme.CA, client_tls_context: ssl.SSLContext
) -> None:
    server = make_smtp_server(security="starttls", ca=tls_ca, users={"app": "s3cret"})
    mailer = SMTPMailer(
        server.host,
        server.port,
        username="app",
        password="wrong-pass-123",
        default_sender=SENDER,
        ssl_context=client_tls_context,
    )
    with pytest.raises(ProviderRejected, match="refused the login of user 'app'") as info:
        mailer.send(Message(to="ada@example.com", subject="x", text="y"))
    assert info.value.provider_code == 535
    assert "wrong-pass-123" not in str(info.value)
    assert "wrong-pass-123" not in repr(mailer)
    assert server.messages == []


def test_auth_over_plain_loopback_is_allowed(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(users={"app": "s3cret"}, auth_require_tls=False)
    with plain(server, username="app", password="s3cret") as mailer:
        mailer.send(Message(to="ada@example.com", subject="x", text="y"))
    assert [r.authenticated_as for r in server.messages] == ["app"]


# ---------------------------------------------------------------------- connections


def test_one_connection_for_a_batch_of_20(smtp_server: SMTPTestServer) -> None:
    with plain(smtp_server) as mailer:
        results = mailer.send_many(batch(20))
    assert smtp_server.connections == 1
    assert [r.accepted for r in results] == [(f"user{i}@example.com",) for i in range(20)]
    assert subjects(smtp_server) == [f"message {i}" for i in range(20)]


def test_connection_reused_across_sends_and_reopened_after_close(
    smtp_server: SMTPTestServer,
) -> None:
    mailer = plain(smtp_server)
    for message in batch(3):
        mailer.send(message)
    assert smtp_server.connections == 1
    mailer.close()
    mailer.close()  # closing twice is fine
    mailer.send(batch(1)[0])
    mailer.close()
    assert smtp_server.connections == 2
    assert len(smtp_server.messages) == 4


def test_stale_connection_is_replaced(smtp_server: SMTPTestServer) -> None:
    with plain(smtp_server) as mailer:
        mailer.send(batch(1)[0])
        smtp_server.drop_connections()  # e.g. the server's idle timeout
        mailer.send(batch(2)[1])
    assert smtp_server.connections == 2
    assert subjects(smtp_server) == ["message 0", "message 1"]


def test_max_messages_per_connection(smtp_server: SMTPTestServer) -> None:
    with plain(smtp_server, max_messages_per_connection=3) as mailer:
        mailer.send_many(batch(7))
    assert smtp_server.connections == 3
    assert [r.connection for r in smtp_server.messages] == [1, 1, 1, 2, 2, 2, 3]


def test_dropped_connection_mid_batch_reconnects_and_sends_each_once(
    make_smtp_server: MakeServer,
) -> None:
    server = make_smtp_server(handler=RecordingHandler(drop_after=5))
    with plain(server) as mailer:
        results = mailer.send_many(batch(10))
    assert len(results) == 10
    assert subjects(server) == [f"message {i}" for i in range(10)]  # each exactly once
    assert server.connections == 2
    assert [r.connection for r in server.messages] == [1] * 5 + [2] * 5


def test_drop_before_the_reply_is_not_resent(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(handler=RecordingHandler(drop_before_reply_at=3))
    with plain(server) as mailer, pytest.raises(BatchDeliveryError) as info:
        mailer.send_many(batch(6))
    error = info.value
    assert [index for index, _ in error.failed] == [2]
    unknown = error.failed[0][1]
    assert isinstance(unknown, ProviderUnavailable)
    assert "may or may not have been accepted" in str(unknown)
    assert len(error.sent) == 5
    # the server got message 2 once (before cutting the line); it was not sent again
    assert subjects(server) == [f"message {i}" for i in range(6)]
    assert server.connections == 2


def test_server_gone_for_good_reports_what_was_sent(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(handler=RecordingHandler(stop_after=4))
    with plain(server) as mailer, pytest.raises(BatchDeliveryError) as info:
        mailer.send_many(batch(10))
    error = info.value
    assert [r.accepted for r in sent_results(error)] == [
        (f"user{i}@example.com",) for i in range(4)
    ]
    assert [index for index, _ in error.failed] == list(range(4, 10))
    for _, exc in error.failed:
        assert isinstance(exc, ProviderUnavailable)
        assert f"{server.host}:{server.port}" in str(exc)
    assert "6 of 10 messages were not delivered" in str(error)
    assert subjects(server) == [f"message {i}" for i in range(4)]


def test_server_not_running() -> None:
    port = free_port()
    mailer = SMTPMailer(HOST, port, security="none", default_sender=SENDER, timeout=5)
    with pytest.raises(ProviderUnavailable, match=f"{HOST}:{port} refused the connection"):
        mailer.send(Message(to="ada@example.com", subject="x", text="y"))
    with pytest.raises(BatchDeliveryError) as info:
        mailer.send_many(batch(3))
    assert sent_results(info.value) == []
    assert [i for i, _ in info.value.failed] == [0, 1, 2]


# ---------------------------------------------------------------------- SMTP replies


def test_partly_refused_recipients(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(
        handler=RecordingHandler(refuse={"ghost@example.com": "550 5.1.1 no such user"})
    )
    with plain(server) as mailer:
        result = mailer.send(
            Message(to=["ada@example.com", "ghost@example.com"], subject="x", text="y")
        )
    assert result.accepted == ("ada@example.com",)
    assert server.messages[0].rcpt_tos == ("ada@example.com",)


@pytest.mark.parametrize(
    ("reply", "error", "code"),
    [
        ("550 5.1.1 no such user", ProviderRejected, 550),
        ("450 4.2.1 mailbox busy", ProviderUnavailable, 450),
    ],
)
def test_all_recipients_refused(
    make_smtp_server: MakeServer, reply: str, error: type[Exception], code: int
) -> None:
    server = make_smtp_server(handler=RecordingHandler(refuse={"ghost@example.com": reply}))
    with plain(server) as mailer, pytest.raises(error) as info:
        mailer.send(Message(to="ghost@example.com", subject="x", text="y"))
    assert isinstance(info.value, ProviderRejected | ProviderUnavailable)
    assert info.value.provider_code == code
    assert reply[4:] in str(info.value)
    assert "ghost@example.com" in str(info.value)


@pytest.mark.parametrize(
    ("reply", "error", "code"),
    [
        ("554 5.7.1 message rejected as spam", ProviderRejected, 554),
        ("451 4.3.0 try again later", ProviderUnavailable, 451),
    ],
)
def test_data_reply_mapping(
    make_smtp_server: MakeServer, reply: str, error: type[Exception], code: int
) -> None:
    server = make_smtp_server(handler=RecordingHandler(data_reply=reply))
    with plain(server) as mailer, pytest.raises(error) as info:
        mailer.send(Message(to="ada@example.com", subject="x", text="y"))
    assert isinstance(info.value, ProviderRejected | ProviderUnavailable)
    assert info.value.provider_code == code
    assert info.value.provider_message == reply[4:]
    assert f"{code} {reply[4:]}" in str(info.value)


def test_refusal_in_a_batch_fails_only_that_message(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(
        handler=RecordingHandler(refuse={"user1@example.com": "550 5.1.1 no such user"})
    )
    with plain(server) as mailer, pytest.raises(BatchDeliveryError) as info:
        mailer.send_many(batch(3))
    assert [i for i, _ in info.value.failed] == [1]
    assert isinstance(info.value.failed[0][1], ProviderRejected)
    assert len(info.value.sent) == 2
    assert subjects(server) == ["message 0", "message 2"]
    assert server.connections == 1


# ---------------------------------------------------------------------- async


async def test_async_variants(smtp_server: SMTPTestServer) -> None:
    with plain(smtp_server) as mailer:
        one = await mailer.asend(Message(to="ada@example.com", subject="async", text="x"))
        many = await mailer.asend_many(batch(4))
    assert one.accepted == ("ada@example.com",)
    assert len(many) == 4
    assert subjects(smtp_server) == ["async"] + [f"message {i}" for i in range(4)]
    assert smtp_server.connections == 1


# ---------------------------------------------------------------------- configuration


def test_defaults_and_repr() -> None:
    assert SMTPMailer("smtp.example.com").port == 587
    assert SMTPMailer("smtp.example.com", security="tls").port == 465
    assert SMTPMailer("smtp.example.com", security="none").port == 25
    mailer = SMTPMailer("smtp.example.com", username="app", password="hunter2")
    assert "hunter2" not in repr(mailer)
    assert SMTPMailer("localhost", security="none", username="a", password="b").port == 25
    assert SMTPMailer("::1", security="none", username="a", password="b").port == 25


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"host": ""}, "host must be"),
        ({"host": "smtp example.com"}, "host must be"),
        ({"port": 0}, "port must be"),
        ({"port": 70000}, "port must be"),
        ({"port": True}, "port must be"),
        ({"security": "ssl"}, "security must be"),
        ({"username": "app"}, "both username and password"),
        ({"password": "x"}, "both username and password"),
        ({"username": "", "password": "x"}, "username must be"),
        ({"security": "none", "username": "a", "password": "b"}, "in clear"),
        ({"timeout": 0}, "timeout must be"),
        ({"timeout": "10"}, "timeout must be"),
        ({"ssl_context": "yes"}, "ssl_context must be"),
        ({"security": "none", "ssl_context": ssl.create_default_context()}, "only with"),
        ({"local_hostname": "my host"}, "local_hostname"),
        ({"max_messages_per_connection": 0}, "max_messages_per_connection"),
        ({"default_sender": "not-an-address"}, "default_sender"),
    ],
)
def test_bad_configuration(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"host": "smtp.example.com", **kwargs}
    with pytest.raises(ConfigurationError, match=match) as info:
        SMTPMailer(**args)  # type: ignore[arg-type]
    assert "hunter2" not in str(info.value)
