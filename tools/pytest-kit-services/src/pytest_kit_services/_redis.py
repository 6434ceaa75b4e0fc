"""Throwaway redis-server built on ``pytest_redis.executor.RedisExecutor``."""

from __future__ import annotations

import os
import shlex
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._common import (
    HOST,
    ServerStartError,
    ServiceUnavailable,
    find_binary,
    free_port,
    make_tempdir,
    remove_tree,
    start_executor,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from types import TracebackType

    from pytest_redis.executor import RedisExecutor

REDIS_URL_ENV = "KIT_TEST_REDIS_URL"
_PACKAGE = "redis-server"
_EXTRA_HINT = "install pytest-kit-services[redis]"
_PORT_ATTEMPTS = 5


def _executor_class() -> type[RedisExecutor]:
    """Import pytest-redis lazily and return a RedisExecutor that never persists."""
    try:
        from pytest_redis.executor import RedisExecutor
    except ImportError as exc:
        raise ServiceUnavailable(f"redis: pytest-redis is not installed ({_EXTRA_HINT})") from exc

    class _KitRedisExecutor(RedisExecutor):
        """RedisExecutor plus ``--save "" --appendonly no`` (no snapshots at all)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.command_parts = [*self.command_parts, "--save", ""]
            self.command = shlex.join(self.command_parts)

    return _KitRedisExecutor


class RedisServer:
    """A private redis-server on 127.0.0.1 that can be stopped and restarted on its port.

    ``start()`` picks a free port the first time and reuses it on every restart, so
    clients that reconnect find the server again.  ``close()`` stops it and deletes
    its temporary directory.
    """

    def __init__(self, *, port: int | None = None, startup_timeout: int = 10) -> None:
        """Prepare (but do not start) a server; *port* None means pick a free one."""
        self._fixed_port = port
        self._port = port
        self._timeout = startup_timeout
        self._tmpdir: Path | None = None
        self._executor: RedisExecutor | None = None

    @property
    def host(self) -> str:
        """Host the server listens on."""
        return HOST

    @property
    def port(self) -> int:
        """TCP port (available after the first ``start()``)."""
        if self._port is None:
            raise RuntimeError("RedisServer has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        """True while the redis-server process is alive."""
        return self._executor is not None and self._executor.running()

    @property
    def logfile(self) -> Path | None:
        """Path of the server log, if started."""
        if self._tmpdir is None or self._port is None:
            return None
        return self._tmpdir / f"redis-server.{self._port}.log"

    def start(self) -> RedisServer:
        """Start the server (restart on the same port if it was stopped)."""
        if self.running:
            return self
        if self._executor is not None:
            start_executor(self._executor, name="redis-server", logfile=self.logfile)
            return self
        binary = find_binary(
            ["redis-server"], service="redis", package=_PACKAGE, env_var=REDIS_URL_ENV
        )
        executor_class = _executor_class()
        if self._tmpdir is None:
            self._tmpdir = make_tempdir("kit-redis-")
        attempts = 1 if self._fixed_port is not None else _PORT_ATTEMPTS
        for attempt in range(attempts):
            port = self._fixed_port if self._fixed_port is not None else free_port()
            executor = executor_class(
                executable=str(binary),
                databases=16,
                redis_timeout=0,
                loglevel="notice",
                host=HOST,
                port=port,
                startup_timeout=self._timeout,
                appendonly="no",
                datadir=self._tmpdir,
            )
            self._port = port
            try:
                start_executor(executor, name="redis-server", logfile=self.logfile)
            except ServerStartError as exc:
                if not exc.port_clash or attempt == attempts - 1:
                    raise
                continue
            self._executor = executor
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Stop the server process; keep the port and data dir for ``start()``."""
        if self._executor is not None and self._executor.running():
            self._executor.stop()

    def close(self) -> None:
        """Stop the server and delete its temporary directory."""
        try:
            if self._executor is not None:
                self._executor.stop()
        finally:
            self._executor = None
            remove_tree(self._tmpdir)
            self._tmpdir = None

    def __enter__(self) -> RedisServer:
        """Start the server."""
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server and clean up."""
        self.close()


@contextmanager
def redis_service() -> Iterator[str]:
    """Yield a Redis URL: ``KIT_TEST_REDIS_URL`` if set, else a throwaway server's."""
    url = os.environ.get(REDIS_URL_ENV)
    if url:
        yield url
        return
    with RedisServer() as server:
        yield server.url


def flushdb(url: str) -> None:
    """Run FLUSHDB on the database that *url* points at."""
    try:
        import redis
    except ImportError as exc:
        raise ServiceUnavailable(
            f"redis: the redis client is not installed ({_EXTRA_HINT})"
        ) from exc
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
