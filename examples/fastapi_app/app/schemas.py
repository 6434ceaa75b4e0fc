"""Request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ApiKeyIn",
    "ApiKeyOut",
    "BlockIn",
    "BlockOut",
    "IssuedKeyOut",
    "MeOut",
    "ProjectIn",
    "ProjectOut",
    "RefreshIn",
    "ReportOut",
]


class ProjectIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)


class ProjectOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    owner_id: uuid.UUID
    created_at: datetime


class ReportOut(BaseModel):
    id: uuid.UUID
    status: str
    job_id: str | None
    rows: int | None = None
    size: int | None = None
    download_url: str | None = None


class MeOut(BaseModel):
    id: str
    tenant_id: str | None
    roles: list[str]
    scopes: list[str]


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=8192)


class ApiKeyIn(BaseModel):
    name: str = Field(default="", max_length=200)
    scopes: list[str] = Field(default_factory=list, max_length=20)
    expires_in_days: int | None = Field(default=90, ge=1, le=365)


class ApiKeyOut(BaseModel):
    key_id: str
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


class IssuedKeyOut(ApiKeyOut):
    token: str = Field(description="The whole key: shown once, never stored.")


class BlockIn(BaseModel):
    address: str = Field(min_length=1, max_length=64, description="An address or a CIDR.")
    ttl: int | None = Field(
        default=3600, ge=1, le=30 * 86400, description="Seconds; null: forever."
    )


class BlockOut(BaseModel):
    action: str
    network: str
    expires_at: datetime | None
    hits: int
