"""Rate-limit policies (:class:`RateLimit`) and the answer to one check (:class:`Decision`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from kit_auth.exceptions import ConfigurationError

__all__ = ["Algorithm", "Decision", "RateLimit"]

Algorithm = Literal["gcra", "sliding-window"]
_ALGORITHMS = ("gcra", "sliding-window")

_UNITS: dict[str, int] = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_LIMIT_RE = re.compile(
    r"^\s*(\d{1,12})\s*(?:/|\s+per\s+)\s*(\d{1,9})?\s*([a-z]+?)s?\s*$", re.IGNORECASE
)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ACCEPTED = (
    "'<count>/<unit>' or '<count> per <number> <unit>', unit one of second, minute, "
    "hour, day (plural or s/min/h/d), e.g. '10/minute', '100 per 1 hour', '5/15 minutes'"
)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A policy: ``limit`` requests per ``period`` seconds.

    ``algorithm="gcra"`` (the default) is a token bucket measured as a theoretical arrival
    time: up to ``burst`` requests at once (default ``limit``), then one every
    ``period / limit`` seconds. ``"sliding-window"`` is the sliding-window counter of the
    ``limits`` library: the count of the current fixed window plus the previous window's
    count weighted by how much of it still overlaps the sliding window. ``name`` is the
    policy name of the ``RateLimit-Policy`` header and part of the storage key.

    Example::

        >>> RateLimit(limit=10, period=60)
        RateLimit(limit=10, period=60, burst=None, algorithm='gcra', name='default')
        >>> RateLimit.parse("5/15 minutes", name="login").period
        900
        >>> RateLimit(limit=0, period=1)
        Traceback (most recent call last):
        ...
        kit_auth.exceptions.ConfigurationError: RateLimit limit must be an integer >= 1, got 0.
    """

    limit: int
    period: float
    burst: int | None = None
    algorithm: Algorithm = "gcra"
    name: str = "default"

    def __post_init__(self) -> None:
        if type(self.limit) is not int or self.limit < 1:
            raise ConfigurationError(
                f"RateLimit limit must be an integer >= 1, got {self.limit!r}."
            )
        if (
            isinstance(self.period, bool)
            or not isinstance(self.period, int | float)
            or not math.isfinite(self.period)
            or self.period < 0.001
        ):
            raise ConfigurationError(
                f"RateLimit period must be a number of seconds >= 0.001, got {self.period!r}."
            )
        if self.burst is not None and (type(self.burst) is not int or self.burst < 1):
            raise ConfigurationError(
                f"RateLimit burst must be None (= limit) or an integer >= 1, got {self.burst!r}."
            )
        if self.burst is not None and self.algorithm != "gcra":
            raise ConfigurationError(
                "RateLimit burst only applies to algorithm='gcra'; remove it or switch the "
                "algorithm."
            )
        if self.algorithm not in _ALGORITHMS:
            raise ConfigurationError(
                f"RateLimit algorithm must be one of {', '.join(_ALGORITHMS)}, "
                f"got {self.algorithm!r}."
            )
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ConfigurationError(
                f"RateLimit name must be 1-64 characters of letters, digits, '_', '.', '-' "
                f"(it is a header token and part of storage keys), got {self.name!r}."
            )

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        burst: int | None = None,
        algorithm: Algorithm = "gcra",
        name: str = "default",
    ) -> RateLimit:
        """Build a policy from text such as ``"10/minute"`` or ``"100 per 1 hour"``.

        Example::

            >>> RateLimit.parse("100 per 1 hour")
            RateLimit(limit=100, period=3600, burst=None, algorithm='gcra', name='default')
            >>> RateLimit.parse("10/fortnight")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            kit_auth.exceptions.ConfigurationError: Cannot parse rate limit '10/fortnight'; ...
        """
        if not isinstance(text, str):
            raise ConfigurationError(f"A rate limit string is expected, got {type(text).__name__}.")
        match = _LIMIT_RE.match(text)
        unit = _UNITS.get(match.group(3).lower()) if match else None
        if match is None or unit is None:
            raise ConfigurationError(f"Cannot parse rate limit {text!r}; use {_ACCEPTED}.")
        count = int(match.group(2)) if match.group(2) else 1
        return cls(
            limit=int(match.group(1)),
            period=count * unit,
            burst=burst,
            algorithm=algorithm,
            name=name,
        )

    @classmethod
    def coerce(cls, value: RateLimit | str, *, name: str = "default") -> RateLimit:
        """``value`` if it is a :class:`RateLimit`, else ``RateLimit.parse(value, name=name)``.

        Example::

            >>> RateLimit.coerce("3/second").limit
            3
        """
        if isinstance(value, RateLimit):
            return value
        if isinstance(value, str):
            return cls.parse(value, name=name)
        raise ConfigurationError(
            f"A RateLimit or a string such as '10/minute' is expected, got {type(value).__name__}."
        )

    @property
    def capacity(self) -> int:
        """How many requests fit at once: ``burst`` for GCRA (default ``limit``), else ``limit``.

        Example::

            >>> RateLimit(limit=10, period=60, burst=3).capacity
            3
        """
        return self.limit if self.burst is None else self.burst

    @property
    def window(self) -> int:
        """Seconds for a full quota to refill, rounded up (the ``w`` of ``RateLimit-Policy``).

        Example::

            >>> RateLimit(limit=10, period=60, burst=5).window
            30
        """
        return math.ceil(self.capacity * self.period / self.limit - 1e-9)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one rate-limit check.

    ``remaining`` is how many more requests would be allowed right now, ``reset_after``
    the seconds until the full quota is back, ``retry_after`` the seconds until the next
    request can be allowed (0 when this one was). ``degraded`` is True when the storage
    could not be reached and ``failure="open"`` let the request through unchecked.

    Example::

        >>> d = Decision(allowed=False, limit=10, remaining=0, reset_after=11.2,
        ...              retry_after=5.5, policy="default", window=60)
        >>> d.headers()["RateLimit"]
        '"default";r=0;t=12'
        >>> d.headers()["Retry-After"]
        '6'
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float
    policy: str = "default"
    window: int = 0
    degraded: bool = False

    def headers(self) -> dict[str, str]:
        """The IETF ``RateLimit-Policy`` and ``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers-10),
        plus ``Retry-After`` (whole seconds, rounded up) when the request was refused.

        Example::

            >>> Decision(True, 10, 3, 12.0, 0.0, "default", 60).headers()
            {'RateLimit-Policy': '"default";q=10;w=60', 'RateLimit': '"default";r=3;t=12'}
        """
        headers = {
            "RateLimit-Policy": f'"{self.policy}";q={self.limit};w={self.window}',
            "RateLimit": f'"{self.policy}";r={max(self.remaining, 0)};t={_ceil(self.reset_after)}',
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(_ceil(self.retry_after), 1))
        return headers


def _ceil(seconds: float) -> int:
    """Whole seconds rounded up, ignoring float noise below a microsecond."""
    return max(math.ceil(seconds - 1e-6), 0)
