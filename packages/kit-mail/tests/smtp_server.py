"""A real SMTP server on loopback for the SMTP tests: aiosmtpd on 127.0.0.1, ephemeral port.

:class:`SMTPTestServer` wraps an aiosmtpd ``Controller`` (its own thread and event loop)
with a :class:`RecordingHandler` that keeps every message it accepts (envelope sender,
envelope recipients, raw content, which connection it came on) and knobs to misbehave:

- ``refuse``: an SMTP reply per recipient address (``"550 5.1.1 no such user"``);
- ``data_reply``: the reply to DATA for every message (``"451 4.3.0 try later"``);
- ``drop_after``: after the N-th accepted message, answer 250 and close the connection
  (once); the client reconnects to a server that still listens;
- ``drop_before_reply_at``: take the N-th message, then cut the connection without
  answering (the client cannot know whether it was accepted);
- ``stop_after``: after the N-th accepted message, answer 250, stop listening and close
  the connection: the server is gone for good.

TLS: ``security="starttls"`` offers STARTTLS, ``"tls"`` is implicit TLS (SMTPS), both
with a certificate for 127.0.0.1 issued by a trustme CA. ``users`` turns AUTH on
(PLAIN and LOGIN), checked against that dict.

Fixtures (import them into a test module: ``from smtp_server import smtp_server``):
``tls_ca``, ``client_tls_context``, ``smtp_server``, ``make_smtp_server``.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = [
    "HOST",
    "Received",
    "RecordingHandler",
    "SMTPTestServer",
    "client_tls_context",
    "make_smtp_server",
    "smtp_server",
    "tls_ca",
]

HOST = "127.0.0.1"
Security = Literal["none", "starttls", "tls"]


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    connection: int  # 1 for the first connection of the test, 2 for the next, ...
    authenticated_as: str | None = None
    tls: bool = False
    mail_options: tuple[str, ...] = ()

    @property
    def message(self) -> EmailMessage:
        """The content parsed with the modern policy (headers decoded)."""
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class RecordingHandler:
    """aiosmtpd handler that records accepted messages and misbehaves on request."""

    refuse: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    drop_after: int | None = None
    drop_before_reply_at: int | None = None
    stop_after: int | None = None
    messages: list[Received] = field(default_factory=list)
    #: every DATA the server read, accepted or not (a dropped one included)
    data_seen: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: SMTPTestServer | None = None

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.refuse.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self.data_seen += 1
            seen = self.data_seen
        assert server.transport is not None
        if self.drop_before_reply_at == seen:
            self._record(server, session, envelope)
            server.transport.abort()  # type: ignore[attr-defined]  # no reply: the client cannot tell it was taken
            return "250 OK"
        if self.data_reply is not None:
            return self.data_reply
        count = self._record(server, session, envelope)
        loop = asyncio.get_running_loop()
        if self.drop_after == count:
            loop.call_soon(server.transport.close)  # after the 250 below is written
        if self.stop_after == count:
            assert self._server is not None
            self._server.stop_listening()
            loop.call_soon(server.transport.close)
        return "250 OK: queued"

    def _record(self, server: SMTP, session: Session, envelope: Envelope) -> int:
        assert envelope.mail_from is not None
        content = envelope.original_content or b""
        login = str(session.auth_data) if session.authenticated else None
        connection = self._server.connection_of(server) if self._server else 0
        with self._lock:
            self.messages.append(
                Received(
                    envelope.mail_from,
                    tuple(envelope.rcpt_tos),
                    content,
                    connection,
                    login,
                    server.transport is not None
                    and server.transport.get_extra_info("ssl_object") is not None,
                    tuple(envelope.mail_options),
                )
            )
            return len(self.messages)


class _Controller(Controller):
    """A Controller on an ephemeral port that counts the connections it accepts."""

    def __init__(self, owner: SMTPTestServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner = owner

    def factory(self) -> SMTP:
        smtp = super().factory()  # type: ignore[no-untyped-call]
        assert isinstance(smtp, SMTP)
        self._owner._connected(smtp)
        return smtp

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SMTPTestServer:
    """An aiosmtpd server on 127.0.0.1 (see the module docstring for the knobs).

    ``connections`` counts the connections clients opened (the controller's own start-up
    probe excluded); ``messages`` is what was accepted.
    """

    def __init__(
        self,
        *,
        security: Security = "none",
        ca: trustme.CA | None = None,
        users: dict[str, str] | None = None,
        auth_require_tls: bool = True,
        handler: RecordingHandler | None = None,
    ) -> None:
        if security != "none" and ca is None:
            raise ValueError("a TLS server needs the trustme CA that issues its certificate")
        self.security = security
        self.handler = handler or RecordingHandler()
        self.handler._server = self
        self.users = users
        self._sessions: list[SMTP] = []
        self._lock = threading.Lock()
        self._counting = False
        self.connections = 0
        server_ctx: ssl.SSLContext | None = None
        if ca is not None:
            server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert(HOST, "localhost").configure_cert(server_ctx)
        kwargs: dict[str, Any] = {
            "hostname": HOST,
            "port": 0,
            "server_hostname": "mx.test",  # no getfqdn() DNS lookup
            "auth_require_tls": auth_require_tls,
        }
        if security == "starttls":
            kwargs["tls_context"] = server_ctx
        elif security == "tls":
            kwargs["ssl_context"] = server_ctx
        if users is not None:
            kwargs["authenticator"] = self._authenticate
        self._controller = _Controller(self, self.handler, **kwargs)

    # ------------------------------------------------------------------ life cycle

    def start(self) -> SMTPTestServer:
        self._controller.start()
        with self._lock:
            self._counting = True
            self._sessions.clear()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SMTPTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return int(self._controller.port)

    @property
    def messages(self) -> list[Received]:
        return list(self.handler.messages)

    def stop_listening(self) -> None:
        """Refuse new connections from now on (open ones stay open). Called in the
        server's loop."""
        assert self._controller.server is not None
        self._controller.server.close()

    def drop_connections(self) -> None:
        """Close every open client connection now (as an idle timeout would)."""
        done = threading.Event()

        def close_all() -> None:
            for smtp in self._sessions:
                if smtp.transport is not None:
                    smtp.transport.close()
            done.set()

        self._controller.loop.call_soon_threadsafe(close_all)
        done.wait(5)

    # ------------------------------------------------------------------ internals

    def _connected(self, smtp: SMTP) -> None:
        with self._lock:
            self._sessions.append(smtp)
            if self._counting:
                self.connections += 1

    def connection_of(self, smtp: SMTP) -> int:
        with self._lock:
            return self._sessions.index(smtp) + 1 if smtp in self._sessions else 0

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        assert self.users is not None
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.users.get(login) == password
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A throw-away certificate authority; servers get a certificate for 127.0.0.1."""
    return trustme.CA()


@pytest.fixture
def client_tls_context(tls_ca: trustme.CA) -> ssl.SSLContext:
    """A verifying client context that trusts :func:`tls_ca` (and nothing else)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and host
    tls_ca.configure_trust(context)
    return context


@pytest.fixture
def make_smtp_server() -> Iterator[Callable[..., SMTPTestServer]]:
    """Start servers with :class:`SMTPTestServer` keywords; all stopped at teardown."""
    started: list[SMTPTestServer] = []

    def make(**kwargs: Any) -> SMTPTestServer:
        server = SMTPTestServer(**kwargs).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def smtp_server(make_smtp_server: Callable[..., SMTPTestServer]) -> SMTPTestServer:
    """A plain (no TLS, no AUTH) recording server."""
    return make_smtp_server()
