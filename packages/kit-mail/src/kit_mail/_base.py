"""The interface every mailer has, and the base class that implements the shared parts."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from kit_mail._health import check_timeout
from kit_mail._message import Address, Message
from kit_mail._result import SendResult
from kit_mail.exceptions import BatchDeliveryError, ConfigurationError, KitMailError

__all__ = ["BaseMailer", "Mailer"]


@runtime_checkable
class Mailer(Protocol):
    """What every kit-mail mailer does: send one message or many, sync or async."""

    #: The provider name reported in :class:`SendResult` (``"smtp"``, ``"resend"``, ...).
    name: str

    def send(self, message: Message) -> SendResult:
        """Send one message; raise a :class:`KitMailError` if it was not accepted."""
        ...

    def send_many(self, messages: Iterable[Message]) -> list[SendResult]:
        """Send several; raise :class:`BatchDeliveryError` naming the ones that failed."""
        ...

    async def asend(self, message: Message) -> SendResult:
        """:meth:`send` without blocking the event loop."""
        ...

    async def asend_many(self, messages: Iterable[Message]) -> list[SendResult]:
        """:meth:`send_many` without blocking the event loop."""
        ...

    def close(self) -> None:
        """Release connections (a no-op where there are none)."""
        ...

    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: True if the mailer can send now; False, never an exception,
        when its server or API cannot be reached, answered within ``timeout`` seconds."""
        ...


class BaseMailer(ABC):
    """Shared behaviour: the default sender, ``send_many`` with a per-message report,
    async variants run in a worker thread, and use as a context manager.

    Subclasses implement :meth:`_send` (one prepared message, sender set) and may override
    :meth:`send_many` (one connection or one API call for a batch) and the async methods.

    Example, a mailer that refuses one domain::

        >>> from kit_mail import ProviderRejected
        >>> class PickyMailer(BaseMailer):
        ...     name = "picky"
        ...     def _send(self, message):
        ...         if message.to[0].email.endswith("@blocked.example"):
        ...             raise ProviderRejected("blocked domain", provider=self.name)
        ...         return SendResult("id-1", self.name, (message.to[0].email,))
        >>> mailer = PickyMailer(default_sender="app@example.com")
        >>> batch = [Message(to=a, subject="Hi", text="x") for a in ("a@example.com", "b@blocked.example")]
        >>> try:
        ...     mailer.send_many(batch)
        ... except BatchDeliveryError as exc:
        ...     [i for i, _ in exc.sent], [i for i, _ in exc.failed]
        ([0], [1])
    """

    name: str = "mailer"

    def __init__(self, *, default_sender: str | Address | None = None) -> None:
        self.default_sender = None if default_sender is None else _parse_sender(default_sender)

    def _prepare(self, message: Message) -> Message:
        if not isinstance(message, Message):
            raise ConfigurationError(
                f"send() takes a kit_mail.Message, not {type(message).__name__}."
            )
        return message.with_sender(self.default_sender)

    @abstractmethod
    def _send(self, message: Message) -> SendResult:
        """Send one prepared message (its sender is set)."""

    def send(self, message: Message) -> SendResult:
        """Send ``message``; its ``sender`` defaults to the mailer's ``default_sender``."""
        return self._send(self._prepare(message))

    def send_many(self, messages: Iterable[Message]) -> list[SendResult]:
        """Send each message in order. Every message is tried; if some fail,
        :class:`BatchDeliveryError` carries the results of those sent and the errors of
        those not, by index, so a retry can skip what went out."""
        prepared = [self._prepare(m) for m in messages]
        sent: list[tuple[int, SendResult]] = []
        failed: list[tuple[int, KitMailError]] = []
        for index, message in enumerate(prepared):
            try:
                sent.append((index, self._send(message)))
            except KitMailError as exc:
                failed.append((index, exc))
        raise_for_batch(self.name, sent, failed, len(prepared))
        return [result for _, result in sent]

    async def asend(self, message: Message) -> SendResult:
        """:meth:`send` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.send, message)

    async def asend_many(self, messages: Iterable[Message]) -> list[SendResult]:
        """:meth:`send_many` in a worker thread."""
        batch = list(messages)
        return await asyncio.to_thread(self.send_many, batch)

    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: True if the mailer can send now, False if its server or API
        cannot be reached; never raises for that and answers within ``timeout`` seconds
        (a ``timeout`` that is not a number of seconds > 0 raises
        :class:`ConfigurationError`). The base mailer has nothing to reach: True.
        Mailers with a server override it.

        Example::

            >>> class NullMailer(BaseMailer):
            ...     def _send(self, message): ...
            >>> NullMailer().ping()
            True
        """
        check_timeout(timeout)
        return True

    def close(self) -> None:  # noqa: B027 - a hook: most mailers hold no connection
        """Release connections; the base mailer holds none."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _parse_sender(value: str | Address) -> Address:
    try:
        return Address.parse(value, field_name="default_sender")
    except KitMailError as exc:
        raise ConfigurationError(str(exc)) from None


def raise_for_batch(
    provider: str,
    sent: Sequence[tuple[int, SendResult]],
    failed: Sequence[tuple[int, KitMailError]],
    total: int,
) -> None:
    """Raise :class:`BatchDeliveryError` when ``failed`` is not empty (``sent`` and
    ``failed`` pair each message's index in the batch with its result or error)."""
    if failed:
        indexes = ", ".join(str(i) for i, _ in failed[:10])
        more = "" if len(failed) <= 10 else f" and {len(failed) - 10} more"
        raise BatchDeliveryError(
            f"{len(failed)} of {total} messages were not delivered through {provider} "
            f"(indexes {indexes}{more}); {len(sent)} were. Retry the failed ones; see .failed "
            "for each error.",
            sent=sent,
            failed=failed,
            provider=provider,
        )
