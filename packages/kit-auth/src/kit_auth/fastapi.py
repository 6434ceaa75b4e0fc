"""FastAPI adapter: :class:`FastAPIAuth` dependencies and problem+json handlers.

The only module that imports FastAPI/Starlette.

Example::

    >>> from fastapi import FastAPI, Security
    >>> from kit_auth.fastapi import FastAPIAuth, install_problem_handlers
    >>> app = FastAPI()
    >>> install_problem_handlers(app)
    >>> auth = FastAPIAuth(scopes={"users:read": "Read users"})
    >>> @app.get("/users")
    ... async def users(p=Security(auth.principal, scopes=["users:read"])):
    ...     return {"id": p.id}
    >>> app.openapi()["paths"]["/users"]["get"]["security"][0]
    {'OAuth2': ['users:read']}
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

try:
    from fastapi import APIRouter, FastAPI, Request, Response, Security
    from fastapi.openapi.models import OAuthFlows as OAuthFlowsModel
    from fastapi.responses import JSONResponse, RedirectResponse
    from fastapi.security import APIKeyHeader, OAuth2, SecurityScopes
    from starlette.concurrency import run_in_threadpool
except ImportError as exc:  # pragma: no cover - exercised by the slim session
    raise ImportError('kit_auth.fastapi needs FastAPI: pip install "kit-auth[fastapi]"') from exc

from kit_auth._web import (
    AsyncLoader,
    Authenticated,
    check_principal,
    check_scopes,
    check_setup,
    default_principal,
    error_headers,
    is_async_callable,
    read_credential,
)
from kit_auth.apikeys import ApiKeys
from kit_auth.authz import require_active, require_permission, require_roles, require_scopes
from kit_auth.exceptions import ConfigurationError, InvalidToken, KitAuthError, NotAuthenticated
from kit_auth.oidc import Identity, OIDCClient
from kit_auth.principal import Principal
from kit_auth.ratelimit import (
    KeyFunc,
    RateLimiter,
    RequestInfo,
    TrustedProxies,
    by_ip,
    client_address,
)
from kit_auth.roles import DEFAULT_HIERARCHY, Permissions, RoleHierarchy
from kit_auth.tokens import TokenManager

__all__ = ["FastAPIAuth", "install_problem_handlers", "kit_auth_lifespan", "oauth_router"]

_STATE_KEY = "kit_auth_authenticated"
_REALM_KEY = "kit_auth_realm"
_MISSING = object()


@asynccontextmanager
async def kit_auth_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """A no-op lifespan kept for apps composing lifespans; kit-auth opens nothing itself
    (close your own Redis-backed stores in your lifespan).

    >>> kit_auth_lifespan  # doctest: +ELLIPSIS
    <function kit_auth_lifespan at ...>
    """
    yield


def install_problem_handlers(app: FastAPI, *, realm: str = "api") -> None:
    """Answer :class:`KitAuthError` with an RFC 9457 ``application/problem+json`` response,
    plus ``WWW-Authenticate`` (401, insufficient scope) and rate-limit headers (429).

    >>> install_problem_handlers(FastAPI())
    """
    if not isinstance(realm, str) or not realm or '"' in realm:
        raise ConfigurationError("realm must be a non-empty string without quotes")
    setattr(app.state, _REALM_KEY, realm)

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KitAuthError)
        return _problem_response(exc, realm)

    app.add_exception_handler(KitAuthError, handle)


def _problem_response(exc: KitAuthError, realm: str) -> JSONResponse:
    return JSONResponse(
        exc.problem(),
        status_code=exc.status,
        media_type="application/problem+json",
        headers=error_headers(exc, realm),
    )


class FastAPIAuth:
    """Authentication and authorization dependencies for FastAPI.

    Args:
        tokens: verifies ``Authorization: Bearer <jwt>`` (``averify``; sync or async store).
        api_keys: verifies API keys (``X-API-Key`` or ``Bearer <prefix>_...``), in a thread.
        load_principal: sync or async ``callable(TokenClaims | ApiKeyRecord) -> Principal |
            None`` (sync ones run in a thread); default: a ``SimplePrincipal`` from the
            credential.
        hierarchy / permissions: for :meth:`require_roles` / :meth:`require_permission`.
        trusted_proxies: proxies whose ``X-Forwarded-For`` :meth:`rate_limit` believes.
        scopes: scope name -> description, shown in the OpenAPI OAuth2 scheme.
        token_url: the token endpoint advertised in OpenAPI (client-credentials flow).

    Dependencies: ``Depends(auth.principal)`` (401 when anonymous),
    ``Depends(auth.optional_principal)``, ``Security(auth.principal, scopes=[...])``
    (scopes checked against the credential and listed in OpenAPI),
    ``Depends(auth.require_roles("admin"))``, ``Depends(auth.require_permission("x.y"))``
    and ``Depends(auth.rate_limit(limiter, key=by_ip))``.
    """

    def __init__(
        self,
        *,
        tokens: TokenManager | None = None,
        api_keys: ApiKeys | None = None,
        load_principal: AsyncLoader | None = None,
        hierarchy: RoleHierarchy | None = None,
        permissions: Permissions | None = None,
        trusted_proxies: TrustedProxies | None = None,
        api_key_header: str = "X-API-Key",
        scopes: Mapping[str, str] | None = None,
        token_url: str = "/token",  # noqa: S107 - a URL, not a secret
    ) -> None:
        check_setup(tokens, api_keys, load_principal, api_key_header)
        if hierarchy is not None and not isinstance(hierarchy, RoleHierarchy):
            raise ConfigurationError("hierarchy must be a kit_auth.roles.RoleHierarchy")
        if permissions is not None and not isinstance(permissions, Permissions):
            raise ConfigurationError("permissions must be a kit_auth.roles.Permissions")
        if trusted_proxies is not None and not isinstance(trusted_proxies, TrustedProxies):
            raise ConfigurationError("trusted_proxies must be a TrustedProxies or None")
        scope_docs = dict(scopes or {})
        check_scopes(tuple(scope_docs), "FastAPIAuth scopes")
        if not isinstance(token_url, str) or not token_url:
            raise ConfigurationError("token_url must be the URL of your token endpoint")
        self.tokens = tokens
        self.api_keys = api_keys
        self.permissions = permissions
        self.hierarchy = hierarchy or (
            permissions.hierarchy if permissions is not None else DEFAULT_HIERARCHY
        )
        self.trusted_proxies = trusted_proxies
        self._loader: AsyncLoader = load_principal or default_principal
        self._async_loader = is_async_callable(self._loader)
        self._header = api_key_header
        self.oauth2 = OAuth2(
            flows=cast(
                OAuthFlowsModel,
                {"clientCredentials": {"tokenUrl": token_url, "scopes": scope_docs}},
            ),
            scheme_name="OAuth2",
            auto_error=False,
        )
        self.api_key_scheme = APIKeyHeader(
            name=api_key_header, scheme_name="APIKeyHeader", auto_error=False
        )
        oauth2, api_key_scheme = self.oauth2, self.api_key_scheme

        async def principal(
            security_scopes: SecurityScopes,
            request: Request,
            _bearer: str | None = Security(oauth2),
            _api_key: str | None = Security(api_key_scheme),
        ) -> Principal:
            authenticated = await self._required(request)
            if security_scopes.scopes:
                require_scopes(
                    authenticated.principal,
                    *security_scopes.scopes,
                    granted=authenticated.scopes,
                )
            return authenticated.principal

        async def optional_principal(
            request: Request,
            _bearer: str | None = Security(oauth2),
            _api_key: str | None = Security(api_key_scheme),
        ) -> Principal | None:
            authenticated = await self.authenticate(request)
            if authenticated is None:
                return None
            require_active(authenticated.principal)
            return authenticated.principal

        self.principal: Callable[..., Awaitable[Principal]] = principal
        self.optional_principal: Callable[..., Awaitable[Principal | None]] = optional_principal

    async def authenticate(self, request: Request) -> Authenticated | None:
        """Verify the request's credential once per request (cached on ``request.state``)."""
        cached = getattr(request.state, _STATE_KEY, _MISSING)
        if cached is not _MISSING:
            return cast(Authenticated | None, cached)
        credential = read_credential(
            request.headers.get("Authorization"), request.headers.get(self._header), self.api_keys
        )
        result: Authenticated | None = None
        if credential is not None:
            source: Any
            if credential.kind == "api_key":
                if self.api_keys is None:
                    raise InvalidToken("API keys are not accepted here; send a Bearer token.")
                source = await run_in_threadpool(self.api_keys.verify, credential.value)
            else:
                if self.tokens is None:
                    raise InvalidToken("Bearer tokens are not accepted here; send an API key.")
                source = await self.tokens.averify(credential.value)
            if self._async_loader:
                loaded = await cast(Awaitable[Any], self._loader(source))
            else:
                loaded = await run_in_threadpool(self._loader, source)
            result = Authenticated(
                check_principal(loaded, source), source, frozenset(source.scopes)
            )
        setattr(request.state, _STATE_KEY, result)
        return result

    async def _required(self, request: Request) -> Authenticated:
        authenticated = await self.authenticate(request)
        if authenticated is None:
            raise NotAuthenticated("Authentication required: send a Bearer token or an API key.")
        require_active(authenticated.principal)
        return authenticated

    def require_roles(
        self, *roles: str, tenant_from: str | None = None
    ) -> Callable[..., Awaitable[Principal]]:
        """A dependency requiring every role in ``roles`` (through the hierarchy); with
        ``tenant_from`` (a path parameter name) the roles must be held in that tenant.

        >>> FastAPIAuth().require_roles("admn")
        Traceback (most recent call last):
        ...
        kit_auth.exceptions.ConfigurationError: role 'admn' is not defined in the role hierarchy (defined: admin, editor, moderator, user)
        """
        if not roles:
            raise ConfigurationError("require_roles needs at least one role")
        for role in roles:
            self.hierarchy.check_role(role)
        hierarchy = self.hierarchy

        async def dependency(request: Request) -> Principal:
            authenticated = await self._required(request)
            tenant_id = _path_tenant(request, tenant_from)
            require_roles(authenticated.principal, *roles, hierarchy=hierarchy, tenant_id=tenant_id)
            return authenticated.principal

        return dependency

    def require_permission(
        self, permission: str, *, tenant_from: str | None = None
    ) -> Callable[..., Awaitable[Principal]]:
        """A dependency requiring ``permission`` (403 naming it).

        >>> FastAPIAuth().require_permission("posts.delete")
        Traceback (most recent call last):
        ...
        kit_auth.exceptions.ConfigurationError: require_permission needs FastAPIAuth(permissions=Permissions({...}))
        """
        permissions = self.permissions
        if permissions is None:
            raise ConfigurationError(
                "require_permission needs FastAPIAuth(permissions=Permissions({...}))"
            )
        permissions.check_permission(permission)

        async def dependency(request: Request) -> Principal:
            authenticated = await self._required(request)
            require_permission(
                authenticated.principal,
                permission,
                permissions=permissions,
                tenant_id=_path_tenant(request, tenant_from),
            )
            return authenticated.principal

        return dependency

    def rate_limit(
        self, limiter: RateLimiter, *, key: KeyFunc = by_ip, cost: int = 1
    ) -> Callable[..., Awaitable[None]]:
        """A dependency applying ``limiter`` (``acheck``) and setting ``RateLimit`` /
        ``RateLimit-Policy`` on the response; a refusal is a 429 with ``Retry-After``.

        >>> FastAPIAuth().rate_limit(RateLimiter("5/minute"), cost=0)
        Traceback (most recent call last):
        ...
        kit_auth.exceptions.ConfigurationError: rate_limit cost must be an integer >= 1, got 0
        """
        if not isinstance(limiter, RateLimiter):
            raise ConfigurationError("rate_limit needs a kit_auth.ratelimit.RateLimiter")
        if not callable(key):
            raise ConfigurationError("rate_limit key must be a callable(RequestInfo) -> str")
        if type(cost) is not int or cost < 1:
            raise ConfigurationError(f"rate_limit cost must be an integer >= 1, got {cost!r}")
        proxies = self.trusted_proxies

        async def dependency(request: Request, response: Response) -> None:
            authenticated = await self.authenticate(request)
            peer = request.client.host if request.client is not None else None
            info = RequestInfo(
                client_address(
                    peer, request.headers.get("X-Forwarded-For"), trusted_proxies=proxies
                ),
                headers=request.headers,
                principal_id=None if authenticated is None else authenticated.principal.id,
                path=request.url.path,
            )
            decision = await limiter.acheck(key(info), cost)
            response.headers.update(decision.headers())

        return dependency


def _path_tenant(request: Request, tenant_from: str | None) -> str | None:
    if tenant_from is None:
        return None
    value = request.path_params.get(tenant_from)
    if value is None:
        raise ConfigurationError(
            f"tenant_from={tenant_from!r} names no path parameter of this route"
        )
    return str(value)


# OAuth/OIDC login. kit_auth.oidc does the whole flow; these routes only carry its signed
# state token from /login to /callback in a short-lived HttpOnly, SameSite=Lax cookie
# scoped to the router's prefix (no SessionMiddleware needed), deleted by /callback
# whether the login succeeds or fails.


def oauth_router(
    client: OIDCClient,
    *,
    on_login: Callable[[Identity], Awaitable[Response] | Response],
    prefix: str | None = None,
    cookie_secure: bool = True,
    redirect_uri: str | None = None,
) -> APIRouter:
    """Sign in with an OIDC provider: ``GET {prefix}/login`` and ``/callback``.

    The async twin of :func:`kit_auth.flask.oauth_blueprint`: ``/login`` redirects to the
    provider and keeps the signed state token in an HttpOnly, ``SameSite=Lax`` cookie
    scoped to ``prefix`` (default ``/auth/{provider name}``) for 10 minutes;
    ``/callback`` finishes the login with :meth:`OIDCClient.acomplete` and returns
    ``on_login(identity)`` (a Response, or an awaitable of one). A forged state, a
    provider error or an invalid ID token (:class:`~kit_auth.exceptions.OAuthError`, 401),
    a refused identity (:class:`~kit_auth.exceptions.IdentityRefused`, 403) or any other
    :class:`~kit_auth.exceptions.KitAuthError` raised by ``on_login`` becomes a
    problem+json response as :func:`install_problem_handlers` renders it (in its
    ``realm``). The cookie is deleted on every response, success or failure.

    >>> from kit_auth.oidc import OIDCClient, OIDCProvider
    >>> client = OIDCClient(OIDCProvider.google("id", "secret"), state_secret=b"s" * 32)
    >>> router = oauth_router(client, on_login=lambda identity: Response(identity.subject))
    >>> router.prefix
    '/auth/google'
    """
    if not isinstance(client, OIDCClient):
        raise ConfigurationError("client must be a kit_auth.oidc.OIDCClient.")
    value = f"/auth/{client.provider.name}" if prefix is None else prefix
    if not isinstance(value, str) or not value.startswith("/") or value.endswith("/"):
        raise ConfigurationError(
            f"OAuth URL prefix {value!r} must start with '/' and not end with '/'."
        )
    if not callable(on_login):
        raise ConfigurationError("on_login must be a callable taking the Identity.")
    if not isinstance(cookie_secure, bool):
        raise ConfigurationError("cookie_secure must be True or False.")
    path = value
    name = client.provider.name
    cookie = f"kit_oidc_{name}"
    callback_name = f"kit_auth_oidc_{name}_callback"
    router = APIRouter(prefix=path)

    @router.get("/login", name=f"kit_auth_oidc_{name}_login", include_in_schema=False)
    async def login(request: Request) -> Response:
        callback_url = redirect_uri or str(request.url_for(callback_name))
        start = await client.abegin(callback_url)
        response = RedirectResponse(start.url, status_code=302)
        response.set_cookie(
            cookie,
            start.state_token,
            max_age=600,
            path=path,
            secure=cookie_secure,
            httponly=True,
            samesite="lax",
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @router.get("/callback", name=callback_name, include_in_schema=False)
    async def callback(request: Request) -> Response:
        response: Response
        try:
            identity = await client.acomplete(
                dict(request.query_params), request.cookies.get(cookie)
            )
            result = on_login(identity)
            response = await result if inspect.isawaitable(result) else result
        except KitAuthError as exc:
            realm = getattr(request.app.state, _REALM_KEY, "api")
            response = _problem_response(exc, realm)
        response.delete_cookie(
            cookie, path=path, secure=cookie_secure, httponly=True, samesite="lax"
        )
        return response

    return router
