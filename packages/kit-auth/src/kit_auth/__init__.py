"""kit-auth: passwords, JWT, OAuth/OIDC login, roles, scopes, tenants, API keys, TOTP and
rate limits, secure by default, for Flask, FastAPI and plain Python.

The core is importable from here; each part also lives in its own public module
(``kit_auth.passwords``, ``kit_auth.tokens``, ``kit_auth.keys``, ``kit_auth.token_store``,
``kit_auth.apikeys``, ``kit_auth.totp``, ``kit_auth.oidc``, ``kit_auth.principal``,
``kit_auth.roles``, ``kit_auth.scopes``, ``kit_auth.authz``, ``kit_auth.ratelimit``). The
adapters are ``kit_auth.flask`` and ``kit_auth.fastapi``. Every error derives from
:class:`KitAuthError` (the hierarchy is drawn in ``kit_auth.exceptions``).

Example::

    >>> import kit_auth
    >>> tokens = kit_auth.TokenManager(
    ...     kit_auth.KeySet.generate("EdDSA"), issuer="https://api.example.com", audience="api"
    ... )
    >>> claims = tokens.verify(tokens.issue_access("user-42", scopes=["projects:read"]))
    >>> claims.subject, sorted(claims.scopes)
    ('user-42', ['projects:read'])
"""

from __future__ import annotations

from kit_auth._version import __version__
from kit_auth.apikeys import ApiKeyRecord, ApiKeys, ApiKeyStore, IssuedApiKey, MemoryApiKeyStore
from kit_auth.authz import (
    effective_roles,
    require_active,
    require_permission,
    require_roles,
    require_same_tenant,
    require_scopes,
)
from kit_auth.exceptions import (
    AuthenticationError,
    BackendUnavailable,
    ConfigurationError,
    IdentityRefused,
    InactivePrincipal,
    InsufficientScope,
    InvalidApiKey,
    InvalidCredentials,
    InvalidInput,
    InvalidOTP,
    InvalidToken,
    KitAuthError,
    MissingRole,
    NotAuthenticated,
    OAuthError,
    PermissionDenied,
    RateLimited,
    RefreshTokenReused,
    TenantMismatch,
    TokenExpired,
    TokenRevoked,
)
from kit_auth.keys import KeySet
from kit_auth.oidc import EmailPolicy, Identity, LoginStart, OIDCClient, OIDCProvider
from kit_auth.passwords import PasswordHasher
from kit_auth.principal import Principal, SimplePrincipal
from kit_auth.ratelimit import (
    AsyncRedisRateLimitStorage,
    Decision,
    LoginLockout,
    MemoryRateLimitStorage,
    RateLimit,
    RateLimiter,
    RedisRateLimitStorage,
    RequestInfo,
    TrustedProxies,
    by_ip,
    by_ip_and_user,
    by_user,
    client_address,
)
from kit_auth.roles import Permissions, RoleHierarchy
from kit_auth.scopes import has_scopes, scope_matches
from kit_auth.token_store import (
    AsyncRedisTokenStore,
    AsyncTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    TokenStore,
)
from kit_auth.tokens import TokenClaims, TokenManager, TokenPair
from kit_auth.totp import (
    MemoryOTPReplayStore,
    OTPReplayStore,
    RedisOTPReplayStore,
    TOTPVerifier,
    new_totp_secret,
    totp_uri,
)

# The public API: every name a user imports, sorted. Core modules only: the Flask and
# FastAPI adapters are imported as kit_auth.flask / kit_auth.fastapi.
__all__ = [
    "ApiKeyRecord",
    "ApiKeyStore",
    "ApiKeys",
    "AsyncRedisRateLimitStorage",
    "AsyncRedisTokenStore",
    "AsyncTokenStore",
    "AuthenticationError",
    "BackendUnavailable",
    "ConfigurationError",
    "Decision",
    "EmailPolicy",
    "Identity",
    "IdentityRefused",
    "InactivePrincipal",
    "InsufficientScope",
    "InvalidApiKey",
    "InvalidCredentials",
    "InvalidInput",
    "InvalidOTP",
    "InvalidToken",
    "IssuedApiKey",
    "KeySet",
    "KitAuthError",
    "LoginLockout",
    "LoginStart",
    "MemoryApiKeyStore",
    "MemoryOTPReplayStore",
    "MemoryRateLimitStorage",
    "MemoryTokenStore",
    "MissingRole",
    "NotAuthenticated",
    "OAuthError",
    "OIDCClient",
    "OIDCProvider",
    "OTPReplayStore",
    "PasswordHasher",
    "PermissionDenied",
    "Permissions",
    "Principal",
    "RateLimit",
    "RateLimited",
    "RateLimiter",
    "RedisOTPReplayStore",
    "RedisRateLimitStorage",
    "RedisTokenStore",
    "RefreshTokenReused",
    "RequestInfo",
    "RoleHierarchy",
    "SimplePrincipal",
    "TOTPVerifier",
    "TenantMismatch",
    "TokenClaims",
    "TokenExpired",
    "TokenManager",
    "TokenPair",
    "TokenRevoked",
    "TokenStore",
    "TrustedProxies",
    "__version__",
    "by_ip",
    "by_ip_and_user",
    "by_user",
    "client_address",
    "effective_roles",
    "has_scopes",
    "new_totp_secret",
    "require_active",
    "require_permission",
    "require_roles",
    "require_same_tenant",
    "require_scopes",
    "scope_matches",
    "totp_uri",
]
