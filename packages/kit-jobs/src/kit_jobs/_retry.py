"""Retry policy: how many times a failed job runs again, and how long it waits first.

The delays are computed here, the same way on every backend: exponential backoff
(``backoff * 2 ** (attempt - 1)``), capped at ``max_delay``, with "equal jitter" (a random
point in the upper half of each delay) so that jobs failing together do not retry
together. On RQ the whole list goes to ``rq.Retry(interval=[...])`` with one entry per
retry, because RQ repeats the *first* entry of a short list.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .exceptions import ConfigurationError

__all__ = ["Retry", "coerce_retry"]


@dataclass(frozen=True, slots=True)
class Retry:
    """Run a failed job again up to ``max`` times, waiting longer before each retry.

    Args:
        max: retries after the first attempt (``Retry(max=3)`` runs at most 4 times).
        backoff: seconds before the first retry; each next wait doubles. ``0`` retries
            at once.
        jitter: wait a random time between half and all of each delay.
        max_delay: cap on any single wait, in seconds.

    Example::

        >>> Retry(max=4, backoff=2, jitter=False).delays()
        [2.0, 4.0, 8.0, 16.0]
        >>> Retry(max=3, backoff=10, max_delay=15, jitter=False).delays()
        [10.0, 15.0, 15.0]
    """

    max: int = 3
    backoff: float = 1.0
    jitter: bool = True
    max_delay: float = 3600.0

    def __post_init__(self) -> None:
        if isinstance(self.max, bool) or not isinstance(self.max, int) or self.max < 0:
            raise ConfigurationError(f"Retry(max={self.max!r}): give a whole number >= 0")
        for name in ("backoff", "max_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigurationError(f"Retry({name}={value!r}): give seconds as a number >= 0")
            if not math.isfinite(value):
                raise ConfigurationError(
                    f"Retry({name}={value!r}): give a finite number of seconds"
                )

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry_number`` (1 for the first retry)."""
        if retry_number < 1:
            raise ConfigurationError(f"retry_number must be >= 1, got {retry_number}")
        if self.backoff == 0:
            return 0.0
        # Cap the exponent so huge retry counts do not overflow the float.
        base = min(self.max_delay, self.backoff * 2.0 ** min(retry_number - 1, 64))
        if self.jitter:
            base = (rng or random).uniform(base / 2, base)
        return float(base)

    def delays(self) -> list[float]:
        """The wait before each retry, one entry per retry (jitter drawn now)."""
        return [self.delay(n) for n in range(1, self.max + 1)]

    def rq_intervals(self) -> list[int]:
        """The delays as RQ wants them: whole seconds, one per retry (RQ's scheduler
        works in seconds; a delay below one second but above zero becomes 1)."""
        return [0 if d == 0 else max(1, math.ceil(d)) for d in self.delays()]


def coerce_retry(value: int | Retry | None) -> Retry | None:
    """Turn the ``retry=`` option of ``@job`` into a :class:`Retry` (or None for none).

    Example::

        >>> coerce_retry(2)
        Retry(max=2, backoff=1.0, jitter=True, max_delay=3600.0)
        >>> coerce_retry(0) is None
        True
    """
    if value is None:
        return None
    if isinstance(value, Retry):
        return value if value.max > 0 else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(
            f"retry={value!r}: give a number of retries (int >= 0) or Retry(max=..., backoff=...)"
        )
    return Retry(max=value) if value > 0 else None
