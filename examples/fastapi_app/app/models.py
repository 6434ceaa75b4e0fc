"""The tables, as kit-db models: tenant-scoped users, projects and reports (UUIDv7 keys,
UTC timestamps, soft delete), and API keys (looked up by key id before the tenant is
known, so not tenant-scoped)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kit_db import Model, SoftDeleteMixin, TenantScopedMixin, TimestampMixin, UUIDMixin

__all__ = ["ApiKeyRow", "Model", "Project", "Report", "User"]


class User(UUIDMixin, TimestampMixin, SoftDeleteMixin, TenantScopedMixin, Model):
    """Someone who signed in through OIDC; ``subject`` is the provider's stable id."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "provider", "subject"),)

    provider: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str]
    email: Mapped[str]
    name: Mapped[str | None]
    role: Mapped[str] = mapped_column(String(20), default="editor")
    active: Mapped[bool] = mapped_column(default=True)


class Project(UUIDMixin, TimestampMixin, SoftDeleteMixin, TenantScopedMixin, Model):
    __tablename__ = "projects"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[uuid.UUID]


class Report(UUIDMixin, TimestampMixin, TenantScopedMixin, Model):
    """A CSV export of the tenant's projects, built by a background job into storage."""

    __tablename__ = "reports"

    requested_by: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(20), default="pending")
    job_id: Mapped[str | None] = mapped_column(String(64))
    storage_key: Mapped[str | None] = mapped_column(String(1024))
    size: Mapped[int | None]
    rows: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)


class ApiKeyRow(Model):
    """kit-auth API-key records (only an HMAC of each secret), stored by kit-db."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    scopes: Mapped[str] = mapped_column(Text, default="")
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    hashed_secret: Mapped[bytes] = mapped_column(LargeBinary(32))
