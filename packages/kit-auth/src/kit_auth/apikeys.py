"""Prefixed, checksummed API keys whose secret is only ever stored as a keyed hash.

A key looks like ``kit_4Fh2kQ9xZb3T_<32 base62 characters><6-character checksum>``:

* ``prefix`` names the issuer or key type (``[a-z][a-z0-9]{1,15}``: lower-case letters
  and digits only, because ``_`` separates the parts; use ``kitlive`` / ``kittest``
  rather than Stripe's ``sk_live``). It lets secret scanners recognise leaked keys.
* ``key_id`` (12 base62 characters, ~71 bits) is plaintext: the lookup key, safe to show
  in UIs and logs.
* the secret (32 base62 characters from :mod:`secrets`, ~190 bits) is shown once, at
  creation. Only HMAC-SHA256(server secret, secret) is stored, so a database leak alone
  yields no usable keys; verification compares with :func:`hmac.compare_digest`.
* the checksum (6 base62 characters of the CRC32 of everything before it, like GitHub's
  tokens) lets kit refuse a mistyped or random string offline, before any store lookup.

Keys must travel in a header (``Authorization: Bearer ...`` or ``X-API-Key``), never in a
URL, where they end up in logs.

The store is a small protocol (:class:`ApiKeyStore`); :class:`MemoryApiKeyStore` is the
in-process one. The API is synchronous: the memory store is fast, and a SQL store should
be called from a thread (``run_in_threadpool`` / ``asyncio.to_thread``) in async apps.

SQL recipe (DB-API, no ORM). One table, a unique index on ``key_id``::

    CREATE TABLE api_keys (
        key_id        VARCHAR(32)  NOT NULL,   -- unique, plaintext
        owner_id      VARCHAR(255) NOT NULL,
        name          VARCHAR(200) NOT NULL DEFAULT '',
        scopes        TEXT         NOT NULL DEFAULT '',  -- space-separated
        tenant_id     VARCHAR(255),
        created_at    TIMESTAMP    NOT NULL,   -- UTC (store ISO 8601 text on SQLite)
        expires_at    TIMESTAMP,
        last_used_at  TIMESTAMP,
        revoked_at    TIMESTAMP,
        hashed_secret BLOB         NOT NULL    -- 32 bytes (BYTEA / VARBINARY(32))
    );
    CREATE UNIQUE INDEX api_keys_key_id ON api_keys (key_id);
    CREATE INDEX api_keys_owner_id ON api_keys (owner_id);

    class SqlApiKeyStore:
        def __init__(self, connect):            # connect() -> a DB-API connection
            self.connect = connect

        def add(self, r):
            with closing(self.connect()) as db, db:
                db.execute("INSERT INTO api_keys VALUES (?,?,?,?,?,?,?,?,?,?)",
                           (r.key_id, r.owner_id, r.name, " ".join(sorted(r.scopes)),
                            r.tenant_id, iso(r.created_at), iso(r.expires_at),
                            iso(r.last_used_at), iso(r.revoked_at), r.hashed_secret))

        def get(self, key_id):
            ...SELECT * FROM api_keys WHERE key_id = ?; build an ApiKeyRecord or None

        def list_for(self, owner_id):
            ...SELECT * FROM api_keys WHERE owner_id = ? ORDER BY created_at

        def touch(self, key_id, when):
            ...UPDATE api_keys SET last_used_at = ? WHERE key_id = ?

        def revoke(self, key_id, when):
            ...UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL
            return cursor.rowcount == 1

(the placeholder style, ``?`` or ``%s``, depends on the driver; kit's test suite runs this
recipe against sqlite3.)

Example::

    >>> import secrets
    >>> keys = ApiKeys(secrets.token_bytes(32), prefix="kit")
    >>> issued = keys.create("user-42", name="CI", scopes=["reports:read"])
    >>> issued.token.startswith("kit_" + issued.record.key_id + "_")
    True
    >>> record = keys.verify(issued.token)
    >>> record.owner_id, sorted(record.scopes)
    ('user-42', ['reports:read'])
    >>> keys.verify("kit_notarealkey")
    Traceback (most recent call last):
      ...
    kit_auth.exceptions.InvalidApiKey: The API key is malformed.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol, runtime_checkable

from kit_auth.exceptions import ConfigurationError, InvalidApiKey, InvalidInput

__all__ = [
    "ApiKeyRecord",
    "ApiKeyStore",
    "ApiKeys",
    "IssuedApiKey",
    "MemoryApiKeyStore",
]

BASE62: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_ID_LENGTH: Final = 12
SECRET_LENGTH: Final = 32
CHECKSUM_LENGTH: Final = 6
#: Longest token ever parsed (GitHub asks integrators to allow 255 characters).
MAX_TOKEN_LENGTH: Final = 255
_PREFIX_RE: Final = re.compile(r"[a-z][a-z0-9]{1,15}")
_BASE62_RE: Final = re.compile(r"[0-9A-Za-z]+")
_SERVER_SECRET_MIN: Final = 32
_MAX_ID: Final = 255
_MAX_NAME: Final = 200
_MALFORMED: Final = "The API key is malformed."
_NOT_VALID: Final = "The API key is not valid."


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        chars.append(BASE62[rest])
    return "".join(reversed(chars))


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """What the store keeps about one key (never the key itself).

    It doubles as a principal source: ``subject`` (the owner), ``scopes`` and
    ``tenant_id`` are what an adapter needs to build the request's principal.

    Example::

        >>> from datetime import UTC, datetime, timedelta
        >>> now = datetime(2026, 1, 1, tzinfo=UTC)
        >>> r = ApiKeyRecord("AbC123def456", "user-42", "CI", frozenset({"read"}), None,
        ...                  now, now + timedelta(days=1), None, None, b"\\x00" * 32)
        >>> r.active(now), r.active(now + timedelta(days=2)), r.subject
        (True, False, 'user-42')
    """

    key_id: str
    owner_id: str
    name: str
    scopes: frozenset[str]
    tenant_id: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    hashed_secret: bytes = field(repr=False)

    @property
    def subject(self) -> str:
        """The principal this key acts for (its ``owner_id``)."""
        return self.owner_id

    @property
    def revoked(self) -> bool:
        """Whether the key was revoked."""
        return self.revoked_at is not None

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the key's expiry has passed at *now* (default: the current time)."""
        now = _utcnow() if now is None else now
        return self.expires_at is not None and now >= self.expires_at

    def active(self, now: datetime | None = None) -> bool:
        """Neither revoked nor expired at *now* (default: the current time)."""
        return not self.revoked and not self.expired(now)


@dataclass(frozen=True, slots=True)
class IssuedApiKey:
    """A freshly created key: ``token`` is the full key, shown to the user once.

    The ``repr`` never contains the token, so logging this object does not leak it.

    Example::

        >>> import secrets
        >>> issued = ApiKeys(secrets.token_bytes(32)).create("user-42")
        >>> issued.token in repr(issued)
        False
    """

    token: str = field(repr=False)
    record: ApiKeyRecord

    def __repr__(self) -> str:
        return f"IssuedApiKey(key_id={self.record.key_id!r}, owner_id={self.record.owner_id!r})"


@runtime_checkable
class ApiKeyStore(Protocol):
    """Where key records live. Every method is keyed by the plaintext ``key_id``.

    ``add`` must refuse a duplicate ``key_id`` (a unique index); ``revoke`` returns
    whether the key was active and is now revoked.
    """

    def add(self, record: ApiKeyRecord) -> None:
        """Store a new record."""
        ...

    def get(self, key_id: str) -> ApiKeyRecord | None:
        """The record for *key_id*, or None."""
        ...

    def list_for(self, owner_id: str) -> list[ApiKeyRecord]:
        """Every record of *owner_id*, oldest first."""
        ...

    def touch(self, key_id: str, when: datetime) -> None:
        """Set ``last_used_at`` to *when*."""
        ...

    def revoke(self, key_id: str, when: datetime) -> bool:
        """Set ``revoked_at`` to *when* unless already revoked; True if it changed."""
        ...


class MemoryApiKeyStore:
    """Thread-safe in-process store (tests, single-process apps, prototypes).

    Example::

        >>> store = MemoryApiKeyStore()
        >>> store.get("nope") is None
        True
    """

    def __init__(self) -> None:
        self._records: dict[str, ApiKeyRecord] = {}
        self._lock = threading.Lock()

    def add(self, record: ApiKeyRecord) -> None:
        """Store a new record; refuses a duplicate ``key_id``."""
        with self._lock:
            if record.key_id in self._records:
                raise InvalidInput(f"an API key with id {record.key_id!r} already exists")
            self._records[record.key_id] = record

    def get(self, key_id: str) -> ApiKeyRecord | None:
        """The record for *key_id*, or None."""
        return self._records.get(key_id)

    def list_for(self, owner_id: str) -> list[ApiKeyRecord]:
        """Every record of *owner_id*, oldest first."""
        with self._lock:
            found = [r for r in self._records.values() if r.owner_id == owner_id]
        return sorted(found, key=lambda r: r.created_at)

    def touch(self, key_id: str, when: datetime) -> None:
        """Set ``last_used_at`` to *when*."""
        with self._lock:
            record = self._records.get(key_id)
            if record is not None:
                self._records[key_id] = replace(record, last_used_at=when)

    def revoke(self, key_id: str, when: datetime) -> bool:
        """Set ``revoked_at`` to *when* unless already revoked; True if it changed."""
        with self._lock:
            record = self._records.get(key_id)
            if record is None or record.revoked_at is not None:
                return False
            self._records[key_id] = replace(record, revoked_at=when)
            return True


def _check_text(
    name: str, value: object, *, allow_empty: bool = False, limit: int = _MAX_ID
) -> str:
    if not isinstance(value, str) or (not value and not allow_empty) or len(value) > limit:
        qualifier = "a" if allow_empty else "a non-empty"
        raise InvalidInput(f"{name} must be {qualifier} string of at most {limit} characters.")
    return value


class ApiKeys:
    """Create, verify, list and revoke API keys.

    Args:
        secret: the server secret keying the stored hashes: bytes, at least 32 of them
            (``secrets.token_bytes(32)``), kept out of the database. Changing it
            invalidates every key.
        store: an :class:`ApiKeyStore` (default: a new :class:`MemoryApiKeyStore`).
        prefix: the token prefix, ``[a-z][a-z0-9]{1,15}`` (default ``"kit"``).
        touch_interval: ``last_used_at`` is written at most this often per key, in
            seconds (default 60), to save store writes.
        clock: returns the current aware UTC datetime (for tests).

    Example::

        >>> import secrets
        >>> keys = ApiKeys(secrets.token_bytes(32), prefix="acme")
        >>> issued = keys.create("user-42", expires_in=3600)
        >>> keys.revoke(issued.record.key_id)
        True
        >>> keys.verify(issued.token)
        Traceback (most recent call last):
          ...
        kit_auth.exceptions.InvalidApiKey: The API key was revoked.
    """

    def __init__(
        self,
        secret: bytes,
        *,
        store: ApiKeyStore | None = None,
        prefix: str = "kit",
        touch_interval: float = 60.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not isinstance(secret, bytes) or len(secret) < _SERVER_SECRET_MIN:
            raise ConfigurationError(
                f"the API-key server secret must be at least {_SERVER_SECRET_MIN} bytes "
                "(e.g. secrets.token_bytes(32)), kept outside the database"
            )
        if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
            raise ConfigurationError(
                f"API-key prefix {prefix!r} must match [a-z][a-z0-9]{{1,15}} "
                "(lower-case letters and digits; '_' is the part separator)"
            )
        if store is not None and not isinstance(store, ApiKeyStore):
            raise ConfigurationError(
                "store must implement ApiKeyStore (add, get, list_for, touch, revoke)"
            )
        if (
            not isinstance(touch_interval, int | float)
            or isinstance(touch_interval, bool)
            or not 0 <= touch_interval <= 86400
        ):
            raise ConfigurationError("touch_interval must be a number of seconds from 0 to 86400")
        if clock is not None and not callable(clock):
            raise ConfigurationError("clock must be a callable returning an aware datetime")
        self._secret = secret
        self.store: ApiKeyStore = MemoryApiKeyStore() if store is None else store
        self.prefix = prefix
        self._touch_interval = timedelta(seconds=touch_interval)
        self._clock = clock or _utcnow

    def __repr__(self) -> str:
        return f"ApiKeys(prefix={self.prefix!r}, store={type(self.store).__name__})"

    def _hash(self, secret: str) -> bytes:
        return hmac.new(self._secret, secret.encode("ascii"), hashlib.sha256).digest()

    def create(
        self,
        owner_id: str,
        *,
        name: str = "",
        scopes: Iterable[str] = (),
        expires_in: timedelta | float | None = None,
        tenant_id: str | None = None,
    ) -> IssuedApiKey:
        """Create a key for *owner_id*; the returned ``token`` is shown once, never stored.

        Example::

            >>> import secrets
            >>> issued = ApiKeys(secrets.token_bytes(32)).create("u1", scopes=["a", "b"])
            >>> len(issued.token), sorted(issued.record.scopes)
            (55, ['a', 'b'])
        """
        _check_text("owner_id", owner_id)
        _check_text("name", name, allow_empty=True, limit=_MAX_NAME)
        if tenant_id is not None:
            _check_text("tenant_id", tenant_id)
        if isinstance(scopes, str | bytes) or not isinstance(scopes, Iterable):
            raise InvalidInput("scopes must be an iterable of scope strings, not a single string.")
        scope_set = frozenset(scopes)
        for scope in scope_set:
            if (
                not isinstance(scope, str)
                or not scope
                or len(scope) > _MAX_ID
                or any(c.isspace() for c in scope)
            ):
                raise InvalidInput(
                    f"each scope must be a non-empty string without spaces, got {scope!r}."
                )
        now = self._clock()
        expires_at: datetime | None = None
        if expires_in is not None:
            if isinstance(expires_in, timedelta):
                delta = expires_in
            elif isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
                delta = timedelta(seconds=expires_in)
            else:
                raise InvalidInput("expires_in must be a timedelta, a number of seconds, or None.")
            if delta <= timedelta(0):
                raise InvalidInput("expires_in must be positive.")
            expires_at = now + delta
        key_id = _random_base62(KEY_ID_LENGTH)
        secret = _random_base62(SECRET_LENGTH)
        body = f"{self.prefix}_{key_id}_{secret}"
        token = body + _checksum(body)
        record = ApiKeyRecord(
            key_id=key_id,
            owner_id=owner_id,
            name=name,
            scopes=scope_set,
            tenant_id=tenant_id,
            created_at=now,
            expires_at=expires_at,
            last_used_at=None,
            revoked_at=None,
            hashed_secret=self._hash(secret),
        )
        self.store.add(record)
        return IssuedApiKey(token=token, record=record)

    def parse(self, token: str) -> tuple[str, str]:
        """Check *token*'s format, prefix and checksum offline; return ``(key_id, secret)``.

        Raises :class:`~kit_auth.exceptions.InvalidApiKey` (never quoting the token).

        Example::

            >>> import secrets
            >>> keys = ApiKeys(secrets.token_bytes(32))
            >>> token = keys.create("u1").token
            >>> keys.parse(token[:-1] + ("A" if token[-1] != "A" else "B"))
            Traceback (most recent call last):
              ...
            kit_auth.exceptions.InvalidApiKey: The API key is malformed.
        """
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidApiKey(_MALFORMED)
        parts = token.strip().split("_")
        if len(parts) != 3:
            raise InvalidApiKey(_MALFORMED)
        prefix, key_id, tail = parts
        if prefix != self.prefix:
            raise InvalidApiKey(f"This is not a {self.prefix}_ API key.")
        if (
            len(key_id) != KEY_ID_LENGTH
            or len(tail) != SECRET_LENGTH + CHECKSUM_LENGTH
            or not _BASE62_RE.fullmatch(key_id)
            or not _BASE62_RE.fullmatch(tail)
        ):
            raise InvalidApiKey(_MALFORMED)
        secret, checksum = tail[:SECRET_LENGTH], tail[SECRET_LENGTH:]
        if not hmac.compare_digest(_checksum(f"{prefix}_{key_id}_{secret}"), checksum):
            raise InvalidApiKey(_MALFORMED)
        return key_id, secret

    def verify(self, token: str) -> ApiKeyRecord:
        """The record of a valid, active key, or :class:`~kit_auth.exceptions.InvalidApiKey`.

        A wrong format or checksum is refused before any store lookup. An unknown key and
        a wrong secret get the same message; "revoked" and "expired" are only said once
        the secret has matched. ``last_used_at`` is updated at most once per
        ``touch_interval``.

        Example::

            >>> import secrets
            >>> keys = ApiKeys(secrets.token_bytes(32))
            >>> keys.verify(keys.create("u1", tenant_id="t1").token).tenant_id
            't1'
        """
        key_id, secret = self.parse(token)
        record = self.store.get(key_id)
        if record is None:
            # Burn the same HMAC as a known key, so timing does not reveal known ids.
            hmac.compare_digest(self._hash(secret), bytes(32))
            raise InvalidApiKey(_NOT_VALID)
        if not hmac.compare_digest(self._hash(secret), record.hashed_secret):
            raise InvalidApiKey(_NOT_VALID)
        now = self._clock()
        if record.revoked:
            raise InvalidApiKey("The API key was revoked.")
        if record.expired(now):
            raise InvalidApiKey("The API key expired.")
        if record.last_used_at is None or now - record.last_used_at >= self._touch_interval:
            self.store.touch(key_id, now)
            record = replace(record, last_used_at=now)
        return record

    def get(self, key_id: str) -> ApiKeyRecord | None:
        """The record for *key_id* (active or not), or None.

        Example::

            >>> import secrets
            >>> ApiKeys(secrets.token_bytes(32)).get("AbC123def456") is None
            True
        """
        _check_text("key_id", key_id)
        return self.store.get(key_id)

    def revoke(self, key_id: str) -> bool:
        """Revoke *key_id*; True if it was active, False if already revoked.

        Raises :class:`~kit_auth.exceptions.InvalidInput` for an unknown ``key_id``.

        Example::

            >>> import secrets
            >>> keys = ApiKeys(secrets.token_bytes(32))
            >>> key_id = keys.create("u1").record.key_id
            >>> keys.revoke(key_id), keys.revoke(key_id)
            (True, False)
        """
        _check_text("key_id", key_id)
        if self.store.get(key_id) is None:
            raise InvalidInput(f"There is no API key with id {key_id!r}.")
        return self.store.revoke(key_id, self._clock())

    def list(self, owner_id: str) -> builtins.list[ApiKeyRecord]:
        """Every key of *owner_id* (including revoked and expired ones), oldest first.

        Example::

            >>> import secrets
            >>> keys = ApiKeys(secrets.token_bytes(32))
            >>> _ = keys.create("u1", name="laptop"), keys.create("u1", name="CI")
            >>> [r.name for r in keys.list("u1")]
            ['laptop', 'CI']
        """
        _check_text("owner_id", owner_id)
        return self.store.list_for(owner_id)
