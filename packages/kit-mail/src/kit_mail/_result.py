"""What a mailer answers for one accepted message."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SendResult"]


@dataclass(frozen=True, slots=True)
class SendResult:
    """One message the provider or server accepted.

    ``message_id`` is the provider's id (Resend's email id, the ``Message-ID`` header for
    SMTP, a local id for the console and memory mailers); ``accepted`` lists the recipient
    addresses that were accepted; ``idempotency_key`` is the key the send used, if any, so
    a caller can retry with it.

    Example::

        >>> SendResult("msg-1", "memory", ("ada@example.com",)).accepted
        ('ada@example.com',)
    """

    message_id: str
    provider: str
    accepted: tuple[str, ...]
    idempotency_key: str | None = None
