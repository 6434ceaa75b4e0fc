"""The JWT attack suite: every forged, altered or misused token is refused with the right
exception, and no message echoes the token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import ed25519

from kit_auth.exceptions import (
    InvalidToken,
    RefreshTokenReused,
    TokenExpired,
    TokenRevoked,
)
from kit_auth.keys import KeySet
from kit_auth.tokens import TokenManager

ISS = "https://api.test"
AUD = "test-api"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj: Any) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def unb64(seg: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "sub": "mallory",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "attack-1",
        "token_use": "access",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def hs256(header: dict[str, Any], body: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{b64json(header)}.{b64json(body)}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


@pytest.fixture
def ed_private() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def tm(ed_private: ed25519.Ed25519PrivateKey) -> TokenManager:
    pem = ed_private.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())
    keys = KeySet.from_pem(pem, kid="ed")
    keys.rotate(KeySet.generate("ES256", kid="ec"))
    keys.rotate(KeySet.generate("RS256", kid="rsa"))
    keys.rotate(KeySet.generate("EdDSA", kid="ed2"))
    return TokenManager(keys, issuer=ISS, audience=AUD)


def refused(tm: TokenManager, token: str, exc: type[Exception], match: str, **kw: Any) -> None:
    with pytest.raises(exc, match=match) as info:
        tm.verify(token, **kw)
    assert type(info.value) is exc
    assert token not in str(info.value)
    if len(token) > 20:
        assert token[-20:] not in str(info.value)


def sign_with(
    private: ed25519.Ed25519PrivateKey, header: dict[str, Any], body: dict[str, Any]
) -> str:
    signing_input = f"{b64json(header)}.{b64json(body)}".encode()
    return f"{signing_input.decode()}.{b64(private.sign(signing_input))}"


def test_a_genuine_token_passes(tm: TokenManager) -> None:
    assert tm.verify(tm.issue_access("alice")).subject == "alice"


def test_alg_none(tm: TokenManager) -> None:
    for alg in ("none", "None", "NONE"):
        token = f"{b64json({'alg': alg, 'kid': 'ed2', 'typ': 'at+jwt'})}.{b64json(claims())}."
        refused(tm, token, InvalidToken, "algorithm is not accepted")


@pytest.mark.parametrize("kid", ["rsa", "ec", "ed"])
def test_key_confusion_public_key_as_hmac_secret(tm: TokenManager, kid: str) -> None:
    jwks = {k["kid"]: k for k in tm.keys.to_public_jwks()["keys"]}
    public = pyjwt.PyJWK(jwks[kid]).key
    for pem in (
        public.public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo),
        json.dumps(jwks[kid]).encode(),
    ):
        token = hs256({"alg": "HS256", "kid": kid, "typ": "at+jwt"}, claims(), pem)
        refused(tm, token, InvalidToken, "algorithm does not match its key")


def test_key_confusion_on_a_keyset_restricted_to_asymmetric_algorithms() -> None:
    keys = KeySet.generate("RS256", kid="rsa", algorithms=["RS256"])
    tm = TokenManager(keys, issuer=ISS, audience=AUD)
    pem = pyjwt.PyJWK(keys.to_public_jwks()["keys"][0]).key.public_bytes(
        s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo
    )
    token = hs256({"alg": "HS256", "kid": "rsa", "typ": "at+jwt"}, claims(), pem)
    refused(tm, token, InvalidToken, "algorithm is not accepted")


def test_header_alg_differs_from_key_alg(tm: TokenManager) -> None:
    header, body, sig = tm.issue_access("alice").split(".")
    for alg in ("ES256", "RS256", "HS256", "PS256", "Ed25519"):
        h = unb64(header)
        h["alg"] = alg
        refused(tm, f"{b64json(h)}.{body}.{sig}", InvalidToken, "algorithm")


def test_unknown_kid(tm: TokenManager, ed_private: ed25519.Ed25519PrivateKey) -> None:
    attacker = ed25519.Ed25519PrivateKey.generate()
    token = sign_with(attacker, {"alg": "EdDSA", "kid": "attacker", "typ": "at+jwt"}, claims())
    refused(tm, token, InvalidToken, "unknown kid")


@pytest.mark.parametrize(
    "kid",
    ["../../etc/passwd", "ed2/../ed", "k" * 5000, "", "ed\x00", 42, None, ["ed2"], {"$ne": 1}],
)
def test_hostile_kid(tm: TokenManager, kid: Any) -> None:
    header = {"alg": "EdDSA", "typ": "at+jwt"}
    if kid is not None:
        header["kid"] = kid
    token = sign_with(ed25519.Ed25519PrivateKey.generate(), header, claims())
    refused(tm, token, InvalidToken, "kid|header is too large")


def test_expired(tm: TokenManager) -> None:
    now = int(time.time())
    token = tm.keys.sign(claims(iat=now - 4000, nbf=now - 4000, exp=now - 3000), typ="at+jwt")
    refused(tm, token, TokenExpired, "expired")


def test_not_yet_valid_nbf(tm: TokenManager) -> None:
    token = tm.keys.sign(claims(nbf=int(time.time()) + 3600), typ="at+jwt")
    refused(tm, token, TokenExpired, "not valid yet")


def test_iat_in_the_future(tm: TokenManager) -> None:
    later = int(time.time()) + 3600
    token = tm.keys.sign(claims(iat=later, nbf=None, exp=later + 600), typ="at+jwt")
    refused(tm, token, TokenExpired, "not valid yet")


def test_wrong_audience(tm: TokenManager) -> None:
    for aud in ("other-api", ["other-api", "x"], []):
        refused(tm, tm.keys.sign(claims(aud=aud), typ="at+jwt"), InvalidToken, "another audience")
    refused(tm, tm.keys.sign(claims(aud=7), typ="at+jwt"), InvalidToken, "malformed 'aud'")


def test_wrong_issuer(tm: TokenManager) -> None:
    refused(
        tm, tm.keys.sign(claims(iss="https://evil"), typ="at+jwt"), InvalidToken, "another issuer"
    )


@pytest.mark.parametrize("missing", ["exp", "jti", "iat", "sub", "iss", "aud"])
def test_missing_required_claims(tm: TokenManager, missing: str) -> None:
    body = claims()
    del body[missing]
    refused(
        tm, tm.keys.sign(body, typ="at+jwt"), InvalidToken, f"lacks the required claim '{missing}'"
    )


@pytest.mark.parametrize(
    "bad",
    [{"exp": "9999999999"}, {"exp": True}, {"sub": 1}, {"jti": ""}, {"iat": None, "nbf": "x"}],
)
def test_malformed_claims(tm: TokenManager, bad: dict[str, Any]) -> None:
    body = claims()
    body.update(bad)
    refused(tm, tm.keys.sign(body, typ="at+jwt"), InvalidToken, "malformed claims|required claim")


def test_tampered_payload(tm: TokenManager) -> None:
    header, body, sig = tm.issue_access("alice", roles=["user"]).split(".")
    payload = unb64(body)
    payload["roles"] = ["admin"]
    refused(tm, f"{header}.{b64json(payload)}.{sig}", InvalidToken, "signature is invalid")


def test_tampered_signature(tm: TokenManager) -> None:
    header, body, sig = tm.issue_access("alice").split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
    raw[0] ^= 1
    refused(tm, f"{header}.{body}.{b64(bytes(raw))}", InvalidToken, "signature is invalid")
    refused(tm, f"{header}.{body}.", InvalidToken, "signature is invalid")
    refused(tm, f"{header}.{body}.{sig}A", InvalidToken, "base64url|signature")
    refused(tm, f"{header}.{body}.{sig[:-1]}+", InvalidToken, "base64url")


def test_truncated_and_malformed_tokens(tm: TokenManager) -> None:
    token = tm.issue_access("alice")
    header, body, _ = token.split(".")
    refused(tm, f"{header}.{body}", InvalidToken, "three dot-separated parts")
    refused(tm, token[: len(token) // 2], InvalidToken, "three|base64|JSON|signature")
    refused(tm, f"{token}.extra", InvalidToken, "three dot-separated parts")
    refused(tm, f"{token}..", InvalidToken, "three dot-separated parts")
    refused(tm, f"!!!.{body}.x", InvalidToken, "header is not valid base64url JSON")
    refused(tm, f"{b64(b'not json')}.{body}.x", InvalidToken, "header is not valid")
    refused(tm, f"{b64json(['alg'])}.{body}.x", InvalidToken, "not a JSON object")
    refused(tm, "ünïcode.a.b", InvalidToken, "non-ASCII")
    with pytest.raises(InvalidToken, match="No token"):
        tm.verify("")


def test_payload_not_json(tm: TokenManager, ed_private: ed25519.Ed25519PrivateKey) -> None:
    header = b64json({"alg": "EdDSA", "kid": "ed", "typ": "at+jwt"})
    for payload in (b"not json", b"[1,2]"):
        signing_input = f"{header}.{b64(payload)}".encode()
        token = f"{signing_input.decode()}.{b64(ed_private.sign(signing_input))}"
        refused(tm, token, InvalidToken, "payload is not")


def test_oversized_token_is_refused_before_parsing(tm: TokenManager) -> None:
    refused(tm, "a" * 8193, InvalidToken, "larger than 8192 bytes")
    big = tm.keys.sign(claims(pad="x" * 9000), typ="at+jwt")  # genuinely signed, still too big
    refused(tm, big, InvalidToken, "larger than")


@pytest.mark.parametrize("name", ["jwk", "jku", "x5u", "x5c", "x5t", "crit", "b64", "zip", "cty"])
def test_header_injection_is_refused(tm: TokenManager, name: str) -> None:
    attacker = ed25519.Ed25519PrivateKey.generate()
    attacker_jwk = {
        "kty": "OKP",
        "crv": "Ed25519",
        "kid": "ed2",
        "x": b64(attacker.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)),
    }
    values: dict[str, Any] = {
        "jwk": attacker_jwk,
        "jku": "https://evil.example/jwks.json",
        "x5u": "https://evil/x.pem",
        "x5c": ["MIIB"],
        "x5t": "abc",
        "crit": ["exp"],
        "b64": False,
        "zip": "DEF",
        "cty": "JWT",
    }
    header = {"alg": "EdDSA", "kid": "ed2", "typ": "at+jwt", name: values[name]}
    token = sign_with(attacker, header, claims())
    refused(tm, token, InvalidToken, "never takes keys")


def test_embedded_jwk_is_ignored_even_when_the_server_key_signed(
    tm: TokenManager, ed_private: ed25519.Ed25519PrivateKey
) -> None:
    # Even a header key that *matches* the server's key is refused: headers carry no keys.
    header = {"alg": "EdDSA", "kid": "ed", "typ": "at+jwt", "jwk": {"kty": "OKP"}}
    refused(tm, sign_with(ed_private, header, claims()), InvalidToken, "never takes keys")


def test_refresh_token_used_as_access_token_and_vice_versa(tm: TokenManager) -> None:
    pair = tm.issue_pair("alice")
    refused(tm, pair.refresh_token, InvalidToken, "refresh token, but an access token")
    refused(
        tm,
        pair.access_token,
        InvalidToken,
        "access token, but a refresh token",
        expected_type="refresh",
    )
    with pytest.raises(InvalidToken, match="access token, but a refresh"):
        tm.refresh(pair.access_token)


def test_access_claims_in_refresh_header_type_mix(tm: TokenManager) -> None:
    # token_use says access but the header typ says refresh (or is missing): refused.
    refused(tm, tm.keys.sign(claims(), typ="refresh+jwt"), InvalidToken, "is needed here")
    refused(tm, tm.keys.sign(claims(), typ="JWT"), InvalidToken, "is needed here")
    refused(tm, tm.keys.sign(claims(token_use=None), typ="at+jwt"), InvalidToken, "another kind")


def test_revoked_jti(tm: TokenManager) -> None:
    token = tm.issue_access("alice")
    tm.revoke(token)
    refused(tm, token, TokenRevoked, "revoked")


def test_reencoded_signature_does_not_bypass_revocation(tm: TokenManager) -> None:
    # Same (iss, jti) under another key's signature: still revoked, since the deny-list
    # is keyed on (iss, jti), not on the token bytes.
    first = tm.issue_access("alice")
    tm.revoke(first)
    body = tm.keys.decode(first)[1]
    tm.keys.rotate(KeySet.generate("ES256", kid="ec9"))
    second = tm.keys.sign(body, typ="at+jwt")
    assert second != first
    refused(tm, second, TokenRevoked, "revoked")


def test_refresh_reuse_revokes_family_including_access_tokens(tm: TokenManager) -> None:
    stolen = tm.issue_pair("alice")
    legit = tm.refresh(stolen.refresh_token)  # the user refreshes
    with pytest.raises(RefreshTokenReused):
        tm.refresh(stolen.refresh_token)  # the thief replays the old one
    refused(tm, legit.access_token, TokenRevoked, "revoked")
    with pytest.raises(TokenRevoked):
        tm.refresh(legit.refresh_token)


def test_token_from_another_issuer_with_same_key_is_refused(tm: TokenManager) -> None:
    other = TokenManager(tm.keys, issuer="https://other.test", audience=AUD)
    refused(tm, other.issue_access("alice"), InvalidToken, "another issuer")
