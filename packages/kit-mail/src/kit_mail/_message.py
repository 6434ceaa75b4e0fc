"""The message model: addresses, attachments and the validated, immutable ``Message``.

Everything a mailer sends is checked here, once, before any network call: addresses go
through email-validator (syntax and internationalized domains; no DNS lookups at send
time), every header value is refused if it holds a CR or LF (header injection), and
attachment paths must exist.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address as _HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from types import MappingProxyType
from typing import Any

from email_validator import EmailNotValidError, validate_email

from kit_mail._html import html_to_text
from kit_mail.exceptions import InvalidMessage

__all__ = ["Address", "Attachment", "Message"]

_HEADER_NAME = re.compile(r"[!-9;-~]{1,76}")  # RFC 5322 field name: printable ASCII but ':'
# Headers kit-mail sets itself from the message's fields: refused in ``headers``.
_RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "content-type",
        "content-transfer-encoding",
        "mime-version",
        "message-id",
    }
)
_MAX_SUBJECT = 998  # RFC 5322 line limit
_MAX_RECIPIENTS = 1000
_MAX_IDEMPOTENCY_KEY = 256  # Resend's limit, and a sane one everywhere


def _cte(body: str) -> str:
    return (
        "7bit"
        if body.isascii() and all(len(line) <= 998 for line in body.splitlines())
        else "quoted-printable"
    )


# CR, LF and every other character Python's email package treats as a line break, plus NUL
_LINE_BREAKS = re.compile("[\r\n\x00\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def _no_crlf(field_name: str, value: str) -> str:
    if not isinstance(value, str):
        raise InvalidMessage(f"{field_name} must be a string, not {type(value).__name__}.")
    if _LINE_BREAKS.search(value):
        raise InvalidMessage(
            f"{field_name} contains a line break or NUL character; header values must be one "
            "line (this is how header injection works), so remove it."
        )
    return value


@dataclass(frozen=True, slots=True)
class Address:
    """A validated mailbox: ``email`` normalized by email-validator, ``name`` optional.

    Example::

        >>> a = Address.parse("Ada Lovelace <ada@Example.COM>")
        >>> a.email, a.name, str(a)
        ('ada@example.com', 'Ada Lovelace', 'Ada Lovelace <ada@example.com>')
        >>> Address.parse("ada@")
        Traceback (most recent call last):
        ...
        kit_mail.exceptions.InvalidMessage: address 'ada@' is not valid: There must be something after the @-sign.
    """

    email: str
    name: str = ""

    @classmethod
    def parse(cls, value: str | Address, *, field_name: str = "address") -> Address:
        """An :class:`Address` from ``"Name <addr>"``, ``"addr"`` or an ``Address``."""
        if isinstance(value, Address):  # built directly: check it like a parsed one
            name = _no_crlf(f"{field_name} name", value.name)
            email = _no_crlf(field_name, value.email)
            try:
                valid = validate_email(email, check_deliverability=False)
            except EmailNotValidError as exc:
                raise InvalidMessage(f"{field_name} {email!r} is not valid: {exc}") from None
            return cls(email=valid.ascii_email or valid.normalized, name=name)
        if not isinstance(value, str) or not value.strip():
            raise InvalidMessage(
                f"{field_name} must be a non-empty string such as 'ada@example.com'."
            )
        _no_crlf(field_name, value)
        text = value.strip()
        name, addr = "", text
        if text.endswith(">") and "<" in text:  # "Display Name <local@domain>"
            name, _, addr = text[:-1].rpartition("<")
            name = name.strip()
            if len(name) >= 2 and name[0] == name[-1] == '"':
                name = name[1:-1].replace('\\"', '"')
        try:
            valid = validate_email(addr.strip(), check_deliverability=False)
        except EmailNotValidError as exc:
            raise InvalidMessage(f"{field_name} {addr.strip()!r} is not valid: {exc}") from None
        # an internationalized domain is kept in its ASCII (IDNA) form, which every SMTP
        # server accepts; only a non-ASCII local part needs SMTPUTF8
        return cls(email=valid.ascii_email or valid.normalized, name=name.strip())

    def __str__(self) -> str:
        return str(self.header_address()) if self.name else self.email

    def header_address(self) -> _HeaderAddress:
        """This address as an ``email.headerregistry.Address`` (encodes non-ASCII names)."""
        local, _, domain = self.email.rpartition("@")
        return _HeaderAddress(display_name=self.name, username=local, domain=domain)


def _addresses(
    field_name: str, value: str | Address | Iterable[str | Address] | None
) -> tuple[Address, ...]:
    if value is None:
        return ()
    items: Iterable[str | Address] = [value] if isinstance(value, str | Address) else value
    out = tuple(Address.parse(item, field_name=field_name) for item in items)
    if len(out) > _MAX_RECIPIENTS:
        raise InvalidMessage(
            f"{field_name} has {len(out)} addresses; split it (at most {_MAX_RECIPIENTS})."
        )
    return out


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file attached to a message: ``content`` bytes or a ``path`` read at send time.

    ``content_type`` is guessed from ``filename`` when not given.

    Example::

        >>> Attachment("report.csv", b"a,b\\n1,2\\n").content_type
        'text/csv'
        >>> Attachment("missing.pdf", path="/nonexistent/missing.pdf")
        Traceback (most recent call last):
        ...
        kit_mail.exceptions.InvalidMessage: attachment 'missing.pdf': no file at /nonexistent/missing.pdf; check the path.
    """

    filename: str
    content: bytes | None = None
    path: Path | None = None
    content_type: str = ""

    def __init__(
        self,
        filename: str,
        content: bytes | None = None,
        *,
        path: str | Path | None = None,
        content_type: str | None = None,
    ) -> None:
        _no_crlf("attachment filename", filename)
        if not filename or "/" in filename or "\\" in filename or len(filename) > 255:
            raise InvalidMessage(
                f"attachment filename {filename!r} must be a plain file name (no directories, "
                "at most 255 characters)."
            )
        if (content is None) == (path is None):
            raise InvalidMessage(f"attachment {filename!r} needs exactly one of content or path.")
        if content is not None and not isinstance(content, bytes | bytearray | memoryview):
            raise InvalidMessage(f"attachment {filename!r}: content must be bytes.")
        resolved: Path | None = None
        if path is not None:
            resolved = Path(path)
            if not resolved.is_file():
                raise InvalidMessage(f"attachment {filename!r}: no file at {path}; check the path.")
        guessed = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        _no_crlf("attachment content_type", guessed)
        if guessed.count("/") != 1:
            raise InvalidMessage(
                f"attachment {filename!r}: content_type {guessed!r} is not type/subtype."
            )
        object.__setattr__(self, "filename", filename)
        object.__setattr__(self, "content", bytes(content) if content is not None else None)
        object.__setattr__(self, "path", resolved)
        object.__setattr__(self, "content_type", guessed)

    def read(self) -> bytes:
        """The attachment's bytes (reads ``path`` now; a file removed since is an error)."""
        if self.content is not None:
            return self.content
        assert self.path is not None
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise InvalidMessage(
                f"attachment {self.filename!r}: cannot read {self.path}: {exc.strerror}."
            ) from None

    @property
    def size(self) -> int:
        """Size in bytes."""
        if self.content is not None:
            return len(self.content)
        assert self.path is not None
        return self.path.stat().st_size


@dataclass(frozen=True, slots=True)
class Message:
    """One email, validated when it is built.

    ``to``, ``cc``, ``bcc`` and ``reply_to`` take a string or a list of strings
    (``"ada@example.com"`` or ``"Ada <ada@example.com>"``); ``sender`` may be left out
    when the mailer has a ``default_sender``. At least one recipient and one of ``text``
    or ``html`` are required; without ``text``, the plain-text part is derived from
    ``html``. ``headers`` adds custom headers (not the ones kit-mail sets itself),
    ``tags`` are name/value labels for providers that support them, and
    ``idempotency_key`` makes a retried send safe where the provider supports it
    (Resend keeps keys for 24 hours).

    Example::

        >>> m = Message(to="ada@example.com", subject="Welcome", html="<p>Hi <b>Ada</b></p>")
        >>> m.text_body, [str(a) for a in m.recipients]
        ('Hi Ada', ['ada@example.com'])
        >>> Message(to="ada@example.com", subject="Hi\\r\\nBcc: all@example.com", text="x")
        Traceback (most recent call last):
        ...
        kit_mail.exceptions.InvalidMessage: subject contains a line break or NUL character; header values must be one line (this is how header injection works), so remove it.
    """

    to: tuple[Address, ...]
    subject: str
    text: str | None
    html: str | None
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    sender: Address | None
    attachments: tuple[Attachment, ...]
    headers: Mapping[str, str] = field(hash=False)
    tags: Mapping[str, str] = field(hash=False)
    idempotency_key: str | None = None

    def __init__(
        self,
        *,
        to: str | Address | Iterable[str | Address],
        subject: str,
        text: str | None = None,
        html: str | None = None,
        cc: str | Address | Iterable[str | Address] | None = None,
        bcc: str | Address | Iterable[str | Address] | None = None,
        reply_to: str | Address | Iterable[str | Address] | None = None,
        sender: str | Address | None = None,
        attachments: Iterable[Attachment] = (),
        headers: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "to", _addresses("to", to))
        set_(self, "cc", _addresses("cc", cc))
        set_(self, "bcc", _addresses("bcc", bcc))
        if not (self.to or self.cc or self.bcc):
            raise InvalidMessage("A message needs at least one recipient in to, cc or bcc.")
        set_(self, "reply_to", _addresses("reply_to", reply_to))
        set_(self, "sender", None if sender is None else Address.parse(sender, field_name="sender"))
        _no_crlf("subject", subject)
        if not subject.strip() or len(subject) > _MAX_SUBJECT:
            raise InvalidMessage(f"subject must be 1 to {_MAX_SUBJECT} characters.")
        set_(self, "subject", subject)
        for name, body in (("text", text), ("html", html)):
            if body is not None and not isinstance(body, str):
                raise InvalidMessage(f"{name} must be a string.")
        if not (text or html):
            raise InvalidMessage("A message needs a body: give text, html or both.")
        set_(self, "text", text)
        set_(self, "html", html)
        attachment_list = tuple(attachments)
        for item in attachment_list:
            if not isinstance(item, Attachment):
                raise InvalidMessage("attachments must be kit_mail.Attachment objects.")
        set_(self, "attachments", attachment_list)
        checked_headers: dict[str, str] = {}
        for key, value in (headers or {}).items():
            if not isinstance(key, str) or not _HEADER_NAME.fullmatch(key):
                raise InvalidMessage(f"header name {key!r} is not a valid header field name.")
            if key.lower() in _RESERVED_HEADERS:
                raise InvalidMessage(
                    f"header {key!r} is set from the message's own fields; use them instead."
                )
            checked_headers[key] = _no_crlf(f"header {key!r}", value)
        set_(self, "headers", MappingProxyType(checked_headers))
        checked_tags: dict[str, str] = {}
        for key, value in (tags or {}).items():
            checked_tags[_no_crlf("tag name", key)] = _no_crlf(f"tag {key!r}", value)
        set_(self, "tags", MappingProxyType(checked_tags))
        if idempotency_key is not None:
            _no_crlf("idempotency_key", idempotency_key)
            if not idempotency_key or len(idempotency_key) > _MAX_IDEMPOTENCY_KEY:
                raise InvalidMessage(
                    f"idempotency_key must be 1 to {_MAX_IDEMPOTENCY_KEY} characters, e.g. "
                    "'welcome/user-42'."
                )
        set_(self, "idempotency_key", idempotency_key)

    @property
    def recipients(self) -> tuple[Address, ...]:
        """Every recipient (to, cc, bcc), first occurrence kept, compared by address."""
        seen: set[str] = set()
        out: list[Address] = []
        for address in (*self.to, *self.cc, *self.bcc):
            if address.email not in seen:
                seen.add(address.email)
                out.append(address)
        return tuple(out)

    @property
    def text_body(self) -> str:
        """The plain-text part: ``text``, or the text of ``html`` when no text was given."""
        if self.text:
            return self.text
        assert self.html is not None
        return html_to_text(self.html)

    def with_sender(self, default: Address | str | None) -> Message:
        """This message with ``sender`` set to ``default`` when it has none.

        Raises :class:`InvalidMessage` when neither gives a sender.
        """
        if self.sender is not None:
            return self
        if default is None:
            raise InvalidMessage(
                "The message has no sender: pass sender= or configure the mailer's default_sender."
            )
        return self.replace(sender=Address.parse(default, field_name="default_sender"))

    def replace(self, **changes: Any) -> Message:
        """A copy with ``changes`` applied (validated again), e.g. a new idempotency key."""
        fields: dict[str, Any] = {
            "to": self.to,
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "cc": self.cc,
            "bcc": self.bcc,
            "reply_to": self.reply_to,
            "sender": self.sender,
            "attachments": self.attachments,
            "headers": dict(self.headers),
            "tags": dict(self.tags),
            "idempotency_key": self.idempotency_key,
        }
        fields.update(changes)
        return Message(**fields)

    def to_email_message(self, *, domain: str | None = None) -> EmailMessage:
        """The MIME form (``email.message.EmailMessage``) SMTP and the console send.

        ``multipart/alternative`` text and html (text derived from html when missing),
        attachments in ``multipart/mixed``, a fresh ``Message-ID`` on ``domain`` (the
        sender's domain by default). ``Bcc`` is never written as a header: it only goes
        in the SMTP envelope (:attr:`recipients`).

        Example::

            >>> m = Message(sender="app@example.com", to="ada@example.com", bcc="audit@example.com",
            ...             subject="Hello", text="Hi")
            >>> mime = m.to_email_message()
            >>> mime["To"], mime["Bcc"], mime["Message-ID"].endswith("@example.com>")
            ('ada@example.com', None, True)
        """
        if self.sender is None:
            raise InvalidMessage(
                "The message has no sender: pass sender= or configure the mailer's default_sender."
            )
        mime = EmailMessage()
        mime["From"] = self.sender.header_address()
        if self.to:
            mime["To"] = [a.header_address() for a in self.to]
        if self.cc:
            mime["Cc"] = [a.header_address() for a in self.cc]
        if self.reply_to:
            mime["Reply-To"] = [a.header_address() for a in self.reply_to]
        mime["Subject"] = self.subject
        mime["Message-ID"] = make_msgid(domain=domain or self.sender.email.rpartition("@")[2])
        if not any(key.lower() == "date" for key in self.headers):
            mime["Date"] = format_datetime(datetime.now(UTC))
        for key, value in self.headers.items():
            mime[key] = value
        # quoted-printable keeps non-ASCII bodies 7-bit clean for servers without 8BITMIME
        mime.set_content(self.text_body, cte=_cte(self.text_body))
        if self.html:
            mime.add_alternative(self.html, subtype="html", cte=_cte(self.html))
        for attachment in self.attachments:
            maintype, subtype = attachment.content_type.split("/", 1)
            mime.add_attachment(
                attachment.read(), maintype=maintype, subtype=subtype, filename=attachment.filename
            )
        return mime
