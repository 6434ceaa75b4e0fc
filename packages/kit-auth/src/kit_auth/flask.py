"""Flask adapter: the :class:`KitAuth` extension and route decorators. The only module
that imports Flask.

``KitAuth(app, tokens=..., api_keys=...)`` authenticates each request lazily, the first
time :data:`current_principal` or a decorator needs it, from ``Authorization: Bearer
<jwt>``, ``Authorization: Bearer <api key>`` or the ``X-API-Key`` header (never from the
query string, where keys end up in logs). Errors become RFC 9457
``application/problem+json`` responses: 401 with an RFC 6750 ``WWW-Authenticate: Bearer``
challenge, 403 (with ``reason`` for inactive accounts and an ``insufficient_scope``
challenge for missing scopes), 429 with ``RateLimit``, ``RateLimit-Policy`` and
``Retry-After``, 503 with a fixed message.

Config keys (a constructor argument wins over the key): ``KIT_AUTH_TRUSTED_PROXIES``
(a list of proxy CIDRs, a comma-separated string, or an int number of hops; default: no
proxy is trusted and ``X-Forwarded-For`` is ignored), ``KIT_AUTH_API_KEY_HEADER``
(default ``"X-API-Key"``), ``KIT_AUTH_REALM`` (default ``"api"``) and
``KIT_AUTH_RATELIMIT_STORAGE`` (``"memory"``, the default, or a ``redis://`` URL) for
``@rate_limit("10/minute")`` given as a string.

Scopes are checked against the *credential* (the token's or API key's scopes), not the
principal a custom ``load_principal`` returns. ``current_principal`` is a proxy: test it
with ``if current_principal:`` (``is None`` is always False on a proxy) or call
:func:`get_principal`.

Example::

    >>> from flask import Flask
    >>> from kit_auth.flask import KitAuth, auth_required
    >>> app = Flask(__name__)
    >>> auth = KitAuth(app)
    >>> @app.get("/me")
    ... @auth_required
    ... def me():
    ...     return {"id": get_principal().id}
    >>> response = app.test_client().get("/me")
    >>> response.status_code, response.headers["WWW-Authenticate"]
    (401, 'Bearer realm="api"')
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, overload

try:
    from flask import (
        Blueprint,
        Flask,
        Response,
        after_this_request,
        current_app,
        g,
        jsonify,
        make_response,
        redirect,
        request,
        url_for,
    )
    from flask.typing import ResponseReturnValue
    from werkzeug.local import LocalProxy
except ImportError as exc:  # pragma: no cover - exercised by the slim session
    raise ImportError('kit_auth.flask needs Flask: pip install "kit-auth[flask]"') from exc

from kit_auth._web import (
    Authenticated,
    Loader,
    check_principal,
    check_scopes,
    check_setup,
    default_principal,
    error_headers,
    is_async_callable,
    read_credential,
)
from kit_auth.apikeys import ApiKeys
from kit_auth.authz import (
    require_active,
    require_permission,
    require_roles,
    require_same_tenant,
    require_scopes,
)
from kit_auth.exceptions import (
    ConfigurationError,
    InvalidToken,
    KitAuthError,
    NotAuthenticated,
)
from kit_auth.oidc import Identity, OIDCClient
from kit_auth.principal import Principal
from kit_auth.ratelimit import (
    KeyFunc,
    MemoryRateLimitStorage,
    RateLimit,
    RateLimiter,
    RateLimitStorage,
    RedisRateLimitStorage,
    RequestInfo,
    TrustedProxies,
    by_ip,
    client_address,
)
from kit_auth.roles import DEFAULT_HIERARCHY, Permissions, RoleHierarchy
from kit_auth.tokens import TokenManager

__all__ = [
    "EXTENSION_KEY",
    "KitAuth",
    "auth_required",
    "current_principal",
    "get_principal",
    "oauth_blueprint",
    "permission_required",
    "rate_limit",
    "role_required",
    "scope_required",
    "tenant_required",
]

EXTENSION_KEY = "kit-auth"
_G_KEY = "_kit_auth_authenticated"

F = TypeVar("F", bound=Callable[..., Any])
TenantFrom = str | Callable[[Mapping[str, Any]], str | None]


def _trusted_proxies(value: object) -> TrustedProxies | None:
    if value is None or isinstance(value, TrustedProxies):
        return value
    if isinstance(value, bool):
        raise ConfigurationError("not a bool")
    if isinstance(value, int):
        return TrustedProxies(hops=value)
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
        return TrustedProxies(items) if items else None
    if isinstance(value, list | tuple):
        return TrustedProxies([str(item) for item in value])
    raise ConfigurationError(f"unsupported type {type(value).__name__}")


class KitAuth:
    """The Flask extension: ``KitAuth(app, ...)`` or ``auth = KitAuth(...)`` then
    ``auth.init_app(app)``.

    Args:
        tokens: verifies ``Authorization: Bearer <jwt>`` (a synchronous token store).
        api_keys: verifies API keys from the API-key header or ``Bearer <prefix>_...``.
        load_principal: ``callable(TokenClaims | ApiKeyRecord) -> Principal | None``
            (e.g. load your ``User`` by ``claims.subject`` / ``record.owner_id``; None
            means the account is gone: 401). Default: a :class:`SimplePrincipal` built
            from the credential.
        hierarchy: the :class:`RoleHierarchy` for ``@role_required`` (default ladder).
        permissions: the :class:`Permissions` for ``@permission_required``.
        trusted_proxies: proxies whose ``X-Forwarded-For`` is believed (see the module
            doc for ``KIT_AUTH_TRUSTED_PROXIES``).
        api_key_header: the API-key header name (``KIT_AUTH_API_KEY_HEADER``).
        realm: the ``realm`` of ``WWW-Authenticate`` challenges (``KIT_AUTH_REALM``).
        rate_limit_storage: storage for limits given as strings to ``@rate_limit``.

    Example::

        >>> from flask import Flask
        >>> app = Flask(__name__)
        >>> app.config["KIT_AUTH_TRUSTED_PROXIES"] = "10.0.0.0/8"
        >>> KitAuth(app).trusted_proxies_for(app)
        TrustedProxies(['10.0.0.0/8'])
        >>> app.config["KIT_AUTH_TRUSTED_PROXIES"] = "10.0.0.300/8"
        >>> KitAuth(app)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        kit_auth.exceptions.ConfigurationError: KIT_AUTH_TRUSTED_PROXIES is invalid: ...
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        tokens: TokenManager | None = None,
        api_keys: ApiKeys | None = None,
        load_principal: Loader | None = None,
        hierarchy: RoleHierarchy | None = None,
        permissions: Permissions | None = None,
        trusted_proxies: TrustedProxies | None = None,
        api_key_header: str | None = None,
        realm: str | None = None,
        rate_limit_storage: RateLimitStorage | None = None,
    ) -> None:
        check_setup(tokens, api_keys, load_principal, api_key_header or "X-API-Key")
        if is_async_callable(load_principal):
            raise ConfigurationError("KitAuth (Flask) needs a synchronous load_principal")
        if hierarchy is not None and not isinstance(hierarchy, RoleHierarchy):
            raise ConfigurationError("hierarchy must be a kit_auth.roles.RoleHierarchy")
        if permissions is not None and not isinstance(permissions, Permissions):
            raise ConfigurationError("permissions must be a kit_auth.roles.Permissions")
        if trusted_proxies is not None and not isinstance(trusted_proxies, TrustedProxies):
            raise ConfigurationError("trusted_proxies must be a TrustedProxies or None")
        if rate_limit_storage is not None and not isinstance(rate_limit_storage, RateLimitStorage):
            raise ConfigurationError("rate_limit_storage must be a rate-limit storage")
        self.tokens = tokens
        self.api_keys = api_keys
        self.load_principal: Loader = load_principal or default_principal
        self.permissions = permissions
        self.hierarchy = hierarchy or (
            permissions.hierarchy if permissions is not None else DEFAULT_HIERARCHY
        )
        self._trusted_proxies = trusted_proxies
        self._api_key_header = api_key_header
        self._realm = realm
        self._storage = rate_limit_storage
        self.app: Flask | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read and validate ``KIT_AUTH_*`` settings (a bad value fails here, naming the
        key), then register the problem+json error handler."""
        state = _AppState(self, app.config)
        app.extensions[EXTENSION_KEY] = state
        app.register_error_handler(KitAuthError, _problem_response)
        self.app = app

    def trusted_proxies_for(self, app: Flask) -> TrustedProxies | None:
        """The trusted proxies in effect for ``app``."""
        return _state(app).trusted_proxies


class _AppState:
    """Per-app settings of one :class:`KitAuth`."""

    def __init__(self, ext: KitAuth, config: Mapping[str, Any]) -> None:
        self.ext = ext
        self.trusted_proxies = ext._trusted_proxies
        if self.trusted_proxies is None:
            try:
                self.trusted_proxies = _trusted_proxies(config.get("KIT_AUTH_TRUSTED_PROXIES"))
            except ConfigurationError as exc:
                raise ConfigurationError(
                    f"KIT_AUTH_TRUSTED_PROXIES is invalid: {exc} (use a list of proxy CIDRs "
                    "such as ['10.0.0.0/8'], a comma-separated string, or a number of hops)"
                ) from None
        header = ext._api_key_header or config.get("KIT_AUTH_API_KEY_HEADER", "X-API-Key")
        try:
            check_setup(None, None, None, header)
        except ConfigurationError:
            raise ConfigurationError(
                f"KIT_AUTH_API_KEY_HEADER must be a header name such as 'X-API-Key', not {header!r}"
            ) from None
        self.api_key_header: str = header
        realm = ext._realm or config.get("KIT_AUTH_REALM", "api")
        if not isinstance(realm, str) or not realm or not realm.isprintable() or '"' in realm:
            raise ConfigurationError(
                f"KIT_AUTH_REALM must be a printable string without quotes, not {realm!r}"
            )
        self.realm: str = realm
        storage = ext._storage
        if storage is None:
            setting = config.get("KIT_AUTH_RATELIMIT_STORAGE", "memory")
            if setting == "memory":
                storage = MemoryRateLimitStorage()
            elif isinstance(setting, str) and setting.startswith(
                ("redis://", "rediss://", "unix://")
            ):
                storage = RedisRateLimitStorage(setting)
            else:
                raise ConfigurationError(
                    "KIT_AUTH_RATELIMIT_STORAGE must be 'memory' or a redis:// URL"
                )
        self.storage: RateLimitStorage = storage
        self.limiters: dict[RateLimit, RateLimiter] = {}

    def limiter(self, limit: RateLimit) -> RateLimiter:
        limiter = self.limiters.get(limit)
        if limiter is None:
            limiter = self.limiters.setdefault(limit, RateLimiter(limit, storage=self.storage))
        return limiter


def _state(app: Flask | None = None) -> _AppState:
    target = current_app if app is None else app
    state = target.extensions.get(EXTENSION_KEY)
    if not isinstance(state, _AppState):
        raise ConfigurationError("KitAuth is not initialised on this app: call KitAuth(app)")
    return state


def _authenticate() -> Authenticated | None:
    """Verify the request's credential once per request (cached on ``g``)."""
    cached: Authenticated | Literal[False] | None = g.get(_G_KEY, False)
    if cached is not False:
        return cached
    state = _state()
    ext = state.ext
    credential = read_credential(
        request.headers.get("Authorization"),
        request.headers.get(state.api_key_header),
        ext.api_keys,
    )
    result: Authenticated | None = None
    if credential is not None:
        if credential.kind == "api_key":
            if ext.api_keys is None:
                raise InvalidToken("API keys are not accepted here; send a Bearer token.")
            source: Any = ext.api_keys.verify(credential.value)
        else:
            if ext.tokens is None:
                raise InvalidToken("Bearer tokens are not accepted here; send an API key.")
            source = ext.tokens.verify(credential.value)
        principal = check_principal(ext.load_principal(source), source)
        result = Authenticated(principal, source, frozenset(source.scopes))
    setattr(g, _G_KEY, result)
    return result


def get_principal() -> Principal | None:
    """The request's principal, or None when no credential was sent. A credential that
    does not verify raises (401).

    >>> get_principal  # doctest: +ELLIPSIS
    <function get_principal at ...>
    """
    authenticated = _authenticate()
    return None if authenticated is None else authenticated.principal


current_principal: Principal | None = LocalProxy(get_principal)  # type: ignore[assignment]
"""The request's principal (a proxy; falsy when anonymous)."""


def _required() -> Authenticated:
    authenticated = _authenticate()
    if authenticated is None:
        raise NotAuthenticated("Authentication required: send a Bearer token or an API key.")
    require_active(authenticated.principal)
    return authenticated


def _tenant(tenant_from: TenantFrom | None, view_args: Mapping[str, Any]) -> str | None:
    if tenant_from is None:
        return None
    if isinstance(tenant_from, str):
        if tenant_from not in view_args:
            raise ConfigurationError(
                f"tenant_from={tenant_from!r} names no URL variable of this route "
                f"(it has: {', '.join(view_args) or 'none'})"
            )
        return str(view_args[tenant_from])
    return tenant_from(view_args)


def _check_tenant_from(tenant_from: object) -> None:
    if tenant_from is not None and not isinstance(tenant_from, str) and not callable(tenant_from):
        raise ConfigurationError(
            "tenant_from must be the name of a URL variable or a callable(view_args) -> tenant id"
        )


@overload
def auth_required(view: F) -> F: ...
@overload
def auth_required(*, optional: bool = False) -> Callable[[F], F]: ...
def auth_required(view: F | None = None, *, optional: bool = False) -> F | Callable[[F], F]:
    """Require an authenticated, active principal (``@auth_required``), or only verify
    a credential if one is sent (``@auth_required(optional=True)``: anonymous requests
    pass, a bad credential is still a 401 and an inactive account a 403).

    >>> callable(auth_required(optional=True))
    True
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if optional:
                authenticated = _authenticate()
                if authenticated is not None:
                    require_active(authenticated.principal)
            else:
                _required()
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    if view is not None:
        if not callable(view):
            raise ConfigurationError("auth_required decorates a view function")
        return decorate(view)
    return decorate


def role_required(*roles: str, tenant_from: TenantFrom | None = None) -> Callable[[F], F]:
    """Require every role in ``roles`` (directly or through the hierarchy). With
    ``tenant_from`` (a URL variable name or ``callable(view_args)``) the roles must be
    held in that tenant (:func:`kit_auth.authz.effective_roles`).

    >>> role_required()
    Traceback (most recent call last):
    ...
    kit_auth.exceptions.ConfigurationError: role_required needs at least one role
    """
    if not roles or not all(isinstance(role, str) and role for role in roles):
        raise ConfigurationError("role_required needs at least one role")
    _check_tenant_from(tenant_from)

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            authenticated = _required()
            tenant_id = _tenant(tenant_from, kwargs)
            require_roles(
                authenticated.principal,
                *roles,
                hierarchy=_state().ext.hierarchy,
                tenant_id=tenant_id,
            )
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def permission_required(
    permission: str, *, tenant_from: TenantFrom | None = None
) -> Callable[[F], F]:
    """Require ``permission`` from the extension's :class:`Permissions` (403 naming it).

    >>> callable(permission_required("posts.delete"))
    True
    """
    if not isinstance(permission, str) or not permission:
        raise ConfigurationError("permission_required needs a permission name")
    _check_tenant_from(tenant_from)

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            permissions = _state().ext.permissions
            if permissions is None:
                raise ConfigurationError(
                    "permission_required needs KitAuth(permissions=Permissions({...}))"
                )
            authenticated = _required()
            require_permission(
                authenticated.principal,
                permission,
                permissions=permissions,
                tenant_id=_tenant(tenant_from, kwargs),
            )
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def scope_required(*scopes: str) -> Callable[[F], F]:
    """Require every scope (wildcards as in :mod:`kit_auth.scopes`) on the request's
    credential; a 403 carries an ``insufficient_scope`` challenge.

    >>> scope_required("users:")
    Traceback (most recent call last):
    ...
    kit_auth.exceptions.ConfigurationError: scope_required: scope 'users:' is invalid: use ':'-separated segments of letters, digits, '_', '-' or '.', with an optional final '*' (e.g. 'users:read', 'users:*')
    """
    required = check_scopes(scopes, "scope_required")
    if not required:
        raise ConfigurationError("scope_required needs at least one scope")

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            authenticated = _required()
            require_scopes(authenticated.principal, *required, granted=authenticated.scopes)
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def tenant_required(
    tenant_from: TenantFrom = "tenant_id", *, allow_platform_admin: bool = False
) -> Callable[[F], F]:
    """Require the route's tenant (URL variable ``tenant_from``) to be the principal's
    (:func:`kit_auth.authz.require_same_tenant`); platform admins pass only with
    ``allow_platform_admin=True``.

    >>> callable(tenant_required("org"))
    True
    """
    _check_tenant_from(tenant_from)
    if not isinstance(allow_platform_admin, bool):
        raise ConfigurationError("allow_platform_admin must be a bool")

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            authenticated = _required()
            tenant_id = _tenant(tenant_from, kwargs)
            require_same_tenant(
                authenticated.principal,
                tenant_id,  # type: ignore[arg-type]  # validated by the guard
                allow_platform_admin=allow_platform_admin,
            )
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def rate_limit(
    limit: RateLimiter | RateLimit | str, *, key: KeyFunc = by_ip, cost: int = 1
) -> Callable[[F], F]:
    """Rate-limit a route. ``limit`` is a :class:`RateLimiter` or a policy (``"10/minute"``,
    stored in ``KIT_AUTH_RATELIMIT_STORAGE``). ``key`` builds the bucket key from a
    :class:`RequestInfo` (``by_ip``, ``by_user``, ``by_ip_and_user`` or your own); the
    client address honours ``X-Forwarded-For`` only from trusted proxies. Allowed
    responses carry ``RateLimit``/``RateLimit-Policy``; refusals are 429 with
    ``Retry-After``.

    >>> rate_limit("10/fortnight")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kit_auth.exceptions.ConfigurationError: Cannot parse rate limit '10/fortnight'; ...
    """
    fixed = limit if isinstance(limit, RateLimiter) else None
    policy = None if fixed is not None else RateLimit.coerce(limit)  # type: ignore[arg-type]
    if not callable(key):
        raise ConfigurationError("rate_limit key must be a callable(RequestInfo) -> str")
    if type(cost) is not int or cost < 1:
        raise ConfigurationError(f"rate_limit cost must be an integer >= 1, got {cost!r}")

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            state = _state()
            limiter = fixed if fixed is not None else state.limiter(policy)  # type: ignore[arg-type]
            authenticated = _authenticate()
            info = RequestInfo(
                client_address(
                    request.remote_addr,
                    request.headers.get("X-Forwarded-For"),
                    trusted_proxies=state.trusted_proxies,
                ),
                headers=request.headers,  # type: ignore[arg-type]
                principal_id=None if authenticated is None else authenticated.principal.id,
                path=request.path,
            )
            decision = limiter.check(key(info), cost)
            response = make_response(function(*args, **kwargs))
            for name, value in decision.headers().items():
                response.headers.setdefault(name, value)
            return response

        return wrapper  # type: ignore[return-value]

    return decorate


def _problem_response(exc: KitAuthError) -> Response:
    response: Response = jsonify(exc.problem())
    response.status_code = exc.status
    response.mimetype = "application/problem+json"
    state = current_app.extensions.get(EXTENSION_KEY)
    realm = state.realm if isinstance(state, _AppState) else "api"
    response.headers.update(error_headers(exc, realm))
    return response


# OAuth/OIDC login. kit_auth.oidc does the whole flow; these routes only carry its signed
# state token from /login to /callback in a short-lived HttpOnly, SameSite=Lax cookie
# scoped to the blueprint's prefix (no Flask session involved), deleted by /callback.


def _oidc_prefix(client: OIDCClient, prefix: str | None) -> str:
    if not isinstance(client, OIDCClient):
        raise ConfigurationError("client must be a kit_auth.oidc.OIDCClient.")
    value = f"/auth/{client.provider.name}" if prefix is None else prefix
    if not isinstance(value, str) or not value.startswith("/") or value.endswith("/"):
        raise ConfigurationError(
            f"OAuth URL prefix {value!r} must start with '/' and not end with '/'."
        )
    return value


def oauth_blueprint(
    client: OIDCClient,
    *,
    on_login: Callable[[Identity], ResponseReturnValue],
    url_prefix: str | None = None,
    cookie_secure: bool = True,
    redirect_uri: str | None = None,
) -> Blueprint:
    """Sign in with an OIDC provider: ``GET {url_prefix}/login`` and ``/callback``.

    ``/login`` redirects to the provider and keeps the signed state token in an HttpOnly,
    ``SameSite=Lax`` cookie scoped to ``url_prefix`` (default ``/auth/{provider name}``)
    for 10 minutes. ``/callback`` deletes the cookie, finishes the login with
    :meth:`OIDCClient.complete` and returns ``on_login(identity)``: sign the user in
    there. A forged state, a provider error or an invalid ID token raises
    :class:`~kit_auth.exceptions.OAuthError` (401), a refused identity
    :class:`~kit_auth.exceptions.IdentityRefused` (403); :class:`KitAuth` renders them as
    problem+json. The callback URL is ``url_for(..., _external=True)`` unless
    ``redirect_uri`` is given (behind a proxy, use ``ProxyFix`` or pass it).

    >>> from kit_auth.oidc import OIDCClient, OIDCProvider
    >>> client = OIDCClient(OIDCProvider.google("id", "secret"), state_secret=b"s" * 32)
    >>> bp = oauth_blueprint(client, on_login=lambda identity: identity.subject)
    >>> bp.url_prefix
    '/auth/google'
    """
    prefix = _oidc_prefix(client, url_prefix)
    if not callable(on_login):
        raise ConfigurationError("on_login must be a callable taking the Identity.")
    if not isinstance(cookie_secure, bool):
        raise ConfigurationError("cookie_secure must be True or False.")
    name = client.provider.name
    cookie = f"kit_oidc_{name}"
    blueprint = Blueprint(f"kit_auth_oidc_{name}", __name__, url_prefix=prefix)

    @blueprint.get("/login")
    def login() -> ResponseReturnValue:
        callback_url = redirect_uri or url_for(f"{blueprint.name}.callback", _external=True)
        start = client.begin(callback_url)
        response = redirect(start.url, code=302)
        response.set_cookie(
            cookie,
            start.state_token,
            max_age=600,
            path=prefix,
            secure=cookie_secure,
            httponly=True,
            samesite="Lax",
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @blueprint.get("/callback")
    def callback() -> ResponseReturnValue:
        @after_this_request
        def forget_state(response: Response) -> Response:
            response.delete_cookie(
                cookie, path=prefix, secure=cookie_secure, httponly=True, samesite="Lax"
            )
            return response

        identity = client.complete(request.args.to_dict(), request.cookies.get(cookie))
        return make_response(on_login(identity))

    return blueprint
