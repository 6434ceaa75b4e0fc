"""The OIDC login core against a real local provider over HTTP (tests/oidc_provider.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oidc_provider import OIDCTestProvider, oidc_provider_fixture  # noqa: F401

from kit_auth.exceptions import ConfigurationError, IdentityRefused, InvalidInput, OAuthError
from kit_auth.oidc import (
    PUBLIC_EMAIL_DOMAINS,
    EmailPolicy,
    Identity,
    OIDCClient,
    OIDCProvider,
)

SECRET = b"k" * 32
REDIRECT = "http://127.0.0.1:9/callback"


def make_client(p: OIDCTestProvider, **kwargs: object) -> OIDCClient:
    provider = OIDCProvider("local", p.client_id, p.client_secret, issuer=p.issuer)
    return OIDCClient(provider, state_secret=SECRET, **kwargs)  # type: ignore[arg-type]


def follow(url: str) -> dict[str, str]:
    """Play the browser: GET the authorize URL, return the callback's query params."""
    response = httpx.get(url, follow_redirects=False)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def login(client: OIDCClient) -> Identity:
    start = client.begin(REDIRECT)
    return client.complete(follow(start.url), start.state_token)


def test_full_flow_returns_the_identity(oidc_provider: OIDCTestProvider) -> None:
    identity = login(make_client(oidc_provider))
    assert identity.provider == "local"
    assert identity.subject == "user-1"
    assert identity.email == "ann@example.com"
    assert identity.email_verified is True
    assert identity.name == "Ann Example"
    assert identity.picture == "https://example.com/ann.png"
    assert identity.tenant_id is None
    assert identity.claims["iss"] == oidc_provider.issuer


def test_authorize_url_always_carries_pkce_s256_state_and_nonce(
    oidc_provider: OIDCTestProvider,
) -> None:
    start = make_client(oidc_provider).begin(REDIRECT)
    query = {k: v[0] for k, v in parse_qs(urlsplit(start.url).query).items()}
    assert start.url.startswith(f"{oidc_provider.issuer}/authorize?")
    assert query["response_type"] == "code"
    assert query["client_id"] == oidc_provider.client_id
    assert query["redirect_uri"] == REDIRECT
    assert query["scope"] == "openid email profile"
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    # the verifier stays out of the URL
    payload = json.loads(base64.urlsafe_b64decode(start.state_token.split(".")[0] + "=="))
    assert payload["v"] not in start.url
    expected = hashlib.sha256(payload["v"].encode()).digest()
    assert query["code_challenge"] == base64.urlsafe_b64encode(expected).rstrip(b"=").decode()


def test_wrong_code_verifier_is_refused_by_the_provider(oidc_provider: OIDCTestProvider) -> None:
    client = make_client(oidc_provider)
    start = client.begin(REDIRECT)
    params = follow(start.url)
    # Re-sign a state token holding another verifier: only the provider can notice.
    body = json.loads(base64.urlsafe_b64decode(start.state_token.split(".")[0] + "=="))
    body["v"] = "x" * 64
    from kit_auth.oidc import _sign_state

    forged_verifier = _sign_state(SECRET, body)
    with pytest.raises(OAuthError, match="invalid_grant"):
        client.complete(params, forged_verifier)


def test_missing_forged_and_tampered_state_are_refused(oidc_provider: OIDCTestProvider) -> None:
    client = make_client(oidc_provider)
    start = client.begin(REDIRECT)
    params = follow(start.url)
    with pytest.raises(OAuthError, match="forged, expired or missing"):
        client.complete(params, None)
    with pytest.raises(OAuthError, match="forged, expired or missing"):
        client.complete(params, start.state_token[:-2] + "AA")
    body, mac = start.state_token.split(".")
    with pytest.raises(OAuthError, match="forged, expired or missing"):
        client.complete(params, body[:-1] + ("A" if body[-1] != "A" else "B") + "." + mac)
    with pytest.raises(OAuthError, match="does not match"):
        client.complete({**params, "state": "attacker"}, start.state_token)
    # a state token signed with another secret
    other = OIDCClient(client.provider, state_secret=b"o" * 32)
    with pytest.raises(OAuthError, match="forged"):
        other.complete(params, start.state_token)
    # the genuine pair still works
    assert client.complete(params, start.state_token).subject == "user-1"


def test_state_from_another_login_is_refused(oidc_provider: OIDCTestProvider) -> None:
    client = make_client(oidc_provider)
    first, second = client.begin(REDIRECT), client.begin(REDIRECT)
    params = follow(first.url)
    with pytest.raises(OAuthError, match="does not match"):
        client.complete(params, second.state_token)


def test_expired_state_token_is_refused(
    oidc_provider: OIDCTestProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(oidc_provider)
    start = client.begin(REDIRECT)
    params = follow(start.url)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 601)
    with pytest.raises(OAuthError, match="expired"):
        client.complete(params, start.state_token)


def test_state_of_another_provider_is_refused(oidc_provider: OIDCTestProvider) -> None:
    client = make_client(oidc_provider)
    start = client.begin(REDIRECT)
    params = follow(start.url)
    other_provider = OIDCProvider(
        "other", oidc_provider.client_id, oidc_provider.client_secret, issuer=oidc_provider.issuer
    )
    other = OIDCClient(other_provider, state_secret=SECRET)
    with pytest.raises(OAuthError, match="another provider"):
        other.complete(params, start.state_token)


def test_provider_error_is_quoted(oidc_provider: OIDCTestProvider) -> None:
    oidc_provider.deny = True
    client = make_client(oidc_provider)
    start = client.begin(REDIRECT)
    with pytest.raises(OAuthError, match="'access_denied'"):
        client.complete(follow(start.url), start.state_token)


def test_code_cannot_be_used_twice(oidc_provider: OIDCTestProvider) -> None:
    client = make_client(oidc_provider)
    start = client.begin(REDIRECT)
    params = follow(start.url)
    client.complete(params, start.state_token)
    with pytest.raises(OAuthError, match="invalid_grant"):
        client.complete(params, start.state_token)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"nonce": "another-nonce"}, "nonce does not match"),
        ({"nonce": None}, "nonce does not match"),
        ({"iss": "https://evil.example"}, "iss claim is invalid"),
        ({"aud": "another-client"}, "aud claim is invalid"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"iat": int(time.time()) + 3600}, "iat claim is invalid"),
        ({"azp": "another-client"}, "azp"),
        ({"sub": None}, "sub claim is invalid"),
    ],
)
def test_invalid_id_tokens_are_refused(
    oidc_provider: OIDCTestProvider, override: dict[str, object], message: str
) -> None:
    oidc_provider.id_token_overrides = override
    with pytest.raises(OAuthError, match=message):
        login(make_client(oidc_provider))


def test_several_audiences_need_azp(oidc_provider: OIDCTestProvider) -> None:
    client = make_client(oidc_provider)
    oidc_provider.id_token_overrides = {"aud": [oidc_provider.client_id, "other"]}
    with pytest.raises(OAuthError, match="azp"):
        login(client)
    oidc_provider.id_token_overrides["azp"] = oidc_provider.client_id
    assert login(client).subject == "user-1"


def test_expiry_within_leeway_is_accepted(oidc_provider: OIDCTestProvider) -> None:
    oidc_provider.id_token_overrides = {"exp": int(time.time()) - 10}
    assert login(make_client(oidc_provider, leeway=60)).subject == "user-1"
    with pytest.raises(OAuthError, match="expired"):
        login(make_client(oidc_provider, leeway=0))


def test_unknown_kid_refetches_jwks_once_after_rotation(oidc_provider: OIDCTestProvider) -> None:
    client = make_client(oidc_provider)
    login(client)
    assert oidc_provider.requests["/jwks"] == 1
    login(client)
    assert oidc_provider.requests["/jwks"] == 1  # cached
    oidc_provider.rotate_keys()
    assert login(client).subject == "user-1"
    assert oidc_provider.requests["/jwks"] == 2


def test_unknown_kid_refetch_is_rate_limited_and_keeps_keys(
    oidc_provider: OIDCTestProvider,
) -> None:
    client = make_client(oidc_provider)
    login(client)
    original_key = oidc_provider.signing_key
    oidc_provider.sign_with_unpublished_key()
    with pytest.raises(OAuthError, match="unknown key"):
        login(client)
    assert oidc_provider.requests["/jwks"] == 2
    with pytest.raises(OAuthError, match="unknown key"):
        login(client)
    assert oidc_provider.requests["/jwks"] == 2  # no refetch storm
    # the cached keys survived: tokens of the published key still verify
    oidc_provider.signing_key = original_key
    assert login(client).subject == "user-1"


def test_failed_jwks_refetch_keeps_cached_keys(oidc_provider: OIDCTestProvider) -> None:
    client = make_client(oidc_provider)
    start = client.begin(REDIRECT)
    login(client)
    params = follow(start.url)
    # forge an unknown kid while the provider's JWKS endpoint is down
    oidc_provider.published = []
    oidc_provider.app.view_functions["jwks"] = lambda: ("down", 503)
    original = oidc_provider.signing_key
    oidc_provider.sign_with_unpublished_key()
    with pytest.raises(OAuthError, match="unknown key"):
        client.complete(params, start.state_token)
    oidc_provider.signing_key = original
    assert login(client).subject == "user-1"


def test_unverified_email_is_refused_by_default(oidc_provider: OIDCTestProvider) -> None:
    oidc_provider.next_user["email_verified"] = False
    with pytest.raises(IdentityRefused, match="not verified"):
        login(make_client(oidc_provider))
    identity = login(make_client(oidc_provider, email_policy=EmailPolicy(require_verified=False)))
    assert identity.email_verified is False


def test_domain_maps_to_tenant_and_public_domains_are_refused(
    oidc_provider: OIDCTestProvider,
) -> None:
    policy = EmailPolicy(tenant_domains={"Example.com": "t-example"})
    client = make_client(oidc_provider, email_policy=policy)
    assert login(client).tenant_id == "t-example"
    oidc_provider.next_user["email"] = "ann@gmail.com"
    with pytest.raises(IdentityRefused, match=r"gmail\.com is a public email domain"):
        login(client)
    oidc_provider.next_user["email"] = "ann@gmx.fr"
    with pytest.raises(IdentityRefused, match="public email domain"):
        login(client)
    oidc_provider.next_user["email"] = "ann@other.org"
    assert login(client).tenant_id is None


def test_allowed_domains(oidc_provider: OIDCTestProvider) -> None:
    client = make_client(oidc_provider, email_policy=EmailPolicy(allowed_domains=["example.com"]))
    assert login(client).email == "ann@example.com"
    oidc_provider.next_user["email"] = "ann@elsewhere.org"
    with pytest.raises(IdentityRefused, match=r"elsewhere\.org may not sign in"):
        login(client)


def test_email_from_userinfo_when_missing_in_id_token(oidc_provider: OIDCTestProvider) -> None:
    oidc_provider.email_in_id_token = False
    identity = login(make_client(oidc_provider))
    assert identity.email == "ann@example.com"
    assert identity.email_verified is True
    assert oidc_provider.requests["/userinfo"] == 1


async def test_async_twins_run_the_same_flow(oidc_provider: OIDCTestProvider) -> None:
    client = make_client(oidc_provider)
    start = await client.abegin(REDIRECT)
    async with httpx.AsyncClient() as http:
        response = await http.get(start.url)
    params = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}
    identity = await client.acomplete(params, start.state_token)
    assert identity.subject == "user-1"
    assert identity.email == "ann@example.com"
    with pytest.raises(OAuthError, match="invalid_grant"):
        await client.acomplete(params, start.state_token)


async def test_async_refuses_forged_state_and_bad_nonce(oidc_provider: OIDCTestProvider) -> None:
    client = make_client(oidc_provider)
    start = await client.abegin(REDIRECT)
    params = follow(start.url)
    with pytest.raises(OAuthError, match="does not match"):
        await client.acomplete({**params, "state": "x"}, start.state_token)
    oidc_provider.id_token_overrides = {"nonce": "bad"}
    with pytest.raises(OAuthError, match="nonce"):
        await client.acomplete(params, start.state_token)


async def test_async_unknown_kid_refetch(oidc_provider: OIDCTestProvider) -> None:
    client = make_client(oidc_provider)
    login(client)
    oidc_provider.rotate_keys()
    start = await client.abegin(REDIRECT)
    identity = await client.acomplete(follow(start.url), start.state_token)
    assert identity.subject == "user-1"
    assert oidc_provider.requests["/jwks"] == 2


def test_provider_down_is_an_oauth_error(oidc_provider: OIDCTestProvider) -> None:
    client = make_client(oidc_provider, http_timeout=2.0)
    oidc_provider.stop()
    with pytest.raises(OAuthError, match="could not be reached"):
        client.begin(REDIRECT)


async def test_provider_down_async(oidc_provider: OIDCTestProvider) -> None:
    client = make_client(oidc_provider, http_timeout=2.0)
    oidc_provider.stop()
    with pytest.raises(OAuthError, match="could not be reached"):
        await client.abegin(REDIRECT)


def test_provider_down_during_code_exchange(oidc_provider: OIDCTestProvider) -> None:
    client = make_client(oidc_provider, http_timeout=2.0)
    start = client.begin(REDIRECT)
    params = follow(start.url)
    oidc_provider.stop()
    with pytest.raises(OAuthError, match="could not be reached"):
        client.complete(params, start.state_token)


def test_non_json_discovery_is_an_oauth_error(oidc_provider: OIDCTestProvider) -> None:
    oidc_provider.app.view_functions["discovery"] = lambda: "<html>oops</html>"
    with pytest.raises(OAuthError, match="could not be reached or answered badly"):
        make_client(oidc_provider).begin(REDIRECT)


def test_discovery_with_another_issuer_is_refused(oidc_provider: OIDCTestProvider) -> None:
    provider = OIDCProvider(
        "local", oidc_provider.client_id, "s", server_metadata_url=f"{oidc_provider.issuer}/x"
    )
    client = OIDCClient(provider, state_secret=SECRET)
    with pytest.raises(OAuthError):
        client.begin(REDIRECT)
    spoof = OIDCProvider("local", "id", "s", issuer="http://localhost:1")
    assert spoof.metadata_url == "http://localhost:1/.well-known/openid-configuration"


# -- configuration and input validation ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name"}, "name"),
        ({"client_id": ""}, "client_id"),
        ({"client_secret": " "}, "client_secret"),
        ({"issuer": None}, "exactly one"),
        (
            {"server_metadata_url": "https://x.example/.well-known/openid-configuration"},
            "exactly one",
        ),
        ({"issuer": "http://login.example.com"}, "https"),
        ({"issuer": "ftp://127.0.0.1"}, "https"),
        ({"scopes": ("email",)}, "openid"),
        ({"scopes": "openid email"}, "tuple"),
        ({"authorize_params": {"state": "x"}}, "state"),
        ({"authorize_params": {"prompt": 1}}, "strings"),
    ],
)
def test_provider_validation(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {
        "name": "corp",
        "client_id": "id",
        "client_secret": "secret",
        "issuer": "https://login.example.com",
    }
    with pytest.raises(ConfigurationError, match=message):
        OIDCProvider(**{**base, **kwargs})  # type: ignore[arg-type]


def test_loopback_http_is_allowed_and_google_preset() -> None:
    for host in ("127.0.0.1", "localhost", "[::1]"):
        OIDCProvider("p", "id", "s", issuer=f"http://{host}:8080")
    google = OIDCProvider.google("id", "secret")
    assert google.name == "google"
    assert google.scopes == ("openid", "email", "profile")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"state_secret": b"short"}, "32 bytes"),
        ({"state_secret": "k" * 40}, "32 bytes"),
        ({"http_timeout": 0}, "http_timeout"),
        ({"http_timeout": True}, "http_timeout"),
        ({"leeway": -1}, "leeway"),
        ({"leeway": 1.5}, "leeway"),
        ({"email_policy": object()}, "email_policy"),
    ],
)
def test_client_validation(kwargs: dict[str, object], message: str) -> None:
    provider = OIDCProvider.google("id", "secret")
    args: dict[str, object] = {"state_secret": SECRET, **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        OIDCClient(provider, **args)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="OIDCProvider"):
        OIDCClient("google", state_secret=SECRET)  # type: ignore[arg-type]


def test_begin_validates_redirect_uri(oidc_provider: OIDCTestProvider) -> None:
    client = make_client(oidc_provider)
    for bad in ("", "/callback", "http://app.example.com/cb", "javascript:alert(1)"):
        with pytest.raises(InvalidInput, match="redirect_uri"):
            client.begin(bad)
    with pytest.raises(InvalidInput, match="params"):
        client.complete([("state", "x")], "t")  # type: ignore[arg-type]


def test_email_policy_validation_and_normalisation() -> None:
    with pytest.raises(ConfigurationError, match=r"public email domain gmail\.com"):
        EmailPolicy(tenant_domains={"GMail.com": "t"})
    with pytest.raises(ConfigurationError, match="tenant"):
        EmailPolicy(tenant_domains={"a.com": ""})
    with pytest.raises(ConfigurationError, match="list of domains"):
        EmailPolicy(allowed_domains="a.com")
    policy = EmailPolicy(tenant_domains={"bücher.example": "books"})
    assert policy.tenant_for("ann@BÜCHER.example", True) == "books"
    assert policy.tenant_for("ann@xn--bcher-kva.example", True) == "books"
    # explicitly mapping a public domain is possible when the app opts out
    assert (
        EmailPolicy(tenant_domains={"gmail.com": "t"}, refuse_public_domains=False).tenant_for(
            "a@gmail.com", True
        )
        == "t"
    )
    with pytest.raises(IdentityRefused, match="did not share an email"):
        policy.tenant_for(None, False)
    assert EmailPolicy().tenant_for(None, False) is None
    with pytest.raises(IdentityRefused, match="malformed"):
        EmailPolicy().tenant_for("no-at-sign", True)
    assert {"gmail.com", "proton.me", "qq.com", "163.com"} <= PUBLIC_EMAIL_DOMAINS
