"""JWT access and refresh tokens with rotation, reuse detection and revocation.

:class:`TokenManager` issues short-lived **access** tokens (header ``typ: at+jwt``, claim
``token_use: "access"``, RFC 9068 style ``scope``) and long-lived **refresh** tokens
(``typ: refresh+jwt``, ``token_use: "refresh"``) that belong to a *family* (``fid``, one
per login). Each refresh spends the refresh token and returns a new pair in the same
family; presenting a spent refresh token again is treated as theft: the whole family is
revoked, its refresh tokens **and the access tokens issued from it** (access tokens of a
pair carry the ``fid`` and ``verify`` checks it), and :class:`RefreshTokenReused` is
raised.

``verify`` checks, in order: size, structure, header (only ``alg``/``kid``/``typ``),
algorithm against the key found by ``kid``, signature, required claims (``iss``, ``sub``,
``aud``, ``exp``, ``iat``, ``jti``), ``iss``, ``aud``, ``exp`` / ``nbf`` / ``iat`` with the
leeway, token type, then revocation of ``(iss, jti)`` and of the family. A token whose
``nbf`` or ``iat`` lies in the future beyond the leeway raises :class:`TokenExpired` (it
is outside its validity window), everything else :class:`InvalidToken` or
:class:`TokenRevoked`.

Example::

    >>> from kit_auth.keys import KeySet
    >>> tm = TokenManager(KeySet.generate("EdDSA"), issuer="https://api.example",
    ...                   audience="example-api")
    >>> pair = tm.issue_pair("user-1", scopes=["read"], roles=["admin"])
    >>> claims = tm.verify(pair.access_token)
    >>> claims.subject, sorted(claims.scopes), sorted(claims.roles)
    ('user-1', ['read'], ['admin'])
    >>> new = tm.refresh(pair.refresh_token)
    >>> tm.refresh(pair.refresh_token)
    Traceback (most recent call last):
    ...
    kit_auth.exceptions.RefreshTokenReused: This refresh token was already used, so it may have been stolen; every token of this sign-in is now revoked. Sign in again.
    >>> tm.verify(new.access_token)
    Traceback (most recent call last):
    ...
    kit_auth.exceptions.TokenRevoked: This token was revoked; sign in again.
"""

from __future__ import annotations

import inspect
import math
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, Literal, cast

from kit_auth.exceptions import (
    ConfigurationError,
    InvalidInput,
    InvalidToken,
    RefreshTokenReused,
    TokenExpired,
    TokenRevoked,
)
from kit_auth.keys import KeySet
from kit_auth.token_store import AsyncTokenStore, MemoryTokenStore, RotateResult, TokenStore

__all__ = ["TokenClaims", "TokenManager", "TokenPair", "TokenType"]

TokenType = Literal["access", "refresh"]

_HEADER_TYP: Final[dict[str, str]] = {"access": "at+jwt", "refresh": "refresh+jwt"}
_RESERVED: Final = frozenset(
    {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "token_use", "scope", "roles", "tid", "fid"}
)
_REQUIRED: Final = ("iss", "sub", "aud", "exp", "iat", "jti")
_MAX_SUBJECT: Final = 255


@dataclass(frozen=True, slots=True)
class TokenPair:
    """An access token and its refresh token, shaped like an OAuth 2 token response.

    Example::

        >>> TokenPair("a", "r", expires_in=900, refresh_expires_in=86400).as_dict()["token_type"]
        'Bearer'
    """

    access_token: str
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int = 0
    refresh_expires_in: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The RFC 6749 section 5.1 JSON body of a token response."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "refresh_expires_in": self.refresh_expires_in,
        }


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The verified claims of a token.

    Example::

        >>> from kit_auth.keys import KeySet
        >>> tm = TokenManager(KeySet.generate("HS256"), issuer="i", audience="a")
        >>> c = tm.verify(tm.issue_access("u", tenant_id="t1"))
        >>> c.tenant_id, c.token_type, c.audience
        ('t1', 'access', ('a',))
    """

    subject: str
    scopes: frozenset[str]
    roles: frozenset[str]
    tenant_id: str | None
    jti: str
    issuer: str
    audience: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime
    family_id: str | None
    token_type: str
    raw: Mapping[str, Any] = field(compare=False, repr=False)


def _seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    if not isinstance(value, timedelta):
        raise ConfigurationError(
            f"{name} must be a datetime.timedelta, not {type(value).__name__}."
        )
    seconds = value.total_seconds()
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ConfigurationError(f"{name} must be a positive timedelta.")
    return seconds


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _strings(name: str, values: Iterable[str], *, allow_space: bool = False) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidInput(f'{name} must be a list of strings, e.g. ["read"], not a string.')
    out: list[str] = []
    for v in values:
        if not isinstance(v, str) or not v or len(v) > 128 or (not allow_space and " " in v):
            raise InvalidInput(
                f"Each of {name} must be a non-empty string of at most 128 characters without spaces."
            )
        if v not in out:
            out.append(v)
    return out


class TokenManager:
    """Issues, verifies, refreshes and revokes JWTs signed with a :class:`KeySet`.

    ``store`` keeps revocations and refresh families: a :class:`MemoryTokenStore` by
    default (one process); pass a :class:`RedisTokenStore` when several processes serve
    the API, or an :class:`AsyncRedisTokenStore` and use the ``a*`` methods.
    ``clock`` returns the current Unix time and is for tests.

    Example::

        >>> from kit_auth.keys import KeySet
        >>> tm = TokenManager(KeySet.generate("HS256"), issuer="i", audience="a")
        >>> token = tm.issue_access("u")
        >>> tm.verify(token, expected_type="refresh")
        Traceback (most recent call last):
        ...
        kit_auth.exceptions.InvalidToken: This is an access token, but a refresh token is needed here; send the right token.
    """

    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str,
        audience: str | Sequence[str],
        access_ttl: timedelta = timedelta(minutes=15),
        refresh_ttl: timedelta = timedelta(days=30),
        leeway: timedelta = timedelta(seconds=30),
        store: TokenStore | AsyncTokenStore | None = None,
        max_token_bytes: int = 8192,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(keys, KeySet):
            raise ConfigurationError("keys must be a kit_auth.keys.KeySet, e.g. KeySet.generate().")
        if not isinstance(issuer, str) or not issuer or len(issuer) > 256:
            raise ConfigurationError("issuer must be a non-empty string (usually your API's URL).")
        if isinstance(audience, str):
            audiences = [audience]
        elif isinstance(audience, Sequence) and audience:
            audiences = list(audience)
        else:
            raise ConfigurationError("audience must be a string or a non-empty list of strings.")
        if not all(isinstance(a, str) and a and len(a) <= 256 for a in audiences):
            raise ConfigurationError("Every audience must be a non-empty string.")
        self._access_ttl = _seconds("access_ttl", access_ttl)
        self._refresh_ttl = _seconds("refresh_ttl", refresh_ttl)
        self._leeway = _seconds("leeway", leeway, allow_zero=True)
        if self._leeway > 300:
            raise ConfigurationError("leeway must be at most 5 minutes; clocks drift by seconds.")
        if self._refresh_ttl < self._access_ttl:
            raise ConfigurationError("refresh_ttl must not be shorter than access_ttl.")
        if (
            isinstance(max_token_bytes, bool)
            or not isinstance(max_token_bytes, int)
            or max_token_bytes < 512
        ):
            raise ConfigurationError("max_token_bytes must be an integer of at least 512.")
        if not callable(clock):
            raise ConfigurationError("clock must be a callable returning Unix seconds.")
        if store is None:
            store = MemoryTokenStore()
        methods = ("revoke", "is_revoked", "start_family", "rotate_family", "revoke_family")
        if not all(callable(getattr(store, m, None)) for m in methods):
            raise ConfigurationError(
                "store must implement TokenStore or AsyncTokenStore "
                "(e.g. MemoryTokenStore() or RedisTokenStore(url))."
            )
        self._is_async = inspect.iscoroutinefunction(store.is_revoked)
        self._store: Any = store
        self._keys = keys
        self.issuer = issuer
        self._audiences = frozenset(audiences)
        self._aud_claim: str | list[str] = audiences[0] if len(audiences) == 1 else audiences
        self._max = max_token_bytes
        self._clock = clock

    @property
    def keys(self) -> KeySet:
        """The key set (rotate it in place with ``keys.rotate``)."""
        return self._keys

    # -- issuing -------------------------------------------------------------------------

    def _base_claims(
        self,
        subject: str,
        scopes: Iterable[str],
        roles: Iterable[str],
        tenant_id: str | None,
        claims: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        if not isinstance(subject, str) or not subject or len(subject) > _MAX_SUBJECT:
            raise InvalidInput(
                f"subject must be a non-empty string of at most {_MAX_SUBJECT} characters."
            )
        if tenant_id is not None and (
            not isinstance(tenant_id, str) or not tenant_id or len(tenant_id) > 128
        ):
            raise InvalidInput(
                "tenant_id must be a non-empty string of at most 128 characters, or None."
            )
        out: dict[str, Any] = {}
        if claims is not None:
            if not isinstance(claims, Mapping):
                raise InvalidInput("claims must be a mapping of extra claim names to JSON values.")
            reserved = sorted(k for k in claims if k in _RESERVED)
            if reserved:
                raise InvalidInput(
                    f"Claims {', '.join(reserved)} are set by kit-auth and cannot be overridden; "
                    "use the issue_* arguments instead."
                )
            for k in claims:
                if not isinstance(k, str) or not k:
                    raise InvalidInput("Claim names must be non-empty strings.")
            out.update(claims)
        out["sub"] = subject
        scope_list = _strings("scopes", scopes)
        role_list = _strings("roles", roles)
        if scope_list:
            out["scope"] = " ".join(scope_list)
        if role_list:
            out["roles"] = role_list
        if tenant_id is not None:
            out["tid"] = tenant_id
        return out

    def _sign(
        self, body: dict[str, Any], token_use: str, ttl: float, now: int, fid: str | None
    ) -> tuple[str, str]:
        jti = secrets.token_urlsafe(16)
        body = {
            **body,
            "iss": self.issuer,
            "aud": self._aud_claim,
            "iat": now,
            "nbf": now,
            "exp": now + int(ttl),
            "jti": jti,
            "token_use": token_use,
        }
        if fid is not None:
            body["fid"] = fid
        try:
            token = self._keys.sign(body, typ=_HEADER_TYP[token_use])
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise InvalidInput(
                "claims must hold JSON values only (str, number, list, dict ...)."
            ) from exc
        if len(token) > self._max:
            raise InvalidInput(
                f"The token would be {len(token)} bytes, over max_token_bytes={self._max}; "
                "put fewer or smaller claims in it."
            )
        return token, jti

    def issue_access(
        self,
        subject: str,
        *,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        tenant_id: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A signed access token for *subject* (valid for ``access_ttl``).

        Example::

            >>> from kit_auth.keys import KeySet
            >>> tm = TokenManager(KeySet.generate("HS256"), issuer="i", audience="a")
            >>> tm.issue_access("u", claims={"exp": 1})
            Traceback (most recent call last):
            ...
            kit_auth.exceptions.InvalidInput: Claims exp are set by kit-auth and cannot be overridden; use the issue_* arguments instead.
        """
        body = self._base_claims(subject, scopes, roles, tenant_id, claims)
        return self._sign(body, "access", self._access_ttl, int(self._clock()), None)[0]

    def _new_pair(self, body: dict[str, Any], fid: str, now: int) -> tuple[TokenPair, str]:
        access, _ = self._sign(body, "access", self._access_ttl, now, fid)
        refresh, refresh_jti = self._sign(body, "refresh", self._refresh_ttl, now, fid)
        pair = TokenPair(
            access_token=access,
            refresh_token=refresh,
            expires_in=int(self._access_ttl),
            refresh_expires_in=int(self._refresh_ttl),
        )
        return pair, refresh_jti

    @property
    def _family_ttl(self) -> float:
        return self._refresh_ttl + self._leeway + 1

    def issue_pair(
        self,
        subject: str,
        *,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        tenant_id: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> TokenPair:
        """An access token and a refresh token starting a new family (a new sign-in).

        Example::

            >>> from kit_auth.keys import KeySet
            >>> tm = TokenManager(KeySet.generate("HS256"), issuer="i", audience="a")
            >>> tm.issue_pair("u").expires_in
            900
        """
        self._need_sync("issue_pair", "aissue_pair")
        body = self._base_claims(subject, scopes, roles, tenant_id, claims)
        fid = secrets.token_urlsafe(16)
        pair, jti = self._new_pair(body, fid, int(self._clock()))
        self._store.start_family(fid, jti, self._family_ttl)
        return pair

    async def aissue_pair(
        self,
        subject: str,
        *,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        tenant_id: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> TokenPair:
        """:meth:`issue_pair` for async stores (works with sync stores too)."""
        body = self._base_claims(subject, scopes, roles, tenant_id, claims)
        fid = secrets.token_urlsafe(16)
        pair, jti = self._new_pair(body, fid, int(self._clock()))
        await self._call("start_family", fid, jti, self._family_ttl)
        return pair

    # -- verifying -----------------------------------------------------------------------

    def _need_sync(self, name: str, twin: str) -> None:
        if self._is_async:
            raise ConfigurationError(
                f"This TokenManager has an async store; call await {twin}() instead of {name}()."
            )

    async def _call(self, method: str, *args: Any) -> Any:
        result = getattr(self._store, method)(*args)
        if self._is_async:
            result = await result
        return result

    def _check(self, token: str | bytes, expected_type: str) -> TokenClaims:
        """Everything but the store lookups."""
        if expected_type not in _HEADER_TYP:
            raise InvalidInput("expected_type must be 'access' or 'refresh'.")
        if not isinstance(token, str | bytes) or not token:
            raise InvalidToken("No token was given; send the token as issued.")
        if len(token) > self._max:
            raise InvalidToken(
                f"The token is larger than {self._max} bytes; send a token issued by this server."
            )
        header, claims = self._keys.decode(token)
        for name in _REQUIRED:
            if name not in claims:
                raise InvalidToken(
                    f"The token lacks the required claim {name!r}; use a token issued by this server."
                )
        iss, sub, jti, aud = claims["iss"], claims["sub"], claims["jti"], claims["aud"]
        exp, iat = claims["exp"], claims["iat"]
        nbf = claims.get("nbf", iat)
        if not (
            isinstance(iss, str)
            and isinstance(sub, str)
            and sub
            and isinstance(jti, str)
            and jti
            and _is_number(exp)
            and _is_number(iat)
            and _is_number(nbf)
        ):
            raise InvalidToken("The token has malformed claims; use a token issued by this server.")
        if iss != self.issuer:
            raise InvalidToken(
                "The token was issued by another issuer; use a token from this server."
            )
        if isinstance(aud, str):
            audience: tuple[str, ...] = (aud,)
        elif isinstance(aud, list) and all(isinstance(a, str) for a in aud):
            audience = tuple(aud)
        else:
            raise InvalidToken("The token has a malformed 'aud' claim.")
        if self._audiences.isdisjoint(audience):
            raise InvalidToken("The token is meant for another audience; get a token for this API.")
        now = self._clock()
        leeway = self._leeway
        if now > exp + leeway:
            raise TokenExpired("The token has expired; refresh it or sign in again.")
        if nbf > now + leeway or iat > now + leeway:
            raise TokenExpired(
                "The token is not valid yet (nbf/iat in the future); check the clocks and retry."
            )
        use = claims.get("token_use")
        if use != expected_type or header.get("typ") != _HEADER_TYP[expected_type]:
            kind = {"access": "an access", "refresh": "a refresh"}.get(str(use), "another kind of")
            need = "an access" if expected_type == "access" else "a refresh"
            raise InvalidToken(
                f"This is {kind} token, but {need} token is needed here; send the right token."
            )
        fid = claims.get("fid")
        if fid is not None and (not isinstance(fid, str) or not fid):
            raise InvalidToken("The token has a malformed 'fid' claim.")
        if expected_type == "refresh" and fid is None:
            raise InvalidToken("The refresh token has no family; sign in again.")
        scope = claims.get("scope", "")
        roles = claims.get("roles", [])
        tid = claims.get("tid")
        if (
            not isinstance(scope, str)
            or not isinstance(roles, list)
            or not (tid is None or isinstance(tid, str))
        ):
            raise InvalidToken("The token has malformed scope, roles or tid claims.")
        return TokenClaims(
            subject=sub,
            scopes=frozenset(scope.split()),
            roles=frozenset(r for r in roles if isinstance(r, str)),
            tenant_id=tid,
            jti=jti,
            issuer=iss,
            audience=audience,
            issued_at=datetime.fromtimestamp(iat, UTC),
            expires_at=datetime.fromtimestamp(exp, UTC),
            family_id=fid,
            token_type=expected_type,
            raw=MappingProxyType(claims),
        )

    def verify(self, token: str | bytes, *, expected_type: TokenType = "access") -> TokenClaims:
        """Verify *token* fully (see the module doc for the order of checks).

        Example::

            >>> from kit_auth.keys import KeySet
            >>> tm = TokenManager(KeySet.generate("HS256"), issuer="i", audience="a")
            >>> tm.verify("x" * 9000)
            Traceback (most recent call last):
            ...
            kit_auth.exceptions.InvalidToken: The token is larger than 8192 bytes; send a token issued by this server.
        """
        self._need_sync("verify", "averify")
        claims = self._check(token, expected_type)
        if self._store.is_revoked(claims.issuer, claims.jti, claims.family_id):
            raise TokenRevoked("This token was revoked; sign in again.")
        return claims

    async def averify(
        self, token: str | bytes, *, expected_type: TokenType = "access"
    ) -> TokenClaims:
        """:meth:`verify` for async stores (works with sync stores too)."""
        claims = self._check(token, expected_type)
        if await self._call("is_revoked", claims.issuer, claims.jti, claims.family_id):
            raise TokenRevoked("This token was revoked; sign in again.")
        return claims

    # -- refreshing ----------------------------------------------------------------------

    def _carry(self, claims: TokenClaims) -> dict[str, Any]:
        body = {k: v for k, v in claims.raw.items() if k not in _RESERVED}
        body["sub"] = claims.subject
        for name in ("scope", "roles", "tid"):
            if name in claims.raw:
                body[name] = claims.raw[name]
        return body

    def _rotated(self, result: RotateResult, pair: TokenPair) -> TokenPair:
        if result == "ok":
            return pair
        if result == "reused":
            raise RefreshTokenReused(
                "This refresh token was already used, so it may have been stolen; every token "
                "of this sign-in is now revoked. Sign in again."
            )
        raise TokenRevoked("This sign-in was revoked or has expired; sign in again.")

    def refresh(self, refresh_token: str | bytes) -> TokenPair:
        """Spend *refresh_token* and return a new pair in the same family.

        Presenting an already spent refresh token revokes the family and raises
        :class:`~kit_auth.exceptions.RefreshTokenReused`; of two concurrent refreshes with
        one token exactly one succeeds.
        """
        self._need_sync("refresh", "arefresh")
        claims = self.verify(refresh_token, expected_type="refresh")
        assert claims.family_id is not None
        pair, new_jti = self._new_pair(self._carry(claims), claims.family_id, int(self._clock()))
        result = self._store.rotate_family(claims.family_id, claims.jti, new_jti, self._family_ttl)
        return self._rotated(result, pair)

    async def arefresh(self, refresh_token: str | bytes) -> TokenPair:
        """:meth:`refresh` for async stores (works with sync stores too)."""
        claims = await self.averify(refresh_token, expected_type="refresh")
        assert claims.family_id is not None
        pair, new_jti = self._new_pair(self._carry(claims), claims.family_id, int(self._clock()))
        result = await self._call(
            "rotate_family", claims.family_id, claims.jti, new_jti, self._family_ttl
        )
        return self._rotated(cast(RotateResult, result), pair)

    # -- revoking ------------------------------------------------------------------------

    def _revocation(self, token: str | bytes) -> tuple[str, str, float, str | None] | None:
        """(iss, jti, ttl, fid-to-revoke) for a token signed by us, or None if expired."""
        if not isinstance(token, str | bytes) or len(token) > self._max:
            raise InvalidToken("The token to revoke is missing or oversized.")
        _header, claims = self._keys.decode(token)
        iss, jti, exp = claims.get("iss"), claims.get("jti"), claims.get("exp")
        if iss != self.issuer or not isinstance(jti, str) or not jti or not _is_number(exp):
            raise InvalidToken("The token to revoke was not issued by this server.")
        ttl = float(cast(float, exp)) - self._clock() + self._leeway + 1
        use = claims.get("token_use")
        fid = claims.get("fid") if use == "refresh" and isinstance(claims.get("fid"), str) else None
        if ttl <= 0:
            return None if fid is None else (iss, jti, 0.0, fid)
        return iss, jti, ttl, fid

    def revoke(self, token: str | bytes) -> None:
        """Revoke *token* by its ``(iss, jti)`` until it expires; a refresh token revokes
        its whole family (a sign-out). The signature must be valid; an expired access
        token is already dead and nothing is stored.

        Example::

            >>> from kit_auth.keys import KeySet
            >>> tm = TokenManager(KeySet.generate("HS256"), issuer="i", audience="a")
            >>> token = tm.issue_access("u")
            >>> tm.revoke(token)
            >>> tm.verify(token)
            Traceback (most recent call last):
            ...
            kit_auth.exceptions.TokenRevoked: This token was revoked; sign in again.
        """
        self._need_sync("revoke", "arevoke")
        found = self._revocation(token)
        if found is None:
            return
        iss, jti, ttl, fid = found
        if ttl > 0:
            self._store.revoke(iss, jti, ttl)
        if fid is not None:
            self._store.revoke_family(fid, self._family_ttl)

    async def arevoke(self, token: str | bytes) -> None:
        """:meth:`revoke` for async stores (works with sync stores too)."""
        found = self._revocation(token)
        if found is None:
            return
        iss, jti, ttl, fid = found
        if ttl > 0:
            await self._call("revoke", iss, jti, ttl)
        if fid is not None:
            await self._call("revoke_family", fid, self._family_ttl)

    def revoke_jti(self, iss: str, jti: str, expires_at: datetime | float) -> None:
        """Revoke the token ``(iss, jti)`` until *expires_at* (a datetime or Unix time),
        e.g. from an admin screen listing sessions.

        Example::

            >>> from kit_auth.keys import KeySet
            >>> tm = TokenManager(KeySet.generate("HS256"), issuer="i", audience="a")
            >>> c = tm.verify(tm.issue_access("u"))
            >>> tm.revoke_jti(c.issuer, c.jti, c.expires_at)
        """
        self._need_sync("revoke_jti", "arevoke")
        if isinstance(expires_at, datetime):
            if expires_at.tzinfo is None:
                raise InvalidInput("expires_at must be timezone-aware (e.g. datetime.now(UTC)).")
            until = expires_at.timestamp()
        elif _is_number(expires_at):
            until = float(expires_at)
        else:
            raise InvalidInput("expires_at must be a datetime or a Unix timestamp.")
        ttl = until - self._clock() + self._leeway + 1
        if ttl > 0:
            self._store.revoke(iss, jti, ttl)

    def revoke_family(self, family_id: str) -> None:
        """Revoke every token of a sign-in (its refresh tokens and access tokens).

        Example::

            >>> from kit_auth.keys import KeySet
            >>> tm = TokenManager(KeySet.generate("HS256"), issuer="i", audience="a")
            >>> pair = tm.issue_pair("u")
            >>> tm.revoke_family(tm.verify(pair.access_token).family_id or "")
            >>> tm.refresh(pair.refresh_token)
            Traceback (most recent call last):
            ...
            kit_auth.exceptions.TokenRevoked: This token was revoked; sign in again.
        """
        self._need_sync("revoke_family", "arevoke_family")
        if not isinstance(family_id, str) or not family_id:
            raise InvalidInput("family_id must be a non-empty string.")
        self._store.revoke_family(family_id, self._family_ttl)

    async def arevoke_family(self, family_id: str) -> None:
        """:meth:`revoke_family` for async stores (works with sync stores too)."""
        if not isinstance(family_id, str) or not family_id:
            raise InvalidInput("family_id must be a non-empty string.")
        await self._call("revoke_family", family_id, self._family_ttl)
