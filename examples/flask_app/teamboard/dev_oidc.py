"""A local OpenID Connect provider for development: sign in as anyone, no passwords.

    python -m teamboard.dev_oidc                # http://127.0.0.1:5001, client team-board

It is a real provider, built on Authlib's server side (``AuthorizationServer`` with the
authorization-code grant, ``OpenIDCode`` and ``CodeChallenge``): it serves discovery, a
JWKS, ``/authorize`` (a form asking for an email and a name), ``/token`` (PKCE
verified, client authenticated) and ``/userinfo``. ID tokens are signed RS256 with
joserfc, with a key made at start-up whose ``kid`` is its thumbprint, so a restart is
noticed by the app (an unknown ``kid`` makes kit-auth fetch the keys again).

Only for development and tests: anyone who reaches it can sign in as any email, so it
binds to loopback and accepts loopback redirect URIs only. Point the board at a real
provider in production (``OIDC_ISSUER``, ``OIDC_CLIENT_ID``, ``OIDC_CLIENT_SECRET``).
"""

from __future__ import annotations

import argparse
import hashlib
import html
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify, redirect, request
from flask.typing import ResponseReturnValue
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

__all__ = ["DevOIDCProvider", "main"]

LOOPBACK_PREFIXES = ("http://127.0.0.1:", "http://localhost:", "http://[::1]:")


@dataclass
class _Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        allowed = {"openid", "email", "profile"}
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri.startswith(LOOPBACK_PREFIXES)

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class _Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    user: dict[str, Any]
    expires_at: float = field(default_factory=lambda: time.time() + 300)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(time.time())

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


def subject_for(email: str) -> str:
    """A stable ``sub`` for an email, so signing in again finds the same account."""
    return "dev-" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]


_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dev sign-in</title>
<style>body{{font:15px system-ui,sans-serif;max-width:26rem;margin:3rem auto}}
label{{display:block;margin:.6rem 0}}input{{width:100%;padding:.3rem;font:inherit}}
.warn{{color:#a15c00}}</style></head>
<body><h1>Development sign-in</h1>
<p class="warn">Local development provider: no password, sign in as anyone.</p>
{error}
<form method="post" action="{action}">
<label>Email <input type="email" name="email" id="email" required value="{email}"></label>
<label>Name <input name="name" id="name" value="{name}"></label>
<button type="submit" id="approve">Sign in</button>
</form></body></html>
"""


class DevOIDCProvider:
    """The provider: ``start()`` serves it on ``host:port`` in a thread (port 0 picks a
    free one; :attr:`issuer` is then known), ``stop()`` ends it. ``app`` is the WSGI app,
    for ``flask run`` or a WSGI server of your choice."""

    def __init__(
        self,
        *,
        client_id: str = "team-board",
        client_secret: str = "dev-secret",  # noqa: S107 - the documented dev default
        issuer: str = "",
    ) -> None:
        self.client_id = client_id
        self.issuer = issuer
        self.signing_key = RSAKey.generate_key(2048, auto_kid=True)
        self.codes: dict[str, _Code] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}
        self._client = _Client(client_id, client_secret)
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.app = self._build_app()

    def _build_app(self) -> Flask:
        provider = self
        app = Flask("teamboard_dev_oidc")
        server = AuthorizationServer(
            app,
            query_client=lambda cid: provider._client if cid == provider.client_id else None,
            save_token=self._save_token,
        )

        class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
                "client_secret_basic",
                "client_secret_post",
            ]

            def save_authorization_code(self, code: str, req: Any) -> None:
                data = req.payload.data
                with provider._lock:
                    provider.codes[code] = _Code(
                        code=code,
                        client_id=req.client.client_id,
                        redirect_uri=req.payload.redirect_uri,
                        scope=req.scope or req.payload.scope,
                        nonce=data.get("nonce"),
                        code_challenge=data.get("code_challenge"),
                        code_challenge_method=data.get("code_challenge_method"),
                        user=dict(req.user),
                    )

            def query_authorization_code(self, code: str, client: _Client) -> _Code | None:
                item = provider.codes.get(code)
                if item and item.client_id == client.client_id and item.expires_at > time.time():
                    return item
                return None

            def delete_authorization_code(self, authorization_code: _Code) -> None:
                with provider._lock:
                    provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: _Code) -> dict[str, Any]:
                return authorization_code.user

        class IDToken(OpenIDCode):  # type: ignore[misc]
            def exists_nonce(self, nonce: str, req: Any) -> bool:
                return any(c.nonce == nonce for c in list(provider.codes.values()))

            def generate_user_info(self, user: dict[str, Any], scope: str) -> dict[str, Any]:
                return dict(user)

            def encode_id_token(self, token: dict[str, Any], req: Any) -> str:
                now = int(time.time())
                claims: dict[str, Any] = {
                    "iss": provider.issuer,
                    "aud": provider.client_id,
                    "iat": now,
                    "exp": now + 300,
                    "auth_time": now,
                    **dict(req.user),
                }
                nonce = req.authorization_code.get_nonce()
                if nonce:
                    claims["nonce"] = nonce
                key = provider.signing_key
                return jwt.encode(
                    {"alg": "RS256", "kid": key.kid}, claims, key, algorithms=["RS256"]
                )

        server.register_grant(CodeGrant, [CodeChallenge(required=True), IDToken()])

        @app.get("/.well-known/openid-configuration")
        def discovery() -> ResponseReturnValue:
            base = provider.issuer
            return jsonify(
                issuer=base,
                authorization_endpoint=f"{base}/authorize",
                token_endpoint=f"{base}/token",
                jwks_uri=f"{base}/jwks",
                userinfo_endpoint=f"{base}/userinfo",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
                code_challenge_methods_supported=["S256"],
                scopes_supported=["openid", "email", "profile"],
                claims_supported=["sub", "email", "email_verified", "name"],
            )

        @app.get("/jwks")
        def jwks() -> ResponseReturnValue:
            return jsonify(keys=[provider.signing_key.as_dict(private=False)])

        def refuse(reason: str) -> ResponseReturnValue:
            return jsonify(error="invalid_request", error_description=reason), 400

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize() -> ResponseReturnValue:
            args = request.args
            redirect_uri = args.get("redirect_uri", "")
            if args.get("client_id") != provider.client_id:
                return refuse("unknown client_id")
            if not provider._client.check_redirect_uri(redirect_uri):
                return refuse("redirect_uri must be a loopback http:// URL")
            if not args.get("code_challenge") or args.get("code_challenge_method") != "S256":
                return refuse("PKCE (code_challenge with S256) is required")
            email = request.form.get("email", "").strip()
            name = request.form.get("name", "").strip()
            error = ""
            if request.method == "POST":
                if "@" in email and len(email) <= 254 and email.isprintable():
                    user = {
                        "sub": subject_for(email),
                        "email": email,
                        "email_verified": True,
                        "name": name or email.split("@", 1)[0],
                    }
                    grant = server.get_consent_grant(end_user=user)
                    answer: ResponseReturnValue = server.create_authorization_response(
                        grant=grant, grant_user=user
                    )
                    return answer
                error = '<p class="warn">Give an email address.</p>'
            else:
                try:
                    server.get_consent_grant(end_user=None)  # validates the whole request
                except OAuth2Error as exc:
                    return jsonify(error=exc.error, error_description=exc.description), 400
            page = _FORM.format(
                action=html.escape(request.full_path),
                email=html.escape(email),
                name=html.escape(name),
                error=error,
            )
            return page, 200, {"Content-Type": "text/html; charset=utf-8"}

        @app.post("/token")
        def token() -> ResponseReturnValue:
            answer: ResponseReturnValue = server.create_token_response()
            return answer

        @app.get("/userinfo")
        def userinfo() -> ResponseReturnValue:
            auth = request.headers.get("Authorization", "")
            user = provider.access_tokens.get(auth.removeprefix("Bearer "))
            if user is None:
                return jsonify(error="invalid_token"), 401
            return jsonify(user)

        @app.get("/")
        def home() -> ResponseReturnValue:
            return redirect("/.well-known/openid-configuration")

        return app

    def _save_token(self, token: dict[str, Any], req: Any) -> None:
        with self._lock:
            self.access_tokens[token["access_token"]] = dict(req.user)

    # -- serving ------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; returns the issuer URL."""
        self._server = make_server(host, port, self.app, threaded=True, request_handler=_Quiet)
        self.issuer = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.issuer

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log (the tests start one per session)."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--client-id", default=os.environ.get("OIDC_CLIENT_ID", "team-board"))
    parser.add_argument(
        "--client-secret", default=os.environ.get("OIDC_CLIENT_SECRET", "dev-secret")
    )
    options = parser.parse_args(argv)
    provider = DevOIDCProvider(client_id=options.client_id, client_secret=options.client_secret)
    provider.issuer = f"http://{options.host}:{options.port}"
    print(f"dev OIDC provider at {provider.issuer} (client {options.client_id})", flush=True)
    provider.app.run(host=options.host, port=options.port, threaded=True)


if __name__ == "__main__":
    main()
