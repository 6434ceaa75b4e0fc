"""Every error kit-db raises derives from :class:`KitDBError`.

::

    KitDBError
    ├── ConfigurationError        bad URL, option or model definition
    │   └── MissingDriver         the database driver is not installed (names the extra)
    ├── DatabaseError             the database failed (connection lost, timeout, ...)
    │   └── DatabaseUnavailable   the database cannot be reached now
    ├── NotFound                  a row that must exist does not (``get_or_raise``)
    ├── Conflict                  a unique constraint was violated (names the constraint)
    ├── InvalidCursor             a keyset cursor was tampered with or is from another query
    └── TenantError
        ├── TenantRequired        a tenant-scoped model was used outside ``tenant_context``
        └── TenantViolation       a write touched a row of another tenant
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "Conflict",
    "DatabaseError",
    "DatabaseUnavailable",
    "InvalidCursor",
    "KitDBError",
    "MissingDriver",
    "NotFound",
    "TenantError",
    "TenantRequired",
    "TenantViolation",
]


class KitDBError(Exception):
    """Base class of every kit-db error."""


class ConfigurationError(KitDBError, ValueError):
    """A URL, option or model definition is invalid."""


class MissingDriver(ConfigurationError, ImportError):
    """The driver for a database URL is not installed; the message names the extra."""


class DatabaseError(KitDBError):
    """The database failed; ``__cause__`` holds the driver's exception."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached."""


class NotFound(KitDBError, LookupError):
    """A row that must exist does not."""


class Conflict(KitDBError):
    """A unique constraint was violated. ``constraint`` names it when the database says."""

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class InvalidCursor(KitDBError, ValueError):
    """A keyset pagination cursor is malformed, tampered with, or from another query."""


class TenantError(KitDBError):
    """Base of the tenant-isolation errors."""


class TenantRequired(TenantError):
    """A tenant-scoped model was queried or written outside ``tenant_context``."""


class TenantViolation(TenantError):
    """A write would create, change or delete a row of another tenant."""
