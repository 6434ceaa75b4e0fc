"""Building a mailer from settings: a mapping (``app.config``, a dict) or the environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from kit_mail._base import Mailer
from kit_mail._dev import ConsoleMailer, MemoryMailer
from kit_mail._message import Address
from kit_mail.exceptions import ConfigurationError, InvalidMessage

__all__ = ["BACKENDS", "SETTINGS", "mailer_from_env", "mailer_from_settings"]

#: The backends ``BACKEND`` may name.
BACKENDS = ("console", "memory", "smtp", "resend")

#: Every setting read (after the prefix), with what it means.
SETTINGS: dict[str, str] = {
    "BACKEND": "console, memory, smtp or resend",
    "DEFAULT_SENDER": "the From address when a message has none, e.g. 'App <app@example.com>'",
    "SMTP_HOST": "the SMTP server's host name (smtp backend, required)",
    "SMTP_PORT": "the SMTP port (default 587 for starttls, 465 for tls, 25 for none)",
    "SMTP_SECURITY": "starttls (default), tls or none",
    "SMTP_USERNAME": "the SMTP login, if the server needs one",
    "SMTP_PASSWORD": "the SMTP password",
    "SMTP_TIMEOUT": "seconds to wait for the SMTP server (default 10)",
    "RESEND_API_KEY": "the Resend API key, re_... (resend backend, required)",
    "RESEND_API_URL": "the Resend API base URL (default https://api.resend.com)",
    "RESEND_TIMEOUT": "seconds per Resend HTTP request (default 30)",
    "RESEND_MAX_RETRIES": "retries after a 429, 5xx or network failure (default 3)",
}
_SECRETS = frozenset({"SMTP_PASSWORD", "RESEND_API_KEY"})


class _Settings:
    def __init__(self, settings: Mapping[str, Any], prefix: str) -> None:
        self.prefix = prefix
        self.values: dict[str, Any] = {}
        for key, value in settings.items():
            if not isinstance(key, str) or not key.startswith(prefix):
                continue
            short = key[len(prefix) :]
            if short not in SETTINGS:
                known = ", ".join(prefix + name for name in SETTINGS)
                raise ConfigurationError(
                    f"{key} is not a kit-mail setting (a typo?); the settings are: {known}."
                )
            if value is None or (isinstance(value, str) and not value.strip()):
                continue  # unset, or set to an empty string: use the default
            self.values[short] = value

    def key(self, short: str) -> str:
        return self.prefix + short

    def _shown(self, short: str, value: Any) -> str:
        return "the value given" if short in _SECRETS else repr(value)

    def text(self, short: str, *, required_for: str | None = None) -> str | None:
        value = self.values.get(short)
        if value is None:
            if required_for is not None:
                raise ConfigurationError(
                    f"{self.key(short)} is required by the {required_for} backend: set it to "
                    f"{SETTINGS[short]}."
                )
            return None
        if not isinstance(value, str):
            raise ConfigurationError(
                f"{self.key(short)} must be a string ({SETTINGS[short]}), not "
                f"{type(value).__name__}."
            )
        return value.strip()

    def number(
        self, short: str, convert: Callable[[Any], float | int], *, minimum: float
    ) -> Any | None:
        value = self.values.get(short)
        if value is None:
            return None
        kind = "an integer" if convert is int else "a number"
        try:
            if isinstance(value, bool) or (convert is int and isinstance(value, float)):
                raise ValueError
            number = convert(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"{self.key(short)} must be {kind} ({SETTINGS[short]}), not {value!r}."
            ) from None
        if number != number or number < minimum:  # NaN or too small
            raise ConfigurationError(
                f"{self.key(short)} must be {kind} >= {minimum:g} ({SETTINGS[short]}), "
                f"not {value!r}."
            )
        return number


def mailer_from_settings(
    settings: Mapping[str, Any],
    prefix: str = "KIT_MAIL_",
    *,
    default_backend: str | None = None,
) -> Mailer:
    """Build the mailer that ``settings`` describe (``app.config``, a dict, ``os.environ``).

    The keys, each after ``prefix``: ``BACKEND`` (``console``, ``memory``, ``smtp``,
    ``resend``; ``default_backend`` when unset), ``DEFAULT_SENDER``; for SMTP
    ``SMTP_HOST``, ``SMTP_PORT``, ``SMTP_SECURITY``, ``SMTP_USERNAME``, ``SMTP_PASSWORD``,
    ``SMTP_TIMEOUT``; for Resend ``RESEND_API_KEY``, ``RESEND_API_URL``,
    ``RESEND_TIMEOUT``, ``RESEND_MAX_RETRIES``. Values may be strings (environment
    variables) or typed (``587``, ``10.0``); an unset or empty value takes the default.
    Settings of another backend than the one chosen are ignored, but an unknown key
    starting with ``prefix`` (a typo) is an error. Invalid or missing values raise
    :class:`~kit_mail.ConfigurationError` naming the key (never quoting a password or key).

    Example::

        >>> mailer = mailer_from_settings({"KIT_MAIL_BACKEND": "memory",
        ...                                "KIT_MAIL_DEFAULT_SENDER": "App <app@example.com>"})
        >>> mailer.name, str(mailer.default_sender)
        ('memory', 'App <app@example.com>')
        >>> mailer_from_settings({"KIT_MAIL_BACKEND": "smtp"})
        Traceback (most recent call last):
        ...
        kit_mail.exceptions.ConfigurationError: KIT_MAIL_SMTP_HOST is required by the smtp backend: set it to the SMTP server's host name (smtp backend, required).
    """
    if not isinstance(settings, Mapping):
        raise ConfigurationError(
            f"settings must be a mapping such as app.config or os.environ, not "
            f"{type(settings).__name__}."
        )
    if not isinstance(prefix, str):
        raise ConfigurationError(f"prefix must be a string such as 'KIT_MAIL_', not {prefix!r}.")
    if default_backend is not None and default_backend not in BACKENDS:
        raise ConfigurationError(
            f"default_backend must be one of {', '.join(BACKENDS)}, not {default_backend!r}."
        )
    values = _Settings(settings, prefix)
    backend = (values.text("BACKEND") or default_backend or "").lower()
    if not backend:
        raise ConfigurationError(
            f"{values.key('BACKEND')} is not set: set it to {', '.join(BACKENDS)}."
        )
    if backend not in BACKENDS:
        raise ConfigurationError(
            f"{values.key('BACKEND')} must be one of {', '.join(BACKENDS)}, not "
            f"{values.values.get('BACKEND')!r}."
        )
    sender_text = values.text("DEFAULT_SENDER")
    sender = None
    if sender_text is not None:
        try:
            sender = Address.parse(sender_text, field_name=values.key("DEFAULT_SENDER"))
        except InvalidMessage as exc:
            raise ConfigurationError(f"{exc} Use a form such as 'App <app@example.com>'.") from None
    return _build(backend, values, sender)


def _build(backend: str, values: _Settings, sender: Address | None) -> Mailer:
    if backend == "memory":
        return MemoryMailer(default_sender=sender)
    if backend == "console":
        return ConsoleMailer(default_sender=sender)
    if backend == "smtp":
        return _smtp(values, sender)
    return _resend(values, sender)


def _smtp(values: _Settings, sender: Address | None) -> Mailer:
    from kit_mail.smtp import SMTPMailer

    host = values.text("SMTP_HOST", required_for="smtp")
    assert host is not None
    security = (values.text("SMTP_SECURITY") or "starttls").lower()
    if security not in ("starttls", "tls", "none"):
        raise ConfigurationError(
            f"{values.key('SMTP_SECURITY')} must be starttls, tls or none, not "
            f"{values.values.get('SMTP_SECURITY')!r}."
        )
    port = values.number("SMTP_PORT", int, minimum=1)
    if port is not None and port > 65535:
        raise ConfigurationError(
            f"{values.key('SMTP_PORT')} must be a port number from 1 to 65535, not {port}."
        )
    timeout = values.number("SMTP_TIMEOUT", float, minimum=0)
    if timeout == 0:
        raise ConfigurationError(f"{values.key('SMTP_TIMEOUT')} must be more than 0 seconds.")
    username = values.text("SMTP_USERNAME")
    password = values.text("SMTP_PASSWORD")
    if (username is None) != (password is None):
        missing = "SMTP_PASSWORD" if password is None else "SMTP_USERNAME"
        raise ConfigurationError(
            f"{values.key(missing)} is not set: a login needs both "
            f"{values.key('SMTP_USERNAME')} and {values.key('SMTP_PASSWORD')}."
        )
    try:
        return SMTPMailer(
            host,
            port,
            security=security,  # type: ignore[arg-type]  # checked just above
            username=username,
            password=password,
            timeout=10.0 if timeout is None else timeout,
            default_sender=sender,
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"the {values.prefix}SMTP_* settings: {exc}") from None


def _resend(values: _Settings, sender: Address | None) -> Mailer:
    from kit_mail.resend import ResendMailer

    api_key = values.text("RESEND_API_KEY", required_for="resend")
    assert api_key is not None
    if any(c.isspace() for c in api_key):
        raise ConfigurationError(
            f"{values.key('RESEND_API_KEY')} holds whitespace: set it to the key from the "
            "Resend dashboard (re_...), nothing else."
        )
    api_url = values.text("RESEND_API_URL")
    timeout = values.number("RESEND_TIMEOUT", float, minimum=0)
    if timeout == 0:
        raise ConfigurationError(f"{values.key('RESEND_TIMEOUT')} must be more than 0 seconds.")
    retries = values.number("RESEND_MAX_RETRIES", int, minimum=0)
    try:
        return ResendMailer(
            api_key,
            default_sender=sender,
            api_url=api_url,
            timeout=30.0 if timeout is None else timeout,
            max_retries=3 if retries is None else retries,
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"the {values.prefix}RESEND_* settings: {exc}") from None


def mailer_from_env(prefix: str = "KIT_MAIL_", *, default_backend: str | None = None) -> Mailer:
    """:func:`mailer_from_settings` over ``os.environ`` (``KIT_MAIL_BACKEND=smtp``,
    ``KIT_MAIL_SMTP_HOST=...``).

    Example::

        >>> import os
        >>> os.environ["KIT_MAIL_BACKEND"] = "console"
        >>> mailer_from_env().name
        'console'
        >>> del os.environ["KIT_MAIL_BACKEND"]
    """
    return mailer_from_settings(os.environ, prefix, default_backend=default_backend)
