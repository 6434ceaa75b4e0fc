"""Framework-free helpers shared by the Flask and FastAPI adapters.

Reading credentials from headers, building the default principal, and the HTTP headers
(RFC 6750 ``WWW-Authenticate`` challenges, rate-limit fields) that go with an error.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Literal, TypeAlias

from kit_auth.apikeys import ApiKeyRecord, ApiKeys
from kit_auth.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InsufficientScope,
    InvalidApiKey,
    InvalidInput,
    InvalidToken,
    KitAuthError,
    RateLimited,
)
from kit_auth.principal import Principal, SimplePrincipal
from kit_auth.scopes import validate_scope
from kit_auth.tokens import TokenClaims, TokenManager

__all__ = [
    "AsyncLoader",
    "Credential",
    "Loader",
    "default_principal",
    "error_headers",
    "read_credential",
]

Source: TypeAlias = TokenClaims | ApiKeyRecord
Loader: TypeAlias = Callable[[Source], Principal | None]
AsyncLoader: TypeAlias = Callable[[Source], Principal | Awaitable[Principal | None] | None]

_MAX_HEADER = 8192


@dataclass(frozen=True, slots=True)
class Credential:
    """A credential found in a request: a JWT or an API key (never logged)."""

    kind: Literal["token", "api_key"]
    value: str

    def __repr__(self) -> str:
        return f"Credential(kind={self.kind!r})"


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A verified credential and the principal behind it; ``scopes`` are the credential's."""

    principal: Principal
    source: Source
    scopes: frozenset[str]


def read_credential(
    authorization: str | None, api_key: str | None, api_keys: ApiKeys | None
) -> Credential | None:
    """The credential of a request from its ``Authorization`` and API-key headers.

    ``Authorization: Bearer <jwt>`` is a token; ``Authorization: Bearer <prefix>_...``
    (the :class:`ApiKeys` prefix) and the API-key header are API keys. Other
    ``Authorization`` schemes are not kit-auth's and are ignored. Sending two credentials
    is refused rather than guessing which one counts.
    """
    bearer: str | None = None
    if authorization:
        scheme, _, rest = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            bearer = rest.strip()
            if not bearer or " " in bearer:
                raise InvalidToken(
                    "The Authorization header must be 'Bearer <token>' with a single token."
                )
    if api_key is not None:
        api_key = api_key.strip()
        if not api_key:
            raise InvalidApiKey("The API-key header is empty; send the key as issued.")
    if bearer is not None and api_key is not None:
        raise InvalidInput("Send one credential: a Bearer token or an API key, not both.")
    for value in (bearer, api_key):
        if value is not None and len(value) > _MAX_HEADER:
            raise InvalidToken("The credential is too large; send the token or key as issued.")
    if api_key is not None:
        return Credential("api_key", api_key)
    if bearer is not None:
        if api_keys is not None and bearer.startswith(api_keys.prefix + "_"):
            return Credential("api_key", bearer)
        return Credential("token", bearer)
    return None


def default_principal(source: Source) -> SimplePrincipal:
    """A :class:`SimplePrincipal` from verified token claims or an API-key record.

    It is active, has the token's roles (an API key has none), the credential's scopes
    and tenant, and is never a platform admin (that takes an app loader).
    """
    if isinstance(source, TokenClaims):
        return SimplePrincipal(
            source.subject,
            roles=source.roles,
            scopes=source.scopes,
            tenant_id=source.tenant_id,
        )
    return SimplePrincipal(source.owner_id, scopes=source.scopes, tenant_id=source.tenant_id)


def check_setup(
    tokens: object, api_keys: object, load_principal: object, api_key_header: object
) -> None:
    """Validate the adapter constructor arguments shared by both frameworks."""
    if tokens is not None and not isinstance(tokens, TokenManager):
        raise ConfigurationError("tokens must be a kit_auth.tokens.TokenManager or None")
    if api_keys is not None and not isinstance(api_keys, ApiKeys):
        raise ConfigurationError("api_keys must be a kit_auth.apikeys.ApiKeys or None")
    if load_principal is not None and not callable(load_principal):
        raise ConfigurationError(
            "load_principal must be a callable(TokenClaims | ApiKeyRecord) -> Principal | None"
        )
    if (
        not isinstance(api_key_header, str)
        or not api_key_header
        or not all(c.isalnum() or c == "-" for c in api_key_header)
    ):
        raise ConfigurationError(
            f"api_key_header must be an HTTP header name such as 'X-API-Key', not {api_key_header!r}"
        )


def is_async_callable(function: object) -> bool:
    """Whether calling ``function`` returns a coroutine."""
    call = getattr(function, "__call__", None)  # noqa: B004 - instances with async __call__
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call)


def check_principal(principal: object, source: Source) -> Principal:
    """The loader's answer, validated: None means the account is gone (401)."""
    if principal is None:
        if isinstance(source, ApiKeyRecord):
            raise InvalidApiKey("The account behind this API key no longer exists.")
        raise InvalidToken("The account behind this token no longer exists; sign in again.")
    if not isinstance(principal, Principal):
        raise ConfigurationError(
            "load_principal must return a Principal (id, active, roles, scopes, tenant_id, "
            f"platform_admin) or None, not {type(principal).__name__}"
        )
    return principal


def _quoted(text: str) -> str:
    cleaned = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "'" for c in text)
    return f'"{cleaned}"'


def error_headers(exc: KitAuthError, realm: str) -> dict[str, str]:
    """The response headers that go with ``exc``: a ``WWW-Authenticate: Bearer``
    challenge (RFC 6750 §3) for 401s and insufficient scope, the rate-limit fields and
    ``Retry-After`` for 429s."""
    if isinstance(exc, AuthenticationError):
        challenge = f"Bearer realm={_quoted(realm)}"
        if exc.bearer_error:
            challenge += (
                f", error={_quoted(exc.bearer_error)}, error_description={_quoted(str(exc))}"
            )
        return {"WWW-Authenticate": challenge}
    if isinstance(exc, InsufficientScope):
        challenge = f'Bearer realm={_quoted(realm)}, error="insufficient_scope"'
        if exc.required:
            challenge += f", scope={_quoted(' '.join(exc.required))}"
        challenge += f", error_description={_quoted(str(exc))}"
        return {"WWW-Authenticate": challenge}
    if isinstance(exc, RateLimited):
        headers = dict(exc.headers)
        if "Retry-After" not in headers:
            headers["Retry-After"] = str(max(int(-(-exc.retry_after // 1)), 1))
        return headers
    return {}


def check_scopes(scopes: Collection[str], where: str) -> tuple[str, ...]:
    """Validate route scopes at declaration time (ConfigurationError naming the route)."""
    if isinstance(scopes, str):
        raise ConfigurationError(f"{where}: pass scopes as separate arguments, not one string")
    try:
        return tuple(validate_scope(scope) for scope in scopes)
    except InvalidInput as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
