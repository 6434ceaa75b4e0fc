"""Column types that behave the same on SQLite, PostgreSQL and MariaDB/MySQL."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import uuid_utils.compat
from sqlalchemy import DateTime
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from .exceptions import ConfigurationError

__all__ = ["UTCDateTime", "utcnow", "uuid7"]


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def uuid7() -> uuid.UUID:
    """A time-ordered UUIDv7 (RFC 9562) as a standard :class:`uuid.UUID`."""
    return uuid_utils.compat.uuid7()


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime everywhere.

    Values are converted to UTC on the way in (naive values are refused: say what zone they
    are in) and come back aware in UTC, also from SQLite and MySQL/MariaDB, which store no
    zone. Microseconds are kept on MySQL/MariaDB (``DATETIME(6)``).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ConfigurationError(
                f"naive datetime {value!r}: kit-db stores UTC; pass an aware datetime, "
                "e.g. datetime.now(UTC) or value.replace(tzinfo=UTC)"
            )
        value = value.astimezone(dt.UTC)
        if dialect.name in ("mysql", "mariadb", "sqlite"):
            return value.replace(tzinfo=None)
        return value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)
