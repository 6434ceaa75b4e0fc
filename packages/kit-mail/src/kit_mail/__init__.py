"""kit-mail: transactional email through Resend, SMTP, the console and an in-memory outbox,
behind one small API.

Mailers: :class:`SMTPMailer`, ``kit_mail.resend.ResendMailer`` (the ``resend`` extra),
:class:`ConsoleMailer` for development and :class:`MemoryMailer` for tests, or one built
from ``KIT_MAIL_*`` settings by :func:`mailer_from_env`. :class:`Templates` (the
``templates`` extra) renders html and text bodies with Jinja2. Every error derives from
:class:`KitMailError` (the hierarchy is drawn in ``kit_mail.exceptions``).

Example::

    >>> from kit_mail import MemoryMailer, Message
    >>> mailer = MemoryMailer(default_sender="App <app@example.com>")
    >>> result = mailer.send(Message(to="ada@example.com", subject="Welcome", html="<p>Hi Ada</p>"))
    >>> [m.subject for m in mailer.outbox], mailer.outbox[0].text_body
    (['Welcome'], 'Hi Ada')
"""

from __future__ import annotations

from kit_mail._base import BaseMailer, Mailer
from kit_mail._config import mailer_from_env, mailer_from_settings
from kit_mail._dev import ConsoleMailer, MemoryMailer
from kit_mail._message import Address, Attachment, Message
from kit_mail._result import SendResult
from kit_mail._version import __version__
from kit_mail.exceptions import (
    BatchDeliveryError,
    ConfigurationError,
    DeliveryError,
    InvalidMessage,
    KitMailError,
    ProviderRejected,
    ProviderUnavailable,
    TemplateError,
)
from kit_mail.smtp import SMTPMailer
from kit_mail.templates import Rendered, Templates

# The public API: every name a user imports, sorted. Core modules only: the Flask and
# FastAPI adapters are imported as kit_mail.flask / kit_mail.fastapi.
__all__ = [
    "Address",
    "Attachment",
    "BaseMailer",
    "BatchDeliveryError",
    "ConfigurationError",
    "ConsoleMailer",
    "DeliveryError",
    "InvalidMessage",
    "KitMailError",
    "Mailer",
    "MemoryMailer",
    "Message",
    "ProviderRejected",
    "ProviderUnavailable",
    "Rendered",
    "SMTPMailer",
    "SendResult",
    "TemplateError",
    "Templates",
    "__version__",
    "mailer_from_env",
    "mailer_from_settings",
]
