"""Every error kit-auth raises derives from :class:`KitAuthError`.

::

    KitAuthError
    ├── ConfigurationError        an invalid option, key, limit string or setting (500)
    ├── InvalidInput              a value from the caller is unusable: a password over the
    │                             length cap, a malformed address or scope string (400)
    ├── AuthenticationError       who is calling could not be established (401)
    │   ├── NotAuthenticated      no credentials were sent at all
    │   ├── InvalidCredentials    wrong password or unknown account
    │   ├── InvalidToken          malformed, oversized, bad signature, algorithm, kid, iss, aud
    │   │   ├── TokenExpired      ``exp`` has passed (or ``nbf`` / ``iat`` is in the future)
    │   │   ├── TokenRevoked      its ``(iss, jti)`` or its refresh family was revoked
    │   │   └── RefreshTokenReused  a rotated refresh token came back: the family is revoked
    │   ├── InvalidApiKey         wrong format or checksum, unknown, revoked or expired key
    │   ├── InvalidOTP            a wrong, expired or replayed one-time code
    │   └── OAuthError            a forged or missing state, a provider error, a bad ID token
    ├── PermissionDenied          authenticated, but not allowed (403)
    │   ├── InactivePrincipal     the account is pending approval or disabled (``reason``)
    │   ├── MissingRole           lacks a role (or a permission derived from roles)
    │   ├── InsufficientScope     the token or key lacks a scope
    │   ├── TenantMismatch        the resource belongs to another tenant
    │   └── IdentityRefused       an OAuth identity kit refuses: unverified or public email
    ├── RateLimited               over a rate limit or locked out; ``retry_after`` (429)
    └── BackendUnavailable        a token, key or rate-limit store cannot be reached (503)

Each class carries the HTTP ``status``, ``title`` and problem-type ``slug`` the adapters
use to answer with an RFC 9457 ``application/problem+json`` response, so the mapping
lives in the core and the adapters only render it. The ``detail`` of a 5xx problem is a
fixed sentence (the message can name hosts or keys and is only logged); 4xx messages are
written for the client and never quote a secret.

Authentication errors also carry the RFC 6750 ``error`` code for the
``WWW-Authenticate: Bearer`` challenge (``invalid_token``, ``insufficient_scope``, or
none when no credentials were sent).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "BackendUnavailable",
    "ConfigurationError",
    "IdentityRefused",
    "InactivePrincipal",
    "InsufficientScope",
    "InvalidApiKey",
    "InvalidCredentials",
    "InvalidInput",
    "InvalidOTP",
    "InvalidToken",
    "KitAuthError",
    "MissingRole",
    "NotAuthenticated",
    "OAuthError",
    "PermissionDenied",
    "RateLimited",
    "RefreshTokenReused",
    "TenantMismatch",
    "TokenExpired",
    "TokenRevoked",
]


class KitAuthError(Exception):
    """Base class of every kit-auth error."""

    #: HTTP status of the problem response when this error escapes a view.
    status: int = 500
    #: Short, human-readable summary of the problem type (RFC 9457 ``title``).
    title: str = "Authentication error"
    #: The ``type`` slug after ``https://kit.dev/problems/``.
    slug: str = "auth-error"
    #: Whether ``str(self)`` may be shown to the client (4xx only).
    public_detail: bool = False

    def problem(self) -> dict[str, Any]:
        """This error as an RFC 9457 problem object (``application/problem+json``).

        Example::

            >>> TokenExpired("The access token expired; refresh it.").problem()["status"]
            401
            >>> BackendUnavailable("redis://10.0.0.5:6379 refused").problem()["detail"]
            'The authentication store cannot be reached right now. Try again later.'
        """
        detail = str(self) if self.public_detail else _FIXED_DETAIL.get(self.slug, self.title)
        return {
            "type": f"https://kit.dev/problems/{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": detail,
        }


class ConfigurationError(KitAuthError, ValueError):
    """An option, key, limit string or setting is invalid; the message names it and says
    what to do."""

    title = "Authentication misconfigured"
    slug = "auth-misconfigured"


class InvalidInput(KitAuthError, ValueError):
    """A value the caller passed is unusable (a password over the length cap, a malformed
    IP address or scope string); the message says which and why."""

    status = 400
    title = "Invalid input"
    slug = "auth-invalid-input"
    public_detail = True


class AuthenticationError(KitAuthError):
    """The caller's identity could not be established (HTTP 401)."""

    status = 401
    title = "Not authenticated"
    slug = "unauthenticated"
    public_detail = True
    #: RFC 6750 ``error`` for the ``WWW-Authenticate: Bearer`` challenge, if any.
    bearer_error: str | None = "invalid_token"


class NotAuthenticated(AuthenticationError):
    """No credentials were sent (no ``Authorization`` header, no API key, no session)."""

    bearer_error = None


class InvalidCredentials(AuthenticationError):
    """A wrong password or an unknown account (deliberately not saying which)."""

    title = "Invalid credentials"
    slug = "invalid-credentials"
    bearer_error = None


class InvalidToken(AuthenticationError):
    """A token that is malformed, oversized, signed with a refused algorithm or an unknown
    ``kid``, tampered with, or issued for another issuer or audience."""

    title = "Invalid token"
    slug = "invalid-token"


class TokenExpired(InvalidToken):
    """The token's ``exp`` has passed, or its ``nbf``/``iat`` lies in the future (beyond
    the leeway)."""

    title = "Token expired"
    slug = "token-expired"


class TokenRevoked(InvalidToken):
    """The token's ``(iss, jti)`` or its whole refresh family has been revoked."""

    title = "Token revoked"
    slug = "token-revoked"


class RefreshTokenReused(TokenRevoked):
    """A refresh token that had already been rotated was presented again: it may have been
    stolen, so its whole family is now revoked and the user must sign in again."""

    title = "Refresh token reused"
    slug = "refresh-token-reused"


class InvalidApiKey(AuthenticationError):
    """An API key with a wrong format or checksum, or one that is unknown, revoked or
    expired."""

    title = "Invalid API key"
    slug = "invalid-api-key"


class InvalidOTP(AuthenticationError):
    """A one-time code that is wrong, outside the accepted window, or already used."""

    title = "Invalid one-time code"
    slug = "invalid-otp"
    bearer_error = None


class OAuthError(AuthenticationError):
    """The OAuth/OIDC login failed: a forged or missing ``state``, an error answered by the
    provider, a failed code exchange or an ID token that does not validate."""

    title = "Sign-in failed"
    slug = "oauth-failed"
    bearer_error = None


class PermissionDenied(KitAuthError):
    """The caller is authenticated but not allowed to do this (HTTP 403)."""

    status = 403
    title = "Forbidden"
    slug = "forbidden"
    public_detail = True


class InactivePrincipal(PermissionDenied):
    """The account exists but is not active: pending approval, disabled or locked.

    ``reason`` is a short machine-readable word (``"pending"``, ``"disabled"``) the
    problem response carries as an extension member.
    """

    title = "Account not active"
    slug = "inactive-account"

    def __init__(self, message: str, *, reason: str = "inactive") -> None:
        super().__init__(message)
        self.reason = reason

    def problem(self) -> dict[str, Any]:
        problem = super().problem()
        problem["reason"] = self.reason
        return problem


class MissingRole(PermissionDenied):
    """The principal lacks a role, or a permission that none of its roles grant."""

    title = "Missing role"
    slug = "missing-role"


class InsufficientScope(PermissionDenied):
    """The token or API key lacks a scope the route requires."""

    title = "Insufficient scope"
    slug = "insufficient-scope"

    def __init__(self, message: str, *, required: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.required = required


class TenantMismatch(PermissionDenied):
    """The resource belongs to a tenant other than the principal's."""

    title = "Wrong tenant"
    slug = "tenant-mismatch"


class IdentityRefused(PermissionDenied):
    """An OAuth identity kit-auth refuses by policy: an unverified email, or a public email
    domain where a tenant is derived from the domain."""

    title = "Identity refused"
    slug = "identity-refused"


class RateLimited(KitAuthError):
    """Over a rate limit, or locked out after failed logins (HTTP 429).

    ``retry_after`` is the number of seconds until a retry can succeed; ``headers`` holds
    the ``RateLimit``, ``RateLimit-Policy`` and ``Retry-After`` fields the adapters add to
    the response.
    """

    status = 429
    title = "Too many requests"
    slug = "rate-limited"
    public_detail = True

    def __init__(
        self, message: str, *, retry_after: float = 0.0, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = dict(headers or {})


class BackendUnavailable(KitAuthError, ConnectionError):
    """A token, API-key, one-time-code or rate-limit store cannot be reached (Redis down,
    wrong URL), and the configured failure policy is to refuse."""

    status = 503
    title = "Authentication store unavailable"
    slug = "auth-unavailable"


_FIXED_DETAIL: dict[str, str] = {
    "auth-error": "Authentication failed on the server.",
    "auth-misconfigured": "The server's authentication is misconfigured.",
    "auth-unavailable": "The authentication store cannot be reached right now. Try again later.",
}
