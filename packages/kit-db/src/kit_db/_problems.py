"""RFC 9457 problem details for kit-db errors, shared by the Flask and FastAPI adapters.

========================================  ======  ==========================
error                                     status  ``type`` (after the base)
========================================  ======  ==========================
:class:`~kit_db.NotFound`                 404     ``not-found``
:class:`~kit_db.Conflict`                 409     ``conflict`` (+ ``constraint``)
:class:`~kit_db.TenantRequired`           403     ``tenant-required``
:class:`~kit_db.TenantViolation`          403     ``tenant-violation``
:class:`~kit_db.InvalidCursor`            400     ``invalid-cursor``
:class:`~kit_db.MissingDriver`            500     ``database-misconfigured``
:class:`~kit_db.ConfigurationError`       400     ``invalid-value``
:class:`~kit_db.DatabaseUnavailable`      503     ``database-unavailable``
any other :class:`~kit_db.KitDBError`     500     ``database-error``
========================================  ======  ==========================

A :class:`~kit_db.ConfigurationError` raised while serving a request comes from a value the
request supplied (a naive datetime, an empty tenant id); a bad URL or option fails at
start-up instead, so it is a 400. The ``detail`` is a fixed sentence per kind of error: the
exception's message can quote rows, SQL or host names and is only logged.

Example::

    >>> from kit_db import Conflict
    >>> error = Conflict("duplicate key value ...", constraint="uq_users_email")
    >>> status, body = problem_details(error)
    >>> status, body["type"], body["constraint"]
    (409, 'https://kit.dev/problems/conflict', 'uq_users_email')
"""

from __future__ import annotations

import logging
from typing import Any, Final

from sqlalchemy.exc import StatementError

from .exceptions import (
    ConfigurationError,
    Conflict,
    DatabaseUnavailable,
    InvalidCursor,
    KitDBError,
    MissingDriver,
    NotFound,
    TenantRequired,
    TenantViolation,
)

__all__ = [
    "PROBLEM_BASE",
    "PROBLEM_CONTENT_TYPE",
    "kit_error",
    "log_problem",
    "problem_details",
]

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"
PROBLEM_BASE: Final = "https://kit.dev/problems/"

_log = logging.getLogger("kit.db")

_PROBLEMS: Final[tuple[tuple[type[KitDBError], int, str, str, str], ...]] = (
    (NotFound, 404, "not-found", "Not found", "The requested resource does not exist."),
    (
        Conflict,
        409,
        "conflict",
        "Conflict",
        "The request conflicts with an existing resource: a unique value is already taken.",
    ),
    (
        TenantRequired,
        403,
        "tenant-required",
        "Tenant required",
        "This resource belongs to a tenant, and the request names none.",
    ),
    (
        TenantViolation,
        403,
        "tenant-violation",
        "Tenant violation",
        "The request touches data of another tenant.",
    ),
    (
        InvalidCursor,
        400,
        "invalid-cursor",
        "Invalid cursor",
        "The pagination cursor is malformed, expired or belongs to another query.",
    ),
    (
        MissingDriver,
        500,
        "database-misconfigured",
        "Database misconfigured",
        "The server's database is misconfigured.",
    ),
    (
        ConfigurationError,
        400,
        "invalid-value",
        "Invalid value",
        "The request contains a value the database cannot store or use.",
    ),
    (
        DatabaseUnavailable,
        503,
        "database-unavailable",
        "Database unavailable",
        "The database cannot be reached right now. Try again later.",
    ),
)


def kit_error(exc: BaseException) -> KitDBError | None:
    """The kit-db error ``exc`` is or carries, else None.

    SQLAlchemy wraps errors raised while it prepares a statement (a kit-db column type
    refusing a naive datetime, say) in :class:`sqlalchemy.exc.StatementError`; the adapters
    answer those like the kit-db error inside.

    Example::

        >>> from sqlalchemy.exc import StatementError
        >>> inner = ConfigurationError("naive datetime")
        >>> kit_error(StatementError("wrapped", "INSERT ...", {}, inner)) is inner
        True
    """
    if isinstance(exc, KitDBError):
        return exc
    orig = getattr(exc, "orig", None)
    if isinstance(exc, StatementError) and isinstance(orig, KitDBError):
        return orig
    return None


def problem_details(exc: KitDBError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and ``application/problem+json`` body for a kit-db error.

    Example::

        >>> from kit_db import DatabaseUnavailable
        >>> status, body = problem_details(DatabaseUnavailable("db.internal:5432 refused"))
        >>> status, body["title"], "db.internal" in str(body)
        (503, 'Database unavailable', False)
    """
    status, slug, title = 500, "database-error", "Database error"
    detail = "The server's database failed."
    for kind, kind_status, kind_slug, kind_title, kind_detail in _PROBLEMS:
        if isinstance(exc, kind):
            status, slug, title, detail = kind_status, kind_slug, kind_title, kind_detail
            break
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if isinstance(exc, Conflict) and exc.constraint:
        body["constraint"] = exc.constraint
    return status, body


def log_problem(exc: KitDBError, status: int) -> None:
    """Log an error answered with ``status``: server faults with their traceback, client
    errors and outages as warnings."""
    if status >= 500 and status != 503:
        _log.error(
            "kit_db_http_problem status=%d error=%s", status, type(exc).__name__, exc_info=exc
        )
    else:
        _log.warning("kit_db_http_problem status=%d error=%s: %s", status, type(exc).__name__, exc)
