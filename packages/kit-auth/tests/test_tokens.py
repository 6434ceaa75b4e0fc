"""KeySet and TokenManager: construction, issuing, verifying, refresh rotation, revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from kit_auth.exceptions import (
    ConfigurationError,
    InvalidInput,
    InvalidToken,
    RefreshTokenReused,
    TokenExpired,
    TokenRevoked,
)
from kit_auth.keys import ALGORITHMS, KeySet
from kit_auth.token_store import MemoryTokenStore
from kit_auth.tokens import TokenManager, TokenPair

ISS = "https://api.test"
AUD = "test-api"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def manager(keys: KeySet | None = None, **kw: object) -> TokenManager:
    return TokenManager(keys or KeySet.generate("HS256", kid="k1"), issuer=ISS, audience=AUD, **kw)  # type: ignore[arg-type]


# -- KeySet -------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_every_algorithm_signs_and_verifies(alg: str) -> None:
    keys = KeySet.generate(alg, kid=f"k-{alg}")
    header, claims = keys.decode(keys.sign({"sub": "ada"}, typ="at+jwt"))
    assert header == {"alg": alg, "kid": f"k-{alg}", "typ": "at+jwt"}
    assert claims == {"sub": "ada"}


def test_generate_refuses_unknown_algorithm() -> None:
    with pytest.raises(ConfigurationError, match="Unsupported JWT algorithm 'HS512'"):
        KeySet.generate("HS512")


def test_short_hmac_secret_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        KeySet.from_secret(b"x" * 31)
    assert KeySet.from_secret(b"x" * 32, kid="ok").signing_alg == "HS256"


def test_pem_as_hmac_secret_is_refused() -> None:
    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ConfigurationError, match="looks like a public/private key"):
        KeySet.from_secret(pem)


def test_default_kid_is_stable_for_the_same_secret() -> None:
    secret = b"0123456789abcdef0123456789abcdef"
    assert KeySet.from_secret(secret).kids == KeySet.from_secret(secret).kids


def test_small_rsa_key_is_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point of the test
    pem = small.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())
    with pytest.raises(ConfigurationError, match="at least 2048 bits"):
        KeySet.from_pem(pem)


def test_ec_key_on_other_curve_is_refused() -> None:
    pem = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()
    )
    with pytest.raises(ConfigurationError, match="P-256"):
        KeySet.from_pem(pem)


def test_from_pem_alg_must_match_key() -> None:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()
    )
    with pytest.raises(ConfigurationError, match="is for EdDSA, but alg='RS256'"):
        KeySet.from_pem(pem, alg="RS256")
    with pytest.raises(ConfigurationError, match="PEM-encoded"):
        KeySet.from_pem(b"garbage")


def test_public_pem_gives_a_verify_only_set() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    signer = KeySet.from_pem(
        private.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()), kid="e"
    )
    verifier = KeySet.from_pem(
        private.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo),
        kid="e",
    )
    assert verifier.signing_kid is None
    assert verifier.decode(signer.sign({"a": 1}))[1] == {"a": 1}
    with pytest.raises(ConfigurationError, match="cannot sign"):
        verifier.sign({"a": 1})


def test_invalid_kid_is_refused_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="key id"):
        KeySet.generate("EdDSA", kid="../etc/passwd")
    with pytest.raises(ConfigurationError, match="key id"):
        KeySet.generate("EdDSA", kid="k" * 65)


def test_public_jwks_has_no_private_parts_and_no_secrets() -> None:
    keys = KeySet.generate("RS256", kid="rsa")
    keys.rotate(KeySet.generate("ES256", kid="ec"))
    keys.rotate(KeySet.generate("EdDSA", kid="ed"))
    keys.rotate(KeySet.generate("HS256", kid="hs"))
    jwks = keys.to_public_jwks()
    assert [k["kid"] for k in jwks["keys"]] == ["rsa", "ec", "ed"]
    private_members = {"d", "p", "q", "dp", "dq", "qi", "k"}
    for jwk in jwks["keys"]:
        assert private_members.isdisjoint(jwk), jwk
        assert jwk["use"] == "sig"
    # PyJWT can verify kit's tokens with the published JWKS (interop).
    keys.rotate(KeySet.generate("ES256", kid="ec2"))
    token = keys.sign({"sub": "ada"})
    published = pyjwt.PyJWKSet.from_dict(keys.to_public_jwks())
    assert pyjwt.decode(token, published["ec2"].key, algorithms=["ES256"])["sub"] == "ada"


def test_private_jwks_round_trip_keeps_signing_key_and_verifies_old_tokens() -> None:
    keys = KeySet.generate("EdDSA", kid="old")
    old_token = keys.sign({"n": 1})
    keys.rotate(KeySet.generate("ES256", kid="new"))
    loaded = KeySet.from_jwks(keys.to_private_jwks())
    assert loaded.signing_kid == "new"
    assert loaded.decode(old_token)[1] == {"n": 1}
    assert keys.decode(loaded.sign({"n": 2}))[1] == {"n": 2}


def test_from_jwks_validation() -> None:
    with pytest.raises(ConfigurationError, match="keys"):
        KeySet.from_jwks({"nope": []})
    jwk = KeySet.generate("EdDSA", kid="a").to_private_jwks()["keys"][0]
    with pytest.raises(ConfigurationError, match="needs a 'kid'"):
        KeySet.from_jwks({"keys": [{k: v for k, v in jwk.items() if k != "kid"}]})
    with pytest.raises(ConfigurationError, match="says alg='RS256'"):
        KeySet.from_jwks({"keys": [{**jwk, "alg": "RS256"}]})
    with pytest.raises(ConfigurationError, match="unsupported kty"):
        KeySet.from_jwks({"keys": [{"kty": "XYZ", "kid": "z"}]})
    with pytest.raises(ConfigurationError, match="not a private key"):
        KeySet.from_jwks({"keys": [jwk]}, signing_kid="other")


def test_algorithm_subset_refuses_other_keys() -> None:
    with pytest.raises(ConfigurationError, match="does not allow"):
        KeySet.generate("HS256", algorithms=["EdDSA"])
    keys = KeySet.generate("EdDSA", kid="a", algorithms=["EdDSA"])
    with pytest.raises(ConfigurationError, match="does not allow"):
        keys.rotate(KeySet.generate("HS256", kid="b"))
    assert keys.signing_kid == "a"
    with pytest.raises(ConfigurationError, match="non-empty collection"):
        KeySet.generate("EdDSA", algorithms=[])


def test_rotate_and_retire() -> None:
    keys = KeySet.generate("EdDSA", kid="a")
    token_a = keys.sign({"v": "a"})
    keys.rotate(KeySet.generate("EdDSA", kid="b"))
    assert keys.decode(keys.sign({"v": "b"}))[0]["kid"] == "b"
    assert keys.decode(token_a)[1] == {"v": "a"}
    with pytest.raises(ConfigurationError, match="already used by another key"):
        keys.rotate(KeySet.generate("EdDSA", kid="a"))
    with pytest.raises(ConfigurationError, match="signing key"):
        keys.retire("b")
    with pytest.raises(ConfigurationError, match="No key with kid"):
        keys.retire("zzz")
    keys.retire("a")
    with pytest.raises(InvalidToken, match="unknown kid"):
        keys.decode(token_a)


# -- TokenManager construction ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"issuer": ""}, "issuer"),
        ({"audience": []}, "audience"),
        ({"audience": [""]}, "audience"),
        ({"access_ttl": 60}, "access_ttl must be a datetime.timedelta"),
        ({"access_ttl": timedelta(0)}, "access_ttl must be a positive"),
        ({"leeway": timedelta(minutes=10)}, "leeway must be at most"),
        ({"refresh_ttl": timedelta(minutes=1)}, "refresh_ttl must not be shorter"),
        ({"max_token_bytes": 10}, "max_token_bytes"),
        ({"store": object()}, "store must implement"),
    ],
)
def test_manager_validates_configuration(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"issuer": ISS, "audience": AUD, **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        TokenManager(KeySet.generate("HS256"), **args)  # type: ignore[arg-type]


def test_manager_needs_a_keyset() -> None:
    with pytest.raises(ConfigurationError, match="KeySet"):
        TokenManager("secret", issuer=ISS, audience=AUD)  # type: ignore[arg-type]


# -- issuing and verifying ----------------------------------------------------------------


def test_access_token_claims_and_header() -> None:
    clock = Clock()
    tm = manager(clock=clock)
    token = tm.issue_access(
        "user-1",
        scopes=["read", "write", "read"],
        roles=["admin"],
        tenant_id="t1",
        claims={"email": "a@example.com"},
    )
    header, raw = tm.keys.decode(token)
    assert header["typ"] == "at+jwt"
    assert raw["scope"] == "read write"
    assert raw["token_use"] == "access"
    assert raw["exp"] - raw["iat"] == 900
    assert raw["nbf"] == raw["iat"] == int(clock.now)
    c = tm.verify(token)
    assert c.subject == "user-1"
    assert c.scopes == frozenset({"read", "write"})
    assert c.roles == frozenset({"admin"})
    assert c.tenant_id == "t1"
    assert c.issuer == ISS and c.audience == (AUD,)
    assert c.issued_at == datetime.fromtimestamp(clock.now, UTC)
    assert c.expires_at - c.issued_at == timedelta(minutes=15)
    assert c.family_id is None
    assert c.raw["email"] == "a@example.com"


def test_every_token_gets_a_fresh_jti() -> None:
    tm = manager()
    jtis = {tm.verify(tm.issue_access("u")).jti for _ in range(50)}
    assert len(jtis) == 50


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subject": ""}, "subject"),
        ({"subject": "x" * 256}, "subject"),
        ({"scopes": "read write"}, "not a string"),
        ({"scopes": ["has space"]}, "without spaces"),
        ({"roles": [1]}, "roles"),
        ({"tenant_id": ""}, "tenant_id"),
        ({"claims": {"sub": "admin"}}, "sub are set by kit-auth"),
        ({"claims": {"fid": "x"}}, "fid are set by kit-auth"),
        ({"claims": {"blob": object()}}, "JSON values"),
        ({"claims": {"blob": "x" * 9000}}, "over max_token_bytes"),
    ],
)
def test_issue_validates_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"subject": "u", **kwargs}
    subject = args.pop("subject")
    with pytest.raises(InvalidInput, match=message):
        manager().issue_access(subject, **args)  # type: ignore[arg-type]


def test_multiple_audiences() -> None:
    keys = KeySet.generate("HS256", kid="k")
    tm = TokenManager(keys, issuer=ISS, audience=["api-a", "api-b"])
    assert tm.verify(tm.issue_access("u")).audience == ("api-a", "api-b")
    only_b = TokenManager(keys, issuer=ISS, audience="api-b")
    assert only_b.verify(tm.issue_access("u")).subject == "u"
    other = TokenManager(keys, issuer=ISS, audience="api-c")
    with pytest.raises(InvalidToken, match="another audience"):
        other.verify(tm.issue_access("u"))


def test_verify_rejects_bad_expected_type() -> None:
    tm = manager()
    with pytest.raises(InvalidInput, match="expected_type"):
        tm.verify(tm.issue_access("u"), expected_type="id")  # type: ignore[arg-type]


def test_leeway_accepts_just_expired_and_refuses_beyond() -> None:
    clock = Clock()
    tm = manager(clock=clock, leeway=timedelta(seconds=30))
    token = tm.issue_access("u")
    clock.now += 900 + 30
    assert tm.verify(token).subject == "u"
    clock.now += 1
    with pytest.raises(TokenExpired, match="expired"):
        tm.verify(token)


def test_zero_leeway_is_exact() -> None:
    clock = Clock()
    tm = manager(clock=clock, leeway=timedelta(0))
    token = tm.issue_access("u")
    clock.now += 900
    assert tm.verify(token).subject == "u"
    clock.now += 0.5
    with pytest.raises(TokenExpired):
        tm.verify(token)


def test_token_from_the_future_within_leeway_passes() -> None:
    clock = Clock()
    tm = manager(clock=clock)
    token = tm.issue_access("u")
    clock.now -= 30  # the verifier's clock is 30 s behind the issuer's
    assert tm.verify(token).subject == "u"
    clock.now -= 1
    with pytest.raises(TokenExpired, match="not valid yet"):
        tm.verify(token)


# -- pairs, refresh, reuse ----------------------------------------------------------------


def test_pair_shape_and_refresh_keeps_identity() -> None:
    tm = manager()
    pair = tm.issue_pair("u", scopes=["read"], roles=["r1"], tenant_id="t", claims={"x": 1})
    assert isinstance(pair, TokenPair)
    assert pair.as_dict()["token_type"] == "Bearer"
    assert (pair.expires_in, pair.refresh_expires_in) == (900, 30 * 86400)
    refresh = tm.verify(pair.refresh_token, expected_type="refresh")
    access = tm.verify(pair.access_token)
    assert refresh.family_id == access.family_id is not None
    assert tm.keys.decode(pair.refresh_token)[0]["typ"] == "refresh+jwt"
    new = tm.refresh(pair.refresh_token)
    c = tm.verify(new.access_token)
    assert (c.subject, c.scopes, c.roles, c.tenant_id, c.raw["x"]) == (
        "u",
        frozenset({"read"}),
        frozenset({"r1"}),
        "t",
        1,
    )
    assert c.family_id == access.family_id
    assert tm.refresh(new.refresh_token).access_token != new.access_token


def test_refresh_reuse_revokes_the_whole_family() -> None:
    tm = manager()
    first = tm.issue_pair("u")
    second = tm.refresh(first.refresh_token)
    with pytest.raises(RefreshTokenReused, match="already used"):
        tm.refresh(first.refresh_token)
    # The thief's (or the user's) newer tokens are dead too: refresh and access.
    with pytest.raises(TokenRevoked):
        tm.refresh(second.refresh_token)
    with pytest.raises(TokenRevoked):
        tm.verify(second.access_token)
    with pytest.raises(TokenRevoked):
        tm.verify(first.access_token)
    # Another sign-in of the same user is untouched.
    other = tm.issue_pair("u")
    assert tm.verify(other.access_token).subject == "u"


def test_refresh_of_unknown_family_is_revoked() -> None:
    keys = KeySet.generate("HS256", kid="k")
    pair = manager(keys).issue_pair("u")
    fresh_store = manager(keys, store=MemoryTokenStore())  # e.g. the store was flushed
    with pytest.raises(TokenRevoked, match="revoked or has expired"):
        fresh_store.refresh(pair.refresh_token)


def test_expired_refresh_token_cannot_refresh() -> None:
    clock = Clock()
    tm = manager(clock=clock)
    pair = tm.issue_pair("u")
    clock.now += 30 * 86400 + 31
    with pytest.raises(TokenExpired):
        tm.refresh(pair.refresh_token)


# -- revocation ---------------------------------------------------------------------------


def test_revoke_access_token_keeps_others() -> None:
    tm = manager()
    a, b = tm.issue_access("u"), tm.issue_access("u")
    tm.revoke(a)
    with pytest.raises(TokenRevoked):
        tm.verify(a)
    assert tm.verify(b).subject == "u"


def test_revoke_refresh_token_signs_out_the_family() -> None:
    tm = manager()
    pair = tm.issue_pair("u")
    tm.revoke(pair.refresh_token)
    with pytest.raises(TokenRevoked):
        tm.refresh(pair.refresh_token)
    with pytest.raises(TokenRevoked):
        tm.verify(pair.access_token)


def test_revoke_requires_our_signature_and_issuer() -> None:
    tm = manager()
    forged = KeySet.generate("HS256", kid="k1").sign({"iss": ISS, "jti": "x", "exp": 2e9})
    with pytest.raises(InvalidToken, match="signature"):
        tm.revoke(forged)
    foreign = tm.keys.sign({"iss": "other", "jti": "x", "exp": 2e9})
    with pytest.raises(InvalidToken, match="not issued by this server"):
        tm.revoke(foreign)


def test_revoke_expired_token_is_a_no_op() -> None:
    clock = Clock()
    store = MemoryTokenStore()
    tm = manager(clock=clock, store=store)
    token = tm.issue_access("u")
    clock.now += 10_000
    tm.revoke(token)
    assert store._revoked == {}


def test_revoke_jti_and_family() -> None:
    clock = Clock()
    tm = manager(clock=clock)
    token = tm.issue_access("u")
    c = tm.verify(token)
    tm.revoke_jti(c.issuer, c.jti, c.expires_at)
    with pytest.raises(TokenRevoked):
        tm.verify(token)
    with pytest.raises(InvalidInput, match="timezone-aware"):
        tm.revoke_jti(ISS, "j", datetime(2030, 1, 1))
    pair = tm.issue_pair("u")
    fid = tm.verify(pair.access_token).family_id
    assert fid is not None
    tm.revoke_family(fid)
    with pytest.raises(TokenRevoked):
        tm.verify(pair.access_token)
    with pytest.raises(InvalidInput):
        tm.revoke_family("")


# -- async twins with a sync store --------------------------------------------------------


async def test_async_twins_work_with_the_memory_store() -> None:
    tm = manager()
    pair = await tm.aissue_pair("u", scopes=["s"])
    assert (await tm.averify(pair.access_token)).scopes == frozenset({"s"})
    new = await tm.arefresh(pair.refresh_token)
    with pytest.raises(RefreshTokenReused):
        await tm.arefresh(pair.refresh_token)
    with pytest.raises(TokenRevoked):
        await tm.averify(new.access_token)
    other = tm.issue_pair("v")
    await tm.arevoke(other.access_token)
    with pytest.raises(TokenRevoked):
        await tm.averify(other.access_token)
    await tm.arevoke_family(
        tm.verify(other.refresh_token, expected_type="refresh").family_id or "x"
    )
    with pytest.raises(TokenRevoked):
        await tm.arefresh(other.refresh_token)
