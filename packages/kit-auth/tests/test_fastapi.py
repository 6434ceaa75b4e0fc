"""The FastAPI adapter with real TokenManager, ApiKeys and RateLimiter, over httpx.ASGITransport."""

# No `from __future__ import annotations` here: the routes are declared inside build(), and
# FastAPI must evaluate their Annotated[..., Depends(auth.x)] hints, which name locals.

import secrets
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Security

from kit_auth.apikeys import ApiKeyRecord, ApiKeys
from kit_auth.exceptions import ConfigurationError
from kit_auth.fastapi import FastAPIAuth, install_problem_handlers
from kit_auth.keys import KeySet
from kit_auth.principal import Principal, SimplePrincipal
from kit_auth.ratelimit import (
    AsyncRedisRateLimitStorage,
    RateLimiter,
    TrustedProxies,
    by_user,
)
from kit_auth.roles import Permissions
from kit_auth.tokens import TokenClaims, TokenManager


@pytest.fixture
def tokens() -> TokenManager:
    return TokenManager(KeySet.generate("HS256"), issuer="https://api.test", audience="t")


@pytest.fixture
def api_keys() -> ApiKeys:
    return ApiKeys(secrets.token_bytes(32), touch_interval=0)


def build(
    tokens: TokenManager,
    api_keys: ApiKeys,
    limiter: RateLimiter | None = None,
    **options: Any,
) -> tuple[FastAPI, FastAPIAuth]:
    app = FastAPI()
    install_problem_handlers(app)
    auth = FastAPIAuth(
        tokens=tokens,
        api_keys=api_keys,
        permissions=Permissions({"posts.delete": ["moderator"]}),
        scopes={"users:read": "Read users", "users:write": "Change users"},
        **options,
    )
    limiter = limiter or RateLimiter("2/minute")

    @app.get("/me")
    async def me(p: Annotated[Principal, Depends(auth.principal)]) -> dict[str, Any]:
        return {"id": p.id, "tenant": p.tenant_id}

    @app.get("/maybe")
    async def maybe(
        p: Annotated[Principal | None, Depends(auth.optional_principal)],
    ) -> dict[str, Any]:
        return {"id": p.id if p else None}

    @app.get("/users")
    async def users(
        p: Annotated[Principal, Security(auth.principal, scopes=["users:read"])],
    ) -> str:
        return p.id

    @app.get("/mod", dependencies=[Depends(auth.require_roles("moderator"))])
    async def mod() -> str:
        return "ok"

    @app.get(
        "/t/{tenant_id}/admin",
        dependencies=[Depends(auth.require_roles("admin", tenant_from="tenant_id"))],
    )
    async def tenant_admin(tenant_id: str) -> str:
        return tenant_id

    @app.delete("/posts/1", dependencies=[Depends(auth.require_permission("posts.delete"))])
    async def delete_post() -> str:
        return "deleted"

    @app.get("/limited", dependencies=[Depends(auth.rate_limit(limiter))])
    async def limited() -> str:
        return "fine"

    return app, auth


async def call(
    app: FastAPI, method: str, path: str, client_ip: str = "127.0.0.1", **kwargs: Any
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(client_ip, 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code
    return body


async def test_anonymous_and_bad_tokens_get_bearer_challenges(
    tokens: TokenManager, api_keys: ApiKeys
) -> None:
    app, _ = build(tokens, api_keys)
    response = await call(app, "GET", "/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'
    assert (await call(app, "GET", "/maybe")).json() == {"id": None}
    response = await call(app, "GET", "/me", headers=bearer("garbage"))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert problem(response)["type"].endswith("/invalid-token")


async def test_tokens_and_api_keys_authenticate(tokens: TokenManager, api_keys: ApiKeys) -> None:
    app, _ = build(tokens, api_keys)
    response = await call(
        app, "GET", "/me", headers=bearer(tokens.issue_access("u1", tenant_id="acme"))
    )
    assert response.json() == {"id": "u1", "tenant": "acme"}
    key = api_keys.create("svc", scopes=["users:read"]).token
    for headers in ({"X-API-Key": key}, bearer(key)):
        assert (await call(app, "GET", "/users", headers=headers)).text == '"svc"'
    assert (await call(app, "GET", f"/me?api_key={key}")).status_code == 401


async def test_security_scopes(tokens: TokenManager, api_keys: ApiKeys) -> None:
    app, _ = build(tokens, api_keys)
    ok = await call(
        app, "GET", "/users", headers=bearer(tokens.issue_access("u", scopes=["users:*"]))
    )
    assert ok.status_code == 200
    response = await call(
        app, "GET", "/users", headers=bearer(tokens.issue_access("u", scopes=["posts:read"]))
    )
    assert response.status_code == 403
    assert 'error="insufficient_scope", scope="users:read"' in response.headers["www-authenticate"]
    assert problem(response)["type"].endswith("/insufficient-scope")


async def test_openapi_lists_schemes_and_scopes(tokens: TokenManager, api_keys: ApiKeys) -> None:
    app, _ = build(tokens, api_keys)
    schema = app.openapi()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["OAuth2"]["flows"]["clientCredentials"]["scopes"] == {
        "users:read": "Read users",
        "users:write": "Change users",
    }
    assert schemes["APIKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    security = schema["paths"]["/users"]["get"]["security"]
    assert {"OAuth2": ["users:read"]} in security
    assert {"OAuth2": []} in schema["paths"]["/me"]["get"]["security"]


async def test_roles_permissions_and_tenants(tokens: TokenManager, api_keys: ApiKeys) -> None:
    app, _ = build(tokens, api_keys)
    admin = bearer(tokens.issue_access("a", roles=["admin"], tenant_id="acme"))
    editor = bearer(tokens.issue_access("e", roles=["editor"]))
    assert (await call(app, "GET", "/mod", headers=admin)).status_code == 200
    response = await call(app, "GET", "/mod", headers=editor)
    assert response.status_code == 403
    assert "moderator" in problem(response)["detail"]
    assert (await call(app, "DELETE", "/posts/1", headers=admin)).status_code == 200
    response = await call(app, "DELETE", "/posts/1", headers=editor)
    assert "posts.delete" in problem(response)["detail"]
    assert (await call(app, "GET", "/t/acme/admin", headers=admin)).status_code == 200
    response = await call(app, "GET", "/t/globex/admin", headers=admin)
    assert response.status_code == 403


async def test_inactive_principal_from_an_async_loader(
    tokens: TokenManager, api_keys: ApiKeys
) -> None:
    async def load(source: TokenClaims | ApiKeyRecord) -> Principal | None:
        if source.subject == "gone":
            return None
        return SimplePrincipal(source.subject, active=False, inactive_reason="disabled")

    app, _ = build(tokens, api_keys, load_principal=load)
    for path in ("/me", "/maybe", "/users"):
        response = await call(
            app, "GET", path, headers=bearer(tokens.issue_access("u", scopes=["*"]))
        )
        assert response.status_code == 403, path
        assert problem(response)["reason"] == "disabled"
    response = await call(app, "GET", "/me", headers=bearer(tokens.issue_access("gone")))
    assert response.status_code == 401


async def test_sync_loader_runs_and_scopes_stay_the_credentials(
    tokens: TokenManager, api_keys: ApiKeys
) -> None:
    def load(source: TokenClaims | ApiKeyRecord) -> Principal:
        return SimplePrincipal(source.subject, roles={"admin"}, scopes={"*"})

    app, _ = build(tokens, api_keys, load_principal=load)
    key = api_keys.create("u1", scopes=["posts:read"]).token
    assert (await call(app, "GET", "/users", headers={"X-API-Key": key})).status_code == 403
    assert (await call(app, "GET", "/mod", headers={"X-API-Key": key})).status_code == 200


async def test_rate_limit_headers_and_429(tokens: TokenManager, api_keys: ApiKeys) -> None:
    app, _ = build(tokens, api_keys)
    first = await call(app, "GET", "/limited")
    assert first.status_code == 200
    assert first.headers["ratelimit-policy"] == '"default";q=2;w=60'
    await call(app, "GET", "/limited")
    refused = await call(app, "GET", "/limited")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit"].startswith('"default";r=0;')
    assert problem(refused)["type"].endswith("/rate-limited")


async def test_forwarded_for_spoofing(tokens: TokenManager, api_keys: ApiKeys) -> None:
    app, _ = build(tokens, api_keys)
    codes = [
        (
            await call(
                app,
                "GET",
                "/limited",
                client_ip="10.0.0.2",
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            )
        ).status_code
        for i in range(3)
    ]
    assert codes == [200, 200, 429]
    app, _ = build(tokens, api_keys, trusted_proxies=TrustedProxies(["10.0.0.0/8"]))
    codes = [
        (
            await call(
                app,
                "GET",
                "/limited",
                client_ip="10.0.0.2",
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            )
        ).status_code
        for i in range(3)
    ]
    assert codes == [200, 200, 200]


@pytest.fixture
async def redis_storage(redis_clean_url: str) -> AsyncIterator[AsyncRedisRateLimitStorage]:
    storage = AsyncRedisRateLimitStorage(redis_clean_url)
    yield storage
    await storage.aclose()


async def test_rate_limit_by_user_on_real_redis(
    tokens: TokenManager, api_keys: ApiKeys, redis_storage: AsyncRedisRateLimitStorage
) -> None:
    app, auth = build(tokens, api_keys)
    limiter = RateLimiter("1/minute", storage=redis_storage)

    @app.post("/send", dependencies=[Depends(auth.rate_limit(limiter, key=by_user))])
    async def send(p: Annotated[Principal, Depends(auth.principal)]) -> str:
        return p.id

    alice = bearer(tokens.issue_access("alice"))
    assert (await call(app, "POST", "/send", headers=alice)).status_code == 200
    assert (await call(app, "POST", "/send", headers=alice)).status_code == 429
    assert (
        await call(app, "POST", "/send", headers=bearer(tokens.issue_access("bob")))
    ).status_code == 200


def test_declaration_time_validation(tokens: TokenManager) -> None:
    auth = FastAPIAuth(tokens=tokens)
    with pytest.raises(ConfigurationError):
        auth.require_roles("admn")
    with pytest.raises(ConfigurationError):
        auth.require_permission("x.y")
    with pytest.raises(ConfigurationError):
        FastAPIAuth(scopes={"a::b": "bad"})
    with pytest.raises(ConfigurationError):
        FastAPIAuth(api_key_header="X API")
    with pytest.raises(ConfigurationError):
        auth.rate_limit("5/minute")  # type: ignore[arg-type]
