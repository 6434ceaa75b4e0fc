"""TOTP: codes from pyotp, window, replay refusal, malformed codes, memory and Redis stores."""

from __future__ import annotations

import base64
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
import redis

from kit_auth.exceptions import BackendUnavailable, ConfigurationError, InvalidInput, InvalidOTP
from kit_auth.totp import (
    MemoryOTPReplayStore,
    OTPReplayStore,
    RedisOTPReplayStore,
    TOTPVerifier,
    new_totp_secret,
    totp_uri,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pytest_kit_services._redis import RedisServer

T0 = 1_700_000_010  # 10 s into a 30 s step
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture
def totp() -> pyotp.TOTP:
    return pyotp.TOTP(SECRET)


def test_new_secret_is_160_bit_base32() -> None:
    secrets_ = {new_totp_secret() for _ in range(20)}
    assert len(secrets_) == 20
    for secret in secrets_:
        assert len(base64.b32decode(secret)) == 20
        pyotp.TOTP(secret).now()  # usable by pyotp


def test_totp_uri_round_trips_through_pyotp() -> None:
    uri = totp_uri(SECRET, account="ada@example.com", issuer="Kit Corp")
    assert uri.startswith("otpauth://totp/Kit%20Corp:ada%40example.com?")
    query = parse_qs(urlparse(uri).query)
    assert query["secret"] == [SECRET]
    assert query["issuer"] == ["Kit Corp"]
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.at(T0) == pyotp.TOTP(SECRET).at(T0)
    uri8 = totp_uri(SECRET, account="ada", issuer="Kit", digits=8, interval=60)
    assert parse_qs(urlparse(uri8).query)["digits"] == ["8"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"secret": "not base32 !!", "account": "ada", "issuer": "Kit"},
        {"secret": "JBSWY3DP", "account": "ada", "issuer": "Kit"},  # 40 bits
        {"secret": SECRET, "account": "", "issuer": "Kit"},
        {"secret": SECRET, "account": "ada", "issuer": "Kit:Corp"},
        {"secret": SECRET, "account": "ada", "issuer": "Kit", "digits": 4},
    ],
)
def test_totp_uri_refuses_bad_input(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput) as info:
        totp_uri(**kwargs)  # type: ignore[arg-type]
    assert SECRET not in str(info.value)


def test_current_code_accepted(totp: pyotp.TOTP) -> None:
    TOTPVerifier().verify(SECRET, totp.at(T0), user_id="u1", at=T0)


def test_accepts_datetime_and_spaces(totp: pyotp.TOTP) -> None:
    at = datetime.fromtimestamp(T0, tz=UTC)
    code = totp.at(T0)
    TOTPVerifier().verify(SECRET, f"{code[:3]} {code[3:]}", user_id="u1", at=at)


def test_naive_datetime_refused(totp: pyotp.TOTP) -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        TOTPVerifier().verify(SECRET, totp.at(T0), user_id="u1", at=datetime(2024, 1, 1))


def test_real_clock(totp: pyotp.TOTP) -> None:
    TOTPVerifier(window=1).verify(SECRET, totp.now(), user_id="u1")


def test_window(totp: pyotp.TOTP) -> None:
    verifier = TOTPVerifier(window=1)
    verifier.verify(SECRET, totp.at(T0 - 30), user_id="prev", at=T0)
    verifier.verify(SECRET, totp.at(T0 + 30), user_id="next", at=T0)
    for offset in (-60, 60):
        with pytest.raises(InvalidOTP, match="wrong or expired"):
            verifier.verify(SECRET, totp.at(T0 + offset), user_id=f"far{offset}", at=T0)
    strict = TOTPVerifier(window=0)
    with pytest.raises(InvalidOTP, match="wrong or expired"):
        strict.verify(SECRET, totp.at(T0 - 30), user_id="strict", at=T0)
    wide = TOTPVerifier(window=2)
    wide.verify(SECRET, totp.at(T0 - 60), user_id="wide", at=T0)


def test_wrong_code(totp: pyotp.TOTP) -> None:
    code = totp.at(T0)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    with pytest.raises(InvalidOTP, match="wrong or expired"):
        TOTPVerifier().verify(SECRET, wrong, user_id="u1", at=T0)


def test_replay_refused(totp: pyotp.TOTP) -> None:
    verifier = TOTPVerifier()
    code = totp.at(T0)
    verifier.verify(SECRET, code, user_id="u1", at=T0)
    with pytest.raises(InvalidOTP, match="already used"):
        verifier.verify(SECRET, code, user_id="u1", at=T0 + 5)
    # Another user with the same secret is independent.
    verifier.verify(SECRET, code, user_id="u2", at=T0)


def test_older_code_refused_after_a_newer_one(totp: pyotp.TOTP) -> None:
    verifier = TOTPVerifier(window=1)
    verifier.verify(SECRET, totp.at(T0 + 30), user_id="u1", at=T0)  # next step's code
    with pytest.raises(InvalidOTP, match="already used"):
        verifier.verify(SECRET, totp.at(T0), user_id="u1", at=T0)  # current, still in window
    verifier.verify(SECRET, totp.at(T0 + 60), user_id="u1", at=T0 + 60)  # newer: fine


@pytest.mark.parametrize(
    "code", ["", "12345", "1234567", "12a456", "١٢٣٤٥٦", "+12345", "-12345", None, 123456]
)
def test_malformed_codes(code: object) -> None:
    with pytest.raises(InvalidOTP, match="must be 6 digits"):
        TOTPVerifier().verify(SECRET, code, user_id="u1", at=T0)  # type: ignore[arg-type]


def test_eight_digits_and_sixty_seconds() -> None:
    totp = pyotp.TOTP(SECRET, digits=8, interval=60)
    verifier = TOTPVerifier(digits=8, interval=60)
    verifier.verify(SECRET, totp.at(T0), user_id="u1", at=T0)
    with pytest.raises(InvalidOTP, match="must be 8 digits"):
        verifier.verify(SECRET, totp.at(T0)[:6], user_id="u1", at=T0)


@pytest.mark.parametrize(
    ("secret", "user_id", "at"),
    [
        ("not base32 !!", "u1", T0),
        (SECRET, "", T0),
        (SECRET, "u" * 300, T0),
        (SECRET, "u1", -1),
        (SECRET, "u1", float("nan")),
        (SECRET, "u1", "now"),
    ],
)
def test_bad_arguments_are_invalid_input(secret: str, user_id: str, at: object) -> None:
    with pytest.raises(InvalidInput) as info:
        TOTPVerifier().verify(secret, "123456", user_id=user_id, at=at)  # type: ignore[arg-type]
    assert "!!" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"digits": 5},
        {"digits": 11},
        {"interval": 0},
        {"interval": 121},
        {"window": -1},
        {"window": 11},
        {"store": object()},
        {"issuer": "a:b"},
    ],
)
def test_bad_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        TOTPVerifier(**kwargs)  # type: ignore[arg-type]


def test_uri_uses_verifier_settings() -> None:
    uri = TOTPVerifier(issuer="Kit", digits=8).uri(SECRET, account="ada")
    assert pyotp.parse_uri(uri).digits == 8
    with pytest.raises(InvalidInput, match="issuer"):
        TOTPVerifier().uri(SECRET, account="ada")


class RecordingStore:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, float]] = []

    def claim(self, user_id: str, timecode: int, ttl: float) -> bool:
        self.calls.append((user_id, timecode, ttl))
        return True


def test_matched_timecode_and_ttl_passed_to_store(totp: pyotp.TOTP) -> None:
    store = RecordingStore()
    assert isinstance(store, OTPReplayStore)
    TOTPVerifier(store=store, window=1).verify(SECRET, totp.at(T0 - 30), user_id="u1", at=T0)
    assert store.calls == [("u1", int(T0) // 30 - 1, 120.0)]


def test_memory_store_expiry_and_bound() -> None:
    store = MemoryOTPReplayStore(max_entries=3)
    assert store.claim("a", 10, ttl=60)
    assert not store.claim("a", 10, ttl=60)
    assert not store.claim("a", 9, ttl=60)
    assert store.claim("b", 10, ttl=0.0)  # expires immediately
    assert store.claim("b", 5, ttl=60)  # the expired record no longer blocks
    store.claim("c", 1, ttl=60)
    store.claim("d", 1, ttl=60)
    assert len(store) == 3
    with pytest.raises(ConfigurationError):
        MemoryOTPReplayStore(max_entries=0)


def _concurrent_verifications(verifier: TOTPVerifier, code: str, n: int = 8) -> list[str]:
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n)

    def attempt() -> None:
        barrier.wait()
        try:
            verifier.verify(SECRET, code, user_id="racer", at=T0)
            result = "ok"
        except InvalidOTP:
            result = "refused"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_memory_store_concurrent_same_code(totp: pyotp.TOTP) -> None:
    outcomes = _concurrent_verifications(TOTPVerifier(), totp.at(T0))
    assert sorted(outcomes) == ["ok"] + ["refused"] * 7


# -- Redis --------------------------------------------------------------------------------


@pytest.fixture
def redis_store(redis_clean_url: str) -> Iterator[RedisOTPReplayStore]:
    client = redis.Redis.from_url(redis_clean_url)
    yield RedisOTPReplayStore(client, prefix="test:otp:")
    client.close()


def test_redis_store_replay_and_older(redis_store: RedisOTPReplayStore, totp: pyotp.TOTP) -> None:
    verifier = TOTPVerifier(store=redis_store)
    verifier.verify(SECRET, totp.at(T0 + 30), user_id="u1", at=T0)
    with pytest.raises(InvalidOTP, match="already used"):
        verifier.verify(SECRET, totp.at(T0 + 30), user_id="u1", at=T0)
    with pytest.raises(InvalidOTP, match="already used"):
        verifier.verify(SECRET, totp.at(T0), user_id="u1", at=T0)
    verifier.verify(SECRET, totp.at(T0), user_id="u2", at=T0)


def test_redis_store_sets_a_ttl(redis_clean_url: str) -> None:
    client = redis.Redis.from_url(redis_clean_url)
    try:
        store = RedisOTPReplayStore(redis_clean_url, prefix="ttl:")
        assert store.claim("u1", 42, ttl=90.0)
        assert client.get("ttl:u1") == b"42"
        pttl = int(client.pttl("ttl:u1"))  # type: ignore[arg-type]
        assert 0 < pttl <= 90_000
        assert not store.claim("u1", 41, ttl=90.0)
        assert store.claim("u1", 43, ttl=90.0)
        assert client.get("ttl:u1") == b"43"
    finally:
        client.close()


def test_redis_store_concurrent_same_code(
    redis_store: RedisOTPReplayStore, totp: pyotp.TOTP
) -> None:
    outcomes = _concurrent_verifications(TOTPVerifier(store=redis_store), totp.at(T0))
    assert sorted(outcomes) == ["ok"] + ["refused"] * 7


def test_redis_down_is_backend_unavailable(redis_server: RedisServer, totp: pyotp.TOTP) -> None:
    store = RedisOTPReplayStore(redis_server.url)
    verifier = TOTPVerifier(store=store)
    verifier.verify(SECRET, totp.at(T0), user_id="u1", at=T0)
    redis_server.stop()
    with pytest.raises(BackendUnavailable) as info:
        verifier.verify(SECRET, totp.at(T0 + 30), user_id="u1", at=T0 + 30)
    assert info.value.problem()["status"] == 503


def test_redis_store_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="redis://"):
        RedisOTPReplayStore("http://example.com")
    with pytest.raises(ConfigurationError, match=r"redis\.Redis client"):
        RedisOTPReplayStore(42)  # type: ignore[arg-type]


def test_expiry_is_relative_to_real_time_not_at(totp: pyotp.TOTP) -> None:
    # The replay record lives for (2 * window + 2) intervals of real time, whatever `at` is.
    verifier = TOTPVerifier()
    verifier.verify(SECRET, totp.at(T0), user_id="u1", at=T0)
    later = datetime.fromtimestamp(T0, tz=UTC) + timedelta(seconds=5)
    with pytest.raises(InvalidOTP, match="already used"):
        verifier.verify(SECRET, totp.at(T0), user_id="u1", at=later)
