"""Signing keys for kit-auth's JWTs: a :class:`KeySet` of ``kid``-named keys with rotation.

A key set holds one *signing* key and any number of older keys kept for verification.
Four algorithms are supported, and only these: ``HS256`` (a shared secret of at least
32 bytes), ``EdDSA`` (Ed25519), ``ES256`` (EC P-256) and ``RS256`` (RSA, at least 2048
bits). The key material is handled by joserfc's typed keys, so a public key can never be
used as an HMAC secret.

When a token is checked, the key is found by the ``kid`` of its header and the
algorithm comes from *that key*: a header ``alg`` that differs is refused, never
followed. Headers other than ``alg``, ``kid`` and ``typ`` (``jwk``, ``jku``, ``x5u``,
``x5c``, ``crit``, ``b64`` ...) are refused too: kit-auth never takes a key or an
extension from the token it is checking.

Example::

    >>> keys = KeySet.generate("EdDSA", kid="2026-01")
    >>> token = keys.sign({"sub": "ada"})
    >>> header, claims = keys.decode(token)
    >>> header["kid"], header["alg"], claims["sub"]
    ('2026-01', 'EdDSA', 'ada')
    >>> "d" in keys.to_public_jwks()["keys"][0]   # never the private part
    False
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from joserfc.errors import JoseError
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import ECKey, Key, OctKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
from joserfc.util import urlsafe_b64decode, urlsafe_b64encode

from kit_auth.exceptions import ConfigurationError, InvalidToken

__all__ = ["ALGORITHMS", "Algorithm", "KeySet"]

Algorithm = Literal["HS256", "EdDSA", "ES256", "RS256"]

#: Every algorithm kit-auth signs or verifies with. ``none``, ``HS384``, ``PS*`` and the
#: rest are refused whatever a token's header says.
ALGORITHMS: Final[tuple[str, ...]] = ("HS256", "EdDSA", "ES256", "RS256")

_KEY_TYPES: Final[dict[str, str]] = {"HS256": "oct", "EdDSA": "OKP", "ES256": "EC", "RS256": "RSA"}
_MIN_SECRET_BYTES: Final = 32
_MIN_RSA_BITS: Final = 2048
_KID_MAX: Final = 64
_KID_RE: Final = re.compile(r"[A-Za-z0-9._~+-]{1,64}")
_ALLOWED_HEADER: Final = frozenset({"alg", "kid", "typ"})
_MAX_HEADER_SEGMENT: Final = 512


@dataclass(frozen=True, slots=True)
class _Entry:
    kid: str
    alg: str
    key: Key
    model: JWSAlgModel
    private: bool


def _check_kid(kid: object) -> str:
    if not isinstance(kid, str) or _KID_RE.fullmatch(kid) is None:
        raise ConfigurationError(
            f"A key id (kid) must be 1-{_KID_MAX} characters of A-Z, a-z, 0-9, '.', '_', "
            "'~', '+' or '-'; pass a kid like '2026-01'."
        )
    return kid


def _check_alg(alg: object) -> str:
    if alg not in ALGORITHMS:
        raise ConfigurationError(
            f"Unsupported JWT algorithm {alg!r}; use one of {', '.join(ALGORITHMS)}."
        )
    assert isinstance(alg, str)
    return alg


def _check_algorithms(algorithms: Collection[str] | None) -> frozenset[str]:
    if algorithms is None:
        return frozenset(ALGORITHMS)
    if isinstance(algorithms, str) or not algorithms:
        raise ConfigurationError(
            "algorithms must be a non-empty collection of algorithm names, "
            f"a subset of {', '.join(ALGORITHMS)}."
        )
    return frozenset(_check_alg(a) for a in algorithms)


def _native_alg(native: object) -> str:
    """The kit algorithm of a cryptography key object, or ConfigurationError."""
    if isinstance(native, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"
    if isinstance(native, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if not isinstance(native.curve, ec.SECP256R1):
            raise ConfigurationError(
                f"EC keys must use the P-256 curve (ES256); this one uses {native.curve.name}."
            )
        return "ES256"
    if isinstance(native, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if native.key_size < _MIN_RSA_BITS:
            raise ConfigurationError(
                f"RSA keys must have at least {_MIN_RSA_BITS} bits; this one has "
                f"{native.key_size}. Generate a 2048- or 3072-bit key."
            )
        return "RS256"
    raise ConfigurationError(
        "Unsupported key type; use an Ed25519, EC P-256 or RSA (>= 2048 bits) key."
    )


def _make_entry(key: Key, alg: str, kid: str | None) -> _Entry:
    """Validate *key* against *alg* and wrap it; *kid* defaults to the RFC 7638 thumbprint."""
    _check_alg(alg)
    if key.key_type != _KEY_TYPES[alg]:
        raise ConfigurationError(
            f"Algorithm {alg} needs a {_KEY_TYPES[alg]} key, not a {key.key_type} key."
        )
    if alg == "HS256":
        secret = cast(OctKey, key).raw_value
        if len(secret) < _MIN_SECRET_BYTES:
            raise ConfigurationError(
                f"An HS256 secret must be at least {_MIN_SECRET_BYTES} bytes (256 bits); this "
                f"one has {len(secret)}. Generate one with secrets.token_bytes(32)."
            )
        private = True
    else:
        native = cast(Any, key).raw_value
        if _native_alg(native) != alg:
            raise ConfigurationError(f"This key cannot be used with {alg}.")
        private = bool(cast(Any, key).is_private)
    model = JWSRegistry.algorithms[alg]
    try:
        model.check_key(key)
    except JoseError as exc:
        raise ConfigurationError(f"This key cannot be used with {alg}: {exc}") from exc
    return _Entry(
        _check_kid(kid if kid is not None else key.thumbprint()), alg, key, model, private
    )


class KeySet:
    """Signing and verification keys, each named by a ``kid``.

    Build one with :meth:`generate`, :meth:`from_secret`, :meth:`from_pem` or
    :meth:`from_jwks`. The signing key signs every new token with its ``kid`` in the
    header; :meth:`rotate` swaps in a new signing key and keeps the old ones for
    verification until :meth:`retire` drops them. ``algorithms`` restricts the
    accepted algorithms to a subset of :data:`ALGORITHMS`.

    Thread-safe: rotation replaces the lookup table atomically, so verifications in
    flight never see a half-updated set.

    Example::

        >>> old = KeySet.from_secret(b"0123456789abcdef0123456789abcdef", kid="k1")
        >>> token = old.sign({"sub": "ada"})
        >>> old.rotate(KeySet.generate("ES256", kid="k2"))
        >>> old.signing_kid, old.kids
        ('k2', ('k1', 'k2'))
        >>> old.decode(token)[1]["sub"]          # old tokens still verify
        'ada'
        >>> old.retire("k1")
        >>> old.decode(token)
        Traceback (most recent call last):
        ...
        kit_auth.exceptions.InvalidToken: The token was signed with a key this server does not know (unknown kid); sign in again to get a new token.
    """

    __slots__ = ("_algorithms", "_entries", "_header_cache", "_lock", "_signing")

    def __init__(
        self, entries: Iterable[_Entry], *, algorithms: Collection[str] | None = None
    ) -> None:
        """Internal: use the ``generate``/``from_*`` constructors."""
        self._algorithms = _check_algorithms(algorithms)
        self._lock = threading.Lock()
        table: dict[str, _Entry] = {}
        signing: _Entry | None = None
        for entry in entries:
            if not isinstance(entry, _Entry):
                raise ConfigurationError(
                    "KeySet() takes no raw keys; use KeySet.generate, from_secret, "
                    "from_pem or from_jwks."
                )
            self._admit(entry)
            if entry.kid in table:
                raise ConfigurationError(
                    f"Two keys share the kid {entry.kid!r}; kids must be unique."
                )
            table[entry.kid] = entry
            if signing is None and entry.private:
                signing = entry
        if not table:
            raise ConfigurationError("A KeySet needs at least one key.")
        self._entries: dict[str, _Entry] = table
        self._signing: _Entry | None = signing
        self._header_cache: dict[tuple[str, str], bytes] = {}

    def _admit(self, entry: _Entry) -> None:
        if entry.alg not in self._algorithms:
            raise ConfigurationError(
                f"Key {entry.kid!r} uses {entry.alg}, which this KeySet does not allow "
                f"(allowed: {', '.join(sorted(self._algorithms))})."
            )

    # -- constructors --------------------------------------------------------------------

    @classmethod
    def generate(
        cls,
        alg: str = "EdDSA",
        kid: str | None = None,
        *,
        algorithms: Collection[str] | None = None,
    ) -> KeySet:
        """A key set with one freshly generated key for *alg* (``EdDSA`` by default).

        Example::

            >>> KeySet.generate("HS256", kid="a").signing_alg
            'HS256'
        """
        alg = _check_alg(alg)
        key: Key
        if alg == "HS256":
            key = OctKey.generate_key(256)
        elif alg == "EdDSA":
            key = OKPKey.generate_key("Ed25519")
        elif alg == "ES256":
            key = ECKey.generate_key("P-256")
        else:
            key = RSAKey.generate_key(2048)
        return cls([_make_entry(key, alg, kid)], algorithms=algorithms)

    @classmethod
    def from_secret(
        cls,
        secret: bytes | str,
        kid: str | None = None,
        *,
        algorithms: Collection[str] | None = None,
    ) -> KeySet:
        """An HS256 key set from a shared secret of at least 32 bytes.

        A ``str`` secret is UTF-8 encoded. Without *kid*, the kid is the key's RFC 7638
        thumbprint, so every process given the same secret agrees on it.

        Example::

            >>> KeySet.from_secret("x" * 40, kid="shared").kids
            ('shared',)
            >>> KeySet.from_secret("short")
            Traceback (most recent call last):
            ...
            kit_auth.exceptions.ConfigurationError: An HS256 secret must be at least 32 bytes (256 bits); this one has 5. Generate one with secrets.token_bytes(32).
        """
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        if not isinstance(secret, bytes):
            raise ConfigurationError("The HS256 secret must be bytes or str.")
        if len(secret) < _MIN_SECRET_BYTES:
            raise ConfigurationError(
                f"An HS256 secret must be at least {_MIN_SECRET_BYTES} bytes (256 bits); this "
                f"one has {len(secret)}. Generate one with secrets.token_bytes(32)."
            )
        try:
            key = OctKey.import_key(secret)
        except ValueError as exc:  # a PEM or SSH key passed as a secret
            raise ConfigurationError(
                "The HS256 secret looks like a public/private key; use KeySet.from_pem for keys."
            ) from exc
        return cls([_make_entry(key, "HS256", kid)], algorithms=algorithms)

    @classmethod
    def from_pem(
        cls,
        pem: bytes | str,
        alg: str | None = None,
        kid: str | None = None,
        *,
        password: bytes | None = None,
        algorithms: Collection[str] | None = None,
    ) -> KeySet:
        """A key set from a PEM private key (signs and verifies) or public key (verifies).

        *alg* is inferred from the key (Ed25519 -> EdDSA, P-256 -> ES256, RSA -> RS256);
        when given it must match.

        Example::

            >>> from cryptography.hazmat.primitives.asymmetric import ed25519
            >>> from cryptography.hazmat.primitives import serialization as s
            >>> pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            ...     s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())
            >>> KeySet.from_pem(pem, kid="ed").signing_alg
            'EdDSA'
        """
        if isinstance(pem, str):
            pem = pem.encode("ascii", "replace")
        if not isinstance(pem, bytes) or b"-----BEGIN" not in pem:
            raise ConfigurationError("from_pem needs a PEM-encoded key ('-----BEGIN ...').")
        native: Any
        try:
            if b"PRIVATE KEY" in pem:
                native = load_pem_private_key(pem, password=password)
            else:
                native = load_pem_public_key(pem)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                "The PEM key could not be loaded (corrupt, wrong password, or an unsupported "
                "type); use an Ed25519, EC P-256 or RSA key."
            ) from exc
        found = _native_alg(native)
        if alg is not None and _check_alg(alg) != found:
            raise ConfigurationError(f"The PEM key is for {found}, but alg={alg!r} was given.")
        key: Key
        if found == "EdDSA":
            key = OKPKey.import_key(native)
        elif found == "ES256":
            key = ECKey.import_key(native)
        else:
            key = RSAKey.import_key(native)
        return cls([_make_entry(key, found, kid)], algorithms=algorithms)

    @classmethod
    def from_jwks(
        cls,
        jwks: Mapping[str, Any],
        *,
        signing_kid: str | None = None,
        algorithms: Collection[str] | None = None,
    ) -> KeySet:
        """A key set from a JWKS dict (``{"keys": [...]}``), usually from configuration.

        Each key needs a ``kid``; ``alg`` is inferred when absent. The signing key is
        *signing_kid*, else the first private key. A JWKS of public keys only gives a
        verify-only set.

        Example::

            >>> keys = KeySet.generate("ES256", kid="a")
            >>> KeySet.from_jwks(keys.to_private_jwks()).signing_kid
            'a'
        """
        raw = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(raw, list) or not raw:
            raise ConfigurationError('A JWKS must be a dict like {"keys": [<jwk>, ...]}.')
        entries: list[_Entry] = []
        for item in raw:
            if not isinstance(item, Mapping) or "kid" not in item:
                raise ConfigurationError("Every key of the JWKS needs a 'kid'.")
            data = dict(item)
            kty = data.get("kty")
            try:
                key: Key
                if kty == "oct":
                    key = OctKey.import_key(data)
                elif kty == "OKP":
                    key = OKPKey.import_key(data)
                elif kty == "EC":
                    key = ECKey.import_key(data)
                elif kty == "RSA":
                    key = RSAKey.import_key(data)
                else:
                    raise ConfigurationError(
                        f"JWKS key {data['kid']!r} has unsupported kty {kty!r}; "
                        "use oct, OKP, EC or RSA."
                    )
            except (JoseError, ValueError, TypeError) as exc:
                if isinstance(exc, ConfigurationError):
                    raise
                raise ConfigurationError(
                    f"JWKS key {data['kid']!r} is invalid ({type(exc).__name__})."
                ) from exc
            inferred = "HS256" if kty == "oct" else _native_alg(cast(Any, key).raw_value)
            alg = data.get("alg", inferred)
            if alg != inferred:
                raise ConfigurationError(
                    f"JWKS key {data['kid']!r} says alg={alg!r} but is a {inferred} key."
                )
            entries.append(_make_entry(key, inferred, data["kid"]))
        if signing_kid is not None:
            found = [e for e in entries if e.kid == signing_kid]
            if not found or not found[0].private:
                raise ConfigurationError(
                    f"signing_kid {signing_kid!r} is not a private key of this JWKS."
                )
            entries.remove(found[0])
            entries.insert(0, found[0])
        return cls(entries, algorithms=algorithms)

    # -- inspection ----------------------------------------------------------------------

    @property
    def kids(self) -> tuple[str, ...]:
        """The kids of every key, signing key included, in the order they were added."""
        return tuple(self._entries)

    @property
    def signing_kid(self) -> str | None:
        """The kid new tokens are signed with (``None`` for a verify-only set)."""
        return self._signing.kid if self._signing is not None else None

    @property
    def signing_alg(self) -> str | None:
        """The algorithm of the signing key (``None`` for a verify-only set)."""
        return self._signing.alg if self._signing is not None else None

    @property
    def algorithms(self) -> frozenset[str]:
        """The algorithms this set accepts."""
        return self._algorithms

    def to_public_jwks(self) -> dict[str, Any]:
        """The public keys as a JWKS, for a ``/.well-known/jwks.json`` route.

        Shared HS256 secrets are never published (they are not public keys), and no
        private member (``d``, ``p``, ``q`` ...) is ever included.

        Example::

            >>> keys = KeySet.generate("EdDSA", kid="k")
            >>> sorted(keys.to_public_jwks()["keys"][0])
            ['alg', 'crv', 'kid', 'kty', 'use', 'x']
        """
        out: list[dict[str, Any]] = []
        for entry in self._entries.values():
            if entry.alg == "HS256":
                continue
            data = dict(entry.key.as_dict(private=False))
            data.update(kid=entry.kid, alg=entry.alg, use="sig")
            out.append(data)
        return {"keys": out}

    def to_private_jwks(self) -> dict[str, Any]:
        """Every key with its private part, signing key first: for saving a generated set
        to a secret store and loading it back with :meth:`from_jwks`. Treat the result
        as a secret.

        Example::

            >>> "d" in KeySet.generate("EdDSA", kid="k").to_private_jwks()["keys"][0]
            True
        """
        ordered = list(self._entries.values())
        if self._signing is not None:
            ordered.remove(self._signing)
            ordered.insert(0, self._signing)
        out: list[dict[str, Any]] = []
        for entry in ordered:
            data = dict(entry.key.as_dict(private=entry.private))
            data.update(kid=entry.kid, alg=entry.alg)
            out.append(data)
        return {"keys": out}

    # -- rotation ------------------------------------------------------------------------

    def rotate(self, new: KeySet) -> None:
        """Make *new*'s signing key the signing key, keeping every current key for
        verification. Keys of *new* join the set; kids must not clash.

        Example::

            >>> keys = KeySet.generate("EdDSA", kid="a")
            >>> keys.rotate(KeySet.generate("EdDSA", kid="b"))
            >>> keys.signing_kid
            'b'
        """
        if not isinstance(new, KeySet):
            raise ConfigurationError("rotate() takes a KeySet, e.g. KeySet.generate(...).")
        if new._signing is None:
            raise ConfigurationError("rotate() needs a KeySet with a private signing key.")
        with self._lock:
            table = dict(self._entries)
            for entry in new._entries.values():
                self._admit(entry)
                current = table.get(entry.kid)
                if current is not None and current.key != entry.key:
                    raise ConfigurationError(
                        f"kid {entry.kid!r} is already used by another key; pick a new kid."
                    )
                table[entry.kid] = entry
            self._entries = table
            self._signing = table[new._signing.kid]

    def retire(self, kid: str) -> None:
        """Drop the key *kid*: tokens signed with it stop verifying. The signing key
        cannot be retired (rotate first).

        Example::

            >>> keys = KeySet.generate("EdDSA", kid="a")
            >>> keys.retire("a")
            Traceback (most recent call last):
            ...
            kit_auth.exceptions.ConfigurationError: Key 'a' is the signing key; rotate to a new key before retiring it.
        """
        with self._lock:
            if kid not in self._entries:
                raise ConfigurationError(f"No key with kid {kid!r} in this KeySet.")
            if self._signing is not None and self._signing.kid == kid:
                raise ConfigurationError(
                    f"Key {kid!r} is the signing key; rotate to a new key before retiring it."
                )
            table = dict(self._entries)
            del table[kid]
            self._entries = table

    # -- JWS -----------------------------------------------------------------------------

    def sign(self, claims: Mapping[str, Any], *, typ: str = "JWT") -> str:
        """Sign *claims* as a compact JWS with the signing key (its kid in the header).

        No claim is added or checked here; :class:`kit_auth.tokens.TokenManager` builds
        the claims of access and refresh tokens.

        Example::

            >>> keys = KeySet.generate("HS256", kid="k")
            >>> keys.sign({"a": 1}).count(".")
            2
        """
        entry = self._signing
        if entry is None:
            raise ConfigurationError(
                "This KeySet has only public keys and cannot sign; load a private key."
            )
        header = self._header_cache.get((entry.kid, typ))
        if header is None:
            header = urlsafe_b64encode(
                json.dumps(
                    {"alg": entry.alg, "kid": entry.kid, "typ": typ}, separators=(",", ":")
                ).encode()
            )
            self._header_cache[(entry.kid, typ)] = header
        payload = urlsafe_b64encode(
            json.dumps(claims, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode(
                "ascii"
            )
        )
        signing_input = header + b"." + payload
        signature = entry.model.sign(signing_input, entry.key)
        return (signing_input + b"." + urlsafe_b64encode(signature)).decode("ascii")

    def decode(self, token: str | bytes) -> tuple[dict[str, Any], dict[str, Any]]:
        """Check the structure, header and signature of a compact JWS; return
        ``(header, claims)``.

        Claims are *not* validated here (no ``exp``, ``iss`` ...): that is
        :meth:`kit_auth.tokens.TokenManager.verify`'s job. Every failure raises
        :class:`~kit_auth.exceptions.InvalidToken`.

        Example::

            >>> keys = KeySet.generate("HS256", kid="k")
            >>> keys.decode("not-a-token")
            Traceback (most recent call last):
            ...
            kit_auth.exceptions.InvalidToken: The token is malformed (a JWT has three dot-separated parts); send the token exactly as it was issued.
        """
        if isinstance(token, str):
            try:
                raw = token.encode("ascii")
            except UnicodeEncodeError:
                raise InvalidToken(
                    "The token contains non-ASCII characters; send the token exactly as it was issued."
                ) from None
        elif isinstance(token, bytes):
            raw = token
        else:
            raise InvalidToken("The token must be a string.")
        parts = raw.split(b".")
        if len(parts) != 3:
            raise InvalidToken(
                "The token is malformed (a JWT has three dot-separated parts); send the token "
                "exactly as it was issued."
            )
        header_seg, payload_seg, sig_seg = parts
        if len(header_seg) > _MAX_HEADER_SEGMENT:
            raise InvalidToken("The token header is too large; send a token issued by this server.")
        try:
            header = json.loads(urlsafe_b64decode(header_seg))
        except (ValueError, TypeError, RecursionError):
            raise InvalidToken(
                "The token header is not valid base64url JSON; send the token exactly as it was issued."
            ) from None
        if not isinstance(header, dict):
            raise InvalidToken("The token header is not a JSON object.")
        if not _ALLOWED_HEADER.issuperset(header):
            extra = sorted(k for k in header if k not in _ALLOWED_HEADER)[:3]
            names = ", ".join(repr(k)[:24] for k in extra)
            raise InvalidToken(
                f"The token header carries {names}; this server never takes keys, key URLs or "
                "critical extensions from a token. Use a token issued by this server."
            )
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise InvalidToken(
                "The token's algorithm is not accepted here (only "
                f"{', '.join(sorted(self._algorithms))}); use a token issued by this server."
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or _KID_RE.fullmatch(kid) is None:
            raise InvalidToken(
                "The token has no usable key id (kid); use a token issued by this server."
            )
        entry = self._entries.get(kid)
        if entry is None:
            raise InvalidToken(
                "The token was signed with a key this server does not know (unknown kid); "
                "sign in again to get a new token."
            )
        if alg != entry.alg:
            raise InvalidToken(
                "The token's algorithm does not match its key; use a token issued by this server."
            )
        try:
            signature = urlsafe_b64decode(sig_seg)
            payload_bytes = urlsafe_b64decode(payload_seg)
        except (ValueError, TypeError):
            raise InvalidToken(
                "The token is not valid base64url; send the token exactly as it was issued."
            ) from None
        try:
            valid = entry.model.verify(header_seg + b"." + payload_seg, signature, entry.key)
        except (ValueError, TypeError, JoseError):
            valid = False
        if not valid:
            raise InvalidToken(
                "The token's signature is invalid; it was altered or not issued by this server."
            )
        try:
            claims = json.loads(payload_bytes)
        except (ValueError, RecursionError):
            raise InvalidToken("The token payload is not valid JSON.") from None
        if not isinstance(claims, dict):
            raise InvalidToken("The token payload is not a JSON object.")
        return header, claims
