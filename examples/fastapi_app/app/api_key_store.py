"""kit-auth's ``ApiKeyStore`` protocol on a kit-db table, so API keys survive restarts
and are shared by every app process (kit-auth's own store is in memory)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from app.models import ApiKeyRow
from kit_auth import ApiKeyRecord
from kit_db import Database

__all__ = ["DatabaseApiKeyStore"]


def _record(row: ApiKeyRow) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row.key_id,
        owner_id=row.owner_id,
        name=row.name,
        scopes=frozenset(row.scopes.split()),
        tenant_id=row.tenant_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        hashed_secret=row.hashed_secret,
    )


class DatabaseApiKeyStore:
    """Synchronous, like the protocol: FastAPIAuth calls it from a worker thread."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def add(self, record: ApiKeyRecord) -> None:
        with self.database.begin() as session:
            session.add(
                ApiKeyRow(
                    key_id=record.key_id,
                    owner_id=record.owner_id,
                    name=record.name,
                    scopes=" ".join(sorted(record.scopes)),
                    tenant_id=record.tenant_id,
                    created_at=record.created_at,
                    expires_at=record.expires_at,
                    last_used_at=record.last_used_at,
                    revoked_at=record.revoked_at,
                    hashed_secret=record.hashed_secret,
                )
            )

    def get(self, key_id: str) -> ApiKeyRecord | None:
        with self.database.session() as session:
            row = session.get(ApiKeyRow, key_id)
            return None if row is None else _record(row)

    def list_for(self, owner_id: str) -> list[ApiKeyRecord]:
        with self.database.session() as session:
            rows = session.scalars(
                select(ApiKeyRow)
                .where(ApiKeyRow.owner_id == owner_id)
                .order_by(ApiKeyRow.created_at)
            )
            return [_record(row) for row in rows]

    def touch(self, key_id: str, when: datetime) -> None:
        with self.database.begin() as session:
            session.execute(
                update(ApiKeyRow).where(ApiKeyRow.key_id == key_id).values(last_used_at=when)
            )

    def revoke(self, key_id: str, when: datetime) -> bool:
        with self.database.begin() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = when
            return True
