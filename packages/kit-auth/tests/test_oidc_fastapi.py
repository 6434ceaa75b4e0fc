"""OIDC login through the FastAPI router, end to end over real HTTP (uvicorn on loopback)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from oidc_provider import OIDCTestProvider, oidc_provider_fixture  # noqa: F401

from kit_auth.exceptions import ConfigurationError
from kit_auth.fastapi import install_problem_handlers, oauth_router
from kit_auth.oidc import Identity, OIDCClient, OIDCProvider


async def on_login(identity: Identity) -> Response:
    return JSONResponse({"sub": identity.subject, "email": identity.email})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def app_url(oidc_provider: OIDCTestProvider) -> Iterator[str]:
    provider = OIDCProvider(
        "local", oidc_provider.client_id, oidc_provider.client_secret, issuer=oidc_provider.issuer
    )
    client = OIDCClient(provider, state_secret=b"a" * 32)
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(oauth_router(client, on_login=on_login, cookie_secure=False))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_login_round_trip(app_url: str, oidc_provider: OIDCTestProvider) -> None:
    with httpx.Client(follow_redirects=False) as browser:
        login = browser.get(f"{app_url}/auth/local/login")
        assert login.status_code == 302
        assert login.headers["location"].startswith(f"{oidc_provider.issuer}/authorize?")
        set_cookie = login.headers["set-cookie"]
        for attribute in ("kit_oidc_local=", "HttpOnly", "Path=/auth/local", "Max-Age=600"):
            assert attribute in set_cookie
        assert "samesite=lax" in set_cookie.lower()
        authorize = browser.get(login.headers["location"])
        callback = browser.get(authorize.headers["location"])
        assert callback.status_code == 200, callback.text
        assert callback.json() == {"sub": "user-1", "email": "ann@example.com"}
        assert "kit_oidc_local" not in browser.cookies


def test_forged_state_is_a_401_problem(app_url: str) -> None:
    with httpx.Client(follow_redirects=False) as browser:
        browser.get(f"{app_url}/auth/local/login")
        wrong = browser.get(f"{app_url}/auth/local/callback?code=abc&state=forged")
        assert wrong.status_code == 401
        assert wrong.headers["content-type"] == "application/problem+json"
        assert wrong.json()["type"] == "https://kit.dev/problems/oauth-failed"
        assert wrong.headers["www-authenticate"] == 'Bearer realm="api"'
        # a failed callback still deletes the state cookie
        set_cookie = wrong.headers["set-cookie"]
        for attribute in ("kit_oidc_local=", "Max-Age=0", "Path=/auth/local"):
            assert attribute in set_cookie
        assert "kit_oidc_local" not in browser.cookies
    with httpx.Client() as stranger:
        missing = stranger.get(f"{app_url}/auth/local/callback?code=abc&state=forged")
        assert missing.status_code == 401
        assert "forged" in missing.json()["detail"]


def test_router_validation() -> None:
    client = OIDCClient(OIDCProvider.google("id", "secret"), state_secret=b"a" * 32)
    assert oauth_router(client, on_login=on_login).prefix == "/auth/google"
    with pytest.raises(ConfigurationError, match="prefix"):
        oauth_router(client, on_login=on_login, prefix="x")
    with pytest.raises(ConfigurationError, match="cookie_secure"):
        oauth_router(client, on_login=on_login, cookie_secure="yes")  # type: ignore[arg-type]
