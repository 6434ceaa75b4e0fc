"""API keys: format and checksum, hashing, verification, revocation, expiry, stores.

The behaviour tests run against the memory store and against the SQL recipe from the
``kit_auth.apikeys`` docstring, written out here with sqlite3.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import threading
import zlib
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kit_auth.apikeys import (
    BASE62,
    ApiKeyRecord,
    ApiKeys,
    ApiKeyStore,
    IssuedApiKey,
    MemoryApiKeyStore,
)
from kit_auth.exceptions import ConfigurationError, InvalidApiKey, InvalidInput

SERVER_SECRET = b"s" * 32
TOKEN_RE = re.compile(r"kit_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}")


# -- the SQL recipe, with sqlite3 ---------------------------------------------------------

SCHEMA = """
CREATE TABLE api_keys (
    key_id        VARCHAR(32)  NOT NULL,
    owner_id      VARCHAR(255) NOT NULL,
    name          VARCHAR(200) NOT NULL DEFAULT '',
    scopes        TEXT         NOT NULL DEFAULT '',
    tenant_id     VARCHAR(255),
    created_at    TIMESTAMP    NOT NULL,
    expires_at    TIMESTAMP,
    last_used_at  TIMESTAMP,
    revoked_at    TIMESTAMP,
    hashed_secret BLOB         NOT NULL
);
CREATE UNIQUE INDEX api_keys_key_id ON api_keys (key_id);
CREATE INDEX api_keys_owner_id ON api_keys (owner_id);
"""
INSERT = (
    "INSERT INTO api_keys (key_id, owner_id, name, scopes, tenant_id, created_at, expires_at,"
    " last_used_at, revoked_at, hashed_secret) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
SELECT = (
    "SELECT key_id, owner_id, name, scopes, tenant_id, created_at, expires_at, last_used_at,"
    " revoked_at, hashed_secret FROM api_keys"
)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class SqlApiKeyStore:
    """The docstring's DB-API recipe (sqlite3 placeholders)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with closing(self.connect()) as db, db:
            db.executescript(SCHEMA)

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def _record(self, row: tuple[Any, ...]) -> ApiKeyRecord:
        created_at = _dt(row[5])
        assert created_at is not None
        return ApiKeyRecord(
            key_id=row[0],
            owner_id=row[1],
            name=row[2],
            scopes=frozenset(row[3].split()),
            tenant_id=row[4],
            created_at=created_at,
            expires_at=_dt(row[6]),
            last_used_at=_dt(row[7]),
            revoked_at=_dt(row[8]),
            hashed_secret=bytes(row[9]),
        )

    def add(self, record: ApiKeyRecord) -> None:
        with closing(self.connect()) as db, db:
            db.execute(
                INSERT,
                (
                    record.key_id,
                    record.owner_id,
                    record.name,
                    " ".join(sorted(record.scopes)),
                    record.tenant_id,
                    _iso(record.created_at),
                    _iso(record.expires_at),
                    _iso(record.last_used_at),
                    _iso(record.revoked_at),
                    record.hashed_secret,
                ),
            )

    def get(self, key_id: str) -> ApiKeyRecord | None:
        with closing(self.connect()) as db:
            row = db.execute(SELECT + " WHERE key_id = ?", (key_id,)).fetchone()
        return None if row is None else self._record(row)

    def list_for(self, owner_id: str) -> list[ApiKeyRecord]:
        with closing(self.connect()) as db:
            rows = db.execute(
                SELECT + " WHERE owner_id = ? ORDER BY created_at, rowid",
                (owner_id,),
            ).fetchall()
        return [self._record(row) for row in rows]

    def touch(self, key_id: str, when: datetime) -> None:
        with closing(self.connect()) as db, db:
            db.execute(
                "UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", (_iso(when), key_id)
            )

    def revoke(self, key_id: str, when: datetime) -> bool:
        with closing(self.connect()) as db, db:
            cursor = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (_iso(when), key_id),
            )
            return cursor.rowcount == 1


class CountingStore:
    """Wraps a store and counts lookups (to prove offline refusals never reach it)."""

    def __init__(self, inner: ApiKeyStore) -> None:
        self.inner = inner
        self.gets = 0
        self.touches = 0

    def add(self, record: ApiKeyRecord) -> None:
        self.inner.add(record)

    def get(self, key_id: str) -> ApiKeyRecord | None:
        self.gets += 1
        return self.inner.get(key_id)

    def list_for(self, owner_id: str) -> list[ApiKeyRecord]:
        return self.inner.list_for(owner_id)

    def touch(self, key_id: str, when: datetime) -> None:
        self.touches += 1
        self.inner.touch(key_id, when)

    def revoke(self, key_id: str, when: datetime) -> bool:
        return self.inner.revoke(key_id, when)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> CountingStore:
    inner: ApiKeyStore = (
        MemoryApiKeyStore() if request.param == "memory" else SqlApiKeyStore(tmp_path / "k.db")
    )
    return CountingStore(inner)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def keys(store: CountingStore, clock: Clock) -> ApiKeys:
    return ApiKeys(SERVER_SECRET, store=store, clock=clock)


def _base62_decode(text: str) -> int:
    value = 0
    for char in text:
        value = value * 62 + BASE62.index(char)
    return value


# -- format -------------------------------------------------------------------------------


def test_format_and_checksum(keys: ApiKeys) -> None:
    issued = keys.create("user-1")
    token = issued.token
    assert TOKEN_RE.fullmatch(token), "prefix_keyid_secret+checksum"
    assert len(token) == 55
    prefix, key_id, _tail = token.split("_")
    assert (prefix, key_id) == ("kit", issued.record.key_id)
    body, checksum = token[:-6], token[-6:]
    assert _base62_decode(checksum) == zlib.crc32(body.encode())  # GitHub-style CRC32


def test_tokens_are_random(keys: ApiKeys) -> None:
    tokens = [keys.create("user-1").token for _ in range(20)]
    assert len(set(tokens)) == 20
    assert len({t.split("_")[1] for t in tokens}) == 20


def test_custom_prefix(store: CountingStore) -> None:
    issued = ApiKeys(SERVER_SECRET, store=store, prefix="acme2").create("u")
    assert issued.token.startswith("acme2_")
    with pytest.raises(InvalidApiKey, match="not a kit_ API key"):
        ApiKeys(SERVER_SECRET, store=store).verify(issued.token)


@pytest.mark.parametrize("prefix", ["sk_live", "K", "k", "Kit", "1kit", "a" * 17, "kit-x", ""])
def test_bad_prefix_refused(prefix: str) -> None:
    with pytest.raises(ConfigurationError, match="prefix"):
        ApiKeys(SERVER_SECRET, prefix=prefix)


@pytest.mark.parametrize("secret", [b"short", b"x" * 31, "s" * 32, None])
def test_weak_server_secret_refused(secret: object) -> None:
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        ApiKeys(secret)  # type: ignore[arg-type]


def test_other_bad_configuration() -> None:
    with pytest.raises(ConfigurationError, match="store"):
        ApiKeys(SERVER_SECRET, store=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="touch_interval"):
        ApiKeys(SERVER_SECRET, touch_interval=-1)


def _tamper(token: str, index: int) -> str:
    replacement = "A" if token[index] != "A" else "B"
    return token[:index] + replacement + token[index + 1 :]


@pytest.mark.parametrize("index", [-1, -6, 20, 30, 5])
def test_tampered_token_refused_without_store_lookup(
    keys: ApiKeys, store: CountingStore, index: int
) -> None:
    token = keys.create("user-1").token
    with pytest.raises(InvalidApiKey, match="malformed") as info:
        keys.verify(_tamper(token, index))
    assert store.gets == 0
    assert token[13:] not in str(info.value)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "kit",
        "kit_",
        "kit__",
        "random string",
        "kit_" + "a" * 300,
        "kit_AAAAAAAAAAAA_" + "a" * 38,
        "kit_AAAAAAAAAAA_" + "a" * 39,
        "kit_AAAAAAAAAAAA_" + "a" * 37 + "!",
        "kit_AAAAAAAAAAAA_AAAA_AAAA",
        None,
        b"kit_bytes",
    ],
)
def test_malformed_tokens_refused_offline(keys: ApiKeys, store: CountingStore, bad: object) -> None:
    with pytest.raises(InvalidApiKey) as info:
        keys.verify(bad)  # type: ignore[arg-type]
    assert store.gets == 0
    if isinstance(bad, str) and len(bad) > 8:
        assert bad not in str(info.value)


def test_parse_error_never_echoes_the_token(keys: ApiKeys) -> None:
    token = keys.create("user-1").token
    secret_part = token.split("_")[2]
    for bad in (_tamper(token, -1), token + "x", token.replace("_", "-")):
        with pytest.raises(InvalidApiKey) as info:
            keys.verify(bad)
        assert secret_part[:10] not in str(info.value)
        assert secret_part[:10] not in repr(info.value.problem())


# -- verification -------------------------------------------------------------------------


def test_verify_returns_the_record(keys: ApiKeys) -> None:
    issued = keys.create("user-1", name="CI", scopes=["reports:read", "reports:write"])
    record = keys.verify(issued.token)
    assert record.key_id == issued.record.key_id
    assert record.owner_id == record.subject == "user-1"
    assert record.name == "CI"
    assert record.scopes == frozenset({"reports:read", "reports:write"})


def test_scopes_and_tenant_carried(keys: ApiKeys) -> None:
    issued = keys.create("user-1", scopes=("a", "b", "a"), tenant_id="acme")
    record = keys.verify(issued.token)
    assert record.scopes == frozenset({"a", "b"})
    assert record.tenant_id == "acme"
    assert keys.verify(keys.create("user-2").token).tenant_id is None


def test_wrong_secret_refused(keys: ApiKeys, store: CountingStore) -> None:
    issued = keys.create("user-1")
    prefix, key_id, tail = issued.token.split("_")
    other_secret = tail[:-7] + ("A" if tail[-7] != "A" else "B")
    body = f"{prefix}_{key_id}_{other_secret}"
    forged = body + _checksum_of(body)
    with pytest.raises(InvalidApiKey, match="not valid"):
        keys.verify(forged)
    assert store.gets == 1  # a well-formed token does reach the store


def _checksum_of(body: str) -> str:
    number = zlib.crc32(body.encode())
    chars = []
    for _ in range(6):
        number, rest = divmod(number, 62)
        chars.append(BASE62[rest])
    return "".join(reversed(chars))


def test_unknown_key_refused(keys: ApiKeys) -> None:
    body = "kit_" + "A" * 12 + "_" + "b" * 32
    with pytest.raises(InvalidApiKey, match="not valid"):
        keys.verify(body + _checksum_of(body))


def test_other_server_secret_refused(store: CountingStore, clock: Clock) -> None:
    token = ApiKeys(SERVER_SECRET, store=store, clock=clock).create("user-1").token
    with pytest.raises(InvalidApiKey, match="not valid"):
        ApiKeys(b"t" * 32, store=store, clock=clock).verify(token)


def test_revoked(keys: ApiKeys) -> None:
    issued = keys.create("user-1")
    assert keys.revoke(issued.record.key_id) is True
    assert keys.revoke(issued.record.key_id) is False
    with pytest.raises(InvalidApiKey, match="revoked"):
        keys.verify(issued.token)
    record = keys.get(issued.record.key_id)
    assert record is not None and record.revoked and not record.active()
    with pytest.raises(InvalidInput, match="no API key"):
        keys.revoke("A" * 12)


def test_expired(keys: ApiKeys, clock: Clock) -> None:
    issued = keys.create("user-1", expires_in=timedelta(hours=1))
    assert issued.record.expires_at == clock.now + timedelta(hours=1)
    keys.verify(issued.token)
    clock.advance(3599)
    keys.verify(issued.token)
    clock.advance(1)
    with pytest.raises(InvalidApiKey, match="expired"):
        keys.verify(issued.token)
    short = keys.create("user-1", expires_in=30.5)
    clock.advance(31)
    with pytest.raises(InvalidApiKey, match="expired"):
        keys.verify(short.token)


def test_revoked_or_expired_not_revealed_without_the_secret(keys: ApiKeys) -> None:
    issued = keys.create("user-1")
    keys.revoke(issued.record.key_id)
    prefix, key_id, _ = issued.token.split("_")
    body = f"{prefix}_{key_id}_" + "z" * 32
    with pytest.raises(InvalidApiKey, match="not valid"):
        keys.verify(body + _checksum_of(body))


def test_token_not_in_repr(keys: ApiKeys) -> None:
    issued = keys.create("user-1")
    secret_part = issued.token.split("_")[2]
    for text in (repr(issued), str(issued), repr(issued.record), repr(keys)):
        assert issued.token not in text
        assert secret_part[:16] not in text
    assert isinstance(issued, IssuedApiKey)


def test_hashed_secret_is_not_the_secret(keys: ApiKeys, store: CountingStore) -> None:
    issued = keys.create("user-1")
    secret_part = issued.token.split("_")[2][:32]
    stored = store.get(issued.record.key_id)
    assert stored is not None
    assert len(stored.hashed_secret) == 32
    assert secret_part.encode() not in stored.hashed_secret
    assert stored.hashed_secret != secret_part.encode()
    import hashlib
    import hmac

    expected = hmac.new(SERVER_SECRET, secret_part.encode(), hashlib.sha256).digest()
    assert stored.hashed_secret == expected
    assert hashlib.sha256(secret_part.encode()).digest() != stored.hashed_secret


def test_last_used_updated_at_most_once_a_minute(
    keys: ApiKeys, store: CountingStore, clock: Clock
) -> None:
    issued = keys.create("user-1")
    assert issued.record.last_used_at is None
    first = keys.verify(issued.token)
    assert first.last_used_at == clock.now
    assert store.touches == 1
    stored = store.get(issued.record.key_id)
    assert stored is not None and stored.last_used_at == clock.now
    clock.advance(30)
    assert keys.verify(issued.token).last_used_at == first.last_used_at
    assert store.touches == 1
    clock.advance(31)
    assert keys.verify(issued.token).last_used_at == clock.now
    assert store.touches == 2


def test_list_and_get(keys: ApiKeys, clock: Clock) -> None:
    a = keys.create("user-1", name="laptop")
    clock.advance(1)
    b = keys.create("user-1", name="CI")
    keys.create("user-2", name="other")
    assert [r.name for r in keys.list("user-1")] == ["laptop", "CI"]
    assert keys.list("nobody") == []
    keys.revoke(a.record.key_id)
    listed = keys.list("user-1")
    assert [r.revoked for r in listed] == [True, False]
    got = keys.get(b.record.key_id)
    assert got is not None and got.hashed_secret == b.record.hashed_secret
    assert keys.get("A" * 12) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"owner_id": ""},
        {"owner_id": None},
        {"owner_id": "u" * 256},
        {"scopes": "read write"},
        {"scopes": ["read write"]},
        {"scopes": [""]},
        {"scopes": [1]},
        {"scopes": 5},
        {"expires_in": 0},
        {"expires_in": -5},
        {"expires_in": timedelta(seconds=-1)},
        {"expires_in": "1h"},
        {"name": "n" * 201},
        {"tenant_id": ""},
    ],
)
def test_create_validates(keys: ApiKeys, kwargs: dict[str, Any]) -> None:
    args = {"owner_id": "user-1", **kwargs}
    owner = args.pop("owner_id")
    with pytest.raises(InvalidInput):
        keys.create(owner, **args)


def test_record_active_and_properties(clock: Clock) -> None:
    now = clock.now
    record = ApiKeyRecord(
        "AbC123def456", "user-1", "", frozenset(), None, now, None, None, None, b"\0" * 32
    )
    assert record.active(now + timedelta(days=3650))
    assert not record.expired()
    assert "hashed_secret" not in repr(record)


def test_concurrent_verification_from_threads(keys: ApiKeys, store: CountingStore) -> None:
    issued = [keys.create(f"user-{i}") for i in range(4)]
    errors: list[BaseException] = []
    ok: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        barrier.wait()
        for i in range(25):
            key = issued[(n + i) % 4]
            try:
                record = keys.verify(key.token)
                assert record.owner_id == key.record.owner_id
                with pytest.raises(InvalidApiKey):
                    keys.verify(_tamper(key.token, -1))
            except BaseException as exc:  # collect, the main thread asserts
                with lock:
                    errors.append(exc)
            else:
                with lock:
                    ok.append(record.key_id)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(ok) == 200
    # The clock is frozen, so each key is touched once however many threads race; a race
    # may add a few extra touches, never one per verification.
    assert 4 <= store.touches < 50


def test_duplicate_key_id_refused_by_stores(store: CountingStore, clock: Clock) -> None:
    keys = ApiKeys(SERVER_SECRET, store=store, clock=clock)
    record = keys.create("user-1").record
    with pytest.raises((InvalidInput, sqlite3.IntegrityError)):
        store.add(record)


def test_default_store_and_clock_work() -> None:
    keys = ApiKeys(secrets.token_bytes(32))
    issued = keys.create("user-1", expires_in=60)
    record = keys.verify(issued.token)
    assert record.active()
    assert isinstance(keys.store, MemoryApiKeyStore)
    assert record.last_used_at is not None
    assert record.last_used_at.tzinfo is not None
