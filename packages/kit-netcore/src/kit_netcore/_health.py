"""What the shields' ``ping()`` health checks share."""

from __future__ import annotations

import math

from kit_netcore.exceptions import ConfigurationError

__all__ = ["check_timeout"]


def check_timeout(timeout: float) -> float:
    """``timeout`` as float seconds, or :class:`ConfigurationError` if it is not > 0.

    Example::

        >>> check_timeout(2)
        2.0
    """
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout < math.inf
    ):
        raise ConfigurationError(f"ping: timeout={timeout!r}: give seconds > 0.")
    return float(timeout)
