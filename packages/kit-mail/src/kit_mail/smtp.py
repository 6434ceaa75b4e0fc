"""Send mail through an SMTP server with :mod:`smtplib`: STARTTLS, implicit TLS or plain,
optional AUTH, one connection reused for a batch and across calls, reconnect when it drops.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import smtplib
import socket
import ssl
import threading
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING, Final, Literal

from kit_mail._base import BaseMailer, raise_for_batch
from kit_mail._health import check_timeout, within
from kit_mail._message import Address, Message
from kit_mail._result import SendResult
from kit_mail.exceptions import (
    ConfigurationError,
    DeliveryError,
    KitMailError,
    ProviderRejected,
    ProviderUnavailable,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["SMTPMailer", "SMTPSecurity"]

SMTPSecurity = Literal["starttls", "tls", "none"]

_DEFAULT_PORTS: Final[dict[str, int]] = {"starttls": 587, "tls": 465, "none": 25}
_END_OF_DATA: Final = b"\r\n.\r\n"


class _Tracked(smtplib.SMTP):
    """``smtplib.SMTP`` that notes when a message's final ``CRLF . CRLF`` went out, so a
    dropped connection can be told apart: before it, the server cannot have accepted the
    message (safe to resend); after it, the server may have (resending may duplicate)."""

    body_sent = False
    delivered = 0  # messages accepted on this connection

    def send(self, s: Buffer | str) -> None:
        super().send(s)
        if isinstance(s, bytes) and s.endswith(_END_OF_DATA):
            self.body_sent = True


class _TrackedSSL(smtplib.SMTP_SSL, _Tracked):
    """:class:`_Tracked` over implicit TLS."""


class _Dropped(Exception):
    """The connection broke; ``maybe_delivered`` when the whole message had been sent."""

    def __init__(self, cause: BaseException, *, maybe_delivered: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.maybe_delivered = maybe_delivered


class SMTPMailer(BaseMailer):
    """Send through an SMTP server: STARTTLS (default, port 587), implicit TLS
    (``security="tls"``, port 465) or a plain connection (``security="none"``, port 25).

    The server's certificate is verified by default (``ssl.create_default_context()``);
    pass ``ssl_context=`` to trust a private CA. ``username``/``password`` log in after
    TLS is up; over ``security="none"`` a login is refused unless ``host`` is a loopback
    address (``localhost``, ``127.0.0.0/8``, ``::1``), where a local relay may listen, so
    a password is never sent in clear over a network.

    **Connections.** The first send opens a connection and keeps it: a later
    :meth:`send` checks it with ``NOOP`` and reconnects if the server closed it;
    :meth:`send_many` uses one connection for the whole batch. After
    ``max_messages_per_connection`` messages the connection is closed and a fresh one
    opened (servers limit messages per session). :meth:`close` sends ``QUIT``; the mailer
    stays usable and reconnects on the next send. One lock guards the connection, so the
    mailer may be shared between threads, whose sends then go out one at a time (use one
    mailer per thread to send in parallel). ``asend``/``asend_many`` run in a worker thread.

    **Dropped connections and at-most-once.** When the connection breaks before the
    message's final ``CRLF . CRLF`` was written, the server cannot have accepted it: the
    mailer reconnects once and sends it again. When it breaks after that line but before
    the server answered, the server may or may not have queued the message; resending
    could deliver it twice, so the mailer does **not** resend it: that message fails with
    :class:`ProviderUnavailable` saying its outcome is unknown (in a batch, the others
    carry on over a new connection). Nothing is sent twice by the mailer itself.

    **Message-ID.** ``SendResult.message_id`` is the ``Message-ID`` header the message
    went out with. With an ``idempotency_key`` that header is derived from the key (a
    SHA-256 of it on the sender's domain), so a caller's retry after an unknown outcome
    carries the same ``Message-ID`` and a receiving system that de-duplicates on it
    (many do) shows the message once. A ``Date`` header is added when missing.

    **Errors.** A refused or timed-out connection, a TLS failure, a dropped connection
    and SMTP ``4xx`` replies raise :class:`ProviderUnavailable` naming ``host:port``;
    ``5xx`` replies and a refused login raise :class:`ProviderRejected`; both quote the
    server's code and text (never the password). A message whose recipients were only
    partly refused is sent: ``SendResult.accepted`` lists the accepted ones.

    Example::

        >>> mailer = SMTPMailer("smtp.example.com", username="app", password="s3cret",
        ...                     default_sender="App <app@example.com>")
        >>> mailer.port, mailer.security
        (587, 'starttls')
        >>> mailer
        SMTPMailer('smtp.example.com', 587, security='starttls', username='app')
        >>> SMTPMailer("smtp.example.com", security="none", username="app", password="x")
        Traceback (most recent call last):
        ...
        kit_mail.exceptions.ConfigurationError: SMTPMailer: security='none' sends the password in clear to smtp.example.com; use security='starttls' or 'tls' (a login over a plain connection is allowed only to a loopback host).
    """

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        security: SMTPSecurity = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        default_sender: str | Address | None = None,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        max_messages_per_connection: int = 100,
    ) -> None:
        super().__init__(default_sender=default_sender)
        if not isinstance(host, str) or not host.strip() or any(c.isspace() for c in host):
            raise ConfigurationError(
                f"SMTPMailer: host must be a host name or IP address such as "
                f"'smtp.example.com', not {host!r}."
            )
        if security not in _DEFAULT_PORTS:
            raise ConfigurationError(
                f"SMTPMailer: security must be 'starttls', 'tls' or 'none', not {security!r}."
            )
        if port is None:
            port = _DEFAULT_PORTS[security]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigurationError(
                f"SMTPMailer: port must be an integer from 1 to 65535, not {port!r}."
            )
        if (username is None) != (password is None):
            raise ConfigurationError(
                "SMTPMailer: give both username and password to log in, or neither."
            )
        for label, value in (("username", username), ("password", password)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigurationError(f"SMTPMailer: {label} must be a non-empty string.")
        if username is not None and security == "none" and not _is_loopback(host):
            raise ConfigurationError(
                f"SMTPMailer: security='none' sends the password in clear to {host}; use "
                "security='starttls' or 'tls' (a login over a plain connection is allowed "
                "only to a loopback host)."
            )
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= 3600
        ):
            raise ConfigurationError(
                f"SMTPMailer: timeout must be a number of seconds above 0 (at most 3600), "
                f"not {timeout!r}."
            )
        if ssl_context is not None:
            if not isinstance(ssl_context, ssl.SSLContext):
                raise ConfigurationError("SMTPMailer: ssl_context must be an ssl.SSLContext.")
            if security == "none":
                raise ConfigurationError(
                    "SMTPMailer: ssl_context is used only with security='starttls' or 'tls'."
                )
        if local_hostname is not None and (
            not isinstance(local_hostname, str)
            or not local_hostname
            or any(c.isspace() for c in local_hostname)
        ):
            raise ConfigurationError(
                "SMTPMailer: local_hostname must be a host name without spaces, such as "
                "'app.example.com'."
            )
        if (
            isinstance(max_messages_per_connection, bool)
            or not isinstance(max_messages_per_connection, int)
            or max_messages_per_connection < 1
        ):
            raise ConfigurationError(
                "SMTPMailer: max_messages_per_connection must be an integer of at least 1, "
                f"not {max_messages_per_connection!r}."
            )
        self.host = host.strip()
        self.port = port
        self.security: SMTPSecurity = security
        self.username = username
        self._password = password
        self.timeout = float(timeout)
        self.local_hostname = local_hostname
        self.max_messages_per_connection = max_messages_per_connection
        self._ssl_context = ssl_context
        self._conn: _Tracked | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        login = f", username={self.username!r}" if self.username else ""
        return f"SMTPMailer({self.host!r}, {self.port}, security={self.security!r}{login})"

    @property
    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    # ------------------------------------------------------------------ sending

    def _send(self, message: Message) -> SendResult:
        with self._lock:
            try:
                return self._deliver(message, check=True)
            except _Unreachable as exc:
                raise exc.error from None

    def send_many(self, messages: Iterable[Message]) -> list[SendResult]:
        """Send ``messages`` in order over one connection (a new one after
        ``max_messages_per_connection``, or after a drop: see the class docstring).

        Every message is tried unless the server cannot be reached any more, in which
        case the rest fail with that error without being tried. If any failed,
        :class:`BatchDeliveryError` carries the results of those sent and the error of
        each one not sent, by index.

        Example::

            >>> SMTPMailer("smtp.example.com").send_many([])
            []
        """
        prepared = [self._prepare(m) for m in messages]
        sent: list[tuple[int, SendResult]] = []
        failed: list[tuple[int, KitMailError]] = []
        if not prepared:
            return []
        with self._lock:
            check = True  # NOOP a connection left open by an earlier call
            for index, message in enumerate(prepared):
                try:
                    sent.append((index, self._deliver(message, check=check)))
                except _Unreachable as exc:
                    failed.extend((i, exc.error) for i in range(index, len(prepared)))
                    break
                except KitMailError as exc:
                    failed.append((index, exc))
                check = False
        raise_for_batch(self.name, sent, failed, len(prepared))
        return [result for _, result in sent]

    def close(self) -> None:
        """Say ``QUIT`` and close the connection, if one is open. Sending again opens a new
        one.

        Example::

            >>> with SMTPMailer("smtp.example.com") as mailer:
            ...     pass  # no connection was opened: close() has nothing to do
        """
        with self._lock:
            self._drop(quit_=True)

    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: True if the server can be reached and takes a session now.

        Opens a connection of its own, as a send would (greeting, ``EHLO``, STARTTLS or
        implicit TLS with the certificate checked, login when ``username`` is set), sends
        ``NOOP``, expects ``250``, then ``QUIT`` and closes it. The connection kept for
        sending is not touched, and the mailer's lock is not taken, so a ping never
        waits behind a long send. False, never an exception, when the server is down,
        refuses, fails TLS or the login, or does not answer within ``timeout`` seconds.

        Example (nothing listens on port 9)::

            >>> SMTPMailer("127.0.0.1", 9, security="none").ping(timeout=1)
            False
        """
        timeout = check_timeout(timeout)

        def probe() -> bool:
            try:
                conn = self._open(timeout=timeout)
            except _Unreachable:
                return False
            try:
                code, _ = conn.noop()
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    conn.quit()
            finally:
                _close_quietly(conn)
            return code == 250

        return within(probe, timeout)

    # ------------------------------------------------------------------ internals

    def _deliver(self, message: Message, *, check: bool) -> SendResult:
        """Send one prepared message on the (possibly new) connection; the lock is held."""
        mime = self._mime(message)
        envelope_to = [a.email for a in message.recipients]
        assert message.sender is not None
        for attempt in (1, 2):
            conn = self._connection(check=check)
            try:
                refused = self._transaction(conn, mime, message.sender.email, envelope_to)
            except _Dropped as exc:
                self._drop(quit_=False)
                if exc.maybe_delivered:
                    raise ProviderUnavailable(
                        f"SMTP server {self._where} dropped the connection after receiving "
                        f"the whole message {mime['Message-ID']} but before answering: it may "
                        "or may not have been accepted, so it was not sent again (that could "
                        "deliver it twice). Check the server's log before retrying.",
                        provider=self.name,
                        provider_message=str(exc.cause),
                    ) from exc.cause
                if attempt == 2:
                    raise ProviderUnavailable(
                        f"SMTP server {self._where} dropped the connection twice while "
                        f"sending {mime['Message-ID']} ({exc.cause}); try again later.",
                        provider=self.name,
                        provider_message=str(exc.cause),
                    ) from exc.cause
                continue  # the server cannot have taken it: once more on a new connection
            conn.delivered += 1
            if conn.delivered >= self.max_messages_per_connection:
                self._drop(quit_=True)
            return SendResult(
                message_id=str(mime["Message-ID"]),
                provider=self.name,
                accepted=tuple(a for a in envelope_to if a not in refused),
                idempotency_key=message.idempotency_key,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _transaction(
        self, conn: _Tracked, mime: EmailMessage, sender: str, to: list[str]
    ) -> dict[str, tuple[int, bytes]]:
        """MAIL, RCPT, DATA for one message; the refused recipients (some may be)."""
        conn.body_sent = False
        # A body in 8-bit UTF-8 (what the email package writes for non-ASCII text) is
        # declared as such where the server supports it; smtplib adds it itself (with
        # SMTPUTF8) when an address is not ASCII.
        options: tuple[str, ...] = ()
        if conn.has_extn("8bitmime") and all(a.isascii() for a in (sender, *to)):
            options = ("BODY=8BITMIME",)
        try:
            return conn.send_message(mime, from_addr=sender, to_addrs=to, mail_options=options)
        except smtplib.SMTPRecipientsRefused as exc:
            raise self._refused(exc.recipients) from None
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == -1:  # smtplib's code for a reply it could not read
                raise _Dropped(exc, maybe_delivered=conn.body_sent) from None
            raise self._reply_error(
                "refused the message"
                if not isinstance(exc, smtplib.SMTPSenderRefused)
                else f"refused the sender {sender}",
                exc.smtp_code,
                exc.smtp_error,
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise ProviderRejected(
                f"SMTP server {self._where} cannot take this message: {exc}",
                provider=self.name,
                provider_message=str(exc),
            ) from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _Dropped(exc, maybe_delivered=conn.body_sent) from None

    def _mime(self, message: Message) -> EmailMessage:
        assert message.sender is not None
        domain = message.sender.email.rpartition("@")[2]
        mime = message.to_email_message(domain=domain)
        if message.idempotency_key is not None:
            digest = hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:40]
            del mime["Message-ID"]
            mime["Message-ID"] = f"<{digest}.kit-mail@{domain}>"
        if "Date" not in mime:
            mime["Date"] = formatdate(usegmt=True)
        del mime["Bcc"]  # never in the content: bcc recipients are only in the envelope
        return mime

    def _connection(self, *, check: bool) -> _Tracked:
        """The open connection (after a NOOP when ``check``), or a new one."""
        conn = self._conn
        if conn is not None and check:
            try:
                code, _ = conn.noop()
            except (smtplib.SMTPException, OSError):
                code = -1
            if code != 250:
                self._drop(quit_=False)
                conn = None
        if conn is None:
            conn = self._conn = self._open()
        return conn

    def _open(self, *, timeout: float | None = None) -> _Tracked:
        """A new connection, logged in when ``username`` is set; ``timeout`` replaces the
        mailer's for this connection (``ping``)."""
        timeout = self.timeout if timeout is None else timeout
        context = self._ssl_context
        if context is None and self.security != "none":
            context = ssl.create_default_context()
        conn: _Tracked | None = None
        try:
            # smtplib connects in the constructor (and closes the socket itself when the
            # greeting or the TLS handshake fails); it also takes the TLS server name from
            # the host given there.
            if self.security == "tls":
                conn = _TrackedSSL(
                    self.host,
                    self.port,
                    local_hostname=self.local_hostname,
                    timeout=timeout,
                    context=context,
                )
            else:
                conn = _Tracked(
                    self.host, self.port, local_hostname=self.local_hostname, timeout=timeout
                )
            conn.ehlo_or_helo_if_needed()
            if self.security == "starttls":
                conn.starttls(context=context)
                conn.ehlo()
            if self.username is not None:
                assert self._password is not None
                conn.login(self.username, self._password)
        except (smtplib.SMTPException, OSError) as exc:
            if conn is not None:
                _close_quietly(conn)
            raise _Unreachable(self._connect_error(exc)) from None
        except BaseException:
            if conn is not None:
                _close_quietly(conn)
            raise
        return conn

    def _connect_error(self, exc: smtplib.SMTPException | OSError) -> KitMailError:
        where = self._where
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return ProviderRejected(
                f"SMTP server {where} refused the login of user {self.username!r}: "
                f"{exc.smtp_code} {_text(exc.smtp_error)}; check the username and password.",
                provider=self.name,
                provider_code=exc.smtp_code,
                provider_message=_text(exc.smtp_error),
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            what = "STARTTLS" if self.security == "starttls" else "AUTH"
            fix = (
                "use security='tls' (implicit TLS, usually port 465) or check the port"
                if what == "STARTTLS"
                else "remove username/password or check the server's settings"
            )
            return ConfigurationError(f"SMTP server {where} does not offer {what}; {fix}. ({exc})")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return ProviderUnavailable(
                f"TLS with SMTP server {where} failed: its certificate could not be "
                f"verified ({exc.verify_message}). Pass ssl_context= trusting its CA if it "
                "uses a private one.",
                provider=self.name,
                provider_message=str(exc),
            )
        if isinstance(exc, ssl.SSLError):
            return ProviderUnavailable(
                f"TLS with SMTP server {where} failed ({exc}); check security= and the port "
                "(465 is implicit TLS, 587 STARTTLS).",
                provider=self.name,
                provider_message=str(exc),
            )
        if isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code > 0:
            return self._reply_error("refused the connection", exc.smtp_code, exc.smtp_error)
        if isinstance(exc, TimeoutError):
            reason = f"timed out after {self.timeout:g} s"
        elif isinstance(exc, ConnectionRefusedError):
            reason = "refused the connection (is the server running on that port?)"
        elif isinstance(exc, socket.gaierror):
            reason = f"cannot be resolved ({exc.strerror})"
        else:
            reason = f"could not be reached ({type(exc).__name__}: {exc})"
        return ProviderUnavailable(
            f"SMTP server {where} {reason}; try again later or check host and port.",
            provider=self.name,
            provider_message=str(exc),
        )

    def _reply_error(self, what: str, code: int, text: bytes | str) -> DeliveryError:
        reply = _text(text)
        cls = ProviderUnavailable if 400 <= code < 500 else ProviderRejected
        hint = (
            "a temporary failure: try again later"
            if cls is ProviderUnavailable
            else ("a permanent failure: sending it again will fail the same way")
        )
        return cls(
            f"SMTP server {self._where} {what}: {code} {reply} ({hint}).",
            provider=self.name,
            provider_code=code,
            provider_message=reply,
        )

    def _refused(self, recipients: dict[str, tuple[int, bytes]]) -> DeliveryError:
        codes = [code for code, _ in recipients.values()]
        detail = "; ".join(
            f"{addr}: {code} {_text(text)}" for addr, (code, text) in recipients.items()
        )
        first_code, first_text = next(iter(recipients.values()))
        temporary = all(400 <= code < 500 for code in codes)
        cls = ProviderUnavailable if temporary else ProviderRejected
        return cls(
            f"SMTP server {self._where} refused every recipient ({detail}); "
            + ("try again later." if temporary else "check the addresses."),
            provider=self.name,
            provider_code=first_code,
            provider_message=_text(first_text),
        )

    def _drop(self, *, quit_: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if quit_:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                conn.quit()
        _close_quietly(conn)


class _Unreachable(Exception):
    """Opening a connection failed with ``error`` (sending more would fail the same way)."""

    def __init__(self, error: KitMailError) -> None:
        super().__init__(str(error))
        self.error = error


def _close_quietly(conn: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        conn.close()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _is_loopback(host: str) -> bool:
    if host.lower() in {"localhost", "localhost.localdomain", "ip6-localhost"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
