"""The board's tables: users, cards (an ordered list), their attachments, and exports.

One team, one board: the whole ``cards`` table is one ordered list (kit-db
``OrderingMixin`` with the default, empty scope). Cards are soft-deleted, so a deleted
card leaves the list and the cards below it move up.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import ForeignKey, String, Table, Text, false, update
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from kit_auth import SimplePrincipal
from kit_db import Model, OrderingMixin, SoftDeleteMixin, TimestampMixin, UUIDMixin

__all__ = ["Attachment", "Card", "Export", "User", "begin_write"]

TITLE_MAX = 200
BODY_MAX = 2000


class User(UUIDMixin, TimestampMixin, Model):
    """Someone who signed in through the OIDC provider.

    ``status`` is ``active`` or ``pending`` (waiting for an admin); ``role`` is ``admin``
    or ``user`` (kit-auth's default hierarchy: admin > moderator > editor > user).
    """

    __tablename__ = "users"

    subject: Mapped[str] = mapped_column(unique=True)  # "<provider>|<sub>": the stable key
    email: Mapped[str]
    name: Mapped[str | None]
    role: Mapped[str] = mapped_column(String(16), default="user")
    status: Mapped[str] = mapped_column(String(16), default="pending")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def principal(self) -> SimplePrincipal:
        """This user as kit-auth sees them (its guards read ``active`` and ``roles``)."""
        active = self.status == "active"
        return SimplePrincipal(
            str(self.id),
            active=active,
            roles={self.role},
            inactive_reason="inactive" if active else self.status,
        )


class Card(UUIDMixin, TimestampMixin, SoftDeleteMixin, OrderingMixin, Model):
    """A card on the board; ``position`` (from ``OrderingMixin``) is its place, 0 first."""

    __tablename__ = "cards"

    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    body: Mapped[str] = mapped_column(Text, default="")
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)

    author: Mapped[User] = relationship(lazy="joined")
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="card", order_by="Attachment.created_at", lazy="selectin"
    )


class Attachment(UUIDMixin, TimestampMixin, Model):
    """A file uploaded to a card. The bytes live in kit-storage under ``key``; the
    name the user gave is kept here only (never used as a storage key)."""

    __tablename__ = "attachments"

    card_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cards.id"), index=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    filename: Mapped[str]
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    uploaded_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))

    card: Mapped[Card] = relationship(back_populates="attachments")


class Export(UUIDMixin, TimestampMixin, Model):
    """A CSV export of the board, built by a background job (``teamboard.tasks``).

    ``status``: ``queued`` -> ``running`` -> ``finished`` (the file is at ``key``) or
    ``failed`` (``error`` says why).
    """

    __tablename__ = "exports"

    requested_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    job_id: Mapped[str | None] = mapped_column(String(64))
    key: Mapped[str | None] = mapped_column(String(300))
    rows: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(500))
    finished_at: Mapped[datetime | None]


def begin_write(session: Session) -> None:
    """On SQLite, make the session's transaction a writer now, as ``BEGIN IMMEDIATE``
    would (kit-db's ``lock_ordering`` does the same): it waits for the write lock up to
    the busy timeout. A transaction that has read cannot become a writer once another
    connection has committed: SQLite answers "database is locked" at once. So a request
    or job that reads and then writes takes the lock before its first read. PostgreSQL
    and MySQL need nothing of the kind."""
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        users = cast(Table, User.__table__)
        session.execute(update(users).where(false()).values(role=users.c.role))
