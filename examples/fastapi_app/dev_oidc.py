"""A local OpenID Connect provider for development: the demo app signs in against it.

It is a real authorization server, built on Authlib's server side (Flask
``AuthorizationServer``, ``AuthorizationCodeGrant`` with the ``OpenIDCode`` and
``CodeChallenge`` extensions): it issues authorization codes, requires PKCE (S256) and
checks the ``code_verifier``, authenticates the client, and signs ID tokens with RS256
(joserfc; the key is made at start-up and published at ``/jwks``). What it does not have
is accounts: its users are seeded, and ``/authorize`` shows a form to pick one, or with
``--auto-approve EMAIL`` signs that user in without asking (what the tour uses).

Development only: it accepts any loopback redirect URI, trusts whoever picks a user, and
forgets everything on exit.

    python examples/fastapi_app/dev_oidc.py                  # http://127.0.0.1:9000
    python examples/fastapi_app/dev_oidc.py --auto-approve ann@acme.example
    python examples/fastapi_app/dev_oidc.py --user "dee@initech.example=Dee Initech"
"""

from __future__ import annotations

import argparse
import hashlib
import html
import ipaddress
import secrets
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, Response, jsonify, redirect, request
from flask.typing import ResponseReturnValue
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

__all__ = ["SEEDED_USERS", "DevOIDCProvider", "DevUser", "main"]

DEFAULT_CLIENT_ID = "kit-demo"
DEFAULT_CLIENT_SECRET = "kit-demo-secret"  # noqa: S105 - a development provider's secret
CODE_TTL = 300


@dataclass(frozen=True)
class DevUser:
    email: str
    name: str

    @property
    def subject(self) -> str:
        """Stable per email, and not the email itself (a ``sub`` never changes owner)."""
        return "dev-" + hashlib.sha256(self.email.lower().encode()).hexdigest()[:20]

    def claims(self) -> dict[str, Any]:
        return {
            "sub": self.subject,
            "email": self.email,
            "email_verified": True,
            "name": self.name,
        }


SEEDED_USERS = (
    DevUser("ann@acme.example", "Ann Acme"),
    DevUser("bob@acme.example", "Bob Acme"),
    DevUser("cy@globex.example", "Cy Globex"),
)


def _is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


@dataclass
class _Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return _is_loopback_url(redirect_uri)

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
    expires_at: float = field(default_factory=lambda: time.time() + CODE_TTL)

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


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log: the app's own logs tell the story."""


_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dev sign-in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto}}
label{{display:block;margin:.5rem 0}}button{{margin-top:1rem}}</style></head>
<body><h1>Development sign-in</h1>
<p>This local provider has no passwords: pick who you are.</p>
<form method="post" action="/authorize?{query}">{choices}
<button type="submit">Sign in</button></form></body></html>"""


class DevOIDCProvider:
    """The provider: ``start()`` serves it on a free loopback port in a thread (tests, the
    tour); :func:`main` serves it in the foreground (the command line)."""

    def __init__(
        self,
        users: Iterable[DevUser] = SEEDED_USERS,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        auto_approve: str | None = None,
    ) -> None:
        self.users: dict[str, DevUser] = {u.email.lower(): u for u in users}
        if auto_approve is not None and auto_approve.lower() not in self.users:
            known = ", ".join(self.users)
            raise ValueError(f"--auto-approve {auto_approve!r} is not a seeded user ({known})")
        self.auto_approve = auto_approve.lower() if auto_approve else None
        self.client = _Client(client_id, client_secret)
        self.signing_key = RSAKey.generate_key(2048, parameters={"kid": "dev-1"}, auto_kid=False)
        self.issuer = ""
        self._codes: dict[str, _Code] = {}
        self._access_tokens: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.app = self._build_app()

    def add_user(self, email: str, name: str) -> DevUser:
        user = DevUser(email, name)
        self.users[email.lower()] = user
        return user

    # -- the Flask app ----------------------------------------------------------------

    def _build_app(self) -> Flask:
        provider = self
        app = Flask("dev_oidc")
        server = AuthorizationServer(
            app,
            query_client=lambda cid: provider.client if cid == provider.client.client_id else None,
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
                    provider._codes[code] = _Code(
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
                item = provider._codes.get(code)
                if item and item.client_id == client.client_id and item.expires_at > time.time():
                    return item
                return None

            def delete_authorization_code(self, authorization_code: _Code) -> None:
                with provider._lock:
                    provider._codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: _Code) -> dict[str, Any]:
                return authorization_code.user

        class IDToken(OpenIDCode):  # type: ignore[misc]
            def exists_nonce(self, nonce: str, req: Any) -> bool:
                return any(c.nonce == nonce for c in provider._codes.values())

            def generate_user_info(self, user: dict[str, Any], scope: str) -> dict[str, Any]:
                return dict(user)

            def encode_id_token(self, token: dict[str, Any], req: Any) -> str:
                now = int(time.time())
                claims: dict[str, Any] = {
                    "iss": provider.issuer,
                    "aud": provider.client.client_id,
                    "iat": now,
                    "exp": now + 300,
                    "auth_time": now,
                    **req.user,
                }
                nonce = req.authorization_code.get_nonce()
                if nonce:
                    claims["nonce"] = nonce
                header = {"alg": "RS256", "kid": provider.signing_key.kid}
                return jwt.encode(header, claims, provider.signing_key, algorithms=["RS256"])

        server.register_grant(CodeGrant, [CodeChallenge(required=True), IDToken()])

        def approve(user: DevUser) -> ResponseReturnValue:
            claims = user.claims()
            grant = server.get_consent_grant(end_user=claims)
            answer: ResponseReturnValue = server.create_authorization_response(
                grant=grant, grant_user=claims
            )
            return answer

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
            )

        @app.get("/jwks")
        def jwks() -> ResponseReturnValue:
            return jsonify(keys=[provider.signing_key.as_dict(private=False)])

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize() -> ResponseReturnValue:
            args = request.args
            if args.get("client_id") != provider.client.client_id:
                return jsonify(error="invalid_client", error_description="unknown client_id"), 400
            redirect_uri = args.get("redirect_uri", "")
            if not provider.client.check_redirect_uri(redirect_uri):
                return jsonify(
                    error="invalid_request",
                    error_description="redirect_uri must be an http:// loopback URL",
                ), 400
            if not args.get("code_challenge") or args.get("code_challenge_method") != "S256":
                state = urlencode({"state": args.get("state", "")})
                return redirect(f"{redirect_uri}?error=invalid_request&{state}")
            if request.method == "POST":
                chosen = provider.users.get(request.form.get("user", "").lower())
                if chosen is None:
                    return jsonify(error="invalid_request", error_description="unknown user"), 400
                return approve(chosen)
            if provider.auto_approve is not None:
                return approve(provider.users[provider.auto_approve])
            choices = "".join(
                f'<label><input type="radio" name="user" value="{html.escape(u.email)}"'
                f"{' checked' if i == 0 else ''}> {html.escape(u.name)} "
                f"&lt;{html.escape(u.email)}&gt;</label>"
                for i, u in enumerate(provider.users.values())
            )
            page = _FORM.format(query=html.escape(request.query_string.decode()), choices=choices)
            return Response(page, mimetype="text/html")

        @app.post("/token")
        def token() -> ResponseReturnValue:
            answer: ResponseReturnValue = server.create_token_response()
            return answer

        @app.get("/userinfo")
        def userinfo() -> ResponseReturnValue:
            bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
            user = provider._access_tokens.get(bearer)
            if user is None:
                return jsonify(error="invalid_token"), 401
            return jsonify(user)

        return app

    def _save_token(self, token: dict[str, Any], req: Any) -> None:
        with self._lock:
            self._access_tokens[token["access_token"]] = dict(req.user)

    # -- serving ----------------------------------------------------------------------

    def bind(self, host: str, port: int) -> BaseWSGIServer:
        """A server for the provider on ``host:port`` (0: a free port); sets ``issuer``."""
        server = make_server(host, port, self.app, threaded=True, request_handler=_QuietHandler)
        shown = f"[{host}]" if ":" in host else host
        self.issuer = f"http://{shown}:{server.server_port}"
        return server

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a daemon thread; returns the issuer URL."""
        self._server = self.bind(host, port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dev-oidc", daemon=True
        )
        self._thread.start()
        return self.issuer

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def _parse_user(text: str) -> DevUser:
    email, _, name = text.partition("=")
    if "@" not in email:
        raise argparse.ArgumentTypeError(f"{text!r}: give EMAIL or EMAIL=Name")
    return DevUser(email.strip(), name.strip() or email.strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="default 9000 (0: any free port)")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument(
        "--user", action="append", type=_parse_user, default=[], help="add EMAIL=Name"
    )
    parser.add_argument("--auto-approve", metavar="EMAIL", help="sign this user in, no form")
    args = parser.parse_args(argv)
    try:
        provider = DevOIDCProvider(
            [*SEEDED_USERS, *args.user],
            client_id=args.client_id,
            client_secret=args.client_secret,
            auto_approve=args.auto_approve,
        )
    except ValueError as exc:
        parser.error(str(exc))
    server = provider.bind(args.host, args.port)
    print(f"dev OIDC provider: issuer {provider.issuer}, client {args.client_id}", flush=True)
    for user in provider.users.values():
        print(f"  user {user.email} ({user.name})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
