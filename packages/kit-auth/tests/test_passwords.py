"""PasswordHasher: argon2id hashing, verification, rehash, pepper and input limits."""

from __future__ import annotations

import secrets
import threading
import unicodedata
from unittest import mock

import argon2
import pytest

from kit_auth.exceptions import ConfigurationError, InvalidInput
from kit_auth.passwords import PROFILES, PasswordHasher

CHEAP = {"time_cost": 1, "memory_cost": 8, "parallelism": 1, "allow_weak": True}


@pytest.fixture
def hasher() -> PasswordHasher:
    return PasswordHasher(**CHEAP)  # type: ignore[arg-type]


def test_round_trip(hasher: PasswordHasher) -> None:
    stored = hasher.hash("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert hasher.verify(stored, "correct horse battery staple") is True


def test_two_hashes_of_one_password_differ(hasher: PasswordHasher) -> None:
    assert hasher.hash("correct horse battery staple") != hasher.hash(
        "correct horse battery staple"
    )


def test_wrong_password_is_false_not_an_error(hasher: PasswordHasher) -> None:
    stored = hasher.hash("correct horse battery staple")
    assert hasher.verify(stored, "correct horse battery stapl") is False
    assert hasher.verify(stored, "x") is False  # min_length does not apply to verify


def test_over_length_password_refused_before_hashing(hasher: PasswordHasher) -> None:
    stored = hasher.hash("correct horse battery staple")
    huge = "a" * (hasher.max_length + 1)
    with (
        mock.patch.object(argon2.PasswordHasher, "hash") as hash_,
        mock.patch.object(argon2.PasswordHasher, "verify") as verify,
    ):
        with pytest.raises(InvalidInput, match="longer than the maximum of 1024"):
            hasher.hash(huge)
        with pytest.raises(InvalidInput, match="longer than the maximum"):
            hasher.verify(stored, huge)
        with pytest.raises(InvalidInput, match="longer than the maximum"):
            hasher.verify_dummy(huge)
    hash_.assert_not_called()
    verify.assert_not_called()
    # The cap itself is accepted.
    assert hasher.verify(stored, "a" * hasher.max_length) is False


@pytest.mark.parametrize("bad", ["", None, b"bytes-password", 12345678])
def test_non_string_or_empty_password_refused(hasher: PasswordHasher, bad: object) -> None:
    stored = hasher.hash("correct horse battery staple")
    with pytest.raises(InvalidInput, match="password"):
        hasher.verify(stored, bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="password"):
        hasher.hash(bad)  # type: ignore[arg-type]


def test_min_length_applies_to_new_passwords_only() -> None:
    old = PasswordHasher(min_length=8, **CHEAP)  # type: ignore[arg-type]
    stored = old.hash("eightchr")
    strict = PasswordHasher(min_length=15, **CHEAP)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="at least 15 characters"):
        strict.hash("eightchr")
    assert strict.verify(stored, "eightchr") is True
    assert strict.verify_and_update(stored, "eightchr") == (True, None)


def test_unicode_passwords(hasher: PasswordHasher) -> None:
    password = "pässwörd 密码 🔑 Ωmega"
    stored = hasher.hash(password)
    assert hasher.verify(stored, password) is True
    assert hasher.verify(stored, password.replace("ä", "a")) is False


def test_unicode_forms_are_normalized(hasher: PasswordHasher) -> None:
    composed = unicodedata.normalize("NFC", "café crème brûlée")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert hasher.verify(hasher.hash(composed), decomposed) is True


def test_normalize_false_verifies_raw_argon2_cffi_hashes() -> None:
    raw = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    decomposed = unicodedata.normalize("NFD", "café crème brûlée")
    stored = raw.hash(decomposed)
    assert PasswordHasher(normalize=False, **CHEAP).verify(stored, decomposed) is True  # type: ignore[arg-type]
    assert PasswordHasher(**CHEAP).verify(stored, decomposed) is False  # type: ignore[arg-type]


def test_needs_rehash_after_raising_parameters(hasher: PasswordHasher) -> None:
    stored = hasher.hash("correct horse battery staple")
    assert hasher.needs_rehash(stored) is False
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1, allow_weak=True)
    assert stronger.needs_rehash(stored) is True


def test_verify_and_update_returns_new_hash(hasher: PasswordHasher) -> None:
    stored = hasher.hash("correct horse battery staple")
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1, allow_weak=True)
    ok, new_hash = stronger.verify_and_update(stored, "correct horse battery staple")
    assert ok is True
    assert new_hash is not None
    assert new_hash.startswith("$argon2id$v=19$m=16,t=2,p=1$")
    assert stronger.needs_rehash(new_hash) is False
    assert stronger.verify(new_hash, "correct horse battery staple") is True
    assert stronger.verify_and_update(stored, "wrong password!") == (False, None)
    assert hasher.verify_and_update(stored, "correct horse battery staple") == (True, None)


def test_argon2i_hash_verifies_and_needs_rehash(hasher: PasswordHasher) -> None:
    legacy = argon2.PasswordHasher(
        time_cost=1, memory_cost=8, parallelism=1, type=argon2.Type.I
    ).hash("correct horse battery staple")
    ok, new_hash = hasher.verify_and_update(legacy, "correct horse battery staple")
    assert ok is True
    assert new_hash is not None and new_hash.startswith("$argon2id$")


def test_pepper_changes_hash_and_wrong_pepper_fails() -> None:
    pepper = secrets.token_bytes(32)
    peppered = PasswordHasher(pepper=pepper, **CHEAP)  # type: ignore[arg-type]
    stored = peppered.hash("correct horse battery staple")
    assert peppered.verify(stored, "correct horse battery staple") is True
    # Without the pepper, or with another one, the same password does not verify.
    assert PasswordHasher(**CHEAP).verify(stored, "correct horse battery staple") is False  # type: ignore[arg-type]
    other = PasswordHasher(pepper=secrets.token_bytes(32), **CHEAP)  # type: ignore[arg-type]
    assert other.verify(stored, "correct horse battery staple") is False
    # Same salt, with and without pepper: different hashes.
    salt = b"0123456789abcdef"
    raw = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    plain = raw.hash(b"correct horse battery staple", salt=salt)
    assert peppered.verify(plain, "correct horse battery staple") is False


@pytest.mark.parametrize("pepper", [b"short", "a-string-pepper-that-is-long-enough-32"])
def test_bad_pepper_refused(pepper: object) -> None:
    with pytest.raises(ConfigurationError, match="pepper"):
        PasswordHasher(pepper=pepper, **CHEAP)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("time_cost", "memory_cost", "parallelism"),
    [(1, 19456, 1), (2, 19455, 1), (3, 12287, 4), (1, 1024, 1), (10, 4096, 1)],
)
def test_weak_parameters_refused(time_cost: int, memory_cost: int, parallelism: int) -> None:
    with pytest.raises(ConfigurationError, match="below the OWASP minimum"):
        PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)


@pytest.mark.parametrize(
    ("time_cost", "memory_cost"), [(2, 19456), (1, 47104), (3, 12288), (4, 9216), (5, 7168)]
)
def test_owasp_equivalent_rows_accepted(time_cost: int, memory_cost: int) -> None:
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=1)
    assert hasher.parameters.memory_cost == memory_cost


def test_default_parameters_at_least_owasp() -> None:
    params = PasswordHasher().parameters
    assert params.type is argon2.Type.ID
    assert params.memory_cost >= 19456 and params.time_cost >= 2 and params.parallelism >= 1
    assert (params.time_cost, params.memory_cost, params.parallelism) == (3, 65536, 4)
    owasp = PasswordHasher(profile="owasp").parameters
    assert (owasp.time_cost, owasp.memory_cost, owasp.parallelism) == (2, 19456, 1)
    assert set(PROFILES) >= {"rfc9106-low-memory", "owasp"}


def test_default_parameters_end_to_end() -> None:
    hasher = PasswordHasher(profile="owasp")  # the real minimum, one hash + two verifies
    stored = hasher.hash("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert hasher.verify(stored, "correct horse battery staple") is True
    assert hasher.verify(stored, "correct horse battery stapler") is False


@pytest.mark.parametrize(
    "kwargs",
    [
        {"profile": "bcrypt"},
        {"time_cost": 0},
        {"memory_cost": "lots"},
        {"parallelism": True},
        {"min_length": 0},
        {"max_length": 63},
        {"min_length": 100, "max_length": 64},
        {"parallelism": 4, "memory_cost": 16},
    ],
)
def test_bad_configuration_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        PasswordHasher(allow_weak=True, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad_hash",
    [
        "not a hash",
        "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$",
        "$argon2id$v=19$m=8,t=1$c2FsdHNhbHQ$aGFzaA",
        "$2b$12$abcdefghijklmnopqrstuuZ7b8Gd2CYU4X5q7kG2FoVNjl2UqWmS",
        "$argon2id$v=19$m=8,t=1,p=1$!!!$???",
        "",
        None,
    ],
)
def test_malformed_stored_hash_is_invalid_input(hasher: PasswordHasher, bad_hash: object) -> None:
    with pytest.raises(InvalidInput, match="stored password hash is malformed"):
        hasher.verify(bad_hash, "correct horse battery staple")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="stored password hash is malformed"):
        hasher.needs_rehash(bad_hash)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="stored password hash is malformed"):
        hasher.verify_and_update(bad_hash, "correct horse battery staple")  # type: ignore[arg-type]


def test_verify_dummy_burns_a_verification(hasher: PasswordHasher) -> None:
    with mock.patch.object(argon2.PasswordHasher, "verify", autospec=True) as verify:
        verify.side_effect = argon2.exceptions.VerifyMismatchError
        assert hasher.verify_dummy("whatever the client sent") is False
        assert hasher.verify_dummy("another guess") is False
    assert verify.call_count == 2
    dummy = verify.call_args.args[1]
    assert dummy.startswith("$argon2id$v=19$m=8,t=1,p=1$")  # same cost as real hashes
    assert hasher.verify_dummy("real call, no mock") is False


def test_thread_safe_concurrent_use(hasher: PasswordHasher) -> None:
    stored = {f"pw-{i}-long-enough": hasher.hash(f"pw-{i}-long-enough") for i in range(4)}
    results: list[bool] = []
    lock = threading.Lock()

    def work(password: str, hashed: str) -> None:
        for _ in range(10):
            ok = hasher.verify(hashed, password) and not hasher.verify(hashed, password + "x")
            with lock:
                results.append(ok)

    threads = [threading.Thread(target=work, args=item) for item in stored.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 40


def test_repr_does_not_show_the_pepper() -> None:
    pepper = b"P" * 32
    assert "PPPP" not in repr(PasswordHasher(pepper=pepper, **CHEAP))  # type: ignore[arg-type]
