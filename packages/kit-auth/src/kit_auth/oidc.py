"""OAuth 2 / OpenID Connect login through Authlib, without a framework session.

The core runs the whole authorization-code flow; adapters only keep one opaque, signed
*state token* in a cookie between the two requests. That avoids Authlib's framework-session
state (the root of the ``mismatching_state`` complaints) and works the same in Flask,
FastAPI and plain code.

- :meth:`OIDCClient.begin` builds the provider's authorize URL (``response_type=code``,
  ``state``, ``nonce`` and PKCE ``S256`` always) and a state token that holds the state,
  nonce, code verifier, redirect URI and provider name, HMAC-signed with ``state_secret``
  and valid for 10 minutes.
- :meth:`OIDCClient.complete` checks the state (constant time), exchanges the code with
  the verifier, validates the ID token with joserfc (signature by ``kid`` from the JWKS,
  algorithm, ``iss``, ``aud``/``azp``, ``exp``, ``iat``, ``nonce``) and applies the
  :class:`EmailPolicy` (verified email, domain to tenant).
- :meth:`OIDCClient.abegin` / :meth:`OIDCClient.acomplete` are the asyncio twins.

Discovery metadata and the JWKS are cached for an hour. An unknown ``kid`` refetches the
JWKS once (at most once every 30 seconds, so forged tokens cannot cause refetch storms);
a failed refetch keeps the keys already cached.

Every failure of the login itself (forged state, provider error, unreachable or
misbehaving provider, invalid ID token) raises :class:`~kit_auth.exceptions.OAuthError`
(401, the user can start the sign-in again); identities refused by policy raise
:class:`~kit_auth.exceptions.IdentityRefused` (403).

Example::

    >>> provider = OIDCProvider.google("my-client-id", "my-client-secret")
    >>> provider.metadata_url
    'https://accounts.google.com/.well-known/openid-configuration'
    >>> client = OIDCClient(provider, state_secret=b"s" * 32)
    >>> EmailPolicy(tenant_domains={"Example.COM": "acme"}).tenant_for("ann@example.com", True)
    'acme'
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import re
import threading
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.common.security import generate_token  # type: ignore[import-untyped]
from authlib.integrations.base_client import (  # type: ignore[import-untyped]
    OAuthError as _AuthlibOAuthError,
)

with warnings.catch_warnings():
    # Authlib >= 1.9.10 warns on import when it falls back from httpx2 to httpx (which
    # kit-auth depends on); the fallback is supported, so that one warning is muted here.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
        AsyncOAuth2Client,
        OAuth2Client,
    )
    from authlib.integrations.httpx_client._compat import (  # type: ignore[import-untyped]
        httpx2 as _authlib_httpx,
    )
from authlib.oauth2.client import (  # type: ignore[import-untyped]
    OAuth2Client as _BaseOAuth2Client,
)
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import Key, KeySet
from joserfc.jwt import JWTClaimsRegistry

from kit_auth._health import check_timeout, within
from kit_auth.exceptions import ConfigurationError, IdentityRefused, InvalidInput, OAuthError

__all__ = [
    "PUBLIC_EMAIL_DOMAINS",
    "EmailPolicy",
    "Identity",
    "LoginStart",
    "OIDCClient",
    "OIDCProvider",
]

#: Domains of free, public mailbox providers: an address there says nothing about the
#: organisation of its owner, so :class:`EmailPolicy` never maps one to a tenant.
#: ``gmx.*`` and ``yandex.*`` are matched for every top-level domain.
PUBLIC_EMAIL_DOMAINS: frozenset[str] = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "hotmail.co.uk",
        "hotmail.fr",
        "live.com",
        "msn.com",
        "yahoo.com",
        "yahoo.co.uk",
        "yahoo.fr",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "pm.me",
        "gmx.de",
        "gmx.net",
        "gmx.com",
        "gmx.at",
        "gmx.ch",
        "web.de",
        "yandex.ru",
        "yandex.com",
        "mail.ru",
        "qq.com",
        "163.com",
        "126.com",
        "zoho.com",
        "tutanota.com",
        "fastmail.com",
        "hey.com",
    }
)
_PUBLIC_PREFIXES = ("gmx.", "yandex.")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_RESERVED_PARAMS = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
    }
)
#: ID-token algorithms kit-auth accepts (asymmetric only; never ``none`` or ``HS*``).
_ASYMMETRIC_ALGS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_STATE_TTL = 600
_STATE_MAX_LEN = 4096
_METADATA_TTL = 3600.0
_JWKS_REFETCH_INTERVAL = 30.0
_RESTART = "start the sign-in again"
#: Transport errors of httpx and of the module Authlib's clients run on (httpx2 when installed).
_HTTP_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, _authlib_httpx.HTTPError)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: object, what: str) -> str | None:
    """Return a problem description, or None when ``url`` is an acceptable endpoint URL."""
    if not isinstance(url, str) or not url:
        return f"{what} must be a non-empty URL string"
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and _is_loopback(parts.hostname):
        return None
    return f"{what} must be an https:// URL (plain http is only allowed for loopback hosts)"


def normalize_domain(domain: str) -> str:
    """Lower-case, IDNA-encode and strip a trailing dot from an email domain.

    >>> normalize_domain("Bücher.Example.")
    'xn--bcher-kva.example'
    """
    cleaned = domain.strip().rstrip(".").lower()
    if not cleaned:
        raise InvalidInput("An email domain must not be empty.")
    try:
        return cleaned.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidInput(f"{domain!r} is not a valid domain name.") from exc


def _is_public(domain: str) -> bool:
    return domain in PUBLIC_EMAIL_DOMAINS or (
        domain.startswith(_PUBLIC_PREFIXES) and domain.count(".") == 1
    )


@dataclass(frozen=True)
class OIDCProvider:
    """An OpenID Connect provider and this application's client registration at it.

    Give either ``issuer`` (discovery at ``{issuer}/.well-known/openid-configuration``) or
    ``server_metadata_url``. ``name`` becomes part of the adapters' URLs
    (``/auth/{name}/login``), so it is a short lower-case slug.

    >>> p = OIDCProvider("corp", "id", "secret", issuer="https://login.example.com/")
    >>> p.metadata_url
    'https://login.example.com/.well-known/openid-configuration'
    >>> OIDCProvider("corp", "id", "secret", issuer="http://login.example.com")
    Traceback (most recent call last):
    ...
    kit_auth.exceptions.ConfigurationError: OIDCProvider 'corp': issuer must be an https:// URL (plain http is only allowed for loopback hosts)
    """

    name: str
    client_id: str
    client_secret: str
    issuer: str | None = None
    server_metadata_url: str | None = None
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    authorize_params: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ConfigurationError(
                f"OIDCProvider name {self.name!r} must be 1-40 characters of a-z, 0-9, '_' "
                "or '-' (it is used in URLs)."
            )
        label = f"OIDCProvider {self.name!r}"
        for attr in ("client_id", "client_secret"):
            value = getattr(self, attr)
            if not isinstance(value, str) or not value.strip():
                raise ConfigurationError(
                    f"{label}: {attr} must be the non-empty string the provider issued."
                )
        if (self.issuer is None) == (self.server_metadata_url is None):
            raise ConfigurationError(f"{label}: give exactly one of issuer or server_metadata_url.")
        for attr in ("issuer", "server_metadata_url"):
            value = getattr(self, attr)
            if value is not None and (problem := _check_url(value, attr)):
                raise ConfigurationError(f"{label}: {problem}")
        if isinstance(self.scopes, str) or not all(
            isinstance(s, str) and s and " " not in s for s in self.scopes
        ):
            raise ConfigurationError(
                f"{label}: scopes must be a tuple of scope names, e.g. ('openid', 'email')."
            )
        object.__setattr__(self, "scopes", tuple(self.scopes))
        if "openid" not in self.scopes:
            raise ConfigurationError(f"{label}: scopes must include 'openid' for an OIDC login.")
        if not isinstance(self.authorize_params, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.authorize_params.items()
        ):
            raise ConfigurationError(f"{label}: authorize_params must map strings to strings.")
        if clash := sorted(_RESERVED_PARAMS & set(self.authorize_params)):
            raise ConfigurationError(
                f"{label}: authorize_params cannot set {', '.join(clash)}; kit-auth sets them."
            )
        object.__setattr__(self, "authorize_params", MappingProxyType(dict(self.authorize_params)))

    @property
    def metadata_url(self) -> str:
        """The discovery document URL."""
        if self.server_metadata_url is not None:
            return self.server_metadata_url
        assert self.issuer is not None
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    @classmethod
    def google(
        cls, client_id: str, client_secret: str, *, name: str = "google", **authorize_params: str
    ) -> OIDCProvider:
        """Sign in with Google.

        >>> OIDCProvider.google("id", "secret", prompt="select_account").authorize_params["prompt"]
        'select_account'
        """
        return cls(
            name,
            client_id,
            client_secret,
            server_metadata_url="https://accounts.google.com/.well-known/openid-configuration",
            authorize_params=authorize_params,
        )


@dataclass(frozen=True)
class LoginStart:
    """What :meth:`OIDCClient.begin` returns: redirect the browser to ``url`` and keep
    ``state_token`` (opaque, signed, expires in 10 minutes) in an HttpOnly cookie."""

    url: str
    state_token: str


@dataclass(frozen=True)
class Identity:
    """The signed-in user as the provider vouches for them.

    ``subject`` (the ID token's ``sub``) is the stable key to link accounts on; an email
    can change owner. ``claims`` holds every ID-token (and userinfo) claim.
    """

    provider: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None = None
    picture: str | None = None
    tenant_id: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, hash=False, repr=False)


class EmailPolicy:
    """Which provider identities to accept, and the tenant of each.

    - ``require_verified``: refuse an email the provider has not verified (default).
    - ``tenant_domains``: map an email domain to a tenant id; addresses at public mailbox
      domains (:data:`PUBLIC_EMAIL_DOMAINS`) are refused while it is set
      (``refuse_public_domains``), because ``gmail.com`` identifies no organisation.
      Other unmapped domains get ``tenant_id=None``.
    - ``allowed_domains``: when given, only these domains (and mapped ones) may sign in.

    >>> policy = EmailPolicy(tenant_domains={"acme.io": "t-acme"})
    >>> policy.tenant_for("bob@ACME.io", True)
    't-acme'
    >>> policy.tenant_for("bob@gmail.com", True)
    Traceback (most recent call last):
    ...
    kit_auth.exceptions.IdentityRefused: gmail.com is a public email domain and cannot identify an organisation; sign in with your work account.
    >>> policy.tenant_for("bob@acme.io", False)
    Traceback (most recent call last):
    ...
    kit_auth.exceptions.IdentityRefused: The provider has not verified this email address; verify it with the provider and sign in again.
    """

    def __init__(
        self,
        *,
        require_verified: bool = True,
        tenant_domains: Mapping[str, str] | None = None,
        allowed_domains: Iterable[str] | None = None,
        refuse_public_domains: bool | None = None,
    ) -> None:
        if not isinstance(require_verified, bool):
            raise ConfigurationError("EmailPolicy require_verified must be True or False.")
        if refuse_public_domains is not None and not isinstance(refuse_public_domains, bool):
            raise ConfigurationError("EmailPolicy refuse_public_domains must be a bool or None.")
        self.require_verified = require_verified
        self.refuse_public_domains = (
            tenant_domains is not None if refuse_public_domains is None else refuse_public_domains
        )
        mapping: dict[str, str] = {}
        if tenant_domains is not None:
            if not isinstance(tenant_domains, Mapping):
                raise ConfigurationError("EmailPolicy tenant_domains must map domain -> tenant id.")
            for domain, tenant in tenant_domains.items():
                if not isinstance(domain, str) or not isinstance(tenant, str) or not tenant:
                    raise ConfigurationError(
                        "EmailPolicy tenant_domains must map domain strings to non-empty tenant ids."
                    )
                key = self._config_domain(domain)
                if self.refuse_public_domains and _is_public(key):
                    raise ConfigurationError(
                        f"EmailPolicy tenant_domains maps the public email domain {key}; "
                        "anyone can get an address there. Remove it."
                    )
                mapping[key] = tenant
        self.tenant_domains: Mapping[str, str] = MappingProxyType(mapping)
        allowed: frozenset[str] | None = None
        if allowed_domains is not None:
            if isinstance(allowed_domains, str):
                raise ConfigurationError("EmailPolicy allowed_domains must be a list of domains.")
            allowed = frozenset(self._config_domain(d) for d in allowed_domains)
        self.allowed_domains = allowed

    @staticmethod
    def _config_domain(domain: object) -> str:
        if not isinstance(domain, str):
            raise ConfigurationError(f"EmailPolicy: {domain!r} is not a domain string.")
        try:
            return normalize_domain(domain)
        except InvalidInput as exc:
            raise ConfigurationError(f"EmailPolicy: {exc}") from exc

    def tenant_for(self, email: str | None, email_verified: bool) -> str | None:
        """Check an identity's email and return its tenant id (or None).

        Raises :class:`~kit_auth.exceptions.IdentityRefused` when the policy refuses it.
        """
        domain_rules = bool(self.tenant_domains) or self.allowed_domains is not None
        if email is None:
            if domain_rules or self.refuse_public_domains:
                raise IdentityRefused(
                    "The provider did not share an email address, which this application "
                    "needs; allow access to your email and sign in again."
                )
            return None
        if not isinstance(email, str) or email.count("@") != 1:
            raise IdentityRefused("The provider returned a malformed email address.")
        if self.require_verified and email_verified is not True:
            raise IdentityRefused(
                "The provider has not verified this email address; verify it with the "
                "provider and sign in again."
            )
        try:
            domain = normalize_domain(email.rsplit("@", 1)[1])
        except InvalidInput as exc:
            raise IdentityRefused("The provider returned a malformed email address.") from exc
        if self.refuse_public_domains and _is_public(domain):
            raise IdentityRefused(
                f"{domain} is a public email domain and cannot identify an organisation; "
                "sign in with your work account."
            )
        tenant = self.tenant_domains.get(domain)
        if (
            self.allowed_domains is not None
            and tenant is None
            and domain not in self.allowed_domains
        ):
            raise IdentityRefused(
                f"Accounts at {domain} may not sign in here; use an account of an allowed domain."
            )
        return tenant


# --- state token -------------------------------------------------------------------------


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign_state(secret: bytes, payload: dict[str, Any]) -> str:
    body = _b64e(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(secret, b"kit-auth-oidc-state." + body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64e(mac)}"


def _open_state(secret: bytes, token: str | None, provider: str) -> dict[str, Any]:
    forged = OAuthError(f"The sign-in state is forged, expired or missing; {_RESTART}.")
    if not isinstance(token, str) or not token or len(token) > _STATE_MAX_LEN:
        raise forged
    body, _, mac = token.partition(".")
    expected = hmac.new(secret, b"kit-auth-oidc-state." + body.encode(), hashlib.sha256).digest()
    try:
        given = _b64d(mac)
        if not hmac.compare_digest(given, expected):
            raise forged
        payload = json.loads(_b64d(body))
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        raise forged from exc
    if not isinstance(payload, dict) or not all(
        isinstance(payload.get(k), str) for k in ("p", "s", "n", "v", "r")
    ):
        raise forged
    exp = payload.get("exp")
    if not isinstance(exp, int) or exp <= time.time():
        raise OAuthError(f"The sign-in took too long and its state expired; {_RESTART}.")
    if payload["p"] != provider:
        raise OAuthError(f"The sign-in state belongs to another provider; {_RESTART}.")
    return payload


# --- the client ----------------------------------------------------------------------------


class _Cache:
    """Discovery metadata and JWKS, shared by the sync and async paths."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.metadata: dict[str, Any] | None = None
        self.metadata_at = 0.0
        self.keys: KeySet | None = None
        self.keys_at = 0.0
        self.forced_at = float("-inf")


class OIDCClient:
    """Runs the OIDC authorization-code login with one :class:`OIDCProvider`.

    ``state_secret`` (at least 32 random bytes, e.g. ``secrets.token_bytes(32)``) signs
    the state tokens; every instance of the app must share it. ``leeway`` is the clock
    skew (seconds) allowed on ``exp``/``iat``. ``email_policy`` defaults to
    ``EmailPolicy()``: unverified emails are refused.

    >>> OIDCClient(OIDCProvider.google("id", "secret"), state_secret=b"short")
    Traceback (most recent call last):
    ...
    kit_auth.exceptions.ConfigurationError: OIDCClient state_secret must be at least 32 bytes (use secrets.token_bytes(32)).
    """

    def __init__(
        self,
        provider: OIDCProvider,
        *,
        state_secret: bytes,
        http_timeout: float = 10.0,
        leeway: int = 60,
        email_policy: EmailPolicy | None = None,
    ) -> None:
        if not isinstance(provider, OIDCProvider):
            raise ConfigurationError("OIDCClient provider must be an OIDCProvider.")
        if not isinstance(state_secret, bytes) or len(state_secret) < 32:
            raise ConfigurationError(
                "OIDCClient state_secret must be at least 32 bytes (use secrets.token_bytes(32))."
            )
        if (
            isinstance(http_timeout, bool)
            or not isinstance(http_timeout, int | float)
            or not 0 < http_timeout <= 120
        ):
            raise ConfigurationError("OIDCClient http_timeout must be seconds in (0, 120].")
        if isinstance(leeway, bool) or not isinstance(leeway, int) or not 0 <= leeway <= 600:
            raise ConfigurationError("OIDCClient leeway must be whole seconds in [0, 600].")
        if email_policy is not None and not isinstance(email_policy, EmailPolicy):
            raise ConfigurationError("OIDCClient email_policy must be an EmailPolicy or None.")
        self.provider = provider
        self.http_timeout = float(http_timeout)
        self.leeway = leeway
        self.email_policy = email_policy if email_policy is not None else EmailPolicy()
        self._secret = state_secret
        self._cache = _Cache()

    # -- shared steps -----------------------------------------------------------------------

    def _unreachable(self, what: str, exc: BaseException) -> OAuthError:
        kind = type(exc).__name__
        return OAuthError(
            f"The sign-in provider {self.provider.name!r} could not be reached or answered "
            f"badly while fetching its {what} ({kind}); try again later."
        )

    def _parse_metadata(self, response: httpx.Response) -> dict[str, Any]:
        response.raise_for_status()
        data = response.json()
        if not isinstance(data, dict):
            raise ValueError("metadata is not a JSON object")
        for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            if _check_url(data.get(key), key):
                raise OAuthError(
                    f"The sign-in provider {self.provider.name!r} publishes no valid {key}; "
                    "its configuration is broken."
                )
        expected = self.provider.issuer
        if expected is not None and data["issuer"].rstrip("/") != expected.rstrip("/"):
            raise OAuthError(
                f"The sign-in provider {self.provider.name!r} announces another issuer than "
                "configured; refusing it."
            )
        return data

    def _fresh_metadata(self) -> dict[str, Any] | None:
        cache = self._cache
        if cache.metadata is not None and time.monotonic() - cache.metadata_at < _METADATA_TTL:
            return cache.metadata
        return None

    def _store_metadata(self, data: dict[str, Any]) -> dict[str, Any]:
        with self._cache.lock:
            self._cache.metadata = data
            self._cache.metadata_at = time.monotonic()
        return data

    def _store_keys(self, response: httpx.Response) -> KeySet:
        response.raise_for_status()
        data = response.json()
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ValueError("JWKS is not a JSON object with a keys list")
        usable = [k for k in data["keys"] if isinstance(k, dict) and k.get("kty") != "oct"]
        keys = KeySet.import_key_set({"keys": usable})
        with self._cache.lock:
            self._cache.keys = keys
            self._cache.keys_at = time.monotonic()
        return keys

    def _keys_need_fetch(self) -> bool:
        cache = self._cache
        return cache.keys is None or time.monotonic() - cache.keys_at >= _METADATA_TTL

    def _may_force_refetch(self) -> bool:
        with self._cache.lock:
            now = time.monotonic()
            if now - self._cache.forced_at < _JWKS_REFETCH_INTERVAL:
                return False
            self._cache.forced_at = now
            return True

    def _start(self, metadata: dict[str, Any], redirect_uri: str) -> LoginStart:
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(48)
        builder = _BaseOAuth2Client(
            None,
            client_id=self.provider.client_id,
            scope=" ".join(self.provider.scopes),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
        )
        url, _ = builder.create_authorization_url(
            metadata["authorization_endpoint"],
            state=state,
            nonce=nonce,
            code_verifier=verifier,
            **self.provider.authorize_params,
        )
        payload = {
            "p": self.provider.name,
            "s": state,
            "n": nonce,
            "v": verifier,
            "r": redirect_uri,
            "exp": int(time.time()) + _STATE_TTL,
        }
        return LoginStart(url=str(url), state_token=_sign_state(self._secret, payload))

    def _check_callback(
        self, params: Mapping[str, str], state_token: str | None
    ) -> tuple[dict[str, Any], str]:
        if not isinstance(params, Mapping):
            raise InvalidInput("params must be the mapping of the callback's query parameters.")
        saved = _open_state(self._secret, state_token, self.provider.name)
        given = params.get("state")
        if not isinstance(given, str) or not hmac.compare_digest(
            given.encode(), saved["s"].encode()
        ):
            raise OAuthError(f"The sign-in state does not match (forged or stale); {_RESTART}.")
        error = params.get("error")
        if error:
            code = re.sub(r"[^A-Za-z0-9_.-]", "", str(error))[:64]
            raise OAuthError(f"The sign-in provider answered {code!r}; {_RESTART}.")
        code_param = params.get("code")
        if not isinstance(code_param, str) or not code_param:
            raise OAuthError(f"The provider's answer carries no authorization code; {_RESTART}.")
        return saved, code_param

    def _token_client_kwargs(self, metadata: dict[str, Any], redirect_uri: str) -> dict[str, Any]:
        methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if "client_secret_basic" in methods:
            method = "client_secret_basic"
        elif "client_secret_post" in methods:
            method = "client_secret_post"
        else:
            raise OAuthError(
                f"The sign-in provider {self.provider.name!r} supports neither "
                "client_secret_basic nor client_secret_post at its token endpoint."
            )
        return {
            "client_id": self.provider.client_id,
            "client_secret": self.provider.client_secret,
            "token_endpoint_auth_method": method,
            "scope": " ".join(self.provider.scopes),
            "redirect_uri": redirect_uri,
            "code_challenge_method": "S256",
            "timeout": self.http_timeout,
        }

    def _exchange_error(self, exc: BaseException) -> OAuthError:
        if isinstance(exc, _AuthlibOAuthError):
            code = re.sub(r"[^A-Za-z0-9_.-]", "", str(exc.error or "error"))[:64]
            return OAuthError(
                f"The sign-in provider refused the code exchange ({code}); {_RESTART}."
            )
        return self._unreachable("token endpoint", exc)

    @staticmethod
    def _id_token_of(token: Any) -> str:
        id_token = token.get("id_token") if isinstance(token, Mapping) else None
        if not isinstance(id_token, str) or not id_token:
            raise OAuthError(f"The sign-in provider returned no ID token; {_RESTART}.")
        return id_token

    @staticmethod
    def _header(id_token: str) -> dict[str, Any]:
        try:
            header = json.loads(_b64d(id_token.split(".", 1)[0]))
        except (ValueError, TypeError) as exc:
            raise OAuthError(f"The ID token is malformed; {_RESTART}.") from exc
        if not isinstance(header, dict):
            raise OAuthError(f"The ID token is malformed; {_RESTART}.")
        return header

    def _allowed_algs(self, metadata: dict[str, Any]) -> list[str]:
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algs = [a for a in offered if a in _ASYMMETRIC_ALGS]
        if not algs:
            raise OAuthError(
                f"The sign-in provider {self.provider.name!r} offers no ID-token algorithm "
                "kit-auth accepts (asymmetric signatures only)."
            )
        return algs

    @staticmethod
    def _find_key(keys: KeySet | None, kid: Any, alg: str) -> Key | None:
        if keys is None:
            return None
        candidates = [
            k for k in keys if (kid is None or k.kid == kid) and k.get("use") in (None, "sig")
        ]
        if kid is None and len(candidates) != 1:
            return None
        return candidates[0] if candidates else None

    def _verify(
        self, id_token: str, key: Key, alg: str, metadata: dict[str, Any], nonce: str
    ) -> dict[str, Any]:
        try:
            token = jwt.decode(id_token, key, algorithms=[alg])
        except JoseError as exc:
            raise OAuthError(
                f"The ID token's signature does not verify ({type(exc).__name__}); {_RESTART}."
            ) from exc
        claims = dict(token.claims)
        registry = JWTClaimsRegistry(
            leeway=self.leeway,
            iss={"essential": True, "value": metadata["issuer"]},
            aud={"essential": True, "value": self.provider.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError as exc:
            raise OAuthError(f"The ID token has expired; {_RESTART}.") from exc
        except JoseError as exc:
            claim = getattr(exc, "claim", None) or str(exc)
            raise OAuthError(f"The ID token's {claim} claim is invalid; {_RESTART}.") from exc
        aud = claims["aud"]
        azp = claims.get("azp")
        if (isinstance(aud, list) and len(aud) > 1 and azp is None) or (
            azp is not None and azp != self.provider.client_id
        ):
            raise OAuthError(f"The ID token was issued to another party (azp); {_RESTART}.")
        got_nonce = claims.get("nonce")
        if not isinstance(got_nonce, str) or not hmac.compare_digest(
            got_nonce.encode(), nonce.encode()
        ):
            raise OAuthError(f"The ID token's nonce does not match this sign-in; {_RESTART}.")
        return claims

    def _identity(self, claims: dict[str, Any]) -> Identity:
        email = claims.get("email")
        email = email if isinstance(email, str) and email else None
        verified = claims.get("email_verified") in (True, "true")
        tenant = self.email_policy.tenant_for(email, verified)
        name = claims.get("name")
        picture = claims.get("picture")
        return Identity(
            provider=self.provider.name,
            subject=str(claims["sub"]),
            email=email,
            email_verified=verified,
            name=name if isinstance(name, str) else None,
            picture=picture if isinstance(picture, str) else None,
            tenant_id=tenant,
            claims=MappingProxyType(claims),
        )

    @staticmethod
    def _merge_userinfo(claims: dict[str, Any], response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            return claims
        try:
            info = response.json()
        except ValueError:
            return claims
        if not isinstance(info, dict) or info.get("sub") != claims["sub"]:
            return claims  # OIDC Core 5.3.2: userinfo of another subject is ignored
        merged = dict(claims)
        for key in ("email", "email_verified", "name", "picture"):
            if key in info and key not in merged:
                merged[key] = info[key]
        return merged

    @staticmethod
    def _check_redirect_uri(redirect_uri: str) -> None:
        if problem := _check_url(redirect_uri, "redirect_uri"):
            raise InvalidInput(f"{problem}.")

    # -- health -------------------------------------------------------------------------------

    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: True if the provider's discovery document can be fetched now
        and is valid (the configured issuer, the endpoints present), within ``timeout``
        seconds. The fresh document replaces the cached one. False, never an exception,
        when the provider is unreachable, slow or answers badly.

        Example (nothing listens on port 9)::

            >>> local = OIDCProvider(name="dev", client_id="app", client_secret="x",
            ...                      issuer="http://127.0.0.1:9")
            >>> OIDCClient(local, state_secret=b"s" * 32).ping(timeout=0.5)
            False
        """
        timeout = check_timeout(timeout)

        def probe() -> bool:
            with httpx.Client(timeout=timeout) as http:
                response = http.get(self.provider.metadata_url)
            self._store_metadata(self._parse_metadata(response))
            return True

        return within(probe, timeout)

    async def aping(self, timeout: float = 2.0) -> bool:
        """The async twin of :meth:`ping`."""
        timeout = check_timeout(timeout)

        async def probe() -> bool:
            async with httpx.AsyncClient(timeout=timeout) as http:
                response = await http.get(self.provider.metadata_url)
            self._store_metadata(self._parse_metadata(response))
            return True

        try:
            return await asyncio.wait_for(probe(), timeout)
        except Exception:  # unreachable, late, a bad document: not healthy
            return False

    # -- sync ---------------------------------------------------------------------------------

    def _metadata(self) -> dict[str, Any]:
        if (fresh := self._fresh_metadata()) is not None:
            return fresh
        try:
            with httpx.Client(timeout=self.http_timeout) as http:
                return self._store_metadata(
                    self._parse_metadata(http.get(self.provider.metadata_url))
                )
        except (httpx.HTTPError, ValueError) as exc:
            raise self._unreachable("discovery document", exc) from exc

    def _fetch_keys(self, metadata: dict[str, Any]) -> KeySet:
        with httpx.Client(timeout=self.http_timeout) as http:
            return self._store_keys(http.get(metadata["jwks_uri"]))

    def _key_for(self, metadata: dict[str, Any], header: dict[str, Any], alg: str) -> Key:
        if self._keys_need_fetch():
            try:
                self._fetch_keys(metadata)
            except (httpx.HTTPError, ValueError, JoseError) as exc:
                if self._cache.keys is None:
                    raise self._unreachable("signing keys", exc) from exc
        key = self._find_key(self._cache.keys, header.get("kid"), alg)
        if key is None and self._may_force_refetch():
            try:
                key = self._find_key(self._fetch_keys(metadata), header.get("kid"), alg)
            except (httpx.HTTPError, ValueError, JoseError):
                key = None  # keep the cached keys
        if key is None:
            raise OAuthError(f"The ID token is signed with an unknown key; {_RESTART}.")
        return key

    def begin(self, redirect_uri: str) -> LoginStart:
        """Start a login: the provider URL to redirect to and the state token to keep.

        ``redirect_uri`` is this app's callback URL, registered at the provider.
        """
        self._check_redirect_uri(redirect_uri)
        return self._start(self._metadata(), redirect_uri)

    def complete(self, params: Mapping[str, str], state_token: str | None) -> Identity:
        """Finish a login from the callback's query ``params`` and the kept state token."""
        saved, code = self._check_callback(params, state_token)
        metadata = self._metadata()
        kwargs = self._token_client_kwargs(metadata, saved["r"])
        try:
            with OAuth2Client(**kwargs) as oauth:
                token = oauth.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=saved["v"],
                    redirect_uri=saved["r"],
                )
        except (_AuthlibOAuthError, *_HTTP_ERRORS, ValueError) as exc:
            raise self._exchange_error(exc) from exc
        id_token = self._id_token_of(token)
        header = self._header(id_token)
        alg = header.get("alg")
        if alg not in self._allowed_algs(metadata):
            raise OAuthError(f"The ID token uses a refused algorithm; {_RESTART}.")
        claims = self._verify(
            id_token, self._key_for(metadata, header, alg), alg, metadata, saved["n"]
        )
        if (
            "email" not in claims
            and metadata.get("userinfo_endpoint")
            and token.get("access_token")
        ):
            try:
                with httpx.Client(timeout=self.http_timeout) as http:
                    response = http.get(
                        metadata["userinfo_endpoint"],
                        headers={"Authorization": f"Bearer {token['access_token']}"},
                    )
                claims = self._merge_userinfo(claims, response)
            except httpx.HTTPError as exc:
                raise self._unreachable("userinfo", exc) from exc
        return self._identity(claims)

    # -- async --------------------------------------------------------------------------------

    async def _ametadata(self) -> dict[str, Any]:
        if (fresh := self._fresh_metadata()) is not None:
            return fresh
        try:
            async with httpx.AsyncClient(timeout=self.http_timeout) as http:
                response = await http.get(self.provider.metadata_url)
            return self._store_metadata(self._parse_metadata(response))
        except (httpx.HTTPError, ValueError) as exc:
            raise self._unreachable("discovery document", exc) from exc

    async def _afetch_keys(self, metadata: dict[str, Any]) -> KeySet:
        async with httpx.AsyncClient(timeout=self.http_timeout) as http:
            response = await http.get(metadata["jwks_uri"])
        return self._store_keys(response)

    async def _akey_for(self, metadata: dict[str, Any], header: dict[str, Any], alg: str) -> Key:
        if self._keys_need_fetch():
            try:
                await self._afetch_keys(metadata)
            except (httpx.HTTPError, ValueError, JoseError) as exc:
                if self._cache.keys is None:
                    raise self._unreachable("signing keys", exc) from exc
        key = self._find_key(self._cache.keys, header.get("kid"), alg)
        if key is None and self._may_force_refetch():
            try:
                key = self._find_key(await self._afetch_keys(metadata), header.get("kid"), alg)
            except (httpx.HTTPError, ValueError, JoseError):
                key = None  # keep the cached keys
        if key is None:
            raise OAuthError(f"The ID token is signed with an unknown key; {_RESTART}.")
        return key

    async def abegin(self, redirect_uri: str) -> LoginStart:
        """The asyncio twin of :meth:`begin`."""
        self._check_redirect_uri(redirect_uri)
        return self._start(await self._ametadata(), redirect_uri)

    async def acomplete(self, params: Mapping[str, str], state_token: str | None) -> Identity:
        """The asyncio twin of :meth:`complete`."""
        saved, code = self._check_callback(params, state_token)
        metadata = await self._ametadata()
        kwargs = self._token_client_kwargs(metadata, saved["r"])
        try:
            async with AsyncOAuth2Client(**kwargs) as oauth:
                token = await oauth.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=saved["v"],
                    redirect_uri=saved["r"],
                )
        except (_AuthlibOAuthError, *_HTTP_ERRORS, ValueError) as exc:
            raise self._exchange_error(exc) from exc
        id_token = self._id_token_of(token)
        header = self._header(id_token)
        alg = header.get("alg")
        if alg not in self._allowed_algs(metadata):
            raise OAuthError(f"The ID token uses a refused algorithm; {_RESTART}.")
        key = await self._akey_for(metadata, header, alg)
        claims = self._verify(id_token, key, alg, metadata, saved["n"])
        if (
            "email" not in claims
            and metadata.get("userinfo_endpoint")
            and token.get("access_token")
        ):
            try:
                async with httpx.AsyncClient(timeout=self.http_timeout) as http:
                    response = await http.get(
                        metadata["userinfo_endpoint"],
                        headers={"Authorization": f"Bearer {token['access_token']}"},
                    )
                claims = self._merge_userinfo(claims, response)
            except httpx.HTTPError as exc:
                raise self._unreachable("userinfo", exc) from exc
        return self._identity(claims)
