"""OIDC login through the Flask blueprint, end to end over real HTTP on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from oidc_provider import OIDCTestProvider, oidc_provider_fixture  # noqa: F401
from werkzeug.serving import WSGIRequestHandler, make_server

from kit_auth.exceptions import ConfigurationError
from kit_auth.flask import KitAuth, oauth_blueprint
from kit_auth.oidc import EmailPolicy, Identity, OIDCClient, OIDCProvider


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log."""


def on_login(identity: Identity) -> ResponseReturnValue:
    return jsonify(sub=identity.subject, email=identity.email, tenant=identity.tenant_id)


def serve(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def build_app(p: OIDCTestProvider, **kwargs: object) -> Flask:
    provider = OIDCProvider("local", p.client_id, p.client_secret, issuer=p.issuer)
    policy = kwargs.pop("email_policy", None)
    client = OIDCClient(provider, state_secret=b"f" * 32, email_policy=policy)  # type: ignore[arg-type]
    app = Flask(__name__)
    KitAuth(app)
    app.register_blueprint(
        oauth_blueprint(client, on_login=on_login, cookie_secure=False, **kwargs)  # type: ignore[arg-type]
    )
    return app


@pytest.fixture
def app_url(oidc_provider: OIDCTestProvider) -> Iterator[str]:
    yield from serve(build_app(oidc_provider))


def test_login_round_trip(app_url: str, oidc_provider: OIDCTestProvider) -> None:
    with httpx.Client(follow_redirects=False) as browser:
        login = browser.get(f"{app_url}/auth/local/login")
        assert login.status_code == 302
        assert login.headers["location"].startswith(f"{oidc_provider.issuer}/authorize?")
        set_cookie = login.headers["set-cookie"]
        assert set_cookie.startswith("kit_oidc_local=")
        for attribute in ("HttpOnly", "SameSite=Lax", "Path=/auth/local", "Max-Age=600"):
            assert attribute in set_cookie
        assert "Secure" not in set_cookie
        authorize = browser.get(login.headers["location"])
        assert authorize.status_code == 302
        callback = browser.get(authorize.headers["location"])
        assert callback.status_code == 200, callback.text
        assert callback.json() == {"sub": "user-1", "email": "ann@example.com", "tenant": None}
        assert (
            'kit_oidc_local=""' in callback.headers["set-cookie"]
            or "Max-Age=0" in (callback.headers["set-cookie"])
        )
        assert "kit_oidc_local" not in browser.cookies
        # the same callback again: state cookie gone -> refused
        replay = browser.get(authorize.headers["location"])
        assert replay.status_code == 401
        assert replay.headers["content-type"] == "application/problem+json"


def test_forged_state_is_a_401_problem(app_url: str) -> None:
    with httpx.Client(follow_redirects=False) as browser:
        no_cookie = browser.get(f"{app_url}/auth/local/callback?code=abc&state=xyz")
        assert no_cookie.status_code == 401
        assert no_cookie.headers["content-type"] == "application/problem+json"
        assert "forged" in no_cookie.json()["detail"]
        browser.get(f"{app_url}/auth/local/login")  # real cookie, wrong state
        wrong = browser.get(f"{app_url}/auth/local/callback?code=abc&state=xyz")
        assert wrong.status_code == 401
        assert wrong.json()["type"] == "https://kit.dev/problems/oauth-failed"
        assert "does not match" in wrong.json()["detail"]
        # a failed callback still deletes the state cookie
        set_cookie = wrong.headers["set-cookie"]
        for attribute in ("kit_oidc_local=", "Max-Age=0", "Path=/auth/local"):
            assert attribute in set_cookie
        assert "kit_oidc_local" not in browser.cookies


def test_provider_error_and_refused_identity(oidc_provider: OIDCTestProvider) -> None:
    app = build_app(oidc_provider, email_policy=EmailPolicy(tenant_domains={"acme.io": "t"}))
    for url in serve(app):
        oidc_provider.next_user["email"] = "ann@gmail.com"
        with httpx.Client(follow_redirects=True) as browser:
            refused = browser.get(f"{url}/auth/local/login")
        assert refused.status_code == 403
        assert refused.json()["type"] == "https://kit.dev/problems/identity-refused"
        oidc_provider.deny = True
        with httpx.Client(follow_redirects=True) as browser:
            denied = browser.get(f"{url}/auth/local/login")
        assert denied.status_code == 401
        assert "access_denied" in denied.json()["detail"]


def test_secure_cookie_by_default_and_validation(oidc_provider: OIDCTestProvider) -> None:
    provider = OIDCProvider(
        "local", oidc_provider.client_id, oidc_provider.client_secret, issuer=oidc_provider.issuer
    )
    client = OIDCClient(provider, state_secret=b"f" * 32)
    app = Flask(__name__)
    KitAuth(app)
    app.register_blueprint(oauth_blueprint(client, on_login=on_login, url_prefix="/sso"))
    response = app.test_client().get("/sso/login")
    assert response.status_code == 302
    assert "Secure" in response.headers["Set-Cookie"]
    assert "Path=/sso" in response.headers["Set-Cookie"]
    with pytest.raises(ConfigurationError, match="prefix"):
        oauth_blueprint(client, on_login=on_login, url_prefix="sso/")
    with pytest.raises(ConfigurationError, match="OIDCClient"):
        oauth_blueprint("client", on_login=on_login)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="on_login"):
        oauth_blueprint(client, on_login=None)  # type: ignore[arg-type]
