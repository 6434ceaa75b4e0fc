"""TOTP second factor (RFC 6238) through pyotp, with replay refusal.

pyotp computes the codes; kit adds what a login needs around them: enrolment helpers
(:func:`new_totp_secret`, :func:`totp_uri`), strict code parsing (a malformed code is an
:class:`~kit_auth.exceptions.InvalidOTP`, never a crash), and **replay refusal**: the
timecode a code matched is remembered per user, and any code whose timecode is not newer
than the last accepted one is refused. That blocks both a replayed code and an older code
that is still inside the accepted window.

The replay store is :class:`MemoryOTPReplayStore` (one process) or
:class:`RedisOTPReplayStore` (several workers; an atomic Lua script with a TTL).

Example::

    >>> import pyotp
    >>> secret = new_totp_secret()
    >>> verifier = TOTPVerifier()
    >>> code = pyotp.TOTP(secret).at(1_700_000_000)
    >>> verifier.verify(secret, code, user_id="u1", at=1_700_000_000)
    >>> verifier.verify(secret, code, user_id="u1", at=1_700_000_000)
    Traceback (most recent call last):
      ...
    kit_auth.exceptions.InvalidOTP: This one-time code was already used; wait for the next code.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

import pyotp

from kit_auth.exceptions import BackendUnavailable, ConfigurationError, InvalidInput, InvalidOTP

if TYPE_CHECKING:
    from redis import Redis

__all__ = [
    "MemoryOTPReplayStore",
    "OTPReplayStore",
    "RedisOTPReplayStore",
    "TOTPVerifier",
    "new_totp_secret",
    "totp_uri",
]

_MAX_USER_ID: Final = 256
_MAX_LABEL: Final = 200


def new_totp_secret() -> str:
    """A new random TOTP secret: 160 bits from :mod:`secrets`, base32 (32 characters).

    Store it encrypted or at least server-side only; show it once, as a QR code of
    :func:`totp_uri`.

    Example::

        >>> secret = new_totp_secret()
        >>> len(secret), secret.isupper() or secret.isalnum()
        (32, True)
    """
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii")


def _check_secret(secret: object) -> None:
    """Refuse an unusable stored secret with InvalidInput (never quoting it)."""
    if not isinstance(secret, str) or not secret:
        raise InvalidInput("The stored TOTP secret must be a non-empty base32 string.")
    padded = secret + "=" * (-len(secret) % 8)
    try:
        decoded = base64.b32decode(padded, casefold=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("The stored TOTP secret is not valid base32; re-enrol.") from None
    if len(decoded) < 16:
        raise InvalidInput("The stored TOTP secret is shorter than 128 bits; re-enrol.")


def _check_label(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} must be a non-empty string.")
    if ":" in value or len(value) > _MAX_LABEL:
        raise InvalidInput(
            f"{name} must not contain ':' and must be at most {_MAX_LABEL} characters "
            "(the otpauth label is 'issuer:account')."
        )
    return value


def totp_uri(secret: str, *, account: str, issuer: str, digits: int = 6, interval: int = 30) -> str:
    """The ``otpauth://totp/...`` enrolment URI to show as a QR code.

    Example::

        >>> totp_uri("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", account="ada@example.com", issuer="Kit")
        'otpauth://totp/Kit:ada%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Kit'
    """
    _check_secret(secret)
    _check_label("account", account)
    _check_label("issuer", issuer)
    _check_digits_interval(digits, interval, error=InvalidInput)
    return pyotp.TOTP(secret, digits=digits, interval=interval).provisioning_uri(
        name=account, issuer_name=issuer
    )


def _check_digits_interval(
    digits: object, interval: object, *, error: type[Exception] = ConfigurationError
) -> None:
    if not isinstance(digits, int) or isinstance(digits, bool) or not 6 <= digits <= 10:
        raise error(f"digits must be an integer from 6 to 10, got {digits!r}")
    if not isinstance(interval, int) or isinstance(interval, bool) or not 1 <= interval <= 120:
        raise error(
            f"interval must be an integer number of seconds from 1 to 120, got {interval!r}"
        )


@runtime_checkable
class OTPReplayStore(Protocol):
    """Remembers the last accepted timecode per user.

    ``claim`` must be atomic: accept (and record) *timecode* only if it is greater than
    the one recorded for *user_id*, and forget the record after *ttl* seconds (by then
    every code it could protect has left the window).
    """

    def claim(self, user_id: str, timecode: int, ttl: float) -> bool:
        """True if *timecode* is newer than the last accepted one (and is now recorded)."""
        ...


class MemoryOTPReplayStore:
    """In-process replay store: thread-safe, entries expire, size bounded.

    When ``max_entries`` is reached, expired entries are dropped first, then the oldest
    ones (which weakens replay protection for those users only until their window ends).
    Use :class:`RedisOTPReplayStore` when several processes verify codes.

    Example::

        >>> store = MemoryOTPReplayStore()
        >>> store.claim("u1", 100, ttl=90), store.claim("u1", 100, ttl=90), store.claim("u1", 101, ttl=90)
        (True, False, True)
    """

    def __init__(self, *, max_entries: int = 100_000) -> None:
        if not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries < 1:
            raise ConfigurationError(f"max_entries must be a positive integer, got {max_entries!r}")
        self._max = max_entries
        self._entries: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def claim(self, user_id: str, timecode: int, ttl: float) -> bool:
        """Accept *timecode* for *user_id* only if newer than the last accepted one."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(user_id)
            if entry is not None and entry[1] > now and entry[0] >= timecode:
                return False
            self._entries.pop(user_id, None)
            if len(self._entries) >= self._max:
                self._evict(now)
            self._entries[user_id] = (timecode, now + ttl)
            return True

    def _evict(self, now: float) -> None:
        for key in [k for k, (_, expires) in self._entries.items() if expires <= now]:
            del self._entries[key]
        while len(self._entries) >= self._max:
            del self._entries[next(iter(self._entries))]


# KEYS[1] = the user's key; ARGV[1] = timecode; ARGV[2] = ttl in milliseconds.
_CLAIM_LUA: Final = """
local last = redis.call('GET', KEYS[1])
if last and tonumber(last) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


class RedisOTPReplayStore:
    """Replay store in Redis: one atomic Lua script per claim, keys expire with a TTL.

    Args:
        client_or_url: a ``redis.Redis`` client, or a ``redis://`` URL to build one from.
        prefix: key prefix; keys are ``{prefix}{user_id}``.

    Redis errors raise :class:`~kit_auth.exceptions.BackendUnavailable`, so a Redis
    outage refuses second factors rather than accepting replays.

    Example::

        >>> RedisOTPReplayStore("redis://127.0.0.1:6379/0", prefix="app:otp:").prefix
        'app:otp:'
    """

    def __init__(self, client_or_url: Redis | str, *, prefix: str = "kit:otp:") -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "RedisOTPReplayStore needs redis-py: pip install 'kit-auth[redis]'"
            ) from exc
        if isinstance(client_or_url, str):
            try:
                client: Any = redis.Redis.from_url(
                    client_or_url, socket_timeout=5.0, socket_connect_timeout=5.0
                )
            except ValueError as exc:
                raise ConfigurationError(
                    "RedisOTPReplayStore needs a redis://, rediss:// or unix:// URL"
                ) from exc
        elif isinstance(client_or_url, redis.Redis):
            client = client_or_url
        else:
            raise ConfigurationError(
                "RedisOTPReplayStore takes a redis.Redis client or a redis:// URL, not "
                f"{type(client_or_url).__name__}"
            )
        if not isinstance(prefix, str):
            raise ConfigurationError("prefix must be a string")
        self.prefix = prefix
        self._client = client
        self._script = client.register_script(_CLAIM_LUA)
        self._redis_error: type[Exception] = redis.RedisError

    def claim(self, user_id: str, timecode: int, ttl: float) -> bool:
        """Accept *timecode* for *user_id* only if newer than the last accepted one."""
        ttl_ms = max(1, int(ttl * 1000))
        try:
            result = self._script(keys=[self.prefix + user_id], args=[timecode, ttl_ms])
        except self._redis_error as exc:
            raise BackendUnavailable(f"the one-time-code replay store failed: {exc}") from exc
        return bool(int(result))


class TOTPVerifier:
    """Verify TOTP codes and refuse replays.

    Args:
        store: an :class:`OTPReplayStore`; default a new :class:`MemoryOTPReplayStore`.
        digits: code length (6 to 10, default 6).
        interval: seconds per code (1 to 120, default 30).
        window: how many intervals before and after now are accepted (0 to 10, default 1,
            which tolerates 30 s of clock drift either way).
        issuer: default issuer for :meth:`uri`.

    Example::

        >>> import pyotp
        >>> secret = new_totp_secret()
        >>> verifier = TOTPVerifier(window=1)
        >>> totp = pyotp.TOTP(secret)
        >>> verifier.verify(secret, totp.at(1_700_000_030), user_id="u1", at=1_700_000_000)
        >>> verifier.verify(secret, totp.at(1_700_000_000), user_id="u1", at=1_700_000_000)
        Traceback (most recent call last):
          ...
        kit_auth.exceptions.InvalidOTP: This one-time code was already used; wait for the next code.
    """

    def __init__(
        self,
        *,
        store: OTPReplayStore | None = None,
        digits: int = 6,
        interval: int = 30,
        window: int = 1,
        issuer: str | None = None,
    ) -> None:
        _check_digits_interval(digits, interval)
        if not isinstance(window, int) or isinstance(window, bool) or not 0 <= window <= 10:
            raise ConfigurationError(f"window must be an integer from 0 to 10, got {window!r}")
        if store is not None and not callable(getattr(store, "claim", None)):
            raise ConfigurationError("store must have a claim(user_id, timecode, ttl) method")
        if issuer is not None:
            try:
                _check_label("issuer", issuer)
            except InvalidInput as exc:
                raise ConfigurationError(str(exc)) from None
        self.store: OTPReplayStore = MemoryOTPReplayStore() if store is None else store
        self.digits = digits
        self.interval = interval
        self.window = window
        self.issuer = issuer

    def uri(self, secret: str, *, account: str, issuer: str | None = None) -> str:
        """:func:`totp_uri` with this verifier's digits, interval and default issuer.

        Example::

            >>> TOTPVerifier(issuer="Kit").uri("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", account="ada")
            'otpauth://totp/Kit:ada?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Kit'
        """
        chosen = issuer if issuer is not None else self.issuer
        if chosen is None:
            raise InvalidInput("an issuer is needed: pass issuer= here or to TOTPVerifier")
        return totp_uri(
            secret, account=account, issuer=chosen, digits=self.digits, interval=self.interval
        )

    def verify(
        self,
        secret: str,
        code: str,
        *,
        user_id: str,
        at: datetime | float | None = None,
    ) -> None:
        """Accept *code* for *user_id* or raise :class:`~kit_auth.exceptions.InvalidOTP`.

        Refused: a code that is not ``digits`` ASCII digits (spaces are ignored, so
        "123 456" works), a wrong or expired code, and a code whose timecode is not newer
        than the last one accepted for this user (a replay, or an older code from the
        window). *at* (a timezone-aware datetime or a Unix timestamp) defaults to now.

        Example::

            >>> TOTPVerifier().verify(new_totp_secret(), "12345x", user_id="u1")
            Traceback (most recent call last):
              ...
            kit_auth.exceptions.InvalidOTP: The one-time code must be 6 digits.
        """
        _check_secret(secret)
        if not isinstance(user_id, str) or not user_id or len(user_id) > _MAX_USER_ID:
            raise InvalidInput(
                f"user_id must be a non-empty string of at most {_MAX_USER_ID} characters."
            )
        now = self._timestamp(at)
        normalized = code.replace(" ", "").strip() if isinstance(code, str) else ""
        if len(normalized) != self.digits or not (normalized.isascii() and normalized.isdigit()):
            raise InvalidOTP(f"The one-time code must be {self.digits} digits.")
        totp = pyotp.TOTP(secret, digits=self.digits, interval=self.interval)
        current = int(now // self.interval)
        matched: int | None = None
        for offset in range(-self.window, self.window + 1):
            timecode = current + offset
            if timecode < 0:
                continue
            expected = totp.generate_otp(timecode)
            # Compare every candidate (no early exit) so timing does not reveal which matched.
            if hmac.compare_digest(expected.encode(), normalized.encode()):
                matched = timecode
        if matched is None:
            raise InvalidOTP("The one-time code is wrong or expired.")
        # Long enough that the claimed timecode has left every possible window by then.
        ttl = float((2 * self.window + 2) * self.interval)
        if not self.store.claim(user_id, matched, ttl):
            raise InvalidOTP("This one-time code was already used; wait for the next code.")

    @staticmethod
    def _timestamp(at: datetime | float | None) -> float:
        if at is None:
            return time.time()
        if isinstance(at, datetime):
            if at.tzinfo is None:
                raise InvalidInput("at must be a timezone-aware datetime (e.g. datetime.now(UTC)).")
            return at.timestamp()
        if isinstance(at, int | float) and not isinstance(at, bool) and 0 <= at < 2**40:
            return float(at)
        raise InvalidInput("at must be a timezone-aware datetime, a Unix timestamp >= 0, or None.")
