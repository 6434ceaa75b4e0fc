"""Every error kit-name raises derives from :class:`KitNameError`.

::

    KitNameError
    └── ConfigurationError      an invalid option, URL or setting

Each class carries the HTTP ``status`` and ``title`` the adapters use to answer with an
RFC 9457 ``application/problem+json`` response, so the mapping lives in the core and
the adapters only render it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConfigurationError", "KitNameError"]


class KitNameError(Exception):
    """Base class of every kit-name error."""

    #: HTTP status of the problem response when this error escapes a view.
    status: int = 500
    #: Short, human-readable summary of the problem type (RFC 9457 ``title``).
    title: str = "kit-name error"

    def problem(self) -> dict[str, Any]:
        """This error as an RFC 9457 problem object (``application/problem+json``)."""
        return {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": str(self),
        }


class ConfigurationError(KitNameError, ValueError):
    """An option, URL or setting is invalid; the message names it and says what to do."""

    title = "kit-name is misconfigured"
