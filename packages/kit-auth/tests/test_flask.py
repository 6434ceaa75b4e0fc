"""The Flask adapter with real TokenManager, ApiKeys and RateLimiter (memory and Redis)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kit_auth.apikeys import ApiKeyRecord, ApiKeys
from kit_auth.exceptions import BackendUnavailable, ConfigurationError
from kit_auth.flask import (
    KitAuth,
    auth_required,
    current_principal,
    get_principal,
    permission_required,
    rate_limit,
    role_required,
    scope_required,
    tenant_required,
)
from kit_auth.keys import KeySet
from kit_auth.principal import SimplePrincipal
from kit_auth.ratelimit import (
    RateLimiter,
    RedisRateLimitStorage,
    TrustedProxies,
    by_ip,
    by_user,
)
from kit_auth.roles import Permissions
from kit_auth.tokens import TokenClaims, TokenManager

ISSUER = "https://api.test"


@pytest.fixture
def tokens() -> TokenManager:
    return TokenManager(KeySet.generate("HS256"), issuer=ISSUER, audience="test-api")


@pytest.fixture
def api_keys() -> ApiKeys:
    return ApiKeys(secrets.token_bytes(32), prefix="kit", touch_interval=0)


def build_app(tokens: TokenManager, api_keys: ApiKeys, **options: Any) -> Flask:
    app = Flask(__name__)
    config = options.pop("config", {})
    app.config.update(config)
    KitAuth(
        app,
        tokens=tokens,
        api_keys=api_keys,
        permissions=Permissions({"posts.delete": ["moderator"]}),
        **options,
    )

    @app.get("/me")
    @auth_required
    def me() -> dict[str, Any]:
        p = get_principal()
        assert p is not None
        return {"id": p.id, "roles": sorted(p.roles), "tenant": p.tenant_id}

    @app.get("/maybe")
    @auth_required(optional=True)
    def maybe() -> dict[str, Any]:
        return {"id": current_principal.id if current_principal else None}

    @app.get("/mod")
    @role_required("moderator")
    def mod() -> str:
        return "ok"

    @app.get("/t/<tenant_id>/admin")
    @role_required("admin", tenant_from="tenant_id")
    def tenant_admin(tenant_id: str) -> str:
        return tenant_id

    @app.get("/t/<tenant_id>/doc")
    @tenant_required("tenant_id")
    def tenant_doc(tenant_id: str) -> str:
        return tenant_id

    @app.get("/t/<tenant_id>/ops")
    @tenant_required("tenant_id", allow_platform_admin=True)
    def tenant_ops(tenant_id: str) -> str:
        return tenant_id

    @app.delete("/posts/1")
    @permission_required("posts.delete")
    def delete_post() -> str:
        return "deleted"

    @app.get("/users")
    @scope_required("users:read")
    def users() -> str:
        return "users"

    @app.get("/limited")
    @rate_limit("2/minute", key=by_ip)
    def limited() -> str:
        return "fine"

    return app


@pytest.fixture
def client(tokens: TokenManager, api_keys: ApiKeys) -> FlaskClient:
    return build_app(tokens, api_keys).test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(response: Any) -> dict[str, Any]:
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = json.loads(response.data)
    assert body["status"] == response.status_code
    return body


def test_anonymous_gets_a_bare_bearer_challenge(client: FlaskClient) -> None:
    response = client.get("/me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert problem(response)["type"].endswith("/unauthenticated")
    assert client.get("/maybe").get_json() == {"id": None}


def test_a_valid_token_authenticates(client: FlaskClient, tokens: TokenManager) -> None:
    token = tokens.issue_access("u1", roles=["editor"], tenant_id="acme")
    response = client.get("/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.get_json() == {"id": "u1", "roles": ["editor"], "tenant": "acme"}
    assert client.get("/maybe", headers=bearer(token)).get_json() == {"id": "u1"}


def test_bad_tokens_get_an_invalid_token_challenge(
    client: FlaskClient, tokens: TokenManager
) -> None:
    for headers in (
        bearer("not-a-jwt"),
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer a b"},
    ):
        response = client.get("/me", headers=headers)
        assert response.status_code == 401, headers
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith(
            'Bearer realm="api", error="invalid_token", error_description="'
        )
    # a bad credential is a 401 even where authentication is optional
    assert client.get("/maybe", headers=bearer("not-a-jwt")).status_code == 401
    token = tokens.issue_access("u1")
    tokens.revoke(token)
    response = client.get("/me", headers=bearer(token))
    assert response.status_code == 401
    assert problem(response)["type"].endswith("/token-revoked")
    # other Authorization schemes are not ours: anonymous
    assert client.get("/me", headers={"Authorization": "Basic dTpw"}).status_code == 401


def test_api_keys_in_the_header_or_as_bearer(client: FlaskClient, api_keys: ApiKeys) -> None:
    key = api_keys.create("svc-1", scopes=["users:read"], tenant_id="acme").token
    for headers in ({"X-API-Key": key}, bearer(key)):
        response = client.get("/users", headers=headers)
        assert response.status_code == 200, headers
        assert client.get("/me", headers=headers).get_json()["id"] == "svc-1"
    response = client.get("/me", headers={"X-API-Key": key[:-2] + "xx"})
    assert response.status_code == 401
    assert problem(response)["type"].endswith("/invalid-api-key")
    # never from the query string
    assert client.get(f"/me?api_key={key}").status_code == 401
    # two credentials at once are refused
    response = client.get("/me", headers={"X-API-Key": key, "Authorization": "Bearer x.y.z"})
    assert response.status_code == 400


def test_roles_and_hierarchy(client: FlaskClient, tokens: TokenManager) -> None:
    assert (
        client.get("/mod", headers=bearer(tokens.issue_access("a", roles=["admin"]))).status_code
        == 200
    )
    response = client.get("/mod", headers=bearer(tokens.issue_access("e", roles=["editor"])))
    assert response.status_code == 403
    body = problem(response)
    assert body["type"].endswith("/missing-role")
    assert "moderator" in body["detail"]
    assert client.get("/mod").status_code == 401


def test_permission_required_names_the_permission(
    client: FlaskClient, tokens: TokenManager
) -> None:
    ok = client.delete("/posts/1", headers=bearer(tokens.issue_access("a", roles=["admin"])))
    assert ok.status_code == 200
    response = client.delete("/posts/1", headers=bearer(tokens.issue_access("u", roles=["user"])))
    assert response.status_code == 403
    assert "posts.delete" in problem(response)["detail"]


def test_scope_required_answers_with_an_insufficient_scope_challenge(
    client: FlaskClient, tokens: TokenManager
) -> None:
    assert (
        client.get(
            "/users", headers=bearer(tokens.issue_access("u", scopes=["users:*"]))
        ).status_code
        == 200
    )
    response = client.get("/users", headers=bearer(tokens.issue_access("u", scopes=["posts:read"])))
    assert response.status_code == 403
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="users:read"' in challenge
    assert problem(response)["type"].endswith("/insufficient-scope")
    with pytest.raises(ConfigurationError):
        scope_required("users::read")


def test_scopes_come_from_the_credential_not_the_loaded_user(
    tokens: TokenManager, api_keys: ApiKeys
) -> None:
    def load(source: TokenClaims | ApiKeyRecord) -> SimplePrincipal:
        # the app's user has every scope; the key it issued does not
        return SimplePrincipal(source.subject, roles={"admin"}, scopes={"*"})

    client = build_app(tokens, api_keys, load_principal=load).test_client()
    key = api_keys.create("u1", scopes=["posts:read"]).token
    assert client.get("/users", headers={"X-API-Key": key}).status_code == 403
    assert client.get("/mod", headers={"X-API-Key": key}).status_code == 200


def test_inactive_principals_get_403_with_the_reason(
    tokens: TokenManager, api_keys: ApiKeys
) -> None:
    def load(source: TokenClaims | ApiKeyRecord) -> SimplePrincipal | None:
        if source.subject == "gone":
            return None
        return SimplePrincipal(
            source.subject, active=False, inactive_reason="pending", roles={"admin"}
        )

    client = build_app(tokens, api_keys, load_principal=load).test_client()
    for path in ("/me", "/maybe", "/mod", "/users"):
        response = client.get(path, headers=bearer(tokens.issue_access("u1", scopes=["*"])))
        assert response.status_code == 403, path
        body = problem(response)
        assert body["reason"] == "pending"
        assert body["type"].endswith("/inactive-account")
    response = client.get("/me", headers=bearer(tokens.issue_access("gone")))
    assert response.status_code == 401
    assert "no longer exists" in problem(response)["detail"]


def test_tenant_guards_in_routes(client: FlaskClient, tokens: TokenManager) -> None:
    acme_admin = bearer(tokens.issue_access("u1", roles=["admin"], tenant_id="acme"))
    assert client.get("/t/acme/admin", headers=acme_admin).status_code == 200
    assert client.get("/t/acme/doc", headers=acme_admin).status_code == 200
    response = client.get("/t/globex/admin", headers=acme_admin)
    assert response.status_code == 403
    response = client.get("/t/globex/doc", headers=acme_admin)
    assert response.status_code == 403
    assert problem(response)["type"].endswith("/tenant-mismatch")
    assert "globex" not in problem(response)["detail"]


def test_platform_admin_passes_only_where_the_route_allows(
    tokens: TokenManager, api_keys: ApiKeys
) -> None:
    def load(source: TokenClaims | ApiKeyRecord) -> SimplePrincipal:
        return SimplePrincipal(source.subject, platform_admin=True, tenant_id="operator")

    client = build_app(tokens, api_keys, load_principal=load).test_client()
    headers = bearer(tokens.issue_access("ops"))
    assert client.get("/t/acme/doc", headers=headers).status_code == 403
    assert client.get("/t/acme/ops", headers=headers).status_code == 200


def test_rate_limit_headers_on_success_and_429(client: FlaskClient) -> None:
    first = client.get("/limited")
    assert first.status_code == 200
    assert first.headers["RateLimit-Policy"] == '"default";q=2;w=60'
    assert first.headers["RateLimit"].startswith('"default";r=1;')
    assert client.get("/limited").status_code == 200
    refused = client.get("/limited")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit"].startswith('"default";r=0;')
    assert "RateLimit-Policy" in refused.headers
    assert problem(refused)["type"].endswith("/rate-limited")


def xff_app(tokens: TokenManager, api_keys: ApiKeys, **options: Any) -> FlaskClient:
    app = build_app(tokens, api_keys, **options)
    return app.test_client()


def test_forwarded_for_is_ignored_without_trusted_proxies(
    tokens: TokenManager, api_keys: ApiKeys
) -> None:
    client = xff_app(tokens, api_keys)
    env = {"REMOTE_ADDR": "10.0.0.2"}
    codes = [
        client.get(
            "/limited", headers={"X-Forwarded-For": f"203.0.113.{i}"}, environ_base=env
        ).status_code
        for i in range(3)
    ]
    assert codes == [200, 200, 429]  # a fresh XFF value does not get a fresh bucket


def test_forwarded_for_is_honoured_from_trusted_proxies(
    tokens: TokenManager, api_keys: ApiKeys
) -> None:
    client = xff_app(tokens, api_keys, config={"KIT_AUTH_TRUSTED_PROXIES": ["10.0.0.0/8"]})
    env = {"REMOTE_ADDR": "10.0.0.2"}
    codes = [
        client.get(
            "/limited", headers={"X-Forwarded-For": f"203.0.113.{i}"}, environ_base=env
        ).status_code
        for i in range(3)
    ]
    assert codes == [200, 200, 200]  # three different clients behind the proxy
    # an untrusted peer's header is still ignored
    spoof = {"REMOTE_ADDR": "198.51.100.7"}
    codes = [
        client.get(
            "/limited", headers={"X-Forwarded-For": f"192.0.2.{i}"}, environ_base=spoof
        ).status_code
        for i in range(3)
    ]
    assert codes == [200, 200, 429]


def test_rate_limit_by_user_with_a_limiter_on_real_redis(
    redis_clean_url: str, tokens: TokenManager, api_keys: ApiKeys
) -> None:
    storage = RedisRateLimitStorage(redis_clean_url)
    limiter = RateLimiter("1/minute", storage=storage)
    app = build_app(tokens, api_keys)

    @app.post("/send")
    @auth_required
    @rate_limit(limiter, key=by_user, cost=1)
    def send() -> str:
        return "sent"

    client = app.test_client()
    alice = bearer(tokens.issue_access("alice"))
    bob = bearer(tokens.issue_access("bob"))
    assert client.post("/send", headers=alice).status_code == 200
    assert client.post("/send", headers=alice).status_code == 429
    assert client.post("/send", headers=bob).status_code == 200
    storage.close()


def test_a_storage_outage_with_closed_failure_is_a_503_with_a_fixed_detail(
    tokens: TokenManager, api_keys: ApiKeys
) -> None:
    storage = RedisRateLimitStorage("redis://127.0.0.1:1/0", socket_timeout=0.2)
    limiter = RateLimiter("5/minute", storage=storage, failure="closed")
    app = build_app(tokens, api_keys)

    @app.get("/login")
    @rate_limit(limiter)
    def login() -> str:
        return "ok"

    response = app.test_client().get("/login")
    assert response.status_code == 503
    assert problem(response)["detail"] == BackendUnavailable("x").problem()["detail"]
    assert "127.0.0.1" not in response.get_data(as_text=True)
    storage.close()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("KIT_AUTH_TRUSTED_PROXIES", "not-an-ip", "KIT_AUTH_TRUSTED_PROXIES"),
        ("KIT_AUTH_TRUSTED_PROXIES", 3.5, "KIT_AUTH_TRUSTED_PROXIES"),
        ("KIT_AUTH_API_KEY_HEADER", "X API Key", "KIT_AUTH_API_KEY_HEADER"),
        ("KIT_AUTH_REALM", 'a"b', "KIT_AUTH_REALM"),
        ("KIT_AUTH_RATELIMIT_STORAGE", "mongodb://x", "KIT_AUTH_RATELIMIT_STORAGE"),
    ],
)
def test_bad_config_fails_at_init_naming_the_key(key: str, value: object, message: str) -> None:
    app = Flask(__name__)
    app.config[key] = value
    with pytest.raises(ConfigurationError, match=message):
        KitAuth(app)


def test_constructor_and_decorator_validation(tokens: TokenManager) -> None:
    with pytest.raises(ConfigurationError):
        KitAuth(tokens="nope")  # type: ignore[arg-type]

    async def aload(source: object) -> None:
        return None

    with pytest.raises(ConfigurationError, match="synchronous"):
        KitAuth(load_principal=aload)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        role_required()
    with pytest.raises(ConfigurationError):
        rate_limit("2/minute", cost=0)
    with pytest.raises(ConfigurationError):
        tenant_required(5)  # type: ignore[arg-type]
    app = Flask(__name__)
    KitAuth(app, tokens=tokens, trusted_proxies=TrustedProxies(hops=1))

    @app.get("/x/<org>")
    @role_required("user", tenant_from="tenant_id")
    def wrong(org: str) -> str:
        return org

    response = app.test_client().get(
        "/x/acme", headers=bearer(tokens.issue_access("u", roles=["user"]))
    )
    assert response.status_code == 500
    assert problem(response)["type"].endswith("/auth-misconfigured")


def test_permission_required_without_permissions_is_a_misconfiguration(
    tokens: TokenManager,
) -> None:
    app = Flask(__name__)
    KitAuth(app, tokens=tokens)

    @app.get("/p")
    @permission_required("posts.delete")
    def p() -> str:
        return "p"

    assert app.test_client().get("/p", headers=bearer(tokens.issue_access("u"))).status_code == 500
