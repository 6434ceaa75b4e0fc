"""Mailers for development and tests: :class:`ConsoleMailer` prints, :class:`MemoryMailer`
keeps an outbox. Neither opens a connection."""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Callable
from typing import TextIO

from kit_mail._base import BaseMailer
from kit_mail._health import check_timeout
from kit_mail._message import Address, Attachment, Message
from kit_mail._result import SendResult
from kit_mail.exceptions import ConfigurationError, KitMailError, ProviderUnavailable

__all__ = ["ConsoleMailer", "MemoryMailer"]

#: What ``MemoryMailer(fail_with=...)`` takes: an error raised for every message, or a
#: function that returns the error to raise for a message (``None`` lets it through).
FailWith = KitMailError | Callable[[Message], KitMailError | None]


class MemoryMailer(BaseMailer):
    """Keeps every sent message in :attr:`outbox` instead of delivering it: the mailer for
    tests.

    Each accepted message is appended to ``outbox`` with its sender applied; its
    :class:`~kit_mail.SendResult` has the id ``"memory-<n>"`` (``n`` counts from 1) and
    every recipient (to, cc and bcc) as accepted. Like Resend, a message whose
    ``idempotency_key`` was already accepted is not stored again: the first result is
    returned. Safe to use from several threads.

    ``fail_with`` makes sends fail, to test how callers handle errors: a
    :class:`~kit_mail.KitMailError` raised for every message, or a function called with each
    (prepared) message that returns the error to raise, or ``None`` to accept it. Failed
    messages are not stored. It may be changed at any time (``mailer.fail_with = None``).

    Example::

        >>> from kit_mail import Message, ProviderUnavailable
        >>> mailer = MemoryMailer(default_sender="app@example.com")
        >>> mailer.send(Message(to="ada@example.com", subject="Hi", text="Hello")).message_id
        'memory-1'
        >>> mailer.outbox[0].sender.email, len(mailer.outbox)
        ('app@example.com', 1)
        >>> mailer.fail_with = lambda m: ProviderUnavailable("down") if "bob" in m.to[0].email else None
        >>> mailer.send(Message(to="bob@example.com", subject="Hi", text="Hello"))
        Traceback (most recent call last):
        ...
        kit_mail.exceptions.ProviderUnavailable: down
        >>> mailer.clear(); mailer.outbox
        []
    """

    name = "memory"

    def __init__(
        self,
        *,
        default_sender: str | Address | None = None,
        fail_with: FailWith | None = None,
    ) -> None:
        super().__init__(default_sender=default_sender)
        self.fail_with = fail_with
        #: The messages accepted so far, oldest first (sender applied).
        self.outbox: list[Message] = []
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._by_key: dict[str, SendResult] = {}

    @property
    def fail_with(self) -> FailWith | None:
        """The error (or function returning one) that makes sends fail; ``None`` for none."""
        return self._fail_with

    @fail_with.setter
    def fail_with(self, value: FailWith | None) -> None:
        if value is not None and not (isinstance(value, KitMailError) or callable(value)):
            raise ConfigurationError(
                "fail_with must be a KitMailError, a function of the message returning one "
                f"(or None), or None; got {type(value).__name__}."
            )
        self._fail_with = value

    def _send(self, message: Message) -> SendResult:
        failure = self._fail_with
        if failure is not None:
            error = failure if isinstance(failure, KitMailError) else failure(message)
            if error is not None:
                if not isinstance(error, KitMailError):
                    raise ConfigurationError(
                        "MemoryMailer's fail_with function must return a KitMailError or "
                        f"None, not {type(error).__name__}."
                    )
                raise error
        with self._lock:
            key = message.idempotency_key
            if key is not None and key in self._by_key:
                return self._by_key[key]
            result = SendResult(
                message_id=f"memory-{next(self._counter)}",
                provider=self.name,
                accepted=tuple(address.email for address in message.recipients),
                idempotency_key=key,
            )
            self.outbox.append(message)
            if key is not None:
                self._by_key[key] = result
            return result

    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: True, unless ``fail_with`` is a
        :class:`~kit_mail.ProviderUnavailable` (every send fails as if the provider were
        down), so tests can make a health endpoint see mail as down.

        Example::

            >>> from kit_mail import ProviderUnavailable
            >>> mailer = MemoryMailer()
            >>> mailer.ping()
            True
            >>> mailer.fail_with = ProviderUnavailable("down")
            >>> mailer.ping()
            False
        """
        check_timeout(timeout)
        return not isinstance(self._fail_with, ProviderUnavailable)

    def clear(self) -> None:
        """Empty the outbox and forget the idempotency keys seen (the ids keep counting)."""
        with self._lock:
            self.outbox.clear()
            self._by_key.clear()


class ConsoleMailer(BaseMailer):
    """Prints each message as a readable block instead of delivering it: the mailer for
    development.

    The block shows the headers (From, To, Cc, Reply-To, Subject, custom headers), the
    tags and idempotency key, the plain-text body (derived from the html when there is no
    text) and each attachment's name, type and size; ``show_html=True`` adds the html
    source. ``Bcc`` is shown too, marked as such, because this is a debugging view: real
    mailers never write it as a header. ``stream`` defaults to the ``sys.stdout`` of the
    moment each message is printed. Result ids are ``"console-<n>"``.

    Example::

        >>> from kit_mail import Message
        >>> mailer = ConsoleMailer(default_sender="app@example.com")
        >>> result = mailer.send(Message(to="ada@example.com", subject="Hi", html="<p>Hello</p>"))
        ----- kit-mail console-1 -----
        From: app@example.com
        To: ada@example.com
        Subject: Hi
        <BLANKLINE>
        Hello
        ----- end console-1 -----
        >>> result.message_id, result.accepted
        ('console-1', ('ada@example.com',))
    """

    name = "console"

    def __init__(
        self,
        *,
        default_sender: str | Address | None = None,
        stream: TextIO | None = None,
        show_html: bool = False,
    ) -> None:
        super().__init__(default_sender=default_sender)
        if stream is not None and not callable(getattr(stream, "write", None)):
            raise ConfigurationError(
                f"stream must be a text stream with write() (such as sys.stderr), not "
                f"{type(stream).__name__}."
            )
        if not isinstance(show_html, bool):
            raise ConfigurationError(f"show_html must be True or False, not {show_html!r}.")
        self.stream = stream
        self.show_html = show_html
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    def _send(self, message: Message) -> SendResult:
        with self._lock:
            message_id = f"console-{next(self._counter)}"
            stream = self.stream if self.stream is not None else sys.stdout
            stream.write(self.format(message, message_id))
            stream.flush()
        return SendResult(
            message_id=message_id,
            provider=self.name,
            accepted=tuple(address.email for address in message.recipients),
            idempotency_key=message.idempotency_key,
        )

    def format(self, message: Message, message_id: str = "message") -> str:
        """The block printed for ``message`` (ends with a newline)."""
        lines = [f"----- kit-mail {message_id} -----"]
        if message.sender is not None:
            lines.append(f"From: {message.sender}")
        for label, addresses in (
            ("To", message.to),
            ("Cc", message.cc),
            ("Bcc (not a header)", message.bcc),
            ("Reply-To", message.reply_to),
        ):
            if addresses:
                lines.append(f"{label}: {', '.join(str(a) for a in addresses)}")
        lines.append(f"Subject: {message.subject}")
        lines.extend(f"{key}: {value}" for key, value in message.headers.items())
        if message.tags:
            tags = ", ".join(f"{key}={value}" for key, value in message.tags.items())
            lines.append(f"Tags: {tags}")
        if message.idempotency_key is not None:
            lines.append(f"Idempotency-Key: {message.idempotency_key}")
        lines.extend(["", message.text_body])
        if self.show_html and message.html:
            lines.extend(["", "--- html ---", message.html])
        if message.attachments:
            lines.append("")
            lines.extend(
                f"Attachment: {a.filename} ({a.content_type}, {_size(a)})"
                for a in message.attachments
            )
        lines.append(f"----- end {message_id} -----")
        return "\n".join(lines) + "\n"


def _size(attachment: Attachment) -> str:
    try:
        size = attachment.size
    except OSError:
        return "file no longer readable"
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"
