"""JWT verify throughput: kit-auth's TokenManager.verify against PyJWT.

Both sides check the same token with the same key and equivalent rules: the algorithm
allow-list, ``iss``, ``aud``, presence of ``exp``/``iat``/``jti``/``sub``, ``exp``/``nbf``/
``iat``. kit additionally checks the token type and its revocation in the default memory
store. Target: at least 0.8x PyJWT's throughput, i.e. ``kit_us / peer_us <= 1.25``.

    python packages/kit-auth/benchmarks/jwt_bench.py [--quick]
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import ed25519

from kit_auth.keys import KeySet
from kit_auth.tokens import TokenManager

ISSUER = "https://api.example.com"
AUDIENCE = "example-api"
TARGET = 1.25


def _one_round_us(fn: Callable[[], Any], number: int) -> float:
    return timeit.timeit(fn, number=number) / number * 1e6


def _measure(kit: Callable[[], Any], peer: Callable[[], Any], quick: bool) -> tuple[float, float]:
    rounds, number = (3, 500) if quick else (9, 3000)
    kit_us = peer_us = float("inf")
    for _ in range(rounds):  # interleaved, so machine load hits both sides alike
        kit_us = min(kit_us, _one_round_us(kit, number))
        peer_us = min(peer_us, _one_round_us(peer, number))
    return kit_us, peer_us


def _row(name: str, peer: str, kit_us: float, peer_us: float, target: str) -> dict[str, object]:
    ratio = kit_us / peer_us
    verdict = ("meets target" if ratio <= TARGET else "misses target") if target else "info"
    return {
        "name": name,
        "kit": "kit-auth",
        "peer": peer,
        "kit_us": kit_us,
        "peer_us": peer_us,
        "ratio": ratio,
        "target": target or "info",
        "verdict": verdict,
    }


def rows(quick: bool, redis_url: str) -> list[dict[str, object]]:
    """Benchmark rows (``redis_url`` is unused: kit runs with its default memory store)."""
    del redis_url
    peer = f"PyJWT {version('pyjwt')}"
    options: Any = {"require": ["exp", "iat", "jti", "sub", "iss", "aud"]}
    out: list[dict[str, object]] = []

    secret = b"s" * 32
    private = ed25519.Ed25519PrivateKey.generate()
    cases: list[tuple[str, KeySet, Any, str]] = [
        ("verify HS256", KeySet.from_secret(secret, kid="hs"), secret, "HS256"),
        ("verify EdDSA", KeySet.from_pem(_pem(private), kid="ed"), private.public_key(), "EdDSA"),
    ]
    for name, keys, peer_key, alg in cases:
        tm = TokenManager(keys, issuer=ISSUER, audience=AUDIENCE)
        token = tm.issue_access("user-1", scopes=["read", "write"], roles=["admin"])
        # PyJWT checks kit's very token (same header, same claims, same key).
        assert (
            pyjwt.decode(
                token, peer_key, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER, options=options
            )["sub"]
            == "user-1"
        )

        def kit(tm: TokenManager = tm, token: str = token) -> object:
            return tm.verify(token)

        def peer_call(token: str = token, key: Any = peer_key, alg: str = alg) -> object:
            return pyjwt.decode(
                token, key, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER, options=options
            )

        kit_us, peer_us = _measure(kit, peer_call, quick)
        out.append(_row(name, peer, kit_us, peer_us, f"<= {TARGET}x"))

    # issue: info only (kit also draws a random jti and checks the arguments).
    keys = KeySet.from_secret(secret, kid="hs")
    tm = TokenManager(keys, issuer=ISSUER, audience=AUDIENCE)

    def kit_issue() -> object:
        return tm.issue_access("user-1", scopes=["read"], roles=["admin"])

    def peer_issue() -> object:
        import secrets
        import time

        now = int(time.time())
        claims = {
            "sub": "user-1",
            "scope": "read",
            "roles": ["admin"],
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + 900,
            "jti": secrets.token_urlsafe(16),
            "token_use": "access",
        }
        return pyjwt.encode(
            claims, secret, algorithm="HS256", headers={"kid": "hs", "typ": "at+jwt"}
        )

    kit_us, peer_us = _measure(kit_issue, peer_issue, quick)
    out.append(_row("issue_access HS256", peer, kit_us, peer_us, ""))
    return out


def _pem(private: ed25519.Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization as s

    return private.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())


if __name__ == "__main__":
    for row in rows("--quick" in sys.argv, "redis://127.0.0.1:6379/15"):
        print(
            f"{row['name']}: kit {row['kit_us']:.2f} us vs {row['peer']} {row['peer_us']:.2f} us "
            f"= {row['ratio']:.2f}x ({row['target'] or 'info'}: {row['verdict']})"
        )
