"""What the ``ping()`` health checks share: the timeout check, a probe bounded in time,
and a Redis ``PING`` on a connection of its own (sync and asyncio)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kit_auth.exceptions import ConfigurationError

__all__ = ["aping_redis", "check_timeout", "ping_redis", "within"]


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
    pool = ThreadPoolExecutor(1, thread_name_prefix="kit-auth-ping")
    try:
        return bool(pool.submit(probe).result(timeout=timeout))
    except Exception:  # down, refused, late: not healthy
        return False
    finally:
        pool.shutdown(wait=False)


def _probe_options(client: Any, timeout: float, retry: Any) -> tuple[Any, dict[str, Any]]:
    """The connection class of ``client``'s pool and its options (address, credentials,
    TLS, database), with ``timeout`` for connecting and reading and no retries."""
    pool = client.connection_pool
    options = dict(pool.connection_kwargs)
    options.update(
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=retry,
        health_check_interval=0,
    )
    return pool.connection_class, options


def _is_pong(reply: object) -> bool:
    return reply in (b"PONG", "PONG", True)


def ping_redis(client: Any, timeout: float) -> bool:
    """True if the Redis behind the ``redis.Redis`` ``client`` answers ``PING`` within
    ``timeout`` seconds, on a one-off connection (the pool is not involved). Never
    raises."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    def probe() -> bool:
        connection_class, options = _probe_options(client, timeout, Retry(NoBackoff(), 0))
        connection = connection_class(**options)
        try:
            connection.connect()
            connection.send_command("PING")
            return _is_pong(connection.read_response())
        finally:
            connection.disconnect()

    return within(probe, timeout)


async def aping_redis(client: Any, timeout: float) -> bool:
    """The ``redis.asyncio`` twin of :func:`ping_redis`."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    async def probe() -> bool:
        connection_class, options = _probe_options(client, timeout, Retry(NoBackoff(), 0))
        connection = connection_class(**options)
        try:
            await connection.connect()
            await connection.send_command("PING")
            return _is_pong(await connection.read_response())
        finally:
            await connection.disconnect()

    try:
        return await asyncio.wait_for(probe(), timeout)
    except Exception:  # down, refused, late (TimeoutError): not healthy
        return False
