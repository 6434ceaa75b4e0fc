"""What every mailer's ``ping()`` shares: the timeout check and a probe bounded in time."""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from kit_mail.exceptions import ConfigurationError

__all__ = ["check_timeout", "within"]


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


def within(probe: Callable[[], bool], timeout: float) -> bool:
    """``probe()`` run on a helper thread: its answer if it comes within ``timeout``
    seconds, False if it raises or is late (the thread is left to finish on its own,
    which its own socket timeouts bound)."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="kit-mail-ping")
    try:
        return bool(pool.submit(probe).result(timeout=timeout))
    except Exception:  # unreachable, refused, late: not healthy
        return False
    finally:
        pool.shutdown(wait=False)
