"""Flask adapter: the :class:`KitMail` extension. The only module that imports Flask."""

from __future__ import annotations

import logging
from collections.abc import Iterable

try:
    from flask import Flask, Response, current_app, has_app_context, jsonify
except ImportError as exc:  # pragma: no cover - exercised by the slim session
    raise ImportError('kit_mail.flask needs Flask: pip install "kit-mail[flask]"') from exc

from kit_mail._base import Mailer
from kit_mail._config import mailer_from_settings
from kit_mail._dev import MemoryMailer
from kit_mail._message import Message
from kit_mail._result import SendResult
from kit_mail.exceptions import ConfigurationError, KitMailError

__all__ = ["EXTENSION_KEY", "KitMail", "get_mailer"]

#: ``app.extensions[EXTENSION_KEY]`` holds the app's mailer.
EXTENSION_KEY = "kit-mail"

logger = logging.getLogger("kit_mail")


class KitMail:
    """The Flask extension: ``KitMail(app)``, or ``mail = KitMail()`` then
    ``mail.init_app(app)`` in an app factory.

    The mailer is ``mailer`` when given, else built by
    :func:`~kit_mail.mailer_from_settings` from the ``KIT_MAIL_*`` keys of ``app.config``
    (``KIT_MAIL_BACKEND``, ``KIT_MAIL_DEFAULT_SENDER``, ``KIT_MAIL_SMTP_HOST``, ...). When
    ``KIT_MAIL_BACKEND`` is unset, it is ``"memory"`` for a testing app
    (``app.testing``) and ``"console"`` otherwise, so nothing is delivered until a real
    backend is configured. An invalid setting fails in ``init_app``, naming the key.

    The mailer lives as long as the app (``app.extensions["kit-mail"]``): it is not
    closed at the end of requests, so an SMTP connection is reused across them (the SMTP
    mailer reconnects when the server dropped it, and the OS closes it at exit). Call
    ``get_mailer().close()`` yourself for an earlier release. ``KitMailError`` escaping a
    view is answered with an RFC 9457 ``application/problem+json`` response (5xx ones are
    logged on the ``kit_mail`` logger with the provider's answer, which the response
    does not show).

    Example::

        >>> from flask import Flask
        >>> from kit_mail import Message
        >>> app = Flask("demo")
        >>> app.config.update(TESTING=True, KIT_MAIL_DEFAULT_SENDER="app@example.com")
        >>> mail = KitMail(app)
        >>> with app.app_context():
        ...     mail.send(Message(to="ada@example.com", subject="Hi", text="Hello")).provider
        'memory'
        >>> [m.subject for m in mail.outbox]
        ['Hi']
    """

    def __init__(self, app: Flask | None = None, mailer: Mailer | None = None) -> None:
        if mailer is not None and not isinstance(mailer, Mailer):
            raise ConfigurationError(
                f"mailer must be a kit-mail mailer (e.g. SMTPMailer), not {type(mailer).__name__}."
            )
        self.app: Flask | None = app
        self._mailer = mailer
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Build the app's mailer and register the problem+json error handler."""
        mailer = self._mailer
        if mailer is None:
            mailer = mailer_from_settings(
                app.config, default_backend="memory" if app.testing else "console"
            )
        app.extensions[EXTENSION_KEY] = mailer
        app.register_error_handler(KitMailError, _problem_response)

    @property
    def mailer(self) -> Mailer:
        """The mailer of the current app (or of the app given to the constructor)."""
        if has_app_context():
            return get_mailer()
        if self.app is not None:
            return _mailer_of(self.app)
        if self._mailer is not None:
            return self._mailer
        raise ConfigurationError(
            "KitMail.mailer needs an app: call it inside an app context or pass the app to "
            "KitMail(app)."
        )

    @property
    def outbox(self) -> list[Message]:
        """The messages sent so far, with the memory backend (tests)."""
        mailer = self.mailer
        if not isinstance(mailer, MemoryMailer):
            raise ConfigurationError(
                f"outbox exists only with the memory backend (KIT_MAIL_BACKEND=memory); this "
                f"app's mailer is {getattr(mailer, 'name', type(mailer).__name__)!r}."
            )
        return mailer.outbox

    def send(self, message: Message) -> SendResult:
        """Send ``message`` through the app's mailer."""
        return self.mailer.send(message)

    def send_many(self, messages: Iterable[Message]) -> list[SendResult]:
        """Send ``messages`` through the app's mailer (see ``Mailer.send_many``)."""
        return self.mailer.send_many(messages)


def get_mailer() -> Mailer:
    """The current app's mailer (in an app or request context).

    Example::

        >>> from flask import Flask
        >>> app = Flask("demo")
        >>> _ = KitMail(app, mailer=MemoryMailer())
        >>> with app.app_context():
        ...     get_mailer().name
        'memory'
    """
    if not has_app_context():
        raise ConfigurationError(
            "get_mailer() needs an app context: call it in a request or in "
            "`with app.app_context():`."
        )
    return _mailer_of(current_app)


def _mailer_of(app: Flask) -> Mailer:
    mailer = app.extensions.get(EXTENSION_KEY)
    if mailer is None:
        raise ConfigurationError(
            "This app has no kit-mail mailer: call KitMail(app) or KitMail().init_app(app) "
            "when creating it."
        )
    assert isinstance(mailer, Mailer)
    return mailer


def _problem_response(exc: KitMailError) -> Response:
    if exc.status >= 500:
        logger.error("mail error answered with %s: %s", exc.status, exc, exc_info=exc)
    response: Response = jsonify(exc.problem())
    response.status_code = exc.status
    response.mimetype = "application/problem+json"
    return response
