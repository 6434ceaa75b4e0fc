"""A real, local OpenID Connect provider for the tests, served over HTTP on loopback.

Built with Authlib's server side (Flask ``AuthorizationServer``, ``AuthorizationCodeGrant``
with the ``OpenIDCode`` and ``CodeChallenge`` extensions): it issues real authorization
codes and tokens, requires PKCE (an authorize request without ``code_challenge`` is
refused) and verifies the ``code_verifier`` at the token endpoint. ID tokens are signed
with joserfc (RS256, ``kid`` in the header) in ``encode_id_token``, so the deprecated
``authlib.jose`` is never touched.

There is no UI: ``/authorize`` auto-approves :attr:`OIDCTestProvider.next_user`. Knobs
make it misbehave for the tests (see the attributes of :class:`OIDCTestProvider`).

Use the ``oidc_provider`` fixture: ``from oidc_provider import oidc_provider_fixture  # noqa: F401``
(the fixture is *named* ``oidc_provider``; importing it under another name keeps ruff's F811
quiet where tests take it as a parameter).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from authlib.integrations.flask_oauth2 import (  # type: ignore[import-untyped]
    AuthorizationServer,
)
from authlib.oauth2.rfc6749 import ClientMixin, grants  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import CodeChallenge  # type: ignore[import-untyped]
from authlib.oidc.core.grants import OpenIDCode  # type: ignore[import-untyped]
from flask import Flask, jsonify, redirect, request
from flask.typing import ResponseReturnValue
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log in test output."""


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
        return redirect_uri.startswith(("http://127.0.0.1", "http://localhost"))

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


class OIDCTestProvider:
    """The provider's state and knobs.

    - ``next_user``: claims of the user the next ``/authorize`` approves.
    - ``deny``: answer ``error=access_denied`` instead of a code.
    - ``id_token_overrides``: claims forced into the next ID tokens (``iss``, ``aud``,
      ``exp``, ``nonce``, ``azp``...); a value of ``None`` removes the claim.
    - ``email_in_id_token``: when False, email claims are only served by ``/userinfo``.
    - :meth:`rotate_keys` / :meth:`sign_with_unpublished_key`: key changes.
    - ``requests``: a count of requests per path (e.g. ``"/jwks"``).
    """

    def __init__(self) -> None:
        self.client_id = "kit-test-client"
        self.client_secret = secrets.token_urlsafe(24)
        self.next_user: dict[str, Any] = {
            "sub": "user-1",
            "email": "ann@example.com",
            "email_verified": True,
            "name": "Ann Example",
            "picture": "https://example.com/ann.png",
        }
        self.deny = False
        self.id_token_overrides: dict[str, Any] = {}
        self.email_in_id_token = True
        self.signing_key = RSAKey.generate_key(2048, parameters={"kid": "key-1"}, auto_kid=False)
        self.published: list[RSAKey] = [self.signing_key]
        self.requests: dict[str, int] = {}
        self.codes: dict[str, _Code] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}
        self._kid_counter = 1
        self._client = _Client(self.client_id, self.client_secret)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.issuer = ""
        self.app = self._build_app()

    # -- knobs --------------------------------------------------------------------------------

    def _new_key(self) -> RSAKey:
        self._kid_counter += 1
        return RSAKey.generate_key(
            2048, parameters={"kid": f"key-{self._kid_counter}"}, auto_kid=False
        )

    def rotate_keys(self) -> None:
        """Sign with a new key from now on and publish only it."""
        self.signing_key = self._new_key()
        self.published = [self.signing_key]

    def sign_with_unpublished_key(self) -> None:
        """Sign with a new key whose kid is not in the JWKS (yet)."""
        self.signing_key = self._new_key()

    # -- server -------------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        provider = self
        app = Flask("oidc_test_provider")
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
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: _Code) -> dict[str, Any]:
                return authorization_code.user

        class IDToken(OpenIDCode):  # type: ignore[misc]
            def exists_nonce(self, nonce: str, req: Any) -> bool:
                return any(c.nonce == nonce for c in provider.codes.values())

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
                }
                nonce = req.authorization_code.get_nonce()
                if nonce:
                    claims["nonce"] = nonce
                user = dict(req.user)
                if not provider.email_in_id_token:
                    user.pop("email", None)
                    user.pop("email_verified", None)
                claims.update(user)
                for key, value in provider.id_token_overrides.items():
                    if value is None:
                        claims.pop(key, None)
                    else:
                        claims[key] = value
                signing_key = provider.signing_key
                header = {"alg": "RS256", "kid": signing_key.kid}
                return jwt.encode(header, claims, signing_key, algorithms=["RS256"])

        server.register_grant(CodeGrant, [CodeChallenge(required=True), IDToken()])

        @app.before_request
        def count() -> None:
            provider.requests[request.path] = provider.requests.get(request.path, 0) + 1

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
            return jsonify(keys=[k.as_dict(private=False) for k in provider.published])

        @app.get("/authorize")
        def authorize() -> ResponseReturnValue:
            args = request.args
            redirect_uri = args.get("redirect_uri", "")
            if not provider._client.check_redirect_uri(redirect_uri):
                return jsonify(error="invalid_request"), 400
            if provider.deny:
                state = args.get("state", "")
                return redirect(f"{redirect_uri}?error=access_denied&state={state}")
            if not args.get("code_challenge") or args.get("code_challenge_method") != "S256":
                # PKCE is mandatory here, like kit-auth promises to always send it.
                return redirect(f"{redirect_uri}?error=invalid_request")
            user = dict(provider.next_user)
            grant = server.get_consent_grant(end_user=user)
            answer: ResponseReturnValue = server.create_authorization_response(
                grant=grant, grant_user=user
            )
            return answer

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

        return app

    def _save_token(self, token: dict[str, Any], req: Any) -> None:
        self.access_tokens[token["access_token"]] = dict(req.user)

    def start(self) -> None:
        self._server = make_server("127.0.0.1", 0, self.app, request_handler=_QuietHandler)
        self.issuer = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


@pytest.fixture(name="oidc_provider")
def oidc_provider_fixture() -> Iterator[OIDCTestProvider]:
    """A fresh provider (own port, keys and client secret) for one test."""
    provider = OIDCTestProvider()
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()
