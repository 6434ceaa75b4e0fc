"""Every error kit-mail raises derives from :class:`KitMailError`.

::

    KitMailError
    ├── ConfigurationError        an invalid option, setting, host or API key format (500)
    ├── InvalidMessage            a message kit-mail refuses before sending anything (422):
    │                             a bad address, CR/LF in a header, a missing attachment file
    ├── TemplateError             a template that is missing or fails to render (500)
    └── DeliveryError             the provider or server did not accept the message (502)
        ├── ProviderRejected      the provider refused it for good: bad key, validation (502)
        ├── ProviderUnavailable   the provider kept failing (5xx, 429, network) after the
        │                         retries; sending again later may work (503)
        └── BatchDeliveryError    part of ``send_many`` failed: ``sent`` and ``failed`` say
                                  which messages went out and which did not

Each class carries the HTTP ``status``, ``title`` and problem-type ``slug`` the adapters
use to answer with an RFC 9457 ``application/problem+json`` response. Provider answers are
quoted in the message (``provider_code``, ``provider_message``) so a log line says what
the provider said; the problem ``detail`` of a 5xx is a fixed sentence, because a
provider's answer can name accounts or addresses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kit_mail._result import SendResult

__all__ = [
    "BatchDeliveryError",
    "ConfigurationError",
    "DeliveryError",
    "InvalidMessage",
    "KitMailError",
    "ProviderRejected",
    "ProviderUnavailable",
    "TemplateError",
]


class KitMailError(Exception):
    """Base class of every kit-mail error."""

    #: HTTP status of the problem response when this error escapes a view.
    status: int = 500
    #: Short, human-readable summary of the problem type (RFC 9457 ``title``).
    title: str = "Mail error"
    #: The ``type`` slug after ``https://kit.dev/problems/``.
    slug: str = "mail-error"
    #: Whether ``str(self)`` may be shown to the client (4xx only).
    public_detail: bool = False

    def problem(self) -> dict[str, Any]:
        """This error as an RFC 9457 problem object (``application/problem+json``).

        Example::

            >>> InvalidMessage("to: 'bob@' is not a valid address").problem()["status"]
            422
            >>> ProviderUnavailable("resend answered 503").problem()["detail"]
            'The mail provider cannot be reached right now. Try again later.'
        """
        detail = str(self) if self.public_detail else _FIXED_DETAIL.get(self.slug, self.title)
        return {
            "type": f"https://kit.dev/problems/{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": detail,
        }


class ConfigurationError(KitMailError, ValueError):
    """An option, setting, host, port or API key is invalid; the message names it and says
    what to do."""

    title = "Mail misconfigured"
    slug = "mail-misconfigured"


class InvalidMessage(KitMailError, ValueError):
    """A message refused before anything is sent: an invalid address, a CR or LF in a
    header value (header injection), no recipient, no body, an attachment path that does
    not exist. The message names the field."""

    status = 422
    title = "Invalid email message"
    slug = "invalid-message"
    public_detail = True


class TemplateError(KitMailError):
    """A template that does not exist or fails to render."""

    title = "Mail template error"
    slug = "mail-template"


class DeliveryError(KitMailError):
    """The provider or SMTP server did not accept the message.

    ``provider`` names the mailer (``"resend"``, ``"smtp"``); ``provider_code`` and
    ``provider_message`` quote the answer (an HTTP status and error name, or an SMTP reply
    code and text) when there was one.
    """

    status = 502
    title = "Mail not delivered"
    slug = "mail-delivery"

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        provider_code: str | int | None = None,
        provider_message: str = "",
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.provider_code = provider_code
        self.provider_message = provider_message


class ProviderRejected(DeliveryError):
    """The provider refused the message or the credentials for good (a 4xx other than
    429, an SMTP 5xx reply): retrying the same request will fail the same way."""

    title = "Mail rejected by the provider"
    slug = "mail-rejected"


class ProviderUnavailable(DeliveryError):
    """The provider kept failing (HTTP 5xx or 429, SMTP 4xx, a refused or dropped
    connection) after the retries: the same request may succeed later."""

    status = 503
    title = "Mail provider unavailable"
    slug = "mail-unavailable"


class BatchDeliveryError(DeliveryError):
    """Part of a ``send_many`` batch failed.

    ``sent`` pairs the index of every message that was accepted with its
    :class:`~kit_mail.SendResult`, ``failed`` pairs each index that was not with its error. Retrying only the
    failed ones (or all of them, with the same idempotency keys on Resend) sends nothing
    twice.
    """

    slug = "mail-batch"
    title = "Some messages were not delivered"

    def __init__(
        self,
        message: str,
        *,
        sent: Sequence[tuple[int, SendResult]],
        failed: Sequence[tuple[int, KitMailError]],
        provider: str = "",
    ) -> None:
        super().__init__(message, provider=provider)
        self.sent = list(sent)
        self.failed = list(failed)


_FIXED_DETAIL: dict[str, str] = {
    "mail-error": "Sending mail failed on the server.",
    "mail-misconfigured": "The server's mail sending is misconfigured.",
    "mail-template": "A mail template failed to render.",
    "mail-delivery": "The mail provider did not accept the message.",
    "mail-rejected": "The mail provider rejected the message.",
    "mail-unavailable": "The mail provider cannot be reached right now. Try again later.",
    "mail-batch": "Some messages were not delivered.",
}
