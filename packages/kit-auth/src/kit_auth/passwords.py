"""Password hashing with argon2id (argon2-cffi), secure by default.

:class:`PasswordHasher` wraps :class:`argon2.PasswordHasher` and adds what a login needs
around it: a length cap checked before any hashing (hashing DoS), a minimum length for
new passwords, Unicode normalization (NFKC, as NIST SP 800-63B recommends, so "é" typed
as one or two code points is the same password), an optional pepper, rehash-on-login
(:meth:`~PasswordHasher.verify_and_update`) and a dummy verification that makes an
unknown account cost as much time as a known one.

Parameters are named profiles or explicit values. The default is RFC 9106's second
recommended option (argon2-cffi's default: t=3, m=64 MiB, p=4); ``"owasp"`` is the OWASP
minimum (m=19 MiB, t=2, p=1). Anything below the OWASP minimum (or one of its equivalent
rows: 46 MiB/t=1, 12 MiB/t=3, 9 MiB/t=4, 7 MiB/t=5) is refused unless ``allow_weak=True``,
which is meant for tests only.

Hashes are PHC strings (``$argon2id$v=19$m=65536,t=3,p=4$salt$hash``); store them as is.

Example::

    >>> hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, allow_weak=True)
    >>> stored = hasher.hash("correct horse battery staple")
    >>> stored.startswith("$argon2id$")
    True
    >>> hasher.verify(stored, "correct horse battery staple")
    True
    >>> hasher.verify(stored, "Tr0ub4dor&3")
    False
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import unicodedata
from dataclasses import replace
from typing import Final

import argon2
from argon2 import Parameters, extract_parameters, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import Type

from kit_auth.exceptions import ConfigurationError, InvalidInput

__all__ = ["PROFILES", "PasswordHasher"]

#: Named parameter sets accepted by ``PasswordHasher(profile=...)``.
PROFILES: Final[dict[str, Parameters]] = {
    # RFC 9106 "second recommended option" = argon2-cffi's default (t=3, m=64 MiB, p=4).
    "rfc9106-low-memory": profiles.RFC_9106_LOW_MEMORY,
    # RFC 9106 "first recommended option" (t=1, m=2 GiB, p=4): only with memory to spare.
    "rfc9106-high-memory": profiles.RFC_9106_HIGH_MEMORY,
    # OWASP Password Storage Cheat Sheet minimum: m=19 MiB, t=2, p=1.
    "owasp": replace(profiles.RFC_9106_LOW_MEMORY, time_cost=2, memory_cost=19456, parallelism=1),
}

DEFAULT_PROFILE: Final = "rfc9106-low-memory"

# OWASP's equivalent argon2id settings: minimum memory (KiB) for a given time cost.
_OWASP_MIN_MEMORY: Final[dict[int, int]] = {1: 47104, 2: 19456, 3: 12288, 4: 9216, 5: 7168}

# The smallest maximum length NIST/OWASP allow (a cap must accept at least 64 characters).
_MIN_MAX_LENGTH: Final = 64
_PEPPER_MIN_BYTES: Final = 32
# A stable password for the dummy hash; its value does not matter, only its cost.
_PHC_RE: Final = re.compile(
    r"\$argon2(?:id|i|d)(?:\$v=\d{1,3})?\$m=\d{1,10},t=\d{1,10},p=\d{1,3}"
    r"\$[A-Za-z0-9+/]{4,}\$[A-Za-z0-9+/]{4,}"
)
_DUMMY_PASSWORD: Final = b"kit-auth dummy password for timing equalisation"


def _meets_owasp(params: Parameters) -> bool:
    """Whether *params* reach one of OWASP's equivalent argon2id minimums."""
    if params.type is not Type.ID:
        return False
    required = _OWASP_MIN_MEMORY[min(params.time_cost, 5)] if params.time_cost >= 1 else None
    return required is not None and params.memory_cost >= required and params.parallelism >= 1


class PasswordHasher:
    """Hash and verify passwords with argon2id.

    Args:
        profile: a name from :data:`PROFILES` (default ``"rfc9106-low-memory"``: t=3,
            m=64 MiB, p=4; ``"owasp"``: t=2, m=19 MiB, p=1).
        time_cost, memory_cost, parallelism: override the profile's values
            (``memory_cost`` in KiB).
        allow_weak: accept parameters below the OWASP minimum (tests only).
        min_length: shortest *new* password :meth:`hash` accepts (default 8, OWASP's
            minimum with MFA; use 15 without MFA). :meth:`verify` does not apply it, so
            raising it never locks out existing users.
        max_length: longest password accepted at all, in characters (default 1024, at
            least 64). It is checked before any hashing, so a megabyte "password" costs
            nothing.
        pepper: an optional server-side secret (>= 32 bytes, kept out of the database,
            e.g. in a vault). The password is replaced by HMAC-SHA256(pepper, password)
            before argon2, so a stolen database alone cannot be cracked. Changing or losing
            the pepper makes every stored hash unverifiable.
        normalize: apply Unicode NFKC before hashing (default True, NIST SP 800-63B).
            Set False to verify hashes imported from a system that did not normalize.

    Instances are immutable and thread-safe; argon2 releases the GIL while hashing.

    Example::

        >>> hasher = PasswordHasher(profile="owasp", time_cost=1, memory_cost=8, allow_weak=True)
        >>> hasher.parameters.parallelism
        1
        >>> PasswordHasher(time_cost=1, memory_cost=1024)
        Traceback (most recent call last):
          ...
        kit_auth.exceptions.ConfigurationError: argon2 parameters t=1, m=1024 KiB are below the OWASP minimum (m=19456 KiB with t=2, or 47104 KiB with t=1); raise them, or pass allow_weak=True in tests
    """

    def __init__(
        self,
        *,
        profile: str = DEFAULT_PROFILE,
        time_cost: int | None = None,
        memory_cost: int | None = None,
        parallelism: int | None = None,
        allow_weak: bool = False,
        min_length: int = 8,
        max_length: int = 1024,
        pepper: bytes | None = None,
        normalize: bool = True,
    ) -> None:
        if not isinstance(profile, str) or profile not in PROFILES:
            names = ", ".join(sorted(PROFILES))
            raise ConfigurationError(f"unknown password profile {profile!r}; use one of {names}")
        params = PROFILES[profile]
        for name, value in (
            ("time_cost", time_cost),
            ("memory_cost", memory_cost),
            ("parallelism", parallelism),
        ):
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
        params = replace(
            params,
            time_cost=params.time_cost if time_cost is None else time_cost,
            memory_cost=params.memory_cost if memory_cost is None else memory_cost,
            parallelism=params.parallelism if parallelism is None else parallelism,
        )
        if params.memory_cost < 8 * params.parallelism:
            raise ConfigurationError(
                f"memory_cost must be at least 8 KiB per lane (8 * parallelism = "
                f"{8 * params.parallelism}), got {params.memory_cost}"
            )
        if not allow_weak and not _meets_owasp(params):
            raise ConfigurationError(
                f"argon2 parameters t={params.time_cost}, m={params.memory_cost} KiB are below "
                "the OWASP minimum (m=19456 KiB with t=2, or 47104 KiB with t=1); raise them, "
                "or pass allow_weak=True in tests"
            )
        if not isinstance(min_length, int) or isinstance(min_length, bool) or min_length < 1:
            raise ConfigurationError(f"min_length must be a positive integer, got {min_length!r}")
        if (
            not isinstance(max_length, int)
            or isinstance(max_length, bool)
            or max_length < max(_MIN_MAX_LENGTH, min_length)
        ):
            raise ConfigurationError(
                f"max_length must be an integer of at least {_MIN_MAX_LENGTH} (NIST: allow "
                f"64-character passphrases) and at least min_length, got {max_length!r}"
            )
        if pepper is not None and (
            not isinstance(pepper, bytes) or len(pepper) < _PEPPER_MIN_BYTES
        ):
            raise ConfigurationError(
                f"pepper must be bytes of at least {_PEPPER_MIN_BYTES} bytes "
                "(e.g. secrets.token_bytes(32)), or None"
            )
        self._params = params
        self._argon2 = argon2.PasswordHasher.from_parameters(params)
        self.min_length = min_length
        self.max_length = max_length
        self._pepper = pepper
        self._normalize = bool(normalize)
        self._dummy_hash: str | None = None
        self._dummy_lock = threading.Lock()

    def __repr__(self) -> str:
        p = self._params
        return (
            f"PasswordHasher(t={p.time_cost}, m={p.memory_cost}, p={p.parallelism}, "
            f"pepper={'yes' if self._pepper else 'no'})"
        )

    @property
    def parameters(self) -> Parameters:
        """The argon2 parameters new hashes are made with.

        Example::

            >>> PasswordHasher().parameters.memory_cost
            65536
        """
        return self._params

    # -- public API ---------------------------------------------------------------------

    def check_strength(self, password: str) -> None:
        """Refuse a *new* password that is not a usable string or is too short or too long.

        Raises :class:`~kit_auth.exceptions.InvalidInput` with a message the user can act on.

        Example::

            >>> PasswordHasher().check_strength("short")
            Traceback (most recent call last):
              ...
            kit_auth.exceptions.InvalidInput: The password must be at least 8 characters long.
        """
        self._check_password(password)
        if len(password) < self.min_length:
            raise InvalidInput(f"The password must be at least {self.min_length} characters long.")

    def hash(self, password: str) -> str:
        """Hash a new *password* into a PHC string (applies :meth:`check_strength`).

        Example::

            >>> hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, allow_weak=True)
            >>> hasher.hash("correct horse battery staple")[:27]
            '$argon2id$v=19$m=8,t=1,p=1$'
        """
        self.check_strength(password)
        return self._argon2.hash(self._prepare(password))

    def verify(self, hashed: str, password: str) -> bool:
        """Whether *password* matches the stored *hashed*; False on a mismatch.

        Raises :class:`~kit_auth.exceptions.InvalidInput` for a password that is not a
        string, is empty or is over ``max_length`` (checked before hashing), and for a
        stored hash that is not a valid argon2 PHC string.

        Example::

            >>> hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, allow_weak=True)
            >>> hasher.verify(hasher.hash("pässwörd-123"), "pässwörd-123")
            True
            >>> hasher.verify("not a hash", "pässwörd-123")
            Traceback (most recent call last):
              ...
            kit_auth.exceptions.InvalidInput: The stored password hash is malformed (not an argon2 PHC string); reset this password.
        """
        self._check_password(password)
        self._check_hash(hashed)
        return self._verify(hashed, self._prepare(password))

    def needs_rehash(self, hashed: str) -> bool:
        """Whether *hashed* was made with other parameters (or another argon2 variant).

        Example::

            >>> old = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, allow_weak=True)
            >>> new = PasswordHasher(time_cost=2, memory_cost=8, parallelism=1, allow_weak=True)
            >>> new.needs_rehash(old.hash("correct horse battery staple"))
            True
        """
        params = self._check_hash(hashed)
        return params != self._params

    def verify_and_update(self, hashed: str, password: str) -> tuple[bool, str | None]:
        """Verify, and on success return a new hash when the parameters were raised.

        Returns ``(False, None)`` on a mismatch, ``(True, None)`` when the stored hash is
        current, ``(True, new_hash)`` when it should be replaced by ``new_hash``. The
        rehash skips ``min_length``: an existing password is never refused here.

        Example::

            >>> old = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, allow_weak=True)
            >>> new = PasswordHasher(time_cost=2, memory_cost=8, parallelism=1, allow_weak=True)
            >>> ok, new_hash = new.verify_and_update(old.hash("hunter2hunter2"), "hunter2hunter2")
            >>> ok, new_hash is not None and new.needs_rehash(new_hash)
            (True, False)
        """
        self._check_password(password)
        params = self._check_hash(hashed)
        prepared = self._prepare(password)
        if not self._verify(hashed, prepared):
            return False, None
        if params == self._params:
            return True, None
        return True, self._argon2.hash(prepared)

    def verify_dummy(self, password: str) -> bool:
        """Burn one verification against a fixed hash; always False.

        Call it when the account does not exist, so "unknown user" takes as long as
        "wrong password" and response times do not reveal which accounts exist. The
        fixed hash uses this hasher's parameters and is made once, on first use.

        Example::

            >>> hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, allow_weak=True)
            >>> hasher.verify_dummy("whatever the client sent")
            False
        """
        self._check_password(password)
        dummy = self._dummy_hash
        if dummy is None:
            with self._dummy_lock:
                if self._dummy_hash is None:
                    self._dummy_hash = self._argon2.hash(_DUMMY_PASSWORD)
                dummy = self._dummy_hash
        self._verify(dummy, self._prepare(password))
        return False

    # -- internals ----------------------------------------------------------------------

    def _check_password(self, password: object) -> None:
        if not isinstance(password, str):
            raise InvalidInput(f"The password must be a string, not {type(password).__name__}.")
        if not password:
            raise InvalidInput("The password is empty.")
        if len(password) > self.max_length:
            raise InvalidInput(
                f"The password is longer than the maximum of {self.max_length} characters."
            )

    @staticmethod
    def _check_hash(hashed: object) -> Parameters:
        bad = (
            "The stored password hash is malformed (not an argon2 PHC string); reset this password."
        )
        if not isinstance(hashed, str) or not _PHC_RE.fullmatch(hashed):
            raise InvalidInput(bad)
        try:
            return extract_parameters(hashed)
        except (InvalidHashError, ValueError):
            raise InvalidInput(bad) from None

    def _prepare(self, password: str) -> bytes:
        if self._normalize:
            password = unicodedata.normalize("NFKC", password)
        data = password.encode("utf-8", "surrogatepass")
        if self._pepper is not None:
            return hmac.new(self._pepper, data, hashlib.sha256).digest()
        return data

    def _verify(self, hashed: str, prepared: bytes) -> bool:
        try:
            return self._argon2.verify(hashed, prepared)
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError):
            raise InvalidInput(
                "The stored password hash is malformed (not an argon2 PHC string); "
                "reset this password."
            ) from None
