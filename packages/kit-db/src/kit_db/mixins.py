"""Mixins for :class:`kit_db.Model` subclasses.

Example::

    class Project(UUIDMixin, TimestampMixin, SoftDeleteMixin, TenantScopedMixin, Model):
        __tablename__ = "projects"
        name: Mapped[str]
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Uuid
from sqlalchemy.orm import Mapped, mapped_column

from ._ordering import OrderingMixin
from ._scoping import SoftDeleteMixin, TenantScopedMixin
from .types import UTCDateTime, utcnow, uuid7

__all__ = ["OrderingMixin", "SoftDeleteMixin", "TenantScopedMixin", "TimestampMixin", "UUIDMixin"]


class UUIDMixin:
    """``id``: a time-ordered UUIDv7 primary key made in Python (native ``UUID`` on
    PostgreSQL, ``CHAR(32)`` elsewhere), so new rows index in insertion order."""

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7, sort_order=-100)


class TimestampMixin:
    """``created_at`` and ``updated_at``: timezone-aware UTC, set by kit-db on insert and
    update."""

    created_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime(), default=utcnow, nullable=False, sort_order=100
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False, sort_order=101
    )
