"""The declarative base."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import MetaData, String
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase

from ._database import registered_metadata
from .types import UTCDateTime

__all__ = ["NAMING_CONVENTION", "TYPE_ANNOTATION_MAP", "Model"]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint names are derived, never left to the database, so Alembic diffs are stable
and a :class:`~kit_db.Conflict` can name the constraint on every dialect."""


TYPE_ANNOTATION_MAP: dict[Any, Any] = {str: String(255), dt.datetime: UTCDateTime()}
"""``Mapped[str]`` is ``VARCHAR(255)`` (MySQL/MariaDB need a length) and ``Mapped[datetime]``
is an aware UTC datetime on every dialect; use ``mapped_column(Text)`` for long text."""


class Model(AsyncAttrs, DeclarativeBase):
    """Base class for kit-db models: naming convention and ``awaitable_attrs`` for asyncio.

    Example::

        from sqlalchemy.orm import Mapped, mapped_column
        from kit_db import Model, UUIDMixin, TimestampMixin

        class User(UUIDMixin, TimestampMixin, Model):
            __tablename__ = "users"
            email: Mapped[str] = mapped_column(unique=True)
    """

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = TYPE_ANNOTATION_MAP


registered_metadata.append(Model.metadata)
